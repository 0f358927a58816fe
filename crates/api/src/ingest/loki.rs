//! `POST /loki/api/v1/push`: Loki's push API, snappy protobuf or JSON;
//! `204` once every entry is durable. `X-Scope-OrgID` is ignored: the
//! tenant is the key's.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ingest::loki::{self, Encoding};
use model::Stream;
use serde_json::json;

use super::RejectionBody;
use super::receive::{Request, header_str, ingest_error, receive};
use crate::access::Principal;
use crate::body::AlreadyCharged;
use crate::telemetry::IngestTally;
use crate::{ApiError, AppState};

/// `POST /loki/api/v1/push`.
#[utoipa::path(
    post,
    path = "/loki/api/v1/push",
    tag = "protocols",
    request_body(
        description = "A Loki `PushRequest`: protobuf compressed with snappy's block format, or JSON (`{\"streams\":[{\"stream\":{…},\"values\":[[\"<ns>\",\"<line>\",{…}?]]}]}`, gzip allowed). The tenant is the key's; `X-Scope-OrgID` is ignored.",
        content(
            (String = "application/x-protobuf"),
            (serde_json::Value = "application/json"),
        ),
    ),
    responses(
        (status = 204, description = "Every entry is durable"),
        (status = 400, description = "The body is not a push request (`malformed_body`), or some entries were refused (`invalid_events`, with `errors`; the others are durable)", body = crate::error::ErrorBody),
        (status = 408, description = "The body took longer than the body timeout (`body_timeout`)", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit (`body_too_large`, `too_many_events`, `exceeds_rate_limit`)", body = crate::error::ErrorBody),
        (status = 415, description = "Not `application/x-protobuf` or `application/json`, or an unsupported `Content-Encoding`", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate (`rate_limited`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is full or unavailable, or the server busy; `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn loki_push(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut tally = IngestTally::new(&headers).with_protocol("loki");
    let answer = push(
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

async fn push(
    state: &AppState,
    peer: SocketAddr,
    principal: &Principal,
    already_charged: bool,
    headers: &HeaderMap,
    body: Body,
    tally: &mut IngestTally,
) -> Result<Response, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str())?;
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {:?} is not a Loki push; send application/x-protobuf (snappy) or application/json",
                content_type.unwrap_or("")
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
            translation.body.len() * 4,
        );
        loki::decode(
            &translation.body,
            encoding,
            translation.max_decompressed,
            &mut batch,
        )
        .map_err(ingest_error)?;
        // A push without entries is a success, as Loki answers it.
        let decoded = match batch.is_empty() {
            true => model::DecodedBatch::default(),
            false => batch.finish().map_err(|error| ingest_error(error.into()))?,
        };
        Ok((decoded, ()))
    })
    .await?;
    let decoded = received.decoded;
    if decoded.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // As Loki does: the valid entries are kept, and the answer is a 400
    // that names the others (clients do not retry a 400).
    let errors: Vec<RejectionBody> = decoded.rejected.iter().map(RejectionBody::from).collect();
    let mut error = ApiError::bad_request(
        "invalid_events",
        format!(
            "{} of {} entries were refused (see errors); the other {} are stored",
            decoded.rejected.len(),
            decoded.rejected.len() + decoded.ids.len(),
            decoded.ids.len()
        ),
    );
    error.errors = Some(Box::new(json!(errors)));
    Err(error)
}
