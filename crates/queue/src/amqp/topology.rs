//! The RabbitMQ topology the queue declares on every connect, idempotently:
//! the events exchange, the work queue bound to it, and the retry queues
//! that dead-letter back into the work queue after their delay.
//!
//! ```text
//! append ──▶ <prefix>.events (fanout) ──┬──▶ <prefix>.work ──▶ workers
//!                                       └──▶ one queue per live-tail follower
//!                                            (exclusive, bounded, drop-head)
//! refused batch ──▶ <prefix>.retry.<n> (x-message-ttl = delay n)
//!                       └── expired: dead-lettered to <prefix>.work
//! ```

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ErrorKind, ExchangeKind};

use crate::{AmqpQueueConfig, QueueError};

/// The names of everything the queue declares.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// The fanout exchange appends are published to.
    pub(super) events: String,
    /// The durable queue the workers consume.
    pub(super) work: String,
    /// `retry[n]` holds records for their (n+1)-th retry.
    pub(super) retry: Vec<String>,
}

impl Names {
    pub(super) fn new(prefix: &str, retry_stages: usize) -> Self {
        Names {
            events: format!("{prefix}.events"),
            work: format!("{prefix}.work"),
            retry: (1..=retry_stages)
                .map(|n| format!("{prefix}.retry.{n}"))
                .collect(),
        }
    }
}

/// Which kind of durable queue the broker gave us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueueKind {
    /// Replicated (Raft); the broker's recommended durable queue.
    Quorum,
    /// A durable classic queue: the broker refused a quorum queue.
    Classic,
}

/// Declares the exchange, the work queue and its binding, and the retry
/// queues; returns the kind of the work queue.
pub(super) async fn declare(
    connection: &Connection,
    config: &AmqpQueueConfig,
    names: &Names,
) -> Result<QueueKind, QueueError> {
    let channel = connection.create_channel().await.map_err(unreachable)?;
    channel
        .exchange_declare(
            names.events.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|error| refused(&format!("exchange {}", names.events), &error))?;

    let mut work = FieldTable::default();
    work.insert("x-max-length-bytes".into(), int(config.max_bytes));
    work.insert("x-max-length".into(), int(config.max_records));
    work.insert("x-overflow".into(), text("reject-publish"));
    let kind = durable_queue(connection, &names.work, work).await?;
    channel
        .queue_bind(
            names.work.as_str().into(),
            names.events.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| refused(&format!("the binding of {}", names.work), &error))?;

    for (name, delay) in names.retry.iter().zip(&config.retry_delays) {
        let mut retry = FieldTable::default();
        retry.insert(
            "x-message-ttl".into(),
            int(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        );
        retry.insert("x-dead-letter-exchange".into(), text(""));
        retry.insert("x-dead-letter-routing-key".into(), text(&names.work));
        // Quorum queues dead-letter at least once (a record is kept until the
        // work queue took it), which needs reject-publish; classic queues
        // ignore the strategy and dead-letter at most once.
        retry.insert("x-overflow".into(), text("reject-publish"));
        if kind == QueueKind::Quorum {
            retry.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        }
        durable_queue(connection, name, retry).await?;
    }
    Ok(kind)
}

/// Declares a durable queue with `arguments`: a quorum queue, or a durable
/// classic queue when the broker refuses quorum queues (or the queue exists
/// as a classic one). Each attempt has its own channel, since a refused
/// declaration closes its channel.
async fn durable_queue(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> Result<QueueKind, QueueError> {
    let mut quorum = arguments.clone();
    quorum.insert("x-queue-type".into(), text("quorum"));
    let first = match declare_once(connection, name, quorum).await? {
        Ok(()) => return Ok(QueueKind::Quorum),
        Err(error) => error,
    };
    let other_type = broker_message(&first).is_some_and(|m| m.contains("x-queue-type"));
    if is_precondition_failed(&first) && !other_type {
        return Err(refused(&format!("queue {name}"), &first));
    }
    // Classic queues dead-letter at most once and take no strategy.
    let mut classic = FieldTable::default();
    for (key, value) in &arguments {
        if key.as_str() != "x-dead-letter-strategy" {
            classic.insert(key.clone(), value.clone());
        }
    }
    match declare_once(connection, name, classic).await? {
        Ok(()) if other_type => {
            tracing::warn!(
                queue = name,
                "the queue exists as a classic queue; keeping it (a quorum queue would be replicated)"
            );
            Ok(QueueKind::Classic)
        }
        Ok(()) => {
            tracing::warn!(
                queue = name,
                reason = %first,
                "RabbitMQ refused a quorum queue; using a durable classic queue"
            );
            Ok(QueueKind::Classic)
        }
        Err(second) => Err(refused(&format!("queue {name}"), &second)),
    }
}

/// One durable declaration on a channel of its own: the outer error is the
/// connection failing, the inner one the broker refusing the declaration.
async fn declare_once(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> Result<Result<(), lapin::Error>, QueueError> {
    let channel = connection.create_channel().await.map_err(unreachable)?;
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    match channel.queue_declare(name.into(), options, arguments).await {
        Ok(_) => Ok(Ok(())),
        Err(error) if error.is_amqp_soft_error() => Ok(Err(error)),
        Err(error) => Err(unreachable(error)),
    }
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e)
        if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
}

/// The broker's text of a refusal, which names the argument that differs.
fn broker_message(error: &lapin::Error) -> Option<&str> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_message().as_str()),
        _ => None,
    }
}

/// The error for a declaration the broker refused: a conflict with what
/// exists is a configuration error naming the object and the difference.
fn refused(what: &str, error: &lapin::Error) -> QueueError {
    if is_precondition_failed(error) {
        let detail = broker_message(error).unwrap_or_default();
        return QueueError::Config(format!(
            "RabbitMQ already has {what} with other settings than this configuration asks for \
             ({detail}); delete it once it is empty, or set queue.max_bytes, queue.max_records \
             and queue.retry_delays_ms to what it was declared with"
        ));
    }
    match error.is_amqp_soft_error() {
        true => QueueError::Config(format!("RabbitMQ refused to declare {what}: {error}")),
        false => unreachable(error.clone()),
    }
}

/// Any failure of the connection itself.
pub(super) fn unreachable(error: lapin::Error) -> QueueError {
    QueueError::Unreachable(format!("rabbitmq: {error}"))
}

/// An integer argument (the broker takes any integer type; this is `l`).
pub(super) fn int(value: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(value).unwrap_or(i64::MAX))
}

pub(super) fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
