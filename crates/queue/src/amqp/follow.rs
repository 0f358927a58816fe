//! Following the RabbitMQ queue for the live tail: each follower binds a
//! queue of its own (exclusive, auto-delete, not durable) to the events
//! exchange, so it sees every append without taking anything from the work
//! queue. Its queue is bounded and drops its oldest records when full, so a
//! slow follower never makes an append fail; the follower finds what it
//! missed from the holes in each publishing process's positions (see
//! `publish.rs`) and reports them as [`Followed::Missed`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer as Deliveries};

use super::link::Link;
use super::publish;
use super::topology::{int, text, unreachable};
use crate::follow::InOrder;
use crate::{Followed, Follower, Position, QueueError, Record};

/// Records a follower's queue keeps at most before dropping its oldest.
const FOLLOW_LENGTH: u64 = 1024;
/// Bytes a follower's queue keeps at most before dropping its oldest.
const FOLLOW_BYTES: u64 = 64 << 20;
/// Records the broker sends a follower ahead of its reading.
const FOLLOW_PREFETCH: u16 = 64;

/// A follower of the RabbitMQ queue. See the module documentation.
pub(super) struct AmqpFollower {
    link: Arc<Link>,
    subscription: Option<Subscription>,
    /// What was seen of each publishing process, by its position tag.
    publishers: HashMap<u64, InOrder>,
}

/// A follower's queue and the channel consuming it.
struct Subscription {
    generation: u64,
    channel: Channel,
    deliveries: Deliveries,
}

impl AmqpFollower {
    pub(super) fn new(link: Arc<Link>) -> Self {
        AmqpFollower {
            link,
            subscription: None,
            publishers: HashMap::new(),
        }
    }

    /// Expects the next record of the publisher of `next` to start there.
    pub(super) fn expect(&mut self, next: Position) {
        self.publishers
            .insert(publish::tag_of(next), InOrder::new(next));
    }

    /// Binds a new queue of this follower's to the events exchange, on the
    /// current connection, unless the one it has is still live.
    pub(super) async fn subscribe(&mut self) -> Result<(), QueueError> {
        let live = self.link.live()?;
        if self.subscription.as_ref().is_some_and(|subscription| {
            subscription.generation == live.generation && subscription.channel.status().connected()
        }) {
            return Ok(());
        }
        self.subscription = None;
        let events = self.link.names.events.clone();
        let open = async {
            let channel = live
                .connection
                .create_channel()
                .await
                .map_err(unreachable)?;
            let mut arguments = FieldTable::default();
            arguments.insert("x-max-length".into(), int(FOLLOW_LENGTH));
            arguments.insert("x-max-length-bytes".into(), int(FOLLOW_BYTES));
            arguments.insert("x-overflow".into(), text("drop-head"));
            let options = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            let queue = channel
                .queue_declare("".into(), options, arguments)
                .await
                .map_err(unreachable)?;
            channel
                .queue_bind(
                    queue.name().clone(),
                    events.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unreachable)?;
            channel
                .basic_qos(FOLLOW_PREFETCH, BasicQosOptions::default())
                .await
                .map_err(unreachable)?;
            let deliveries = channel
                .basic_consume(
                    queue.name().clone(),
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
                    return Err(QueueError::Unreachable(
                        "rabbitmq: no answer while starting to follow".into(),
                    ));
                }
            };
        self.subscription = Some(Subscription {
            generation: live.generation,
            channel,
            deliveries,
        });
        Ok(())
    }

    /// A record held back while the gap before it was reported.
    fn take_held(&mut self) -> Option<Followed> {
        self.publishers.values_mut().find_map(InOrder::take_held)
    }
}

#[async_trait::async_trait]
impl Follower for AmqpFollower {
    async fn next(&mut self, wait: Duration) -> Result<Option<Followed>, QueueError> {
        if let Some(due) = self.take_held() {
            return Ok(Some(due));
        }
        self.subscribe().await?;
        let Some(subscription) = self.subscription.as_mut() else {
            return Err(QueueError::Unreachable("rabbitmq: not following".into()));
        };
        let next = match tokio::time::timeout(wait, subscription.deliveries.next()).await {
            Err(_) => return Ok(None),
            Ok(next) => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                self.subscription = None;
                return Err(unreachable(error));
            }
            None => {
                self.subscription = None;
                return Err(QueueError::Unreachable(
                    "rabbitmq cancelled the follower's consumer".into(),
                ));
            }
        };
        // Taken off the follower's own queue only: the work queue keeps its copy.
        if subscription
            .channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
            .await
            .is_err()
        {
            self.subscription = None;
        }
        let (position, _) = publish::read_headers(&delivery.properties);
        let payload = bytes::Bytes::from(delivery.data);
        let record = Record {
            position,
            next: Position(position.0 + payload.len() as u64),
            payload,
            redelivered: false,
            receipt: None,
            partition: None,
            attempts: 0,
        };
        let order = self
            .publishers
            .entry(publish::tag_of(position))
            .or_insert_with(|| InOrder::new(position));
        Ok(Some(order.seen(record)))
    }
}
