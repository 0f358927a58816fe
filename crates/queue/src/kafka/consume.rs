//! A worker's consumer of the Kafka queue: a member of the workers' consumer
//! group whose partitions start where the store's commits say, never where
//! Kafka's committed offsets say.
//!
//! librdkafka runs rebalance callbacks in the thread that polls, so one
//! thread of its own polls a `BaseConsumer` and hands records to the async
//! side through a bounded channel. When partitions are assigned, the callback
//! asks the store (through [`StoredOffsets`], on the runtime's handle) for
//! their offsets and starts each there, or further on if this consumer
//! already handed out records beyond it (they are staged for the worker's next
//! commit). Revoked partitions are simply let go: records of them already
//! handed out are committed by their worker with their offsets (the store
//! keeps the larger offset, and events once by id).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{client_config, to_record};
use crate::{Consumer, KafkaQueueConfig, QueueError, Record, StoredOffsets};

/// Records read ahead of the worker.
const READ_AHEAD: usize = 256;

/// How long the polling thread waits for a record before looking at its
/// commands again.
const POLL: Duration = Duration::from_millis(50);

/// The consumer's context: assigns partitions at the store's offsets.
struct Assigner {
    topic: String,
    offsets: Arc<dyn StoredOffsets>,
    runtime: tokio::runtime::Handle,
    /// Per partition, the offset after the last record handed out.
    handed_out: Mutex<HashMap<u32, u64>>,
    stop: Arc<AtomicBool>,
}

impl ClientContext for Assigner {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for Assigner {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let assigned = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assignment(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => None,
            other => {
                tracing::error!(error = ?other, "kafka rebalance failed; letting the partitions go");
                None
            }
        };
        let done = match &assigned {
            Some(assignment) => consumer.assign(assignment),
            None => consumer.unassign(),
        };
        if let Err(error) = done {
            tracing::error!(%error, "kafka consumer cannot take its assignment");
        }
    }
}

impl Assigner {
    /// Where each assigned partition starts; `None` if the store never
    /// answered before the consumer was stopped.
    fn assignment(&self, partitions: &TopicPartitionList) -> Option<TopicPartitionList> {
        let stored = self.stored()?;
        let handed_out = self
            .handed_out
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut assignment = TopicPartitionList::new();
        for element in partitions.elements_for_topic(&self.topic) {
            let partition = element.partition();
            let index = u32::try_from(partition).unwrap_or(u32::MAX);
            let start = stored
                .get(&index)
                .copied()
                .max(handed_out.get(&index).copied());
            let offset = match start.and_then(|start| i64::try_from(start).ok()) {
                Some(start) => Offset::Offset(start),
                None => Offset::Beginning,
            };
            tracing::info!(partition, ?offset, "kafka partition assigned");
            if let Err(error) = assignment.add_partition_offset(&self.topic, partition, offset) {
                tracing::error!(%error, partition, "cannot start a kafka partition");
            }
        }
        Some(assignment)
    }

    /// The store's offsets, asked until it answers or the consumer stops: a
    /// partition cannot start anywhere else.
    fn stored(&self) -> Option<BTreeMap<u32, u64>> {
        let mut pause = Duration::from_millis(100);
        while !self.stop.load(Ordering::Relaxed) {
            match self
                .runtime
                .block_on(self.offsets.stored_offsets(&self.topic))
            {
                Ok(stored) => return Some(stored),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the store's kafka offsets; asking again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        None
    }
}

/// What the async side asks of the polling thread.
enum Command {
    /// Commit these next offsets to Kafka, for lag monitoring only.
    Commit(TopicPartitionList),
}

/// A worker's consumer. See the module documentation.
pub(super) struct KafkaConsumer {
    records: mpsc::Receiver<Result<Record, QueueError>>,
    commands: std_mpsc::Sender<Command>,
    topic: String,
    stop: Arc<AtomicBool>,
}

impl KafkaConsumer {
    /// Joins the group and starts the polling thread.
    pub(super) fn start(
        config: &KafkaQueueConfig,
        offsets: Arc<dyn StoredOffsets>,
    ) -> Result<Box<dyn Consumer>, QueueError> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = Assigner {
            topic: config.topic.clone(),
            offsets,
            runtime: tokio::runtime::Handle::current(),
            handed_out: Mutex::new(HashMap::new()),
            stop: Arc::clone(&stop),
        };
        let consumer: BaseConsumer<Assigner> = client_config(config)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create_with_context(context)
            .map_err(|error| QueueError::Config(format!("kafka consumer settings: {error}")))?;
        consumer
            .subscribe(&[&config.topic])
            .map_err(super::unreachable)?;
        let (records, receiver) = mpsc::channel(READ_AHEAD);
        let (commands, orders) = std_mpsc::channel();
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kafka-consumer".to_owned())
            .spawn(move || poll_loop(consumer, records, orders, thread_stop))
            .map_err(|error| QueueError::io("starting the kafka consumer thread", error))?;
        tracing::info!(topic = %config.topic, group = %config.group, "joined the kafka consumer group");
        Ok(Box::new(KafkaConsumer {
            records: receiver,
            commands,
            topic: config.topic.clone(),
            stop,
        }))
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // The thread leaves the group and ends.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Polls until stopped or the async side is gone, then leaves the group
/// (dropping the consumer closes it).
fn poll_loop(
    consumer: BaseConsumer<Assigner>,
    records: mpsc::Sender<Result<Record, QueueError>>,
    orders: std_mpsc::Receiver<Command>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        while let Ok(Command::Commit(offsets)) = orders.try_recv() {
            if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
                tracing::debug!(%error, "cannot commit offsets to kafka (they only show lag)");
            }
        }
        let record = match consumer.poll(POLL) {
            None => continue,
            Some(Ok(message)) => to_record(&message),
            Some(Err(error)) => {
                tracing::warn!(%error, "kafka consumer poll failed");
                continue;
            }
        };
        let handed = record
            .as_ref()
            .ok()
            .and_then(|record| record.partition_offset());
        if records.blocking_send(record).is_err() {
            break;
        }
        if let Some((partition, offset)) = handed {
            consumer
                .context()
                .handed_out
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(partition, offset + 1);
        }
    }
    drop(consumer);
}

#[async_trait::async_trait]
impl Consumer for KafkaConsumer {
    async fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError> {
        let first = match tokio::time::timeout(wait, self.records.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(QueueError::Unreachable("the kafka consumer stopped".into())),
            Ok(Some(record)) => record?,
        };
        let mut bytes = first.payload.len();
        let mut read = vec![first];
        while read.len() < max_records.max(1) && bytes < max_bytes {
            match self.records.try_recv() {
                Ok(record) => {
                    let record = record?;
                    bytes += record.payload.len();
                    read.push(record);
                }
                Err(_) => break,
            }
        }
        Ok(read)
    }

    /// The store has the records' events and offsets; Kafka's committed
    /// offsets follow, for lag monitoring only.
    async fn ack(&mut self, records: &[Record]) -> Result<(), QueueError> {
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        for (partition, offset) in records.iter().filter_map(Record::partition_offset) {
            let entry = next.entry(partition).or_default();
            *entry = (*entry).max(offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            let offset = Offset::Offset(i64::try_from(offset).unwrap_or(i64::MAX));
            offsets
                .add_partition_offset(&self.topic, partition as i32, offset)
                .map_err(super::unreachable)?;
        }
        // The thread is gone only if the consumer stopped; the next read says so.
        let _ = self.commands.send(Command::Commit(offsets));
        Ok(())
    }
}
