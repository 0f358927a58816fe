//! Reading request bodies into memory within limits: a size, a time, and a
//! server-wide memory budget shared by every body being buffered at once.
//!
//! Each buffered byte holds one permit of [`AppState::body_budget`] until the
//! request is done with it, so a burst of large requests is refused with 503
//! instead of holding gigabytes. Callers see each chunk as it arrives (to charge
//! a rate limit or feed an HMAC) before it is kept.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// A body read into memory, and its share of the memory budget.
pub(crate) struct Buffered {
    pub(crate) bytes: Bytes,
    /// Returned to the budget when dropped, once the body is no longer needed.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// The body's length as the client announced it, if it did.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Refuses a body announced as larger than `max` before any of it is kept.
pub(crate) async fn check_announced(
    announced: Option<u64>,
    max: usize,
    body: &mut Body,
) -> Result<(), ApiError> {
    match announced {
        Some(length) if length > max as u64 => {
            linger(body).await;
            Err(too_large(max))
        }
        _ => Ok(()),
    }
}

/// How much of a refused body is read and thrown away before answering.
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a refused body is read and thrown away before answering.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Reads and discards a little of a body about to be refused, so a client
/// still sending it receives the answer: closing a socket with unread data
/// resets the connection, and the client would see a reset instead of the
/// 413. Bounded in bytes and time, and nothing is kept.
async fn linger(body: &mut Body) {
    let draining = async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |data| data.len()),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, draining).await;
}

/// Reads a whole body of at most `max` bytes within `timeout`, taking its size
/// from `budget` (all at once when `announced` is known, else chunk by chunk),
/// and passing every chunk to `on_chunk` before keeping it; an error from
/// `on_chunk` stops the read.
pub(crate) async fn read(
    body: Body,
    max: usize,
    timeout: Duration,
    announced: Option<u64>,
    budget: &std::sync::Arc<Semaphore>,
    mut on_chunk: impl FnMut(&[u8]) -> Result<(), ApiError>,
) -> Result<Buffered, ApiError> {
    let mut body = body;
    check_announced(announced, max, &mut body).await?;
    let mut permit = match announced {
        Some(length) => Some(reserve(budget, length)?),
        None => None,
    };
    let reading = async {
        let mut kept = BytesMut::with_capacity(announced.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("the request body could not be read: {error}"),
                )
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if kept.len() + chunk.len() > max {
                linger(&mut body).await;
                return Err(too_large(max));
            }
            let kept_after = (kept.len() + chunk.len()) as u64;
            if announced.is_none_or(|length| kept_after > length) {
                // Unannounced (or more than announced): reserve as it arrives.
                let more = reserve(budget, chunk.len() as u64)?;
                match permit.as_mut() {
                    Some(held) => held.merge(more),
                    None => permit = Some(more),
                }
            }
            on_chunk(&chunk)?;
            kept.extend_from_slice(&chunk);
        }
        Ok(kept.freeze())
    };
    let bytes = tokio::time::timeout(timeout, reading).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        )
    })??;
    Ok(Buffered { bytes, permit })
}

/// Takes `bytes` permits from the budget now, or answers 503: waiting would let
/// a burst of requests queue up holding their connections.
fn reserve(
    budget: &std::sync::Arc<Semaphore>,
    bytes: u64,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let busy = || {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "the server is buffering as many request bodies as its memory budget allows; retry shortly",
        );
        error.retry_after_seconds = Some(1);
        error
    };
    let permits = u32::try_from(bytes).map_err(|_| busy())?;
    std::sync::Arc::clone(budget)
        .try_acquire_many_owned(permits)
        .map_err(|_| busy())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds {max} bytes"),
    )
}
