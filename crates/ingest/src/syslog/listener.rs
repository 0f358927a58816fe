//! The syslog listeners: messages are gathered into batches (up to a count or
//! a short wait) and go through the same core as every HTTP protocol. TCP
//! waits while the queue is full or the tenant over its rate, so the sender
//! feels backpressure; UDP cannot wait, so it drops and counts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use model::{DecodedBatch, IngestContext, Limits, Stream, Timestamp};
use queue::Queue;
use tokio::io::AsyncRead;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::FramedRead;

use super::{Frame, Rfc3164Zone, SyslogCodec};
use crate::{Batch, IngestError, enqueue};

/// Rate limits on a tenant's events, as the HTTP protocols apply them.
pub trait Admission: Send + Sync {
    /// Charges `events` to `tenant`, or says how long to wait before retrying.
    fn admit(&self, tenant: &str, events: usize) -> Result<(), Duration>;
}

/// How a listener reads and batches.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// The tenant every message of this listener belongs to.
    pub tenant: String,
    /// The longest message; longer ones are skipped and counted.
    pub max_message_bytes: usize,
    /// The zone of RFC 3164 time stamps.
    pub rfc3164_zone: Rfc3164Zone,
    /// Per-event and per-batch limits, as for every protocol.
    pub limits: Limits,
    /// The most messages in one queue record.
    pub batch_events: usize,
    /// The longest a message waits for others to share its record.
    pub batch_wait: Duration,
    /// The most TCP connections served at once.
    pub max_connections: usize,
}

/// What every connection of a listener shares.
#[derive(Clone)]
pub struct Listener {
    pub queue: Arc<dyn Queue>,
    pub admission: Arc<dyn Admission>,
    pub settings: Arc<ListenerSettings>,
}

/// The most UDP senders whose messages wait at once; more send them all.
const MAX_UDP_SENDERS: usize = 256;

/// How long a TCP connection may stay silent before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest a TCP sender is held back between two attempts to enqueue.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Accepts TCP connections until `shutdown` turns true, then returns once
/// every connection has handed its last batch to the queue (or given up on
/// it), so the queue can close after this returns.
pub async fn serve_tcp(listener: TcpListener, context: Listener, shutdown: watch::Receiver<bool>) {
    serve_stream(listener, None, context, shutdown).await;
}

/// Accepts TLS connections (RFC 5425) until `shutdown` turns true: each is
/// read as over [`serve_tcp`] once its handshake succeeded.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    context: Listener,
    shutdown: watch::Receiver<bool>,
) {
    serve_stream(listener, Some(acceptor), context, shutdown).await;
}

/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_stream(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    context: Listener,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_connections = context.settings.max_connections.clamp(1, u32::MAX as usize);
    let connections = Arc::new(Semaphore::new(max_connections));
    loop {
        // The watch's guard must not live across an await: the branches
        // only say what happened.
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted),
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(accepted) = accepted else {
            drop(listener);
            // Every permit back means every connection task has ended.
            let _ = connections.acquire_many(max_connections as u32).await;
            return;
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "syslog: accepting a TCP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, "syslog: too many TCP connections; closing this one");
            continue;
        };
        let context = context.clone();
        let shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(stream, peer, context, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, peer, context, shutdown).await,
                        Ok(Err(error)) => {
                            tracing::warn!(%peer, %error, "syslog: a TLS handshake failed");
                        }
                        Err(_) => tracing::warn!(%peer, "syslog: a TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Reads one TCP connection's messages, a batch at a time.
async fn connection<S: AsyncRead + Unpin>(
    stream: S,
    peer: SocketAddr,
    context: Listener,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = Arc::clone(&context.settings);
    let mut frames = FramedRead::new(stream, SyslogCodec::new(settings.max_message_bytes));
    loop {
        let first = tokio::select! {
            frame = tokio::time::timeout(IDLE_TIMEOUT, frames.next()) => match frame {
                Ok(frame) => frame,
                // A connection that sends nothing for this long gives its
                // place to others; senders reconnect when they have more.
                Err(_) => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let mut messages = Vec::new();
        let mut ended = false;
        match first {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(%peer, %error, "syslog: closing a TCP connection that broke framing");
                return;
            }
            Some(Ok(frame)) => take(frame, &mut messages, &settings.tenant),
        }
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        let mut gathered = bytes_of(&messages);
        while messages.len() < settings.batch_events && gathered < BATCH_BYTES {
            match tokio::time::timeout_at(deadline, frames.next()).await {
                Err(_) => break,
                Ok(Some(Ok(frame))) => {
                    take(frame, &mut messages, &settings.tenant);
                    gathered += messages.last().map_or(0, bytes::Bytes::len);
                }
                Ok(Some(Err(error))) => {
                    tracing::warn!(%peer, %error, "syslog: closing a TCP connection that broke framing");
                    ended = true;
                    break;
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
            }
        }
        if !messages.is_empty() {
            submit_waiting(&context, peer, &messages, &mut shutdown).await;
        }
        if ended {
            return;
        }
    }
}

/// The most message bytes one batch gathers, whatever their count: what a
/// connection holds while its batch waits for the queue is bounded by this
/// and one message.
const BATCH_BYTES: usize = 1024 * 1024;

fn bytes_of(messages: &[bytes::Bytes]) -> usize {
    messages.iter().map(bytes::Bytes::len).sum()
}

/// Keeps a frame's message; counts an oversized one.
fn take(frame: Frame, messages: &mut Vec<bytes::Bytes>, tenant: &str) {
    match frame {
        Frame::Message(message) => messages.push(message),
        Frame::TooLarge { .. } => count(tenant, "rejected", "event_too_large", 1),
    }
}

/// Enqueues a TCP batch, waiting out rate limits and a full or unreachable
/// queue (the sender waits too); gives up only on a batch that can never go,
/// or when shutdown comes while it waits.
async fn submit_waiting(
    context: &Listener,
    peer: SocketAddr,
    messages: &[bytes::Bytes],
    shutdown: &mut watch::Receiver<bool>,
) {
    let settings = &context.settings;
    let batch = decode_messages(settings, peer.ip(), messages);
    let accepted = batch.ids.len();
    if accepted > 0 {
        let mut backoff = Duration::from_millis(50);
        // The rate is charged once; retries of the same batch cost nothing more.
        let mut admitted = false;
        loop {
            let admission = match admitted {
                true => Ok(()),
                false => context.admission.admit(&settings.tenant, accepted),
            };
            let wait = match admission {
                // More events than the burst: no wait lets this batch through.
                Err(Duration::MAX) => {
                    count(
                        &settings.tenant,
                        "rejected",
                        "exceeds_rate_limit",
                        accepted as u64,
                    );
                    break;
                }
                Err(wait) => wait,
                Ok(()) => {
                    admitted = true;
                    match enqueue(context.queue.as_ref(), &settings.tenant, &batch).await {
                        Ok(_) => {
                            count(&settings.tenant, "accepted", "none", accepted as u64);
                            break;
                        }
                        Err(error) if error.is_transient() => {
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            backoff
                        }
                        Err(error) => {
                            refuse(&settings.tenant, &error, accepted);
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    tracing::warn!(events = accepted, "syslog: shutting down; dropping a batch still waiting for the queue");
                    count(&settings.tenant, "failed", "shutting_down", accepted as u64);
                    break;
                }
            }
        }
    }
    reject(&settings.tenant, &batch);
}

/// Reads datagrams until `shutdown` turns true; each is one message.
pub async fn serve_udp(socket: UdpSocket, context: Listener, mut shutdown: watch::Receiver<bool>) {
    let settings = Arc::clone(&context.settings);
    // A datagram larger than the limit is cut there by the kernel; the
    // extra byte tells one that was cut.
    let mut buffer = vec![0; settings.max_message_bytes + 1];
    // A record's events share their source address, so messages gather per
    // sender; all of them go when the first waited long enough, or when
    // together they reach a batch's count or bytes.
    let mut pending: HashMap<IpAddr, Vec<bytes::Bytes>> = HashMap::new();
    let (mut gathered_bytes, mut gathered) = (0, 0);
    let mut deadline = None;
    loop {
        // The watch's guard must not live across an await: the branches
        // only say what happened.
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => Some(Some(received)),
            _ = sleep_until(deadline) => Some(None),
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let flush_all = match &received {
            None | Some(None) => true,
            Some(Some(_)) => {
                gathered >= settings.batch_events
                    || gathered_bytes >= BATCH_BYTES
                    || pending.len() >= MAX_UDP_SENDERS
            }
        };
        if flush_all {
            for (sender, messages) in pending.drain() {
                submit_once(&context, sender, &messages).await;
            }
            (gathered_bytes, gathered, deadline) = (0, 0, None);
        }
        let Some(received) = received else {
            return;
        };
        let (length, peer) = match received {
            Some(Ok(received)) => received,
            Some(Err(error)) => {
                tracing::warn!(%error, "syslog: receiving a datagram failed");
                continue;
            }
            None => continue,
        };
        if length > settings.max_message_bytes {
            count(&settings.tenant, "rejected", "event_too_large", 1);
            continue;
        }
        pending
            .entry(peer.ip())
            .or_default()
            .push(bytes::Bytes::copy_from_slice(&buffer[..length]));
        gathered += 1;
        gathered_bytes += length;
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + settings.batch_wait);
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Enqueues a UDP batch once: over the rate or with the queue unable to
/// take it, the messages are dropped and counted.
async fn submit_once(context: &Listener, peer: IpAddr, messages: &[bytes::Bytes]) {
    let settings = &context.settings;
    let batch = decode_messages(settings, peer, messages);
    let accepted = batch.ids.len();
    if accepted > 0 {
        match context.admission.admit(&settings.tenant, accepted) {
            Err(_) => count(
                &settings.tenant,
                "rate_limited",
                "rate_limited",
                accepted as u64,
            ),
            Ok(()) => match enqueue(context.queue.as_ref(), &settings.tenant, &batch).await {
                Ok(_) => count(&settings.tenant, "accepted", "none", accepted as u64),
                Err(error) => refuse(&settings.tenant, &error, accepted),
            },
        }
    }
    reject(&settings.tenant, &batch);
}

/// The events of a batch of messages from `peer`.
fn decode_messages(
    settings: &ListenerSettings,
    peer: IpAddr,
    messages: &[bytes::Bytes],
) -> DecodedBatch {
    let received_at = Timestamp::now();
    let context = IngestContext::new(&settings.tenant, received_at, Some(peer.to_string()))
        .with_stream(Stream::Logs);
    let now = chrono::Utc::now();
    let bytes = messages.iter().map(|message| message.len() * 2).sum();
    let mut batch = Batch::new(&context, &settings.limits, bytes);
    for message in messages {
        let text = String::from_utf8_lossy(message);
        let object = super::decode(&text, settings.rfc3164_zone, now);
        if batch.add(Ok(object)).is_err() {
            // More messages than a batch may hold: the listener never
            // gathers that many, but the rest would be counted as dropped.
            count(&settings.tenant, "rejected", "too_many_events", 1);
        }
    }
    batch.finish().unwrap_or_default()
}

/// Counts a batch that could not be enqueued, and says why once in the log.
fn refuse(tenant: &str, error: &IngestError, events: usize) {
    tracing::warn!(%error, events, "syslog: dropping a batch the queue did not take");
    let reason = match error {
        IngestError::Queue(queue::QueueError::Full { .. }) => "queue_full",
        _ => "queue_unavailable",
    };
    count(tenant, "failed", reason, events as u64);
}

/// Counts the events of a batch that were refused on their own.
fn reject(tenant: &str, batch: &DecodedBatch) {
    for rejection in &batch.rejected {
        count(tenant, "rejected", rejection.code, 1);
    }
}

/// `logbook_ingest_events_total` with `protocol="syslog"`, as the HTTP
/// protocols count theirs.
fn count(tenant: &str, outcome: &'static str, reason: &'static str, events: u64) {
    metrics::counter!(
        "logbook_ingest_events_total",
        "tenant" => tenant.to_owned(),
        "stream" => Stream::Logs.as_str(),
        "protocol" => "syslog",
        "outcome" => outcome,
        "reason" => reason,
    )
    .increment(events);
}
