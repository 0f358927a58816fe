//! The RabbitMQ [`Queue`]: ingest publishes each record, persistent and
//! publisher-confirmed, to a fanout exchange that feeds a durable (quorum)
//! work queue; workers consume it with a bounded prefetch and acknowledge a
//! record only after the store committed its events. Records the store
//! refuses go through retry queues with growing delays (see `topology.rs`).
//!
//! The connection is kept up in the background (`link.rs`); while it is
//! down, appends, reads and follows fail at once with
//! [`QueueError::Unreachable`].

mod consume;
mod follow;
mod link;
mod publish;
mod topology;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use self::link::Link;
use self::publish::Positions;
use self::topology::QueueKind;
use crate::{AmqpQueueConfig, Consumer, Follower, Position, Queue, QueueError, QueueStats, Resume};

/// A queue in RabbitMQ. See the module documentation.
pub struct AmqpQueue {
    link: Arc<Link>,
    /// Held while a record is numbered and sent, so that records leave in
    /// the order of their positions; never held while awaiting a confirm.
    positions: tokio::sync::Mutex<Positions>,
    /// Figures refreshed in the background.
    stats: Mutex<QueueStats>,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("prefix", &self.link.config.prefix)
            .finish_non_exhaustive()
    }
}

impl AmqpQueue {
    /// Connects, declares the topology (see `topology.rs`) and keeps the
    /// connection up in the background.
    pub async fn open(config: AmqpQueueConfig) -> Result<Arc<Self>, QueueError> {
        let max_bytes = config.max_bytes;
        let link = Link::open(config).await?;
        let queue = Arc::new(AmqpQueue {
            link,
            positions: tokio::sync::Mutex::new(Positions::new()),
            stats: Mutex::new(QueueStats {
                backend: "rabbitmq",
                max_bytes,
                ..QueueStats::default()
            }),
        });
        queue.refresh_stats().await;
        spawn_stats_refresher(Arc::downgrade(&queue));
        Ok(queue)
    }

    /// How many times a record can go through the retry queues.
    fn retry_stages(&self) -> u32 {
        u32::try_from(self.link.names.retry.len()).unwrap_or(u32::MAX)
    }

    /// Counts the records waiting in the work queue (a passive declaration
    /// tells; records handed to a worker and not acknowledged are not among
    /// them) and notes the queue's kind.
    async fn refresh_stats(&self) {
        let count = async {
            let live = self.link.live()?;
            let channel = live
                .connection
                .create_channel()
                .await
                .map_err(topology::unreachable)?;
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let declared = channel
                .queue_declare(
                    self.link.names.work.as_str().into(),
                    options,
                    FieldTable::default(),
                )
                .await
                .map_err(topology::unreachable)?;
            let _ = channel.close(200, "OK".into()).await;
            Ok::<_, QueueError>(u64::from(declared.message_count()))
        };
        let count = tokio::time::timeout(self.link.config.connect_timeout, count).await;
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        match count {
            Ok(Ok(count)) => stats.pending_records = Some(count),
            Ok(Err(error)) => tracing::debug!(%error, "cannot count the work queue"),
            Err(_) => tracing::debug!("rabbitmq did not answer a passive declaration"),
        }
        stats.warnings = match self.link.kind() {
            Some(QueueKind::Classic) => vec![format!(
                "rabbitmq: {} is a classic queue, kept on one broker node: a quorum queue \
                 replicates acknowledged events",
                self.link.names.work
            )],
            _ => Vec::new(),
        };
    }
}

/// Refreshes the figures every second while the queue lives.
fn spawn_stats_refresher(queue: Weak<AmqpQueue>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(queue) = queue.upgrade() else { return };
            queue.refresh_stats().await;
        }
    });
}

#[async_trait::async_trait]
impl Queue for AmqpQueue {
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError> {
        let config = &self.link.config;
        if payload.len() > config.max_record_bytes {
            return Err(QueueError::RecordTooLarge {
                size: payload.len(),
                max: config.max_record_bytes,
            });
        }
        let live = self.link.live()?;
        if live.connection.status().blocked() {
            return Err(QueueError::Unreachable(
                "rabbitmq blocks publishers (a memory or disk alarm)".into(),
            ));
        }
        let (range, confirm) = {
            let mut positions = self.positions.lock().await;
            let range = positions.range(payload.len());
            let properties = publish::properties(range.0, 0);
            let sent = publish::send(
                &live.publisher,
                &self.link.names.events,
                "",
                &payload,
                properties,
            );
            let confirm = match tokio::time::timeout(config.confirm_timeout, sent).await {
                Ok(Ok(confirm)) => confirm,
                Ok(Err(error)) => {
                    self.link.failed(live.generation);
                    return Err(error);
                }
                Err(_) => {
                    self.link.failed(live.generation);
                    return Err(QueueError::Unreachable(
                        "rabbitmq: the append could not be sent in time".into(),
                    ));
                }
            };
            positions.advance(payload.len());
            (range, confirm)
        };
        match publish::confirmed(confirm, config.confirm_timeout, config.max_bytes).await {
            Ok(()) => Ok(range),
            Err(error) => {
                if let QueueError::Unreachable(_) = error {
                    self.link.failed(live.generation);
                }
                Err(error)
            }
        }
    }

    fn resume(&self) -> Resume {
        Resume::Group
    }

    async fn consumer(self: Arc<Self>, _start: Position) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(consume::AmqpConsumer::new(
            Arc::clone(&self.link),
            self.retry_stages(),
        )))
    }

    async fn follow(&self) -> Result<Box<dyn Follower>, QueueError> {
        let mut follower = follow::AmqpFollower::new(Arc::clone(&self.link));
        // Bound first, then asked where this process's appends are: a record
        // routed to the follower is never mistaken for one it missed.
        follower.subscribe().await?;
        let next = self.positions.lock().await.next();
        follower.expect(next);
        Ok(Box::new(follower))
    }

    fn stats(&self) -> QueueStats {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        stats.failed = !self.link.is_up();
        stats
    }

    async fn close(&self) {
        self.link.close().await;
    }
}
