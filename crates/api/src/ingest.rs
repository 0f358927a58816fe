//! `POST /v1/logs`: decode, validate, enqueue durably, then answer 202.
//!
//! The answer is written only after [`queue::Queue::append`] returns, which is
//! after the record is fsynced: an acknowledged event survives a crash.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{BatchFormat, DecodeError, DecodedBatch, IngestContext, Rejection, Stream, Timestamp};
use queue::QueueError;
use serde::Serialize;
use serde_json::json;

use crate::access::Principal;
use crate::body;
use crate::decompress::{Encoding, decompress};
use crate::{ApiError, AppState};

#[derive(Serialize)]
struct Accepted<'a> {
    accepted: usize,
    rejected: usize,
    ids: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: Vec<RejectionBody<'a>>,
}

#[derive(Serialize)]
struct RejectionBody<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    code: &'a str,
    message: &'a str,
}

impl<'a> From<&'a Rejection> for RejectionBody<'a> {
    fn from(rejection: &'a Rejection) -> Self {
        RejectionBody {
            index: rejection.index,
            line: rejection.line,
            code: rejection.code,
            message: &rejection.message,
        }
    }
}

/// `POST /v1/logs`.
pub(crate) async fn ingest_logs(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(state, peer, principal, Stream::Logs, headers, body).await
}

/// `POST /v1/audit`.
pub(crate) async fn ingest_audit(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(state, peer, principal, Stream::Audit, headers, body).await
}

async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    stream: Stream,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = batch_format(header_str(&headers, header::CONTENT_TYPE.as_str())?)?;
    let encoding = Encoding::from_header(header_str(&headers, header::CONTENT_ENCODING.as_str())?)?;
    let limits = state.limits.clone();
    // The tenant pays for its bytes before they are read: the announced length up
    // front, or each chunk as it arrives.
    let announced = body::content_length(&headers);
    body::check_announced(announced, limits.max_body_bytes)?;
    if let Some(length) = announced {
        state.auth.limits.admit_bytes(&principal, length)?;
    }
    let buffered = body::read(
        body,
        limits.max_body_bytes,
        limits.body_timeout,
        announced,
        &state.body_budget,
        |chunk| match announced {
            Some(_) => Ok(()),
            None => state
                .auth
                .limits
                .admit_bytes(&principal, chunk.len() as u64),
        },
    )
    .await?;
    // The body's share of the memory budget is held until the request is answered.
    let (body, _budget) = (buffered.bytes, buffered.permit);
    // Decoding takes memory in proportion to the body; a few at a time keep the
    // total bounded however many clients send at once.
    let _permit = state
        .decode_permits
        .acquire()
        .await
        .map_err(|error| ApiError::internal("waiting to decode a request", &error))?;

    let context = IngestContext::new(
        &principal.tenant,
        Timestamp::now(),
        Some(peer.ip().to_string()),
    )
    .with_stream(stream);
    let decoded = tokio::task::spawn_blocking(move || {
        let body = decompress(encoding, body, limits.max_decompressed_bytes)?;
        model::decode_batch(&body, format, &context, &limits.events).map_err(decode_error)
    })
    .await
    .map_err(|error| ApiError::internal("decoding a request", &error))??;

    if decoded.ids.is_empty() {
        let errors: Vec<RejectionBody> = decoded.rejected.iter().map(RejectionBody::from).collect();
        let mut error = ApiError::bad_request(
            "invalid_events",
            "no event in the request is valid; see errors",
        );
        error.errors = Some(Box::new(json!(errors)));
        return Err(error);
    }
    state
        .auth
        .limits
        .admit_events(&principal, decoded.ids.len())?;
    enqueue(&state, &decoded).await?;
    let answer = Accepted {
        accepted: decoded.ids.len(),
        rejected: decoded.rejected.len(),
        ids: &decoded.ids,
        errors: decoded.rejected.iter().map(RejectionBody::from).collect(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Appends a batch to the queue, answering only once it is durable.
pub(crate) async fn enqueue(state: &AppState, decoded: &DecodedBatch) -> Result<(), ApiError> {
    let record = model::encode_record(decoded);
    match state.queue.append(record.into()).await {
        Ok(_) => Ok(()),
        Err(QueueError::Full {
            pending_bytes,
            max_bytes,
        }) => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "the ingest queue is full ({pending_bytes} of {max_bytes} bytes waiting to be indexed); retry later"
                ),
            );
            error.retry_after_seconds = Some(1);
            Err(error)
        }
        Err(QueueError::RecordTooLarge { size, max }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the accepted events take {size} bytes; one request may carry at most {max}"),
        )),
        Err(QueueError::Closed) => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            );
            error.retry_after_seconds = Some(1);
            Err(error)
        }
        Err(other) => Err(ApiError::internal("writing to the queue", &other)),
    }
}

/// A header's value; a value that is not visible ASCII is refused rather than ignored.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("the {name} header is not ASCII"),
                )
            })
        })
        .transpose()
}

/// JSON (one object or an array) or NDJSON, by content type; JSON if absent.
fn batch_format(content_type: Option<&str>) -> Result<BatchFormat, ApiError> {
    let Some(content_type) = content_type else {
        return Ok(BatchFormat::Json);
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" => Ok(BatchFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Ok(BatchFormat::Ndjson),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type:?} is not supported; use application/json or application/x-ndjson"
            ),
        )),
    }
}

fn decode_error(error: DecodeError) -> ApiError {
    let location = match &error {
        DecodeError::InvalidUtf8 { offset } => Some(json!({"byte": offset})),
        DecodeError::MalformedJson { line, column, .. } | DecodeError::TooDeep { line, column } => {
            Some(json!({"line": line, "column": column}))
        }
        _ => None,
    };
    let code = error.code();
    let mut api = ApiError::bad_request(code, error.to_string());
    if let DecodeError::TooManyEvents { .. } = error {
        api.status = StatusCode::PAYLOAD_TOO_LARGE;
    }
    api.location = location.map(Box::new);
    api
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_the_format() {
        let cases = [
            (None, Some(BatchFormat::Json)),
            (Some("application/json"), Some(BatchFormat::Json)),
            (
                Some("Application/JSON; charset=utf-8"),
                Some(BatchFormat::Json),
            ),
            (Some("application/x-ndjson"), Some(BatchFormat::Ndjson)),
            (Some("application/jsonl"), Some(BatchFormat::Ndjson)),
            (Some("text/plain"), None),
            (Some("application/x-www-form-urlencoded"), None),
        ];
        for (content_type, expected) in cases {
            assert_eq!(
                batch_format(content_type).ok(),
                expected,
                "{content_type:?}"
            );
        }
    }
}
