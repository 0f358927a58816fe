//! Appending to the Kafka queue: an idempotent producer with `acks=all`; an
//! append answers only once its delivery report says every in-sync replica
//! has the record, and fails (never drops silently) when the brokers cannot
//! acknowledge it in time or the producer's local buffer is full.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use super::{KafkaQueue, Watch, client_config};
use crate::{KafkaQueueConfig, Position, QueueError, position_of};

/// How much longer than its delivery timeout an append waits for
/// librdkafka's verdict before answering unreachable itself.
const DELIVERY_GRACE: Duration = Duration::from_millis(500);

/// The producer of a queue.
pub(super) fn producer(
    config: &KafkaQueueConfig,
    watch: Watch,
) -> Result<FutureProducer<Watch>, QueueError> {
    let buffered_kbytes = (config.max_buffered_bytes / 1024).clamp(1, 2_097_151);
    client_config(config)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", config.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            config.delivery_timeout.as_millis().max(1).to_string(),
        )
        .set(
            "message.max.bytes",
            (config.max_record_bytes + 1024).to_string(),
        )
        .set("queue.buffering.max.kbytes", buffered_kbytes.to_string())
        .create_with_context(watch)
        .map_err(|error| QueueError::Config(format!("kafka producer settings: {error}")))
}

impl KafkaQueue {
    /// Produces one record, keyed or not, and waits for its delivery report.
    pub(super) async fn produce(
        &self,
        key: Option<&str>,
        payload: Bytes,
    ) -> Result<(Position, Position), QueueError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(QueueError::Closed);
        }
        if payload.len() > self.config.max_record_bytes {
            return Err(QueueError::RecordTooLarge {
                size: payload.len(),
                max: self.config.max_record_bytes,
            });
        }
        if self.down.load(Ordering::Relaxed) {
            return Err(QueueError::Unreachable(
                "kafka: every broker is down".into(),
            ));
        }
        let mut record = FutureRecord::<str, [u8]>::to(&self.config.topic).payload(&payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        let producer = self.producer().clone();
        let delivery = match producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((error, _)) => return Err(self.refused(&producer, error)),
        };
        // librdkafka times a record out only between its requests; a request
        // in flight to a broker that went away can outlast the timeout.
        let bound = self.config.delivery_timeout + DELIVERY_GRACE;
        let Ok(delivered) = tokio::time::timeout(bound, delivery).await else {
            return Err(QueueError::Unreachable(format!(
                "kafka did not acknowledge the append within {bound:?}"
            )));
        };
        match delivered {
            Ok(Ok(delivered)) => {
                let partition = u32::try_from(delivered.partition).map_err(|_| {
                    QueueError::Corrupt(format!("kafka named partition {}", delivered.partition))
                })?;
                let offset = u64::try_from(delivered.offset).map_err(|_| {
                    QueueError::Corrupt(format!("kafka named offset {}", delivered.offset))
                })?;
                Ok((
                    position_of(partition, offset)?,
                    position_of(partition, offset + 1)?,
                ))
            }
            Ok(Err((error, _))) => Err(self.refused(&producer, error)),
            // The producer went away with the record in flight.
            Err(_) => Err(QueueError::Closed),
        }
    }

    /// The current producer.
    pub(super) fn producer(&self) -> std::sync::RwLockReadGuard<'_, FutureProducer<Watch>> {
        self.producer.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces `failed` with a new producer if librdkafka declared it
    /// unusable: an idempotent producer's fatal error (its producer id
    /// fenced, say, after a broker lost track of it) fails every later
    /// append of that instance, so only a new instance, with a new producer
    /// id, appends again. The records `failed` held are answered as failed.
    fn replace_if_fatal(&self, failed: &FutureProducer<Watch>) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another append may have replaced it already.
        if current.client().native_ptr() != failed.client().native_ptr() {
            return;
        }
        match producer(&self.config, Watch::new(Arc::clone(&self.down))) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "the kafka producer failed for good; appending with a new one");
                *current = fresh;
            }
            Err(error) => {
                tracing::error!(?code, %reason, %error, "the kafka producer failed for good and cannot be replaced");
            }
        }
    }

    /// What a failed produce means for the caller.
    fn refused(&self, producer: &FutureProducer<Watch>, error: KafkaError) -> QueueError {
        self.replace_if_fatal(producer);
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => QueueError::Full {
                pending_bytes: self.config.max_buffered_bytes,
                max_bytes: self.config.max_buffered_bytes,
            },
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => QueueError::RecordTooLarge {
                size: self.config.max_record_bytes + 1,
                max: self.config.max_record_bytes,
            },
            // Not acknowledged in time: the record may still be written, so a
            // client retry can store its batch twice, as with any lost answer
            // (events with client ids replace each other).
            Some(RDKafkaErrorCode::MessageTimedOut) => QueueError::Unreachable(format!(
                "kafka did not acknowledge the append within {:?}",
                self.config.delivery_timeout
            )),
            _ => super::unreachable(error),
        }
    }
}
