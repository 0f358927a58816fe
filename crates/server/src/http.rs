//! Serving the API over HTTP/1.1 connections that cannot hold the server's
//! resources: at most `max_connections` at once, at most
//! `max_connections_per_address` of them from one client address (more are
//! closed as soon as they are accepted), a client must finish a request's
//! headers within the header timeout, a keep-alive connection waiting for its
//! next request is closed after the idle timeout, a request's body must arrive within the body
//! timeout on every route, and a request in flight that reads and writes
//! nothing for the idle timeout (a stalled body, an answer nobody reads) is
//! cut. Shutdown stops accepting, lets requests in flight finish and closes
//! idle connections. A connection upgraded to a WebSocket (a live tail) keeps
//! counting against both caps until it ends; the tail's own keep-alives and
//! write deadlines, not the idle timeout, bound it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tower_service::Service as _;

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// How long a client may take to send a request's headers: from the
    /// connection's start for its first request, from the first byte for later ones.
    pub(crate) header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub(crate) idle_timeout: Duration,
    /// Connections open at once.
    pub(crate) max_connections: usize,
    /// Connections open at once from one client address; 0: no cap.
    pub(crate) max_connections_per_address: usize,
    /// How long any request's body may take to arrive, on every route.
    pub(crate) body_timeout: Duration,
}

/// Accepts connections until `stop` fires, then waits for the open ones to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // One permit per open connection; shutdown waits until all are back.
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max_connections));
    // So that one address cannot take every connection: the share stays
    // available to the others.
    let shares = (limits.max_connections_per_address > 0)
        .then(|| Arc::new(AddressShares::new(limits.max_connections_per_address)));
    // Owns every connection task: if this future is dropped (shutdown gave
    // up waiting), the connections are aborted with it, not left running
    // against a closed queue and store.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let share = match &shares {
            Some(shares) => match shares.take(peer.ip()) {
                Some(share) => Some(share),
                None => {
                    tracing::debug!(
                        %peer,
                        per_address = shares.max,
                        "too many connections from one address; closing a new one"
                    );
                    drop(stream);
                    continue;
                }
            },
            None => None,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!(%peer, max_connections, "too many connections; closing a new one");
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        // Finished connections are reaped as new ones come, so the set stays
        // as large as the open connections.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            serve_connection(stream, peer, router, limits, stop).await;
            drop(permit);
            drop(share);
        });
    }
    drop(listener);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _drained = open.acquire_many(all).await;
    Ok(())
}

/// How many connections each client address holds, against a cap per address.
struct AddressShares {
    max: usize,
    /// Only addresses holding a connection are present.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address's share until dropped.
struct AddressShare {
    shares: Arc<AddressShares>,
    address: IpAddr,
}

impl AddressShares {
    fn new(max: usize) -> Self {
        AddressShares {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `address`, unless it already holds its share.
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressShare> {
        // An IPv4 client seen through an IPv6 socket is the same client.
        let address = address.to_canonical();
        // Every update is a single insert or remove: a poisoned map is consistent.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.entry(address).or_insert(0);
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(AddressShare {
            shares: Arc::clone(self),
            address,
        })
    }
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut open = self
            .shares
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Resolves once shutdown is asked for (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// What a connection is doing, shared by its reader, its requests and its watchdog.
struct Activity {
    started: Instant,
    /// Requests whose response is not yet fully written.
    in_flight: AtomicUsize,
    /// Milliseconds since `started` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `started` when the next request's first byte arrived;
    /// [`NOT_STARTED`] while none has.
    head_since: AtomicU64,
    /// Milliseconds since `started` when a byte was last read or written.
    last_progress: AtomicU64,
    /// Wakes the watchdog when a request starts or ends, so it sleeps until the
    /// deadline that now applies.
    changed: Notify,
}

const NOT_STARTED: u64 = u64::MAX;

impl Activity {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How long until the connection must be closed, if nothing changes.
    fn remaining(&self, limits: &ConnectionLimits) -> Duration {
        let now = self.now();
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // A request in flight may think (a query, a wait for searchability)
            // but not stall: no byte read or written for the idle timeout
            // means a client that stopped sending its body or reading its answer.
            let since = self.last_progress.load(Ordering::Acquire);
            let deadline = since.saturating_add(limits.idle_timeout.as_millis() as u64);
            return Duration::from_millis(deadline.saturating_sub(now));
        }
        let (since, timeout) = match self.head_since.load(Ordering::Acquire) {
            NOT_STARTED => (self.idle_since.load(Ordering::Acquire), limits.idle_timeout),
            head => (head, limits.header_timeout),
        };
        let deadline = since.saturating_add(timeout.as_millis() as u64);
        Duration::from_millis(deadline.saturating_sub(now))
    }

    fn progressed(&self) {
        self.last_progress.store(self.now(), Ordering::Release);
    }
}

/// Marks a request in flight until its response body has been written (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(NOT_STARTED, Ordering::Release);
        activity.changed.notify_one();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_one();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        idle_since: AtomicU64::new(0),
        // The first request's headers are due from the start.
        head_since: AtomicU64::new(0),
        last_progress: AtomicU64::new(0),
        changed: Notify::new(),
    });
    // Resolves when the socket is dropped: with the connection, or after an
    // upgrade (a WebSocket tail) when the upgraded connection ends.
    let (socket_open, socket_closed) = oneshot::channel::<()>();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
        _open: socket_open,
    });
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = InFlight::start(&service_activity);
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|body| DeadlineBody::new(body, limits.body_timeout));
        let mut router = router.clone();
        async move {
            let response = router.call(request).await?;
            // The request stays in flight while its body is written.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_flight = &in_flight;
                    frame
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timeout is a backstop: it runs from when hyper starts
    // waiting for a head, so it must not cut idle keep-alive connections short.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout.max(limits.idle_timeout))
        .max_buf_size(64 * 1024);
    let mut connection = Box::pin(builder.serve_connection(io, service).with_upgrades());
    let mut stopping = false;
    loop {
        let watchdog = async {
            loop {
                let wait = activity.remaining(&limits);
                if wait.is_zero() {
                    return;
                }
                let _ = tokio::time::timeout(wait, activity.changed.notified()).await;
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            () = watchdog => {
                tracing::debug!(%peer, "closing a connection that sent or read nothing in time");
                return;
            }
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    // An upgraded connection still holds the socket (and so this connection's
    // permit and address share) until it ends; at shutdown the tail hub
    // closes it, and shutdown does not wait for it beyond that.
    drop(connection);
    if !stopping {
        tokio::select! {
            _ = socket_closed => {}
            () = stopped(&mut stop) => {}
        }
    }
}

/// A TCP stream that notes when the first byte of a request arrives.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Dropped with the stream, which tells the connection's task it closed.
    _open: oneshot::Sender<()>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let activity = &self.activity;
        if buf.filled().len() > before {
            activity.progressed();
        }
        if buf.filled().len() > before
            && activity.in_flight.load(Ordering::Acquire) == 0
            && activity.head_since.load(Ordering::Acquire) == NOT_STARTED
        {
            activity.head_since.store(activity.now(), Ordering::Release);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.progressed();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.progressed();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails once it has taken longer than its deadline to
/// arrive, so no handler (a login's JSON, an admin request) can be held by a
/// client that sends its body a byte at a time.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("the request body did not arrive in time".into())));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|error| error.into())
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
