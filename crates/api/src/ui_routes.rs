//! `/` and `/ui/*`: the web UI's page and files, compiled into the binary
//! (the `ui` crate), each served with a strict Content-Security-Policy.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// `GET /`: the web UI's page.
#[utoipa::path(
    get,
    path = "/",
    tag = "ui",
    responses((status = 200, description = "The web UI's page", content_type = "text/html", body = String)),
)]
pub(crate) async fn index() -> Response {
    respond(ui::INDEX)
}

/// `GET /ui/{file}`: the UI's scripts, styles and images.
#[utoipa::path(
    get,
    path = "/ui/{file}",
    tag = "ui",
    params(("file" = String, Path, description = "A file of the UI, such as `js/main.js`")),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = Vec<u8>),
        (status = 400, description = "The path is not valid UTF-8 (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such file (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn file(file: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(file) = file
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))?;
    let asset = ui::asset(&file).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the web UI has no file {file:?}"),
        )
    })?;
    Ok(respond(asset))
}

fn respond(asset: ui::Asset) -> Response {
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    page_policy(headers, ui::CONTENT_SECURITY_POLICY);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files, compiled in: revalidating costs little and an upgraded
    // server never runs with a cached older script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The headers of every page this origin serves to browsers (the UI and
/// `/docs`): its Content-Security-Policy, no framing, no content sniffing.
pub(crate) fn page_policy(headers: &mut HeaderMap, policy: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
