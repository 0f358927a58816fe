//! Delivery counters shared by the layer, the background sender and the
//! application's [`Stats`] handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What happened to the events the layer saw, counted since it was built.
///
/// Cheap to clone; every clone reads the same counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    warned_dropped: AtomicBool,
}

impl Stats {
    /// Events the server accepted.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Events dropped before sending because the buffer was full (or the
    /// sender had shut down).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Events the server refused: their batch got a 4xx answer other than 429,
    /// or the server's 202 listed them as rejected (invalid one by one).
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Events given up on: still unsent when the shutdown timeout ran out, or
    /// in a batch that kept getting server errors.
    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn add_sent(&self, events: u64) {
        self.inner.sent.fetch_add(events, Ordering::Relaxed);
    }

    pub(crate) fn add_rejected(&self, events: u64) {
        self.inner.rejected.fetch_add(events, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, events: u64) {
        self.inner.failed.fetch_add(events, Ordering::Relaxed);
    }

    /// Counts one dropped event; says so on stderr the first time only.
    pub(crate) fn add_dropped(&self) {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.inner.warned_dropped.swap(true, Ordering::Relaxed) {
            eprintln!(
                "logbook-tracing: the event buffer is full or closed; dropping events \
                 (counted in Stats::dropped, reported once)"
            );
        }
    }
}
