//! Following the Kafka queue for the live tail: a consumer outside any group,
//! assigned every partition at its end offset when it starts, so it takes
//! nothing from the workers and commits nothing.
//!
//! Positions are per partition (see `partitioned.rs`), so order holds within
//! a partition and gaps are looked for there: [`Followed::Missed`] spans the
//! offsets of one partition that went by unseen, which happens only when the
//! brokers deleted them (retention) before the follower read them. A follower
//! that falls behind otherwise only lags; it never holds ingest back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::{client_config, to_record, unreachable};
use crate::follow::InOrder;
use crate::{Followed, Follower, KafkaQueueConfig, QueueError, position_of};

/// A follower of the Kafka queue.
pub(super) struct KafkaFollower {
    consumer: Arc<BaseConsumer>,
    /// Per partition, where the next record should start.
    order: BTreeMap<u32, InOrder>,
}

impl KafkaFollower {
    /// Assigns every partition at its high watermark, read now, so that every
    /// record acknowledged after this returns is seen.
    pub(super) async fn start(
        config: &KafkaQueueConfig,
        partitions: u32,
    ) -> Result<Box<dyn Follower>, QueueError> {
        // librdkafka wants a group id even to assign; this one never joins.
        let consumer: BaseConsumer = client_config(config)
            .set("group.id", format!("{}-follower", config.group))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|error| QueueError::Config(format!("kafka follower settings: {error}")))?;
        let (topic, timeout) = (config.topic.clone(), config.command_timeout);
        let (consumer, ends) = tokio::task::spawn_blocking(move || {
            let mut assignment = TopicPartitionList::new();
            let mut ends = Vec::new();
            for partition in 0..partitions as i32 {
                let (_, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
                assignment.add_partition_offset(&topic, partition, Offset::Offset(high))?;
                ends.push(high);
            }
            consumer.assign(&assignment)?;
            Ok::<_, rdkafka::error::KafkaError>((consumer, ends))
        })
        .await
        .map_err(|error| QueueError::Unreachable(format!("kafka follower: {error}")))?
        .map_err(unreachable)?;
        let mut order = BTreeMap::new();
        for (partition, high) in (0u32..).zip(ends) {
            let high = u64::try_from(high).unwrap_or(0);
            order.insert(partition, InOrder::new(position_of(partition, high)?));
        }
        Ok(Box::new(KafkaFollower {
            consumer: Arc::new(consumer),
            order,
        }))
    }
}

#[async_trait::async_trait]
impl Follower for KafkaFollower {
    async fn next(&mut self, wait: Duration) -> Result<Option<Followed>, QueueError> {
        if let Some(due) = self.order.values_mut().find_map(InOrder::take_held) {
            return Ok(Some(due));
        }
        let consumer = Arc::clone(&self.consumer);
        let polled = tokio::task::spawn_blocking(move || {
            consumer.poll(wait).map(|message| {
                message
                    .map_err(unreachable)
                    .and_then(|message| to_record(&message))
            })
        })
        .await
        .map_err(|error| QueueError::Unreachable(format!("kafka follower: {error}")))?;
        let Some(record) = polled else {
            return Ok(None);
        };
        let record = record?;
        let partition = record.partition.unwrap_or_default();
        let order = self
            .order
            .entry(partition)
            .or_insert_with(|| InOrder::new(record.position));
        Ok(Some(order.seen(record)))
    }
}
