//! Reading request bodies into memory within limits: a size, a time, and a
//! server-wide memory budget shared by every body being buffered at once.
//!
//! Each buffered byte holds one permit of [`AppState::body_budget`] (and of its
//! tenant's share of it) until the
//! request is done with it, so a burst of large requests is refused with 503
//! instead of holding gigabytes. Callers see each chunk as it arrives (to charge
//! a rate limit or feed an HMAC) before it is kept.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// The memory all request bodies being buffered may take at once, and the
/// most of it one tenant may hold, so one tenant's burst of large (or slowly
/// sent) bodies cannot leave the others with nothing.
#[derive(Debug)]
pub struct BodyBudget {
    total: Arc<Semaphore>,
    tenant_share: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl BodyBudget {
    /// `total_bytes` over all requests; a tenant may hold a quarter of it.
    pub fn new(total_bytes: usize) -> Self {
        let total_bytes = total_bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            total: Arc::new(Semaphore::new(total_bytes)),
            tenant_share: (total_bytes / 4).max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Bytes free in the budget as a whole.
    pub fn available(&self) -> usize {
        self.total.available_permits()
    }

    /// Takes `bytes` from the budget and from `tenant`'s share now, or
    /// answers 503: waiting would let a burst of requests queue up holding
    /// their connections.
    fn reserve(&self, tenant: &str, bytes: u64) -> Result<Reserved, ApiError> {
        let permits = u32::try_from(bytes).map_err(|_| busy())?;
        let share = Arc::clone(
            self.tenants
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.tenant_share))),
        );
        let tenant = share.try_acquire_many_owned(permits).map_err(|_| busy())?;
        let total = Arc::clone(&self.total)
            .try_acquire_many_owned(permits)
            .map_err(|_| busy())?;
        Ok(Reserved { total, tenant })
    }
}

/// Bytes taken from the budget and a tenant's share; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    total: OwnedSemaphorePermit,
    tenant: OwnedSemaphorePermit,
}

impl Reserved {
    /// Holds `more` (of the same budget and tenant) together with these.
    fn merge(&mut self, more: Reserved) {
        self.total.merge(more.total);
        self.tenant.merge(more.tenant);
    }
}

/// Marks a request whose body the tenant's byte bucket was already charged for
/// (a signed request, read while its signature was checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlreadyCharged;

/// A body read into memory, and its share of the memory budget.
pub(crate) struct Buffered {
    pub(crate) bytes: Bytes,
    /// Returned to the budget when dropped, once the body is no longer needed.
    pub(crate) permit: Option<Reserved>,
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
    budget: &BodyBudget,
    tenant: &str,
    mut on_chunk: impl FnMut(&[u8]) -> Result<(), ApiError>,
) -> Result<Buffered, ApiError> {
    let mut body = body;
    check_announced(announced, max, &mut body).await?;
    let mut permit = match announced {
        Some(length) => Some(budget.reserve(tenant, length)?),
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
                let more = budget.reserve(tenant, chunk.len() as u64)?;
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

fn busy() -> ApiError {
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        "the server is buffering as many request bodies as its memory budget allows; retry shortly",
    );
    error.retry_after_seconds = Some(1);
    error
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_holds_at_most_its_share_and_the_others_keep_theirs() {
        let budget = BodyBudget::new(4_000);
        let mut held = budget.reserve("a", 600).ok();
        let more = budget.reserve("a", 500);
        assert!(more.is_err(), "a tenant past its quarter is refused");
        if let (Some(held), Ok(more)) = (held.as_mut(), budget.reserve("a", 400)) {
            held.merge(more);
        }
        assert_eq!(budget.available(), 3_000);
        let others: Vec<_> = ["b", "c", "d"]
            .iter()
            .map(|tenant| budget.reserve(tenant, 1_000))
            .collect();
        assert!(
            others.iter().all(Result::is_ok),
            "each other tenant gets its share"
        );
        assert!(budget.reserve("e", 1).is_err(), "the whole budget is spent");
        drop(held);
        assert!(budget.reserve("e", 1_000).is_ok(), "a's bytes came back");
    }
}
