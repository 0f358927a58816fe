//! The Kafka [`Queue`]: ingest nodes produce to one topic (`acks=all`,
//! idempotent), workers share its partitions in a consumer group, and each
//! worker resumes every partition from the offset recorded in the store's own
//! commit, never from Kafka's committed offsets.
//!
//! `produce.rs` appends, `consume.rs` reads for the workers, `follow.rs`
//! watches for the live tail. A record's [`Position`] packs its partition and
//! offset (see `partitioned.rs`).

mod consume;
mod follow;
mod produce;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::{
    Consumer, Follower, KafkaQueueConfig, MAX_PARTITIONS, Position, Queue, QueueError, QueueStats,
    Record, Resume, StoredOffsets, position_of,
};

/// A queue in a Kafka topic. See the module documentation.
pub struct KafkaQueue {
    config: KafkaQueueConfig,
    /// The producer; replaced by a new one when librdkafka declares it
    /// unusable (a fatal error, such as a broker fencing its producer id
    /// after a lost connection).
    producer: RwLock<FutureProducer<Watch>>,
    /// A consumer of no subscription, with the workers' group id: it reads
    /// the group's committed offsets (written for lag visibility) for `stats`.
    observer: Arc<BaseConsumer>,
    /// Whether librdkafka said every broker is down; appends fail at once
    /// while it is set. Cleared when the brokers answer again.
    down: Arc<AtomicBool>,
    /// Set by `close`: appends fail with [`QueueError::Closed`].
    closed: AtomicBool,
    partitions: u32,
    stats: Arc<Mutex<QueueStats>>,
}

impl std::fmt::Debug for KafkaQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaQueue")
            .field("topic", &self.config.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// The producer's context: notes when librdkafka finds every broker down.
pub(crate) struct Watch {
    down: Arc<AtomicBool>,
}

impl Watch {
    pub(crate) fn new(down: Arc<AtomicBool>) -> Self {
        Watch { down }
    }
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.down.store(true, Ordering::Relaxed);
        }
        tracing::warn!(%error, reason, "kafka client error");
    }
}

/// A librdkafka failure as a queue error: the broker cannot serve us now.
pub(crate) fn unreachable(error: KafkaError) -> QueueError {
    QueueError::Unreachable(format!("kafka: {error}"))
}

impl KafkaQueue {
    /// Connects, creates the topic if it is missing (an existing one keeps
    /// its partitions and settings), and starts refreshing the queue's
    /// figures in the background.
    pub async fn open(config: KafkaQueueConfig) -> Result<Arc<Self>, QueueError> {
        // Creating needs a permission reading does not: only a missing topic is created.
        let partitions = match count_partitions(&config).await? {
            0 => {
                create_topic(&config).await?;
                match count_partitions(&config).await? {
                    0 => {
                        return Err(QueueError::Unreachable(format!(
                            "kafka has no partitions of topic {} (yet)",
                            config.topic
                        )));
                    }
                    count => count,
                }
            }
            count => count,
        };
        if partitions > MAX_PARTITIONS {
            return Err(QueueError::Config(format!(
                "kafka topic {} has {partitions} partitions; Logbook numbers at most {MAX_PARTITIONS}",
                config.topic
            )));
        }
        let down = Arc::new(AtomicBool::new(false));
        let producer = produce::producer(&config, Watch::new(Arc::clone(&down)))?;
        let observer: BaseConsumer = client_config(&config)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|error| QueueError::Config(format!("kafka consumer settings: {error}")))?;
        let max_bytes = config.max_buffered_bytes;
        let queue = Arc::new(KafkaQueue {
            config,
            producer: RwLock::new(producer),
            observer: Arc::new(observer),
            down,
            closed: AtomicBool::new(false),
            partitions,
            stats: Arc::new(Mutex::new(QueueStats {
                backend: "kafka",
                // The bound is the producer's buffer, whose fill librdkafka
                // does not report: pending bytes stay 0, a full buffer
                // refuses appends as `Full`.
                max_bytes,
                ..QueueStats::default()
            })),
        });
        queue.refresh_stats().await;
        spawn_stats_refresher(Arc::downgrade(&queue));
        Ok(queue)
    }

    /// The topic's partitions as they were at open.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Deletes the topic and everything in it (for tests and operators
    /// tearing a deployment down).
    pub async fn delete_topic(config: &KafkaQueueConfig) -> Result<(), QueueError> {
        let admin = admin(config)?;
        let options = admin_options(config);
        let deleted = tokio::time::timeout(
            config.command_timeout * 2,
            admin.delete_topics(&[config.topic.as_str()], &options),
        )
        .await
        .map_err(|_| QueueError::Unreachable("kafka did not answer DeleteTopics".into()))?
        .map_err(unreachable)?;
        for result in deleted {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(QueueError::Unreachable(format!(
                        "kafka refused to delete topic {topic}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Measures the topic: high watermarks less the group's committed offsets
    /// give the records not yet stored (the workers commit offsets to Kafka
    /// after each store commit, so this lags by at most one commit).
    async fn refresh_stats(&self) {
        let observer = Arc::clone(&self.observer);
        let (topic, partitions, timeout) = (
            self.config.topic.clone(),
            self.partitions,
            self.config.command_timeout,
        );
        let measured = tokio::task::spawn_blocking(move || -> Result<u64, KafkaError> {
            let mut list = TopicPartitionList::new();
            let mut ends = Vec::new();
            for partition in 0..partitions as i32 {
                let (_, high) = observer.fetch_watermarks(&topic, partition, timeout)?;
                ends.push(high);
                list.add_partition(&topic, partition);
            }
            let committed = observer.committed_offsets(list, timeout)?;
            let mut pending = 0u64;
            for (partition, high) in ends.iter().enumerate() {
                let stored = committed
                    .find_partition(&topic, partition as i32)
                    .and_then(|element| element.offset().to_raw())
                    .filter(|offset| *offset >= 0)
                    .unwrap_or(0);
                pending += u64::try_from(high - stored).unwrap_or(0);
            }
            Ok(pending)
        })
        .await;
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        match measured {
            Ok(Ok(pending)) => {
                self.down.store(false, Ordering::Relaxed);
                stats.failed = false;
                stats.pending_records = Some(pending);
                stats.warnings = self.warnings();
            }
            Ok(Err(error)) => {
                stats.failed = true;
                stats.warnings = vec![format!("kafka: {error}")];
            }
            Err(error) => {
                stats.failed = true;
                stats.warnings = vec![format!("kafka: measuring failed: {error}")];
            }
        }
    }

    /// What an operator must know about the topic's durability.
    fn warnings(&self) -> Vec<String> {
        match self.config.replication {
            1 => vec![format!(
                "kafka topic {} was asked for one replica: an acknowledged record lives on one broker until it is stored (replication=3 survives a broker loss)",
                self.config.topic
            )],
            _ => Vec::new(),
        }
    }
}

/// The settings every client of the queue shares.
fn client_config(config: &KafkaQueueConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "logbook")
        .set(
            "socket.timeout.ms",
            config.command_timeout.as_millis().max(10).to_string(),
        );
    client
}

fn admin(config: &KafkaQueueConfig) -> Result<AdminClient<DefaultClientContext>, QueueError> {
    client_config(config)
        .create()
        .map_err(|error| QueueError::Config(format!("kafka admin settings: {error}")))
}

fn admin_options(config: &KafkaQueueConfig) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(config.command_timeout))
        .operation_timeout(Some(config.command_timeout))
}

/// Creates the topic unless it exists, with the configured partitions,
/// replicas, a majority of them in sync for a write, and room for the
/// largest record.
async fn create_topic(config: &KafkaQueueConfig) -> Result<(), QueueError> {
    let admin = admin(config)?;
    let max_bytes = (config.max_record_bytes + 1024).to_string();
    let in_sync = (config.replication / 2 + 1).to_string();
    let mut topic = NewTopic::new(
        &config.topic,
        config.partitions as i32,
        TopicReplication::Fixed(config.replication as i32),
    )
    .set("max.message.bytes", &max_bytes);
    if config.replication > 1 {
        topic = topic.set("min.insync.replicas", &in_sync);
    }
    let created = tokio::time::timeout(
        config.command_timeout * 2,
        admin.create_topics([&topic], &admin_options(config)),
    )
    .await
    .map_err(|_| QueueError::Unreachable("kafka did not answer CreateTopics".into()))?
    .map_err(unreachable)?;
    for result in created {
        match result {
            Ok(topic) => tracing::info!(
                topic,
                partitions = config.partitions,
                "created the kafka topic"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(QueueError::Unreachable(format!(
                    "kafka refused to create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// How many partitions the topic has, from the brokers' metadata (0 if it
/// does not exist).
async fn count_partitions(config: &KafkaQueueConfig) -> Result<u32, QueueError> {
    let consumer: BaseConsumer = client_config(config)
        .create()
        .map_err(|error| QueueError::Config(format!("kafka consumer settings: {error}")))?;
    let (topic, timeout) = (config.topic.clone(), config.command_timeout);
    let counted = tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        Ok::<_, KafkaError>(
            metadata
                .topics()
                .iter()
                .find(|found| found.name() == topic)
                .map_or(0, |found| found.partitions().len()),
        )
    })
    .await
    .map_err(|error| QueueError::Unreachable(format!("kafka metadata: {error}")))?
    .map_err(unreachable)?;
    Ok(u32::try_from(counted).unwrap_or(u32::MAX))
}

/// A Kafka message as a queue record.
pub(crate) fn to_record(message: &impl rdkafka::Message) -> Result<Record, QueueError> {
    let partition = u32::try_from(message.partition())
        .map_err(|_| QueueError::Corrupt(format!("kafka partition {}", message.partition())))?;
    let offset = u64::try_from(message.offset())
        .map_err(|_| QueueError::Corrupt(format!("kafka offset {}", message.offset())))?;
    Ok(Record {
        position: position_of(partition, offset)?,
        next: position_of(partition, offset + 1)?,
        payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        // Kafka cannot say whether another worker read it before; the store
        // keeps each event once by id either way.
        redelivered: false,
        receipt: None,
        partition: Some(partition),
        attempts: 0,
    })
}

/// Refreshes the figures every second while the queue lives.
fn spawn_stats_refresher(queue: Weak<KafkaQueue>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(queue) = queue.upgrade() else { return };
            queue.refresh_stats().await;
        }
    });
}

#[async_trait::async_trait]
impl Queue for KafkaQueue {
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError> {
        self.produce(None, payload).await
    }

    async fn append_keyed(
        &self,
        key: &str,
        payload: Bytes,
    ) -> Result<(Position, Position), QueueError> {
        self.produce(Some(key), payload).await
    }

    fn resume(&self) -> Resume {
        Resume::Partitions
    }

    async fn consumer(self: Arc<Self>, _start: Position) -> Result<Box<dyn Consumer>, QueueError> {
        Err(QueueError::Config(
            "a kafka consumer resumes from the offsets in the store's commits: open it with partition_consumer".into(),
        ))
    }

    async fn partition_consumer(
        self: Arc<Self>,
        offsets: Arc<dyn StoredOffsets>,
    ) -> Result<Box<dyn Consumer>, QueueError> {
        consume::KafkaConsumer::start(&self.config, offsets)
    }

    fn topic(&self) -> Option<&str> {
        Some(&self.config.topic)
    }

    async fn follow(&self) -> Result<Box<dyn Follower>, QueueError> {
        follow::KafkaFollower::start(&self.config, self.partitions).await
    }

    fn stats(&self) -> QueueStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let producer = self.producer().clone();
        let timeout = self.config.delivery_timeout;
        // Delivers what is in flight; appends waiting on it get their answers.
        let _ = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            producer.flush(timeout)
        })
        .await;
    }
}
