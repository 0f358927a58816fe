//! A worker's consumer of the work queue: a channel of its own with a
//! bounded prefetch, reopened on the current connection after a failure.
//!
//! A record's receipt is `<session>.<delivery tag>`: delivery tags count per
//! channel, so a tag of a channel that died must never be acknowledged on its
//! successor (it would acknowledge another record). Acknowledging a stale
//! receipt does nothing: the broker hands its record out again, marked
//! redelivered, and the store replaces the events it already holds.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer as Deliveries};

use super::link::Link;
use super::publish;
use super::topology::unreachable;
use crate::{Consumer, Position, QueueError, Record};

/// A consumer of the work queue. See the module documentation.
pub(super) struct AmqpConsumer {
    link: Arc<Link>,
    retry_stages: u32,
    session: Option<Session>,
    /// Sessions opened so far, to number the next one.
    sessions: u64,
    /// A record received beyond the bounds of the last read, for the next.
    held: Option<Record>,
}

/// One channel consuming the work queue.
struct Session {
    id: u64,
    /// The connection it belongs to.
    generation: u64,
    channel: Channel,
    deliveries: Deliveries,
}

impl AmqpConsumer {
    pub(super) fn new(link: Arc<Link>, retry_stages: u32) -> Self {
        AmqpConsumer {
            link,
            retry_stages,
            session: None,
            sessions: 0,
            held: None,
        }
    }

    /// Makes sure a session is open: the current one while its channel and
    /// connection live, else a new one on the current connection.
    async fn ensure_session(&mut self) -> Result<(), QueueError> {
        let live = self.link.live()?;
        let current = self.session.as_ref().is_some_and(|session| {
            session.generation == live.generation && session.channel.status().connected()
        });
        if !current {
            self.end_session();
            let open = async {
                let channel = live
                    .connection
                    .create_channel()
                    .await
                    .map_err(unreachable)?;
                channel
                    .basic_qos(self.link.config.prefetch.max(1), BasicQosOptions::default())
                    .await
                    .map_err(unreachable)?;
                let deliveries = channel
                    .basic_consume(
                        self.link.names.work.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(unreachable)?;
                Ok::<_, QueueError>((channel, deliveries))
            };
            let (channel, deliveries) =
                match tokio::time::timeout(self.link.config.connect_timeout, open).await {
                    Ok(Ok(opened)) => opened,
                    Ok(Err(error)) => {
                        self.link.failed(live.generation);
                        return Err(error);
                    }
                    Err(_) => {
                        self.link.failed(live.generation);
                        return Err(QueueError::Unreachable(
                            "rabbitmq: no answer while starting to consume".into(),
                        ));
                    }
                };
            self.sessions += 1;
            self.session = Some(Session {
                id: self.sessions,
                generation: live.generation,
                channel,
                deliveries,
            });
        }
        Ok(())
    }

    /// Forgets the session: its unacknowledged records go back to the queue
    /// when its channel closes (now, or with its connection).
    fn end_session(&mut self) {
        self.session = None;
        self.held = None;
    }

    /// The id of the current session, if one is open.
    fn session_id(&self) -> Option<u64> {
        self.session.as_ref().map(|session| session.id)
    }
}

/// A delivery as a record of session `session`.
fn to_record(session: u64, delivery: Delivery) -> Record {
    let (position, attempts) = publish::read_headers(&delivery.properties);
    let payload = bytes::Bytes::from(delivery.data);
    Record {
        position,
        next: Position(position.0 + payload.len() as u64),
        // A record back from a retry queue may have been stored in part by
        // an earlier delivery, like a redelivered one.
        redelivered: delivery.redelivered || attempts > 0,
        receipt: Some(format!("{session}.{}", delivery.delivery_tag)),
        partition: None,
        attempts,
        payload,
    }
}

/// The session and delivery tag of a receipt.
fn parse_receipt(receipt: &str) -> Option<(u64, u64)> {
    let (session, tag) = receipt.split_once('.')?;
    Some((session.parse().ok()?, tag.parse().ok()?))
}

#[async_trait::async_trait]
impl Consumer for AmqpConsumer {
    async fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError> {
        let max_records = max_records.max(1);
        // A new session forgets what the last one held back.
        self.ensure_session().await?;
        let mut records: Vec<Record> = self.held.take().into_iter().collect();
        let Some(session) = self.session.as_mut() else {
            return Err(QueueError::Unreachable("rabbitmq: not consuming".into()));
        };
        let id = session.id;
        let mut bytes: usize = records.iter().map(|record| record.payload.len()).sum();
        let deadline = tokio::time::Instant::now() + wait;
        let mut held = None;
        let mut failure = None;
        while records.len() < max_records {
            let next = if records.is_empty() {
                match tokio::time::timeout_at(deadline, session.deliveries.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                // Only what already arrived: the first record ended the wait.
                match session.deliveries.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            match next {
                Some(Ok(delivery)) => {
                    let record = to_record(id, delivery);
                    if !records.is_empty() && bytes + record.payload.len() > max_bytes {
                        held = Some(record);
                        break;
                    }
                    bytes += record.payload.len();
                    records.push(record);
                }
                Some(Err(error)) => {
                    failure = Some(unreachable(error));
                    break;
                }
                None => {
                    failure = Some(QueueError::Unreachable(
                        "rabbitmq cancelled the consumer (was the work queue deleted?)".into(),
                    ));
                    break;
                }
            }
        }
        if let Some(error) = failure {
            // What this session handed out comes back to the next one.
            let generation = session.generation;
            self.end_session();
            self.link.failed(generation);
            return Err(error);
        }
        self.held = held;
        Ok(records)
    }

    async fn ack(&mut self, records: &[Record]) -> Result<(), QueueError> {
        for record in records {
            let Some((session, tag)) = record.receipt.as_deref().and_then(parse_receipt) else {
                continue;
            };
            let Some(current) = self.session.as_ref().filter(|s| s.id == session) else {
                tracing::debug!(tag, "a stale receipt: its record comes back by itself");
                continue;
            };
            if let Err(error) = current
                .channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
            {
                tracing::debug!(%error, "the channel died before an acknowledgement");
                self.end_session();
            }
        }
        Ok(())
    }

    fn retry_stages(&self) -> u32 {
        self.retry_stages
    }

    async fn retry(&mut self, records: &[Record]) -> Result<(), QueueError> {
        let live = self.link.live()?;
        let session = self.session_id();
        let config = &self.link.config;
        let mut confirms = Vec::new();
        for record in records {
            let receipt = record.receipt.as_deref().and_then(parse_receipt);
            if session.is_none() || receipt.map(|(s, _)| s) != session {
                // Its channel died: it comes back by itself, attempts unchanged.
                continue;
            }
            let Some(queue) = self.link.names.retry.get(record.attempts as usize) else {
                return Err(QueueError::Unsupported(format!(
                    "the record at {:?} used every retry ({} of {})",
                    record.position, record.attempts, self.retry_stages
                )));
            };
            let properties = publish::properties(record.position, record.attempts + 1);
            let sent = publish::send(&live.publisher, "", queue, &record.payload, properties).await;
            match sent {
                Ok(confirm) => confirms.push(confirm),
                Err(error) => {
                    self.link.failed(live.generation);
                    return Err(error);
                }
            }
        }
        for confirm in confirms {
            if let Err(error) =
                publish::confirmed(confirm, config.confirm_timeout, config.max_bytes).await
            {
                self.link.failed(live.generation);
                return Err(error);
            }
        }
        self.ack(records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_name_their_session_and_tag() {
        assert_eq!(parse_receipt("3.17"), Some((3, 17)));
        assert_eq!(parse_receipt("17"), None);
        assert_eq!(parse_receipt("a.b"), None);
    }
}
