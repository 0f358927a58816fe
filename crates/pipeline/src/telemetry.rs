//! What the worker records for `/metrics`: batches, their latency and the
//! store's commit latency, events committed, retries and dead letters.
//! Recorded once per batch or per failure, never per event.

use std::time::{Duration, Instant};

/// Why a dead letter was written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DeadLetterReason {
    /// A queue record that cannot be decoded.
    Unreadable,
    /// An event the store refused on its own after every attempt.
    Refused,
}

impl DeadLetterReason {
    fn label(self) -> &'static str {
        match self {
            DeadLetterReason::Unreadable => "unreadable",
            DeadLetterReason::Refused => "refused",
        }
    }
}

/// What the worker tried again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Retried {
    /// A read from a queue whose broker could not be reached.
    Read,
    /// A commit the store could not take.
    Commit,
    /// An acknowledgement the broker did not receive.
    Ack,
    /// A dead letter its store could not take.
    DeadLetter,
    /// A record the store refused, sent through the queue's retry queues.
    Refused,
}

impl Retried {
    const ALL: [Retried; 5] = [
        Retried::Read,
        Retried::Commit,
        Retried::Ack,
        Retried::DeadLetter,
        Retried::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            Retried::Read => "read",
            Retried::Commit => "commit",
            Retried::Ack => "ack",
            Retried::DeadLetter => "dead_letter",
            Retried::Refused => "refused_record",
        }
    }
}

/// Makes every counter of the worker visible at zero, so that rates and
/// alerts work from the first scrape rather than from the first failure.
pub(crate) fn register_worker_series() {
    metrics::counter!("logbook_worker_batches_total").increment(0);
    metrics::counter!("logbook_worker_events_committed_total").increment(0);
    for retried in Retried::ALL {
        metrics::counter!("logbook_worker_retries_total", "operation" => retried.label())
            .increment(0);
    }
    for reason in [DeadLetterReason::Unreadable, DeadLetterReason::Refused] {
        metrics::counter!("logbook_worker_dead_letters_total", "reason" => reason.label())
            .increment(0);
    }
}

/// A batch is stored and acknowledged: `events` events, read from `started` on.
pub(crate) fn batch_committed(events: u64, started: Option<Instant>) {
    metrics::counter!("logbook_worker_batches_total").increment(1);
    metrics::counter!("logbook_worker_events_committed_total").increment(events);
    if let Some(started) = started {
        metrics::histogram!("logbook_worker_batch_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// One successful commit of the store took `took`.
pub(crate) fn commit_took(took: Duration) {
    metrics::histogram!("logbook_worker_commit_seconds").record(took.as_secs_f64());
}

/// Something is being tried again.
pub(crate) fn retried(what: Retried) {
    metrics::counter!("logbook_worker_retries_total", "operation" => what.label()).increment(1);
}

/// A dead letter was written.
pub(crate) fn dead_letter(reason: DeadLetterReason) {
    metrics::counter!("logbook_worker_dead_letters_total", "reason" => reason.label()).increment(1);
}
