//! Publishing with publisher confirms: a record is persistent, `mandatory`,
//! and the append answers only once the broker confirmed it. Many publishes
//! are in flight on the channel at once, each awaiting its own confirmation.
//!
//! Positions: RabbitMQ has none, so each process numbers what it appends.
//! A position is `tag << 48 | offset`: `tag` is 16 random bits drawn when the
//! queue opens (and again if `offset` would pass 2^48), `offset` counts the
//! bytes this process appended under that tag. Within a process positions
//! grow and leave no hole, so a follower that sees a jump within one tag
//! knows it missed records; positions of different processes (different
//! tags) are distinct but say nothing about which record came first.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};

use super::topology::unreachable;
use crate::{Position, QueueError};

/// The header holding a record's position.
pub(super) const POSITION_HEADER: &str = "x-logbook-position";
/// The header counting a record's trips through the retry queues.
pub(super) const ATTEMPTS_HEADER: &str = "x-logbook-attempts";

const OFFSET_BITS: u32 = 48;
const OFFSET_LIMIT: u64 = 1 << OFFSET_BITS;

/// The positions of this process's appends.
#[derive(Debug)]
pub(super) struct Positions {
    tag: u64,
    offset: u64,
}

impl Positions {
    pub(super) fn new() -> Self {
        Positions {
            tag: random_tag(),
            offset: 0,
        }
    }

    /// Where the next append starts.
    pub(super) fn next(&self) -> Position {
        Position(self.tag << OFFSET_BITS | self.offset)
    }

    /// The range of an append of `len` bytes; call [`Positions::advance`]
    /// once it was sent.
    pub(super) fn range(&mut self, len: usize) -> (Position, Position) {
        let len = len as u64;
        if self.offset + len >= OFFSET_LIMIT {
            self.tag = random_tag();
            self.offset = 0;
        }
        let start = self.next();
        (start, Position(start.0 + len))
    }

    pub(super) fn advance(&mut self, len: usize) {
        self.offset += len as u64;
    }
}

/// The publisher tag of a position: records with one tag come from one
/// process, in order.
pub(super) fn tag_of(position: Position) -> u64 {
    position.0 >> OFFSET_BITS
}

/// 16 bits no other process is likely to draw: std's per-process random
/// hash keys, so no dependency is needed for them.
fn random_tag() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |now| now.as_nanos()),
    );
    hasher.finish() & 0xffff
}

/// The properties of a record: persistent, with its position and attempts.
pub(super) fn properties(position: Position, attempts: u32) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        POSITION_HEADER.into(),
        AMQPValue::LongLongInt(position.0 as i64),
    );
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempts));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/octet-stream".into())
        .with_headers(headers)
}

/// Reads a record's position and attempts from its headers; a message
/// without them (published by someone else) is at position 0, first try.
pub(super) fn read_headers(properties: &BasicProperties) -> (Position, u32) {
    let Some(headers) = properties.headers() else {
        return (Position(0), 0);
    };
    let header = |name: &str| headers.inner().get(name).and_then(integer);
    let position = header(POSITION_HEADER).map_or(0, |value| value as u64);
    let attempts = header(ATTEMPTS_HEADER).map_or(0, |value| u32::try_from(value).unwrap_or(0));
    (Position(position), attempts)
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// Sends one record; the returned confirmation is awaited with [`confirmed`].
pub(super) async fn send(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &Bytes,
    properties: BasicProperties,
) -> Result<PublisherConfirm, QueueError> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            payload,
            properties,
        )
        .await
        .map_err(unreachable)
}

/// Waits for the broker's confirmation of a publish: `Ok` only for an ack of
/// a message that was routed. A nack is the queue refusing it (full, with
/// `reject-publish`); a returned message, a timeout or a lost connection
/// make the queue unreachable. `max_bytes` goes into the `Full` error.
pub(super) async fn confirmed(
    confirm: PublisherConfirm,
    timeout: std::time::Duration,
    max_bytes: u64,
) -> Result<(), QueueError> {
    let confirmation = match tokio::time::timeout(timeout, confirm).await {
        Err(_) => {
            // The record may still be stored: the client gets no 202, so a
            // retry can store the batch twice, as with any lost answer.
            return Err(QueueError::Unreachable(
                "rabbitmq did not confirm the append in time".into(),
            ));
        }
        Ok(Err(error)) => return Err(unreachable(error)),
        Ok(Ok(confirmation)) => confirmation,
    };
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(QueueError::Unreachable(format!(
            "rabbitmq returned the record ({} {}): nothing routes it to the work queue",
            returned.reply_code, returned.reply_text
        ))),
        // The broker says how full the queue is only when asked; it is at its bound.
        Confirmation::Nack(_) => Err(QueueError::Full {
            pending_bytes: max_bytes,
            max_bytes,
        }),
        Confirmation::NotRequested => Err(QueueError::Unreachable(
            "rabbitmq: the publisher channel is not in confirm mode".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_grow_by_the_bytes_appended_under_one_tag() {
        let mut positions = Positions::new();
        let (a, a_end) = positions.range(10);
        positions.advance(10);
        let (b, b_end) = positions.range(5);
        assert_eq!(a_end, b);
        assert_eq!(b_end.0 - b.0, 5);
        assert_eq!(a_end.0 - a.0, 10);
        assert_eq!(tag_of(a), tag_of(b));
        let (position, attempts) = read_headers(&properties(b, 3));
        assert_eq!((position, attempts), (b, 3));
    }

    #[test]
    fn a_full_offset_space_starts_a_new_tag() {
        let mut positions = Positions::new();
        positions.offset = OFFSET_LIMIT - 4;
        let (start, end) = positions.range(10);
        assert_eq!(start.0 & (OFFSET_LIMIT - 1), 0);
        assert_eq!(end.0 - start.0, 10);
    }

    #[test]
    fn messages_without_headers_read_as_first_tries_at_zero() {
        assert_eq!(read_headers(&BasicProperties::default()), (Position(0), 0));
    }
}
