//! Durable queue between the HTTP ingest API and the indexing workers: a request is acknowledged only after its bytes are fsynced here, so nothing acknowledged is lost on a crash.
//!
//! [`Queue`] is the backend-neutral seam; [`EmbeddedQueue`] is the built-in
//! implementation, a segmented append-only log in a local directory whose
//! single writer thread group-commits concurrent appends. Brokers implement
//! it too: Redis Streams (feature `redis`) and RabbitMQ (feature `rabbitmq`).

#[cfg(feature = "rabbitmq")]
mod amqp;
mod amqp_config;
mod embedded;
mod follow;
#[cfg(feature = "kafka")]
mod kafka;
mod kafka_config;
mod partitioned;
mod redis_config;
#[cfg(feature = "redis")]
mod redis_streams;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

use std::time::Duration;

use bytes::Bytes;

#[cfg(feature = "rabbitmq")]
pub use amqp::AmqpQueue;
pub use amqp_config::AmqpQueueConfig;
pub use embedded::{EmbeddedQueue, EmbeddedQueueConfig, LinkedSegment};
#[cfg(feature = "kafka")]
pub use kafka::KafkaQueue;
pub use kafka_config::KafkaQueueConfig;
pub use partitioned::{
    MAX_PARTITIONS, MAX_RECORD_EVENTS, StoredOffsets, offset_of, partition_of, position_of,
};
pub use redis_config::RedisQueueConfig;
#[cfg(feature = "redis")]
pub use redis_streams::RedisQueue;

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
    /// The record was handed out before and not acknowledged (its consumer
    /// died, or timed out): its events may already be in the store.
    pub redelivered: bool,
    /// The broker's own id of the record, which acknowledges it; `None` for
    /// queues acknowledged by position.
    pub receipt: Option<String>,
    /// The partition the record came from, for partitioned queues (Kafka),
    /// whose positions are offsets within a partition; `None` elsewhere.
    pub partition: Option<u32>,
    /// How many times the record went through the queue's retry topology
    /// (RabbitMQ's delay queues) before this delivery; 0 on first delivery
    /// and for queues without one.
    pub attempts: u32,
}

impl Record {
    /// The partition and offset of a record of a partitioned queue.
    pub fn partition_offset(&self) -> Option<(u32, u64)> {
        self.partition
            .map(|partition| (partition, offset_of(self.position)))
    }
}

/// A point-in-time summary of the queue, for metrics and health checks.
/// Fields a backend has no notion of stay at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Which implementation this is (`embedded`, `redis`, `rabbitmq`).
    pub backend: &'static str,
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
    /// The writer stopped after an I/O error, or the broker cannot be
    /// reached: appends fail until that is fixed.
    pub failed: bool,
    /// Records appended and not yet acknowledged, where the backend counts them.
    pub pending_records: Option<u64>,
    /// Conditions an operator should know about, such as a broker whose
    /// persistence settings can lose acknowledged records.
    pub warnings: Vec<String>,
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
    /// The broker cannot be reached or did not answer in time. Nothing was
    /// appended (or, after a timeout, the append's fate is unknown); the
    /// caller may retry soon.
    #[error("the queue's broker cannot be reached: {0}")]
    Unreachable(String),
    /// The queue's settings name something this build cannot open, or the
    /// broker holds queues declared with other settings.
    #[error("{0}")]
    Config(String),
    /// The queue cannot do what was asked (such as retrying a record through
    /// a retry topology it does not have).
    #[error("not supported by this queue: {0}")]
    Unsupported(String),
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
            QueueError::Unreachable(message) => QueueError::Unreachable(message.clone()),
            QueueError::Config(message) => QueueError::Config(message.clone()),
            QueueError::Unsupported(message) => QueueError::Unsupported(message.clone()),
        }
    }
}

/// How a queue's consumers know where to go on after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// From the position recorded with the store's last commit: the queue
    /// keeps no consumer state of its own (the embedded log). Exactly-once
    /// comes from committing that position with the events.
    FromStore,
    /// From the queue's own record of what each consumer group acknowledged
    /// (Redis Streams): records handed out and not acknowledged in time are
    /// handed out again, marked [`Record::redelivered`].
    Group,
    /// From the next offset of each partition recorded with the store's
    /// commits (Kafka): a consumer asks the store whenever partitions are
    /// assigned to it ([`Queue::partition_consumer`]), and the pipeline
    /// commits the offsets after its records with their events
    /// ([`Queue::topic`] names them). The broker's own committed offsets are
    /// never read back.
    Partitions,
}

/// The seam between ingest and processing. The embedded log and Redis
/// Streams implement it; every implementation passes the conformance suite in
/// `tests/conformance.rs`.
///
/// Delivery is at-least-once: a record read and not acknowledged is read
/// again, by the same consumer after a restart or, for [`Resume::Group`]
/// queues, by another consumer once its visibility timeout passed.
#[async_trait::async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends one record; returns (start position, next position) only once
    /// the record is durable. Positions grow with every append and are never
    /// reused; a record takes at least as many positions as it has bytes.
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError>;

    /// Appends one record with a key: records with the same key keep their
    /// order in a partitioned queue (the same key goes to the same
    /// partition). Queues without partitions keep every record in order and
    /// ignore the key.
    async fn append_keyed(
        &self,
        key: &str,
        payload: Bytes,
    ) -> Result<(Position, Position), QueueError> {
        let _ = key;
        self.append(payload).await
    }

    /// How consumers of this queue resume.
    fn resume(&self) -> Resume;

    /// Opens a consumer. A [`Resume::FromStore`] queue starts it at `start`
    /// (the store's committed position) and forgets what lies before it;
    /// [`Resume::Group`] queues ignore `start`.
    async fn consumer(
        self: std::sync::Arc<Self>,
        start: Position,
    ) -> Result<Box<dyn Consumer>, QueueError>;

    /// Opens a consumer of a [`Resume::Partitions`] queue: each partition
    /// assigned to it starts at the offset `offsets` has for it (the
    /// beginning if none). Queues without partitions have no such consumer.
    async fn partition_consumer(
        self: std::sync::Arc<Self>,
        offsets: std::sync::Arc<dyn StoredOffsets>,
    ) -> Result<Box<dyn Consumer>, QueueError> {
        let _ = offsets;
        Err(QueueError::Config(
            "this queue has no partitions: its consumers start at a position".into(),
        ))
    }

    /// The topic whose offsets the store's commits record, for
    /// [`Resume::Partitions`] queues.
    fn topic(&self) -> Option<&str> {
        None
    }

    /// Starts following the queue: the follower sees every record that
    /// becomes durable from now on, in order, without taking it from any
    /// consumer. Following costs ingest nothing it would wait for: a follower
    /// that falls behind is told what it missed instead.
    async fn follow(&self) -> Result<Box<dyn Follower>, QueueError>;

    /// Current positions and sizes.
    fn stats(&self) -> QueueStats;

    /// Stops accepting appends after finishing (and syncing) everything
    /// already submitted; later appends fail with Closed.
    async fn close(&self);
}

/// What a [`Follower`] saw next.
#[derive(Debug, Clone)]
pub enum Followed {
    /// A record that became durable ([`Record::redelivered`] is false and
    /// [`Record::receipt`] is `None`: a follower acknowledges nothing).
    Record(Record),
    /// The follower fell behind and the records between these positions went
    /// by unseen.
    Missed {
        /// Where the first record not seen starts.
        from: Position,
        /// Where the next record seen starts.
        to: Position,
    },
}

/// Watches records become durable, for the live tail; it takes nothing from
/// the queue's consumers and holds nothing back.
#[async_trait::async_trait]
pub trait Follower: Send {
    /// The next record, or what was missed; `None` if nothing became durable
    /// within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Option<Followed>, QueueError>;
}

/// One reader of a queue, owned by one pipeline worker.
#[async_trait::async_trait]
pub trait Consumer: Send {
    /// Reads the next records: at most `max_records` and roughly `max_bytes`
    /// of payload (always at least one record if any is available). If none
    /// is available, waits up to `wait`, then returns what there is
    /// (possibly nothing).
    async fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError>;

    /// Acknowledges records whose events the store has committed; they are
    /// never handed out again.
    async fn ack(&mut self, records: &[Record]) -> Result<(), QueueError>;

    /// How many times [`Consumer::retry`] can send a record through the
    /// queue's retry topology: a record whose [`Record::attempts`] is below
    /// it can go once more. 0 for queues without one.
    fn retry_stages(&self) -> u32 {
        0
    }

    /// Sends records the store refused back through the retry topology, each
    /// to the stage for its attempts, counted one more; once every copy is
    /// durable the originals are acknowledged. The records need their
    /// payloads. A record whose delivery is no longer current (its channel
    /// died) is skipped: it comes back by itself. Queues without a retry
    /// topology answer [`QueueError::Unsupported`].
    async fn retry(&mut self, records: &[Record]) -> Result<(), QueueError> {
        let _ = records;
        Err(QueueError::Unsupported(
            "this queue has no retry topology".into(),
        ))
    }
}
