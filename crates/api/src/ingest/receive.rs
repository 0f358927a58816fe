//! What every HTTP ingest front end shares: the body read within its limits
//! and charged to the tenant, decompressed, handed to the protocol's
//! translator (off the async threads, a few at a time), the events charged
//! to the caller's and tenant's rates, and enqueued durably by the
//! protocol-neutral core of the `ingest` crate. The front end turns what
//! comes back into its protocol's answer.

use std::net::SocketAddr;

use ::ingest::IngestError;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use model::{DecodeError, DecodedBatch, IngestContext, Stream, Timestamp};
use queue::{Position, QueueError};
use serde_json::json;

use crate::access::Principal;
use crate::body;
use crate::decompress::{Encoding, decompress};
use crate::telemetry::IngestTally;
use crate::{ApiError, AppState};

/// One ingest request, as its front end read it.
pub(crate) struct Request<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) peer: SocketAddr,
    pub(crate) principal: &'a Principal,
    pub(crate) stream: Stream,
    /// The body was read (and charged) already, while a signature was checked.
    pub(crate) already_charged: bool,
    pub(crate) headers: &'a HeaderMap,
}

/// What a translator gets: the decompressed body, the context to stamp on
/// each event, the per-event limits, and the limit on any decompression
/// of its own (Loki's snappy).
pub(crate) struct Translation {
    pub(crate) body: Bytes,
    pub(crate) context: IngestContext,
    pub(crate) limits: model::Limits,
    pub(crate) max_decompressed: usize,
}

/// The events of a request after the queue took them.
pub(crate) struct Received<T> {
    /// The accepted events (now durable) and the refused ones.
    pub(crate) decoded: DecodedBatch,
    /// What the translator found besides events (the bulk API's actions).
    pub(crate) extra: T,
    /// Where the queue put them; none when no event was valid.
    pub(crate) end: Option<Position>,
}

/// Reads, translates, admits and enqueues one request's events. A request
/// without any valid event is not enqueued: its front end says why.
pub(crate) async fn receive<T, F>(
    request: Request<'_>,
    body: Body,
    tally: &mut IngestTally,
    translate: F,
) -> Result<Received<T>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Translation) -> Result<(DecodedBatch, T), ApiError> + Send + 'static,
{
    let Request {
        state,
        peer,
        principal,
        stream,
        already_charged,
        headers,
    } = request;
    let encoding = Encoding::from_header(header_str(headers, header::CONTENT_ENCODING.as_str())?)?;
    let limits = state.limits.clone();
    // The tenant pays for its bytes before they are read: the announced length up
    // front, or each chunk as it arrives.
    let announced = body::content_length(headers);
    let mut body = body;
    body::check_announced(announced, limits.max_body_bytes, &mut body).await?;
    if let Some(length) = announced.filter(|_| !already_charged) {
        state.auth.limits.admit_bytes(principal, length)?;
    }
    let buffered = body::read(
        body,
        limits.max_body_bytes,
        limits.body_timeout,
        announced,
        &state.body_budget,
        &principal.tenant,
        |chunk| match announced.is_some() || already_charged {
            true => Ok(()),
            false => state.auth.limits.admit_bytes(principal, chunk.len() as u64),
        },
    )
    .await?;
    // The body's share of the memory budget is held until its events are in
    // the queue (the decoded batch is about as large as the body).
    let (body, budget) = (buffered.bytes, buffered.permit);
    tally.bytes = body.len() as u64;
    // Decoding takes memory in proportion to the body; a few at a time keep the
    // total bounded however many clients send at once.
    let decode_permit = state
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
    let (decoded, extra) = tokio::task::spawn_blocking(move || {
        let body = decompress(encoding, body, limits.max_decompressed_bytes)?;
        translate(Translation {
            body,
            context,
            limits: limits.events.clone(),
            max_decompressed: limits.max_decompressed_bytes,
        })
    })
    .await
    .map_err(|error| ApiError::internal("decoding a request", &error))??;
    // Decoding is done: the permit must not be held while the queue syncs.
    drop(decode_permit);
    tally.reject_events(&decoded.rejected);
    tally.events = decoded.ids.len() as u64;
    if decoded.ids.is_empty() {
        return Ok(Received {
            decoded,
            extra,
            end: None,
        });
    }
    state
        .auth
        .limits
        .admit_events(principal, decoded.ids.len())?;
    let end = ::ingest::enqueue(state.queue.as_ref(), &principal.tenant, &decoded)
        .await
        .map_err(ingest_error)?;
    tally.durable();
    drop(budget);
    Ok(Received {
        decoded,
        extra,
        end: Some(end),
    })
}

/// The API's answer to what the ingest core refused.
pub(crate) fn ingest_error(error: IngestError) -> ApiError {
    match error {
        IngestError::Decode(error) => decode_error(error),
        IngestError::Malformed(message) => ApiError::bad_request("malformed_body", message),
        IngestError::TooLarge { max, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("decompressed body exceeds {max} bytes"),
        ),
        IngestError::BatchTooLarge { max } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the events of this request would take more than {max} bytes; send fewer per request"
            ),
        ),
        IngestError::Queue(error) => queue_error(error),
    }
}

/// What `Retry-After` says while the queue cannot write: recovery needs an
/// operator, so clients should not hammer.
const QUEUE_UNAVAILABLE_RETRY_SECONDS: u64 = 30;

/// What `Retry-After` says while the queue's broker cannot be reached: it
/// usually comes back by itself, soon.
const QUEUE_UNREACHABLE_RETRY_SECONDS: u64 = 2;

/// Appends a queue record, keyed by its tenant when known (so that a
/// partitioned queue keeps one tenant's records in order), answering only
/// once it is durable; returns where it starts and where the next one starts.
pub(crate) async fn append(
    state: &AppState,
    tenant: Option<&str>,
    record: Bytes,
) -> Result<(Position, Position), ApiError> {
    let appended = match tenant {
        Some(tenant) => state.queue.append_keyed(tenant, record).await,
        None => state.queue.append(record).await,
    };
    appended.map_err(queue_error)
}

/// Queue failures as the API's `queue_full`, `queue_unavailable`… answers.
fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::Full {
            pending_bytes,
            max_bytes,
        } => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "the ingest queue is full ({pending_bytes} of {max_bytes} bytes waiting to be indexed); retry later"
                ),
            );
            error.retry_after_seconds = Some(1);
            error
        }
        QueueError::RecordTooLarge { size, max } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the accepted events take {size} bytes; one request may carry at most {max}"),
        ),
        QueueError::Closed => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            );
            error.retry_after_seconds = Some(1);
            error
        }
        error @ (QueueError::Io { .. } | QueueError::Unavailable(_)) => {
            // A failed write or fsync (a full disk): nothing was acknowledged,
            // and the queue takes no more writes until an operator frees space
            // and restarts; clients keep their events and retry.
            tracing::error!(%error, "the queue cannot take writes");
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the ingest queue cannot write to disk; nothing in this request was accepted, retry later",
            );
            error.retry_after_seconds = Some(QUEUE_UNAVAILABLE_RETRY_SECONDS);
            error
        }
        QueueError::Unreachable(reason) => {
            // A broker outage: nothing in this request is acknowledged, and
            // the broker is expected back without an operator's help.
            tracing::warn!(%reason, "the queue's broker cannot be reached");
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the ingest queue cannot be reached; nothing in this request was accepted, retry later",
            );
            error.retry_after_seconds = Some(QUEUE_UNREACHABLE_RETRY_SECONDS);
            error
        }
        other => ApiError::internal("writing to the queue", &other),
    }
}

/// A header's value; a value that is not visible ASCII is refused rather than ignored.
pub(crate) fn header_str<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
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

pub(crate) fn decode_error(error: DecodeError) -> ApiError {
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
