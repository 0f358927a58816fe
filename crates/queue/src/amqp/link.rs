//! The queue's connection to RabbitMQ, kept up by a background task: while
//! the broker cannot be reached every operation fails at once with
//! [`QueueError::Unreachable`], and the task reconnects with growing pauses,
//! declares the topology again and opens a new publisher channel.
//! Consumers and followers open their channels on whatever connection is
//! current, so they come back by themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Notify;

use super::topology::{self, Names, QueueKind, unreachable};
use crate::{AmqpQueueConfig, QueueError};

/// Seconds between heartbeats asked of the broker when the URL names none: a
/// broker that vanishes without closing the socket is noticed within two.
const HEARTBEAT_SECONDS: u16 = 10;

/// How often the supervisor checks a connection that raised no error.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The longest pause between two connection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// One established connection.
pub(super) struct Live {
    pub(super) connection: Connection,
    /// The channel appends are published on, in confirm mode.
    pub(super) publisher: Channel,
    /// Counts connections since open: a channel of an older one is stale.
    pub(super) generation: u64,
}

impl Live {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

/// The shared connection state. See the module documentation.
pub(super) struct Link {
    pub(super) config: AmqpQueueConfig,
    pub(super) names: Names,
    uri: AMQPUri,
    current: Mutex<Option<Arc<Live>>>,
    /// The kind of the work queue, as the last declaration found it.
    kind: Mutex<Option<QueueKind>>,
    generations: Mutex<u64>,
    /// Wakes the supervisor after an operation saw the connection fail.
    broken: Notify,
    closed: AtomicBool,
}

impl Link {
    /// Parses the URL and connects once, so that a wrong URL, wrong
    /// credentials or a conflicting topology fail the start with a clear
    /// error; then keeps the connection up in the background.
    pub(super) async fn open(config: AmqpQueueConfig) -> Result<Arc<Link>, QueueError> {
        let mut uri: AMQPUri = config
            .url
            .parse()
            .map_err(|error| QueueError::Config(format!("bad amqp URL: {error}")))?;
        if uri.scheme != lapin::uri::AMQPScheme::AMQP {
            return Err(QueueError::Config(
                "this build speaks amqp:// only (no TLS): put a TLS-terminating proxy in front of \
                 the broker, or reach it over a private network"
                    .into(),
            ));
        }
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECONDS);
        // Names are AMQP short strings of at most 255 bytes.
        if config.prefix.is_empty() || config.prefix.len() > 200 {
            return Err(QueueError::Config(format!(
                "queue.prefix must have 1 to 200 bytes, not {}",
                config.prefix.len()
            )));
        }
        let names = Names::new(&config.prefix, config.retry_delays.len());
        let link = Arc::new(Link {
            config,
            names,
            uri,
            current: Mutex::new(None),
            kind: Mutex::new(None),
            generations: Mutex::new(0),
            broken: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let live = link.connect().await?;
        *link.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(live));
        spawn_supervisor(Arc::downgrade(&link));
        Ok(link)
    }

    /// The current connection, if it is up.
    pub(super) fn live(&self) -> Result<Arc<Live>, QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match current {
            Some(live) if live.healthy() => Ok(live),
            Some(_) => {
                self.broken.notify_one();
                Err(QueueError::Unreachable(
                    "rabbitmq: the connection was lost; reconnecting".into(),
                ))
            }
            None => Err(QueueError::Unreachable(
                "rabbitmq: not connected; reconnecting".into(),
            )),
        }
    }

    /// Whether a connection is up now.
    pub(super) fn is_up(&self) -> bool {
        self.live().is_ok()
    }

    /// Reports that an operation on connection `generation` failed: the
    /// supervisor checks it at once.
    pub(super) fn failed(&self, generation: u64) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|live| live.generation);
        if current == Some(generation) {
            self.broken.notify_one();
        }
    }

    /// The kind of the work queue, once declared.
    pub(super) fn kind(&self) -> Option<QueueKind> {
        *self.kind.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connects, declares the topology and opens the publisher channel.
    async fn connect(&self) -> Result<Live, QueueError> {
        let attempt = async {
            let properties = ConnectionProperties::default()
                .with_connection_name(format!("logbook {}", self.config.prefix).into());
            let connection = Connection::connect_uri(self.uri.clone(), properties)
                .await
                .map_err(unreachable)?;
            let kind = topology::declare(&connection, &self.config, &self.names).await?;
            let publisher = connection.create_channel().await.map_err(unreachable)?;
            publisher
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(unreachable)?;
            Ok::<_, QueueError>((connection, publisher, kind))
        };
        let (connection, publisher, kind) =
            tokio::time::timeout(self.config.connect_timeout, attempt)
                .await
                .map_err(|_| {
                    QueueError::Unreachable("rabbitmq: no answer while connecting".into())
                })??;
        *self.kind.lock().unwrap_or_else(PoisonError::into_inner) = Some(kind);
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generations += 1;
        Ok(Live {
            connection,
            publisher,
            generation: *generations,
        })
    }

    /// Stops reconnecting and closes the connection after the confirmations
    /// of the appends in flight arrived (or the confirm timeout passed).
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.broken.notify_one();
        let live = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(live) = live {
            let timeout = self.config.confirm_timeout;
            let _ = tokio::time::timeout(timeout, live.publisher.wait_for_confirms()).await;
            let _ = tokio::time::timeout(timeout, live.connection.close(200, "OK".into())).await;
        }
    }
}

/// Keeps the connection up while the queue lives.
fn spawn_supervisor(link: Weak<Link>) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(strong) = link.upgrade() else { return };
            if strong.closed.load(Ordering::Acquire) {
                return;
            }
            let current = strong
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(live) = current {
                if live.healthy() {
                    // Holding the link this long delays its drop by as much.
                    let woken = strong.broken.notified();
                    tokio::select! {
                        () = tokio::time::sleep(CHECK_EVERY) => {}
                        () = woken => {}
                    }
                    continue;
                }
                tracing::warn!("lost the connection to RabbitMQ; reconnecting");
                strong
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                // Closing what is left of it returns its consumers' records.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    live.connection.close(320, "reconnecting".into()),
                )
                .await;
            }
            match strong.connect().await {
                Ok(live) => {
                    tracing::info!("connected to RabbitMQ again");
                    pause = Duration::from_millis(100);
                    if strong.closed.load(Ordering::Acquire) {
                        return;
                    }
                    *strong
                        .current
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(live));
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        retry_in_ms = pause.as_millis() as u64,
                        "cannot reach RabbitMQ; retrying"
                    );
                    drop(strong);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    });
}
