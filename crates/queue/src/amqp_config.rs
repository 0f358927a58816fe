//! Settings of the RabbitMQ queue, known to every build so that configuration
//! files read the same with or without the `rabbitmq` feature.

use std::time::Duration;

/// Settings of the RabbitMQ queue (`AmqpQueue`, with the `rabbitmq` feature).
#[derive(Debug, Clone)]
pub struct AmqpQueueConfig {
    /// `amqp://user:password@host:port/vhost` (the default vhost is `%2f`).
    pub url: String,
    /// Prefix of the queue and exchange names: `<prefix>.work`,
    /// `<prefix>.retry.<n>`, `<prefix>.events`.
    pub prefix: String,
    /// Bound on the payload bytes in the work queue (`x-max-length-bytes`).
    pub max_bytes: u64,
    /// Bound on the records in the work queue (`x-max-length`).
    pub max_records: u64,
    /// Largest accepted payload.
    pub max_record_bytes: usize,
    /// Records a consumer holds unacknowledged at most (`basic.qos`).
    pub prefetch: u16,
    /// The delay of each retry queue, first retry first: a record the store
    /// refuses goes through `<prefix>.retry.<n>` for its n-th retry, so it is
    /// tried `1 + retry_delays.len()` times through the queue in all.
    pub retry_delays: Vec<Duration>,
    /// How long an append waits for the broker's confirmation before it
    /// answers that the queue is unreachable.
    pub confirm_timeout: Duration,
    /// How long connecting (and declaring the topology) may take.
    pub connect_timeout: Duration,
}

impl AmqpQueueConfig {
    /// Defaults for a queue at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpQueueConfig {
            url: url.into(),
            prefix: "logbook".to_owned(),
            max_bytes: 1 << 30,
            max_records: 1_000_000,
            max_record_bytes: 64 << 20,
            prefetch: 256,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(10),
                Duration::from_secs(60),
            ],
            confirm_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }
}
