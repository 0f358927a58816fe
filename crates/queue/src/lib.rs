//! Durable queue between the HTTP ingest API and the indexing workers: a request is acknowledged only after its bytes are fsynced here, so nothing acknowledged is lost on a crash.
//!
//! [`Queue`] is the backend-neutral seam; [`EmbeddedQueue`] is the built-in
//! implementation, a segmented append-only log in a local directory whose
//! single writer thread group-commits concurrent appends.

mod embedded;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

use std::time::Duration;

use bytes::Bytes;

pub use embedded::{EmbeddedQueue, EmbeddedQueueConfig};

/// Logical position in the queue: a byte offset in the log's address space, monotonically increasing, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

/// One record read back from the queue.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where the record starts.
    pub position: Position,
    /// Where the next record starts; persist this once the record is processed.
    pub next: Position,
    /// The bytes given to [`Queue::append`].
    pub payload: Bytes,
}

/// A point-in-time summary of the queue, for metrics and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Oldest retained position.
    pub first: Position,
    /// End of the durable (fsynced, readable) records.
    pub durable_end: Position,
    /// Everything before this has been released by the consumer.
    pub released: Position,
    /// `durable_end - released`.
    pub pending_bytes: u64,
    /// Number of segment files on disk.
    pub segments: usize,
    /// Bound on pending bytes; appends beyond it fail with [`QueueError::Full`].
    pub max_bytes: u64,
    /// Number of data syncs (`fdatasync`) performed since open; far fewer than appends under concurrency.
    pub syncs: u64,
    /// The writer stopped after an I/O error: appends fail until the queue is reopened.
    pub failed: bool,
}

/// Everything that can go wrong in a queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Too many bytes are pending; the caller should retry later (HTTP 503 + Retry-After).
    #[error("queue is full ({pending_bytes} of {max_bytes} bytes pending); retry later")]
    Full {
        /// Pending bytes at the time of the append, including appends not yet synced.
        pending_bytes: u64,
        /// The configured bound.
        max_bytes: u64,
    },
    /// The payload is larger than the queue accepts.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload size.
        size: usize,
        /// Largest accepted payload size.
        max: usize,
    },
    /// A file-system operation failed.
    #[error("queue I/O error while {context}: {source}")]
    Io {
        /// What the queue was doing, including the file involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed validation.
    #[error("queue data is corrupt: {0}")]
    Corrupt(String),
    /// The requested position was released and its segment deleted.
    #[error("position {requested:?} is no longer retained (oldest is {first:?})")]
    Released {
        /// The position asked for.
        requested: Position,
        /// The oldest position still retained.
        first: Position,
    },
    /// Another process holds the queue directory's lock.
    #[error(
        "{dir} is in use by another process: is another `logbook serve` running on this data directory? Stop it first"
    )]
    Locked {
        /// The queue directory.
        dir: String,
    },
    /// The queue was closed; no more appends are accepted.
    #[error("queue is closed")]
    Closed,
    /// An earlier write or fsync failed (a full disk, an I/O error), so the
    /// queue accepts no more appends until it is reopened. A failed fsync is
    /// never retried on the same file: the kernel may have dropped the pages
    /// it could not write, and a second fsync would report success for data
    /// that is gone.
    #[error(
        "the queue stopped accepting writes after a failure ({0}); restart after fixing the cause"
    )]
    Unavailable(String),
}

impl QueueError {
    /// Builds an [`QueueError::Io`] with a description of the failed operation.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        QueueError::Io {
            context: context.into(),
            source,
        }
    }

    /// Copies an error so that every waiter of a failed batch gets its own.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            QueueError::Full {
                pending_bytes,
                max_bytes,
            } => QueueError::Full {
                pending_bytes: *pending_bytes,
                max_bytes: *max_bytes,
            },
            QueueError::RecordTooLarge { size, max } => QueueError::RecordTooLarge {
                size: *size,
                max: *max,
            },
            QueueError::Io { context, source } => QueueError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            QueueError::Corrupt(message) => QueueError::Corrupt(message.clone()),
            QueueError::Released { requested, first } => QueueError::Released {
                requested: *requested,
                first: *first,
            },
            QueueError::Closed => QueueError::Closed,
            QueueError::Locked { dir } => QueueError::Locked { dir: dir.clone() },
            QueueError::Unavailable(message) => QueueError::Unavailable(message.clone()),
        }
    }
}

/// The seam between ingest and processing. The embedded log implements it now; Redis Streams, Kafka and RabbitMQ backends will later.
///
/// Delivery is at-least-once: a consumer reads from a position it persisted
/// itself, and calls `release` once everything before a position is safely
/// processed.
#[async_trait::async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends one record; returns (start position, next position) only once the record is durable.
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError>;

    /// Reads durable records starting exactly at `from`.
    ///
    /// `from` must be a record boundary returned earlier, or
    /// `stats().first`/`released`. Returns at most `max_records` records and
    /// roughly `max_bytes` payload bytes (always at least one record if
    /// available). If none is available yet, waits up to `wait` for one to
    /// become durable, then returns what there is (possibly empty).
    async fn read(
        &self,
        from: Position,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError>;

    /// Tells the queue that everything before `upto` is processed; whole segments entirely before it are deleted.
    async fn release(&self, upto: Position) -> Result<(), QueueError>;

    /// Current positions and sizes.
    fn stats(&self) -> QueueStats;

    /// Stops the writer after finishing (and syncing) everything already submitted; later appends fail with Closed.
    async fn close(&self);
}
