//! The background sender: collects buffered lines into batches, compresses
//! them, posts them with retries, and drains what is left at shutdown.
//!
//! It runs on its own thread with a current-thread tokio runtime, so the
//! application needs no runtime of its own. Its thread has a no-op tracing
//! subscriber: nothing it (or hyper) logs can loop back into the layer.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::stats::Stats;
use crate::transport::{Answer, MAX_RETRY_AFTER, Transport};

/// The first wait after a connection error; it doubles up to [`MAX_RETRY_AFTER`].
/// A whole second, so a signed retry never repeats its timestamp (the server
/// refuses a signature it has already seen).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How often a batch is sent again after server errors other than 503
/// before it is given up (a batch that crashes the server must not stall the rest).
const SERVER_ERROR_ATTEMPTS: u32 = 5;

/// What the worker needs besides its transport.
pub(crate) struct Settings {
    pub batch_size: usize,
    pub flush_interval: Duration,
}

pub(crate) struct Worker {
    buffer: mpsc::Receiver<Vec<u8>>,
    shutdown: Shutdown,
    transport: Transport,
    settings: Settings,
    stats: Stats,
    reported: Reported,
}

/// Which kinds of trouble were already written to stderr (once each).
#[derive(Default)]
struct Reported {
    refused: bool,
    server_error: bool,
    connection: bool,
}

/// The next thing the batching loop gets.
enum Next {
    Line(Vec<u8>),
    /// The batch's flush interval ran out.
    Due,
    /// The buffer is closed and empty: the worker's work is done.
    Closed,
}

impl Worker {
    pub fn new(
        buffer: mpsc::Receiver<Vec<u8>>,
        shutdown: oneshot::Receiver<Instant>,
        transport: Transport,
        settings: Settings,
        stats: Stats,
    ) -> Worker {
        Worker {
            buffer,
            shutdown: Shutdown {
                signal: Some(shutdown),
                deadline: None,
            },
            transport,
            settings,
            stats,
            reported: Reported::default(),
        }
    }

    /// Runs until shutdown (or until every layer is gone) and the buffer is drained.
    pub async fn run(mut self) {
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(self.settings.batch_size);
        loop {
            let Next::Line(first) = self.next(None).await else {
                break;
            };
            batch.push(first);
            let due = Instant::now() + self.settings.flush_interval;
            while batch.len() < self.settings.batch_size {
                match self.next(Some(due)).await {
                    Next::Line(line) => batch.push(line),
                    Next::Due | Next::Closed => break,
                }
            }
            self.deliver(&batch).await;
            batch.clear();
        }
    }

    /// The next buffered line, waiting at most until `due`.
    async fn next(&mut self, due: Option<Instant>) -> Next {
        loop {
            if self.shutdown.deadline.is_some() {
                // From now on the buffer takes no more lines; what it holds is still sent.
                self.buffer.close();
            }
            let received = tokio::select! {
                line = self.buffer.recv() => line,
                () = sleep_until_some(due) => return Next::Due,
                deadline = self.shutdown.requested() => {
                    self.shutdown.begin(deadline);
                    continue;
                }
            };
            return received.map_or(Next::Closed, Next::Line);
        }
    }

    /// Sends one batch until it is accepted, refused, or given up.
    async fn deliver(&mut self, batch: &[Vec<u8>]) {
        let events = batch.len() as u64;
        if self.shutdown.expired() {
            self.stats.add_failed(events);
            return;
        }
        let Ok(body) = compress(batch) else {
            // Writing to memory does not fail; counted rather than assumed.
            self.stats.add_failed(events);
            return;
        };
        let mut backoff = FIRST_BACKOFF;
        let mut server_errors = 0;
        loop {
            let Some(outcome) = self
                .shutdown
                .before_deadline(self.transport.post(body.clone()))
                .await
            else {
                self.stats.add_failed(events);
                return;
            };
            let wait = match outcome {
                Ok(Answer::Accepted { accepted, rejected }) => {
                    let rejected = rejected.unwrap_or(0).min(events);
                    self.stats.add_sent(accepted.unwrap_or(events - rejected));
                    self.stats.add_rejected(rejected);
                    return;
                }
                Ok(Answer::Refused { status, code }) => {
                    self.stats.add_rejected(events);
                    if !std::mem::replace(&mut self.reported.refused, true) {
                        eprintln!(
                            "logbook-tracing: the server refused a batch ({status} {code}); \
                             its events are dropped (counted in Stats::rejected, reported once)"
                        );
                    }
                    return;
                }
                Ok(Answer::RetryAfter(wait)) => wait,
                Ok(Answer::ServerError(status)) => {
                    server_errors += 1;
                    if !std::mem::replace(&mut self.reported.server_error, true) {
                        eprintln!(
                            "logbook-tracing: the server answered {status}; retrying (reported once)"
                        );
                    }
                    if server_errors >= SERVER_ERROR_ATTEMPTS {
                        self.stats.add_failed(events);
                        return;
                    }
                    next_backoff(&mut backoff)
                }
                Err(error) => {
                    if !std::mem::replace(&mut self.reported.connection, true) {
                        eprintln!(
                            "logbook-tracing: {error}; retrying with backoff (reported once)"
                        );
                    }
                    next_backoff(&mut backoff)
                }
            };
            if self
                .shutdown
                .before_deadline(tokio::time::sleep(wait))
                .await
                .is_none()
            {
                self.stats.add_failed(events);
                return;
            }
        }
    }
}

/// The current backoff, doubling the next one up to the cap.
fn next_backoff(backoff: &mut Duration) -> Duration {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_RETRY_AFTER);
    wait
}

/// The shutdown request and, once it came, the deadline nothing is sent after.
struct Shutdown {
    /// Carries the deadline; `None` once received.
    signal: Option<oneshot::Receiver<Instant>>,
    deadline: Option<Instant>,
}

impl Shutdown {
    /// Resolves with the deadline once shutdown is requested; a dropped
    /// guard (gone without a word) means "now". Never resolves after that.
    async fn requested(&mut self) -> Instant {
        match &mut self.signal {
            Some(receiver) => receiver.await.unwrap_or_else(|_| Instant::now()),
            None => std::future::pending().await,
        }
    }

    fn begin(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.signal = None;
    }

    /// Runs `work` to its end, unless the shutdown deadline passes first
    /// (`None`). A shutdown requested meanwhile sets the deadline without
    /// interrupting `work`.
    async fn before_deadline<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        loop {
            if let Some(deadline) = self.deadline {
                return tokio::time::timeout_at(deadline, work).await.ok();
            }
            tokio::select! {
                output = &mut work => return Some(output),
                deadline = self.requested() => self.begin(deadline),
            }
        }
    }

    fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| deadline <= Instant::now())
    }
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The batch as gzip-compressed NDJSON.
fn compress(batch: &[Vec<u8>]) -> std::io::Result<Bytes> {
    let size: usize = batch.iter().map(|line| line.len() + 1).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(size / 4), Compression::default());
    for line in batch {
        encoder.write_all(line)?;
        encoder.write_all(b"\n")?;
    }
    Ok(Bytes::from(encoder.finish()?))
}
