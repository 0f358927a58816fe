//! `/docs`: Swagger UI over `/openapi.json`, served from assets compiled into
//! the binary (nothing is fetched from elsewhere, at build time or by the page).

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

use crate::ApiError;

/// The UI's settings: which document it shows, and that an authorisation
/// entered is kept in the page only (never in the origin's local storage,
/// which the web UI's pinned audit key shares: a credential there would be
/// readable by any script of the origin, and outlive the tab).
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::from("/openapi.json")
            .persist_authorization(false)
            .try_it_out_enabled(true),
    )
});

/// `GET /docs`: the UI's page is `/docs/`, so its relative asset links resolve.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "documentation",
    responses((status = 303, description = "See `/docs/`", headers(("location" = String, description = "`/docs/`")))),
)]
pub(crate) async fn redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// `GET /docs/`: the Swagger UI page.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "documentation",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html", body = String)),
)]
pub(crate) async fn index() -> Result<Response, ApiError> {
    asset("index.html")
}

/// `GET /docs/{file}`: the UI's scripts, styles and images.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "documentation",
    params(("file" = String, Path, description = "An asset of the UI, such as `swagger-ui.css`")),
    responses(
        (status = 200, description = "The asset", content_type = "*/*", body = Vec<u8>),
        (status = 400, description = "The path is not valid UTF-8 (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such asset (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn file(file: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(file) = file
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))?;
    asset(&file)
}

fn asset(file: &str) -> Result<Response, ApiError> {
    let found = utoipa_swagger_ui::serve(file, CONFIG.clone()).map_err(|error| {
        tracing::error!(%error, file, "serving a Swagger UI asset");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error while serving the documentation; see the server log",
        )
    })?;
    let Some(found) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no documentation asset {file:?}"),
        ));
    };
    let content_type = HeaderValue::from_str(&found.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = found.bytes.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    // Swagger UI needs inline script, so it gets no script policy; it still
    // shares the web UI's origin, so it may neither be framed nor sniffed.
    crate::ui_routes::page_policy(headers, "frame-ancestors 'none'");
    if found.gzpipped {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
