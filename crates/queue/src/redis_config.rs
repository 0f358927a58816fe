//! Settings of the Redis Streams queue, known to every build so that
//! configuration files read the same with or without the `redis` feature.

use std::time::Duration;

/// Settings of the Redis Streams queue (`RedisQueue`, with the `redis` feature).
#[derive(Debug, Clone)]
pub struct RedisQueueConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of the keys (the stream and its bookkeeping).
    pub prefix: String,
    /// Bound on the payload bytes appended and not yet acknowledged.
    pub max_bytes: u64,
    /// Bound on the records appended and not yet acknowledged.
    pub max_records: u64,
    /// Largest accepted payload.
    pub max_record_bytes: usize,
    /// A record handed to a worker and not acknowledged for this long is
    /// handed to another worker (its worker is presumed dead).
    pub visibility_timeout: Duration,
    /// How long one Redis command may take before the queue reports itself
    /// unavailable.
    pub command_timeout: Duration,
}

impl RedisQueueConfig {
    /// Defaults for a queue at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisQueueConfig {
            url: url.into(),
            prefix: "logbook".to_owned(),
            max_bytes: 1 << 30,
            max_records: 1_000_000,
            max_record_bytes: 64 << 20,
            visibility_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(2),
        }
    }
}
