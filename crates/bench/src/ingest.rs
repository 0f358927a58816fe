//! The ingest load generator behind `logbook bench ingest`: several keep-alive
//! connections posting NDJSON batches to `/v1/logs` as fast as the server
//! acknowledges them (batches built before timing from log lines, or read from a
//! dataset file as they are sent), then (optionally) waiting for the queue to drain
//! into the store.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use indicatif::ProgressBar;
use serde::Serialize;

use crate::client::{HttpClient, Response, body_excerpt};
use crate::drain::{DrainReport, Load, admin_client, wait_drained};
use crate::events::{Batch, Shape, Source, build_pool, now_ms, time_seed};
use crate::progress::progress_bar;
use crate::protocols::Protocol;
use crate::replay::Replay;
use crate::stats::{LatencySummary, ratio, thousands};

/// The request pool is built up to about this many bytes.
const POOL_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How many distinct lines the built-in generator makes.
const GENERATED_LINES: usize = 20_000;
/// The run length when neither `--duration` nor `--events` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The pause after a 503 without `Retry-After`, or after a transport error.
const BACKOFF: Duration = Duration::from_millis(50);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// With `--ndjson`, how many bodies per connection are read ahead of sending.
const READ_AHEAD_PER_CONNECTION: usize = 4;

/// Options of `logbook bench ingest`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Base URL of the Logbook server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key to send (`logs:write` for ingest, `logs:read` for queries).
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Concurrent keep-alive connections, each sending one request at a time.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Run for this many seconds (default 10 unless --events is given).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop after sending this many events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Log files to replay, one event per line; synthetic events when none are given.
    #[arg(long = "file")]
    pub files: Vec<PathBuf>,
    /// An NDJSON file of events (see `logbook bench dataset`) to send as it is, read
    /// while sending; the run ends at its end (or at --events / --duration).
    #[arg(long, conflicts_with = "files")]
    pub ndjson: Option<PathBuf>,
    /// After the load, poll the server's status until the queue is drained; report
    /// drain time and storage size. The status is the super-admin's: needs
    /// --admin-password.
    #[arg(long)]
    pub wait_drained: bool,
    /// The super-admin's password, to read the server's status with --wait-drained.
    #[arg(long, env = "LOGBOOK_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// The super-admin's username.
    #[arg(long, default_value = "admin")]
    pub admin_user: String,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show no progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Send the events to the audit trail (`POST /v1/audit`) instead of the logs.
    #[arg(long)]
    pub audit: bool,
    /// The protocol to send the same events in (bodies re-encoded before timing).
    #[arg(long, value_enum, default_value_t = Protocol::Ndjson)]
    pub protocol: Protocol,
}

/// The outcome of an ingest run.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// The server's base URL.
    pub url: String,
    /// The protocol the events were sent in.
    pub protocol: Protocol,
    /// Concurrent connections used.
    pub connections: usize,
    /// Events per request (the last request of an `--events` run may carry fewer).
    pub batch: usize,
    /// Events the server accepted (the `accepted` count of its 2xx answers).
    pub events_accepted: u64,
    /// Events in bodies the server answered 2xx but did not accept (failed validation).
    pub events_rejected: u64,
    /// Requests answered 2xx.
    pub requests: u64,
    /// Requests that failed: any status but 2xx and 503, or a transport error.
    pub errors: u64,
    /// Requests answered 503 (queue full) and retried.
    pub backpressure_retries: u64,
    /// Wall-clock time of the load, in seconds.
    pub elapsed_secs: f64,
    /// Accepted events per second.
    pub events_per_sec: f64,
    /// Request body bytes of requests answered 2xx.
    pub bytes_sent: u64,
    /// Request body megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Mean size of one NDJSON event line, in bytes.
    pub mean_event_bytes: f64,
    /// Time from sending a request to having read its 2xx answer.
    pub ack_latency: LatencySummary,
    /// The first error seen (status and body, or the transport error).
    pub first_error: Option<String>,
    /// Present with `--wait-drained`.
    pub drain: Option<DrainReport>,
}

/// Runs the ingest load described by `args` and reports what happened.
pub async fn run_ingest(args: &IngestArgs) -> anyhow::Result<IngestReport> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.audit && args.protocol != Protocol::Ndjson {
        bail!("--audit sends NDJSON to /v1/audit; other protocols carry logs only");
    }
    let duration = match (args.duration, args.events, &args.ndjson) {
        (Some(seconds), _, _) => Some(Duration::from_secs(seconds)),
        (None, None, None) => Some(DEFAULT_DURATION),
        (None, _, _) => None,
    };
    let feed = match &args.ndjson {
        Some(path) if args.protocol == Protocol::Ndjson => Feed::File(Replay::start(
            path,
            args.batch,
            args.events,
            READ_AHEAD_PER_CONNECTION * args.connections,
        )?),
        Some(_) => bail!("--ndjson sends the file as it is: only with --protocol ndjson"),
        None => Feed::Pool(Arc::new(build_encoded_pool(args).await?)),
    };

    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(
            HttpClient::connect(&args.url)
                .await?
                .with_token(args.key.as_deref())?,
        );
    }

    let admin = match args.wait_drained {
        true => Some(admin_client(args).await?),
        false => None,
    };
    let progress = progress_bar(args.quiet, args.events, "events")?;
    let remaining = Arc::new(args.events.map(AtomicU64::new));
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let stride = clients.len();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let sender = Sender {
                client,
                protocol: args.protocol,
                path: args.protocol.path(args.audit),
                feed: feed.clone(),
                remaining: Arc::clone(&remaining),
                deadline,
                progress: progress.clone(),
                stats: SenderStats::default(),
            };
            tokio::spawn(sender.run(index, stride))
        })
        .collect();
    drop(feed);
    let mut totals = SenderStats::default();
    for task in tasks {
        totals.merge(task.await.context("ingest task panicked")?);
    }
    let end = Instant::now();
    let elapsed = end - start;
    progress.finish_and_clear();

    let drain = match admin {
        Some(admin) => {
            let load = Load {
                start,
                end,
                accepted: totals.accepted,
                bytes: totals.bytes,
            };
            Some(wait_drained(args, admin, &load).await?)
        }
        None => None,
    };

    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(IngestReport {
        url: args.url.clone(),
        protocol: args.protocol,
        connections: args.connections,
        batch: args.batch,
        events_accepted: totals.accepted,
        events_rejected: totals.events_sent.saturating_sub(totals.accepted),
        requests: totals.requests,
        errors: totals.errors,
        backpressure_retries: totals.backpressure,
        elapsed_secs: elapsed.as_secs_f64(),
        events_per_sec: totals.accepted as f64 / seconds,
        bytes_sent: totals.bytes,
        mb_per_sec: totals.bytes as f64 / 1e6 / seconds,
        mean_event_bytes: ratio(totals.bytes, totals.events_sent),
        ack_latency: LatencySummary::from_durations(&totals.latencies),
        first_error: totals.first_error,
        drain,
    })
}

/// The batches of the run, from log lines or generated, encoded in its protocol.
async fn build_encoded_pool(args: &IngestArgs) -> anyhow::Result<Vec<Encoded>> {
    let pool = {
        let files = args.files.clone();
        let batch = args.batch;
        let shape = if args.audit { Shape::Audit } else { Shape::Log };
        let max_events = args
            .events
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Batch>> {
            let sources = if files.is_empty() {
                Source::generated(GENERATED_LINES.min(max_events.max(1)), time_seed())
            } else {
                files
                    .iter()
                    .map(|path| Source::read(path))
                    .collect::<anyhow::Result<_>>()?
            };
            build_pool(&sources, batch, max_events, POOL_MAX_BYTES, now_ms(), shape)
        })
        .await??
    };
    let protocol = args.protocol;
    let pool = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Encoded>> {
        pool.into_iter()
            .map(|batch| {
                let body = protocol.encode(&batch.prefix(batch.events()))?;
                Ok(Encoded { batch, body })
            })
            .collect()
    })
    .await??;
    Ok(pool)
}

/// What one connection counted.
#[derive(Debug, Default)]
struct SenderStats {
    accepted: u64,
    events_sent: u64,
    requests: u64,
    errors: u64,
    backpressure: u64,
    bytes: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl SenderStats {
    fn merge(&mut self, other: SenderStats) {
        self.accepted += other.accepted;
        self.events_sent += other.events_sent;
        self.requests += other.requests;
        self.errors += other.errors;
        self.backpressure += other.backpressure;
        self.bytes += other.bytes;
        self.latencies.extend(other.latencies);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// A pool batch and its body in the protocol of the run.
struct Encoded {
    batch: Batch,
    body: Bytes,
}

/// Where the connections take their request bodies from.
#[derive(Clone)]
enum Feed {
    /// Batches built before timing, cycled through.
    Pool(Arc<Vec<Encoded>>),
    /// Bodies read from a dataset file while sending, each sent once.
    File(Replay),
}

/// One connection's sending loop.
struct Sender {
    client: HttpClient,
    protocol: Protocol,
    /// Where events are posted.
    path: &'static str,
    feed: Feed,
    /// Events still to send, with `--events` (the file reader keeps its own count).
    remaining: Arc<Option<AtomicU64>>,
    deadline: Option<Instant>,
    progress: ProgressBar,
    stats: SenderStats,
}

impl Sender {
    /// Sends pool batches `first`, `first + stride`, … (or the file's bodies as they
    /// come) until time, events or the file run out.
    async fn run(mut self, first: usize, stride: usize) -> SenderStats {
        let mut next = first;
        while !self.past_deadline() {
            let taken = match &self.feed {
                Feed::Pool(pool) => {
                    let encoded = &pool[next % pool.len()];
                    next += stride;
                    self.pool_body(encoded)
                }
                Feed::File(replay) => replay.next().await.map(|chunk| {
                    chunk
                        .map(|chunk| (chunk.body, chunk.events))
                        .map_err(|error| format!("{error:#}"))
                }),
            };
            match taken {
                None => break,
                Some(Ok((body, count))) => self.deliver(body, count).await,
                Some(Err(error)) => {
                    self.stats.error(|| error);
                    break;
                }
            }
        }
        self.stats
    }

    /// A pool batch's body within the `--events` budget (`None` once it is spent).
    fn pool_body(&self, encoded: &Encoded) -> Option<Result<(Bytes, usize), String>> {
        let count = claim(self.remaining.as_ref().as_ref(), encoded.batch.events())?;
        Some(match count == encoded.batch.events() {
            true => Ok((encoded.body.clone(), count)),
            // The last request of an --events run: encoded as it goes.
            false => self
                .protocol
                .encode(&encoded.batch.prefix(count))
                .map(|body| (body, count))
                .map_err(|error| format!("{error:#}")),
        })
    }

    fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Posts one body, retrying it while the server answers 503 (unless time runs out).
    async fn deliver(&mut self, body: Bytes, count: usize) {
        loop {
            let sent = Instant::now();
            let result = self
                .client
                .post(self.path, self.protocol.content_type(), body.clone())
                .await;
            let latency = sent.elapsed();
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    self.stats.error(|| format!("{error:#}"));
                    tokio::time::sleep(BACKOFF).await;
                    return;
                }
            };
            match response.status {
                200..=299 => {
                    let accepted = self.protocol.accepted(&response, count);
                    self.stats.requests += 1;
                    self.stats.accepted += accepted;
                    self.stats.events_sent += count as u64;
                    self.stats.bytes += body.len() as u64;
                    self.stats.latencies.push(latency);
                    self.progress.inc(accepted);
                    return;
                }
                503 => {
                    self.stats.backpressure += 1;
                    let mut pause = retry_after(&response).unwrap_or(BACKOFF);
                    if let Some(deadline) = self.deadline {
                        pause = pause.min(deadline.saturating_duration_since(Instant::now()));
                    }
                    tokio::time::sleep(pause).await;
                    if self.past_deadline() {
                        return;
                    }
                }
                status => {
                    self.stats
                        .error(|| format!("HTTP {status}: {}", body_excerpt(&response.body)));
                    return;
                }
            }
        }
    }
}

/// Takes up to `want` events from the shared budget (`None` = unlimited); `None` once
/// the budget is spent.
fn claim(remaining: Option<&AtomicU64>, want: usize) -> Option<usize> {
    let Some(remaining) = remaining else {
        return Some(want);
    };
    let want = want as u64;
    remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            (left > 0).then(|| left.saturating_sub(want))
        })
        .ok()
        .map(|before| before.min(want) as usize)
}

/// `Retry-After` in (whole) seconds, capped.
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ingest {} ({:?}): {} connection{}, {} events/request",
            self.url,
            self.protocol,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.batch
        )?;
        write!(
            f,
            "  {:<18}{}",
            "events accepted",
            thousands(self.events_accepted)
        )?;
        if self.events_rejected > 0 {
            write!(f, " ({} rejected)", thousands(self.events_rejected))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  {:<18}{} ok, {} errors, {} backpressure retries",
            "requests",
            thousands(self.requests),
            thousands(self.errors),
            thousands(self.backpressure_retries)
        )?;
        writeln!(f, "  {:<18}{:.2} s", "elapsed", self.elapsed_secs)?;
        writeln!(
            f,
            "  {:<18}{} events/s, {:.2} MB/s",
            "throughput",
            thousands(self.events_per_sec.round() as u64),
            self.mb_per_sec
        )?;
        writeln!(
            f,
            "  {:<18}{:.0} bytes",
            "mean event", self.mean_event_bytes
        )?;
        let l = &self.ack_latency;
        write!(
            f,
            "  {:<18}p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            "ack latency", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        )?;
        if let Some(drain) = &self.drain {
            writeln!(f)?;
            writeln!(
                f,
                "  {:<18}{:.2} s after the load",
                "drained", drain.drain_secs
            )?;
            writeln!(
                f,
                "  {:<18}{} events/s ({:.2} s from the first request until all were committed)",
                "searchable",
                thousands(drain.searchable_events_per_sec.round() as u64),
                drain.searchable_secs
            )?;
            write!(
                f,
                "  {:<18}{} events, {:.2} MB, {:.0} bytes/event, {:.2}x the NDJSON sent",
                "store",
                thousands(drain.store_events),
                drain.store_bytes as f64 / 1e6,
                drain.store_bytes_per_event,
                drain.store_to_raw_ratio
            )?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f)?;
            write!(f, "  {:<18}{error}", "first error")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicBool;

    use crate::test_server::{Reply, serve};

    /// A server answering `POST /v1/logs` with 202 and the NDJSON line count, or, while
    /// `busy` is set, once with 503 + `Retry-After: 0` (which clears `busy`). Its
    /// `/v1/admin/status` (for the token its login hands out) reports 100 pending
    /// bytes on the first poll, then none, and 300 stored bytes per accepted event.
    async fn fake_server(busy: bool) -> SocketAddr {
        let busy = AtomicBool::new(busy);
        let stored = AtomicU64::new(0);
        let polls = AtomicU64::new(0);
        serve(move |request, body| {
            if request.uri.path() == "/v1/auth/login" {
                return Reply::new(200, r#"{"access_token":"bench-admin-token"}"#);
            }
            if request.uri.path() == "/v1/admin/status" {
                assert_eq!(request.headers["authorization"], "Bearer bench-admin-token");
                let pending = if polls.fetch_add(1, Ordering::SeqCst) == 0 { 100 } else { 0 };
                let events = stored.load(Ordering::SeqCst);
                let status = serde_json::json!({
                    "status": "ready",
                    "queue": {"pending_bytes": pending, "durable_end": 1, "segments": 1, "max_bytes": 1},
                    "store": {"events": events, "bytes": events * 300},
                    "worker": {"committed_position": 1, "committed_events": events, "running": true},
                });
                return Reply::new(200, status.to_string());
            }
            assert_eq!(request.uri.path(), "/v1/logs");
            assert_eq!(request.headers["content-type"], "application/x-ndjson");
            assert_eq!(request.headers["authorization"], "Bearer lbk_bench-unit-test");
            if busy.swap(false, Ordering::SeqCst) {
                let mut reply = Reply::new(503, r#"{"error":"queue full"}"#);
                reply.headers.push(("retry-after", "0".to_owned()));
                return reply;
            }
            let accepted = body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            stored.fetch_add(accepted as u64, Ordering::SeqCst);
            Reply::new(202, format!(r#"{{"accepted": {accepted}, "rejected": 0}}"#))
        })
        .await
        .addr
    }

    fn args(addr: SocketAddr) -> IngestArgs {
        IngestArgs {
            url: format!("http://{addr}"),
            key: Some("lbk_bench-unit-test".to_owned()),
            connections: 2,
            batch: 500,
            duration: None,
            events: Some(5000),
            files: Vec::new(),
            ndjson: None,
            wait_drained: false,
            admin_password: Some("bench-admin-password".to_owned()),
            admin_user: "admin".to_owned(),
            json: false,
            quiet: true,
            audit: false,
            protocol: Protocol::Ndjson,
        }
    }

    #[tokio::test]
    async fn sends_exactly_the_event_budget() {
        let addr = fake_server(false).await;
        let report = run_ingest(&args(addr)).await.unwrap();
        assert_eq!(report.events_accepted, 5000);
        assert_eq!(report.events_rejected, 0);
        assert_eq!(report.requests, 10);
        assert_eq!(report.errors, 0);
        assert_eq!(report.backpressure_retries, 0);
        assert_eq!(report.ack_latency.count, 10);
        assert!(report.mean_event_bytes > 50.0);
        assert!(report.first_error.is_none());
        let text = report.to_string();
        assert!(text.contains("5,000"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["events_accepted"], 5000);
    }

    #[tokio::test]
    async fn partial_last_batch() {
        let addr = fake_server(false).await;
        let report = run_ingest(&IngestArgs {
            events: Some(1234),
            ..args(addr)
        })
        .await
        .unwrap();
        assert_eq!(report.events_accepted, 1234);
        assert_eq!(report.requests, 3);
    }

    #[tokio::test]
    async fn a_dataset_file_is_sent_as_it_is() {
        let addr = fake_server(true).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let lines: String = (0..2_500)
            .map(|n| format!("{{\"message\":\"event {n}\"}}\n"))
            .collect();
        std::fs::write(&path, &lines).unwrap();
        let file_args = IngestArgs {
            ndjson: Some(path.clone()),
            events: None,
            ..args(addr)
        };
        let report = run_ingest(&file_args).await.unwrap();
        assert_eq!(report.events_accepted, 2_500);
        assert_eq!((report.requests, report.errors), (5, 0));
        assert_eq!(report.backpressure_retries, 1);
        assert_eq!(report.bytes_sent, lines.len() as u64);

        let capped = IngestArgs {
            events: Some(1_200),
            ..file_args.clone()
        };
        let report = run_ingest(&capped).await.unwrap();
        assert_eq!((report.events_accepted, report.requests), (1_200, 3));

        let otlp = IngestArgs {
            protocol: Protocol::Otlp,
            ..file_args
        };
        let error = run_ingest(&otlp).await.unwrap_err().to_string();
        assert!(error.contains("--protocol ndjson"), "{error}");
    }

    #[tokio::test]
    async fn backpressure_is_retried() {
        let addr = fake_server(true).await;
        let report = run_ingest(&args(addr)).await.unwrap();
        assert_eq!(report.backpressure_retries, 1);
        assert_eq!(report.events_accepted, 5000);
        assert_eq!(report.errors, 0);
    }

    #[tokio::test]
    async fn waits_for_the_queue_to_drain() {
        let addr = fake_server(false).await;
        let report = run_ingest(&IngestArgs {
            wait_drained: true,
            ..args(addr)
        })
        .await
        .unwrap();
        let drain = report.drain.as_ref().unwrap();
        assert_eq!(drain.store_events, 5000);
        assert_eq!(drain.store_bytes, 1_500_000);
        assert_eq!(drain.store_bytes_per_event, 300.0);
        let ratio = 1_500_000.0 / report.bytes_sent as f64;
        assert!((drain.store_to_raw_ratio - ratio).abs() < 1e-9);
        assert!(drain.drain_secs >= 0.1, "{}", drain.drain_secs);
        assert!(drain.searchable_secs > drain.drain_secs);
        let rate = 5000.0 / drain.searchable_secs;
        assert!((drain.searchable_events_per_sec - rate).abs() < 1e-6);
        assert!(report.to_string().contains("searchable"), "{report}");
        assert!(report.to_string().contains("300 bytes/event"), "{report}");
    }

    #[tokio::test]
    async fn other_statuses_are_errors() {
        let server = serve(|_, _| Reply::new(400, r#"{"code":"invalid_events"}"#)).await;
        let report = run_ingest(&IngestArgs {
            events: Some(1000),
            ..args(server.addr)
        })
        .await
        .unwrap();
        assert_eq!(report.events_accepted, 0);
        assert_eq!(report.requests, 0);
        assert_eq!(report.errors, 2);
        assert_eq!(
            report.first_error.as_deref(),
            Some(r#"HTTP 400: {"code":"invalid_events"}"#)
        );
        assert!(report.to_string().contains("first error"));
    }

    #[test]
    fn command_line_defaults_and_repeats() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            ingest: IngestArgs,
        }
        let cli = Cli::try_parse_from(["bench"]).unwrap();
        let args = cli.ingest;
        assert_eq!(args.url, "http://127.0.0.1:8080");
        assert_eq!((args.connections, args.batch), (8, 1000));
        assert_eq!((args.duration, args.events), (None, None));
        assert!(args.files.is_empty() && !args.wait_drained && !args.json && !args.quiet);
        let cli = Cli::try_parse_from([
            "bench",
            "--file",
            "a.log",
            "--file",
            "b.log",
            "--events",
            "10",
            "--duration",
            "3",
            "--wait-drained",
            "--json",
            "--quiet",
        ])
        .unwrap();
        let args = cli.ingest;
        assert_eq!(args.files, [PathBuf::from("a.log"), PathBuf::from("b.log")]);
        assert_eq!((args.duration, args.events), (Some(3), Some(10)));
        assert!(args.wait_drained && args.json && args.quiet);
    }

    #[test]
    fn budget_claims_stop_at_zero() {
        let remaining = AtomicU64::new(1200);
        assert_eq!(claim(Some(&remaining), 500), Some(500));
        assert_eq!(claim(Some(&remaining), 500), Some(500));
        assert_eq!(claim(Some(&remaining), 500), Some(200));
        assert_eq!(claim(Some(&remaining), 500), None);
        assert_eq!(claim(None, 500), Some(500));
    }
}
