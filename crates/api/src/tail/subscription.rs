//! A subscriber's side of the tail: the bounded buffer the hub fills, the
//! notices of what was dropped or missed, and why the tail was closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use model::Stream;
use tokio::sync::mpsc;

use super::TailHub;

/// Why the server ended a tail, for the close frame or the final SSE event.
#[derive(Debug, Clone)]
pub(crate) struct CloseReason {
    /// The WebSocket close code.
    pub(crate) code: u16,
    pub(crate) text: String,
}

impl CloseReason {
    pub(crate) fn too_slow(window: Duration) -> CloseReason {
        CloseReason {
            // Policy violation: the client did not read what it asked for.
            code: 1008,
            text: format!(
                "too slow: dropped more events than it received over {} s",
                window.as_secs()
            ),
        }
    }

    pub(crate) fn shutting_down() -> CloseReason {
        CloseReason {
            // Going away.
            code: 1001,
            text: "the server is shutting down".to_owned(),
        }
    }
}

/// What the hub and a subscriber's connection share besides the buffer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Events dropped since the connection last reported it.
    pub(crate) dropped: AtomicU64,
    /// The hub missed records of the queue (it fell behind the queue itself).
    pub(crate) missed: AtomicBool,
    close: Mutex<Option<CloseReason>>,
}

impl Shared {
    /// Records why the hub ended this tail; the buffer's end then reports it.
    pub(crate) fn close(&self, reason: CloseReason) {
        *self.close.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

/// What a tail's connection sends next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A matching event's JSON.
    Event(Arc<str>),
    /// This many events were dropped because the buffer was full.
    Dropped(u64),
    /// The server missed records of the queue; events may be missing.
    Missed,
    /// Nothing happened for the keep-alive interval.
    Idle,
    /// The hub ended the tail.
    Closed(CloseReason),
}

/// One live tail, removed from the hub when dropped.
pub(crate) struct Subscription {
    hub: Arc<TailHub>,
    id: u64,
    tenant: String,
    stream: Stream,
    receiver: mpsc::Receiver<Arc<str>>,
    shared: Arc<Shared>,
}

impl Subscription {
    pub(super) fn new(
        hub: Arc<TailHub>,
        id: u64,
        tenant: String,
        stream: Stream,
        receiver: mpsc::Receiver<Arc<str>>,
        shared: Arc<Shared>,
    ) -> Subscription {
        Subscription {
            hub,
            id,
            tenant,
            stream,
            receiver,
            shared,
        }
    }

    /// The stream tailed, for metrics.
    pub(crate) fn stream(&self) -> Stream {
        self.stream
    }

    /// Waits up to `keepalive` for what to send next; notices of dropped or
    /// missed events come before the events still buffered.
    pub(crate) async fn next(&mut self, keepalive: Duration) -> Next {
        let dropped = self.shared.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            return Next::Dropped(dropped);
        }
        if self.shared.missed.swap(false, Ordering::AcqRel) {
            return Next::Missed;
        }
        match tokio::time::timeout(keepalive, self.receiver.recv()).await {
            Err(_) => Next::Idle,
            Ok(Some(json)) => Next::Event(json),
            Ok(None) => {
                let reason = self
                    .shared
                    .close
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Next::Closed(reason.unwrap_or_else(CloseReason::shutting_down))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.tenant, self.stream, self.id);
    }
}
