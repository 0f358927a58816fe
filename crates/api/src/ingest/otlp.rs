//! `POST /otlp/v1/logs`: OTLP/HTTP logs, protobuf or JSON, answered in the
//! encoding received; refused records are a partial success.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ingest::otlp::{self, Encoding};
use model::{DecodedBatch, Stream};

use super::receive::{Request, header_str, ingest_error, receive};
use crate::access::Principal;
use crate::body::AlreadyCharged;
use crate::telemetry::IngestTally;
use crate::{ApiError, AppState};

/// `POST /otlp/v1/logs`.
#[utoipa::path(
    post,
    path = "/otlp/v1/logs",
    tag = "protocols",
    request_body(
        description = "An OTLP `ExportLogsServiceRequest`, in protobuf or in OTLP's JSON mapping; `Content-Encoding: gzip` or `zstd` allowed. Set `OTEL_EXPORTER_OTLP_ENDPOINT=http://host:port/otlp` and `OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <key>`.",
        content(
            (String = "application/x-protobuf"),
            (serde_json::Value = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "Every valid record is durable; an `ExportLogsServiceResponse` in the request's encoding, whose `partial_success` counts the refused records and says why", content(
            (String = "application/x-protobuf"),
            (serde_json::Value = "application/json"),
        )),
        (status = 400, description = "The body is not an OTLP request (`malformed_body`), or cannot be decompressed", body = crate::error::ErrorBody),
        (status = 408, description = "The body took longer than the body timeout (`body_timeout`)", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit (`body_too_large`, `too_many_events`, `exceeds_rate_limit`)", body = crate::error::ErrorBody),
        (status = 415, description = "Not `application/x-protobuf` or `application/json`, or an unsupported `Content-Encoding`", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate (`rate_limited`); `Retry-After` says when — OTLP exporters retry", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is full or unavailable, or the server busy; `Retry-After` says when — OTLP exporters retry", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn otlp_logs(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut tally = IngestTally::new(&headers).with_protocol("otlp");
    let answer = export(
        &state,
        peer,
        &principal,
        charged.is_some(),
        &headers,
        body,
        &mut tally,
    )
    .await;
    tally.record(&principal.tenant, Stream::Logs, answer.as_ref().map(|_| ()));
    answer
}

async fn export(
    state: &AppState,
    peer: SocketAddr,
    principal: &Principal,
    already_charged: bool,
    headers: &HeaderMap,
    body: Body,
    tally: &mut IngestTally,
) -> Result<Response, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str())?.unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type:?} is not OTLP; send application/x-protobuf or application/json"
            ),
        ));
    };
    let request = Request {
        state,
        peer,
        principal,
        stream: Stream::Logs,
        already_charged,
        headers,
    };
    let received = receive(request, body, tally, move |translation| {
        let mut batch = ingest::Batch::new(
            &translation.context,
            &translation.limits,
            translation.body.len() * 2,
        );
        otlp::decode(&translation.body, encoding, &mut batch).map_err(ingest_error)?;
        // An export without records is valid, and answered as a success.
        let decoded = match batch.is_empty() {
            true => DecodedBatch::default(),
            false => batch.finish().map_err(|error| ingest_error(error.into()))?,
        };
        Ok((decoded, ()))
    })
    .await?;
    let body = otlp::respond(encoding, &received.decoded.rejected);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    Ok(response)
}
