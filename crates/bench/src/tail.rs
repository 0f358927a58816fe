//! The live-tail benchmark behind `logbook bench tail`: subscribers follow
//! `/v1/tail` over Server-Sent Events while connections post batches at a
//! set rate; each batch's delivery latency is the time from reading its
//! `202` to a subscriber receiving it. With `--idle`, the subscribers' query
//! matches nothing and the load runs as fast as the server takes it, to
//! measure what idle subscribers cost ingest.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde::Serialize;

use crate::client::{HttpClient, body_excerpt, percent_encode};
use crate::sse::SseStream;
use crate::stats::{LatencySummary, thousands};

/// The service every benchmark event names, so a tail can select them.
const SERVICE: &str = "bench-tail";
/// What each event's message starts with, before its batch number.
const MARK: &str = "\"message\":\"tail-bench ";
/// A query no benchmark event matches, for idle subscribers.
const MATCHES_NOTHING: &str = "service:bench-tail-matches-nothing";

/// Options of `logbook bench tail`.
#[derive(clap::Args, Debug, Clone)]
pub struct TailArgs {
    /// Base URL of the Logbook server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key with logs:write and logs:read.
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Events per second to send (ignored with --idle, which sends as fast as acknowledged).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Subscribers tailing at once.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Subscribers whose query matches nothing; report ingest throughput.
    #[arg(long)]
    pub idle: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of a tail run.
#[derive(Debug, Clone, Serialize)]
pub struct TailReport {
    pub url: String,
    pub subscribers: usize,
    /// Whether the subscribers matched nothing.
    pub idle: bool,
    /// Events per second asked for (0 with --idle: as fast as acknowledged).
    pub target_rate: u64,
    /// Events the server acknowledged.
    pub events_acknowledged: u64,
    /// Acknowledged events per second over the load.
    pub events_per_sec: f64,
    /// Requests that failed (not 202).
    pub errors: u64,
    pub first_error: Option<String>,
    /// Time from sending a request to its 202.
    pub ack_latency: LatencySummary,
    /// Time from a batch's 202 to a subscriber receiving it, one sample per
    /// batch and subscriber (0 when it arrived before the 202 was read).
    pub delivery_latency: LatencySummary,
    /// Batches acknowledged that some subscriber never received.
    pub batches_missing: u64,
    /// Events the server said it dropped, over all subscribers.
    pub dropped_notices: u64,
}

impl fmt::Display for TailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.idle { "idle" } else { "matching" };
        writeln!(f, "tail benchmark against {}", self.url)?;
        writeln!(f, "  subscribers        {} ({mode})", self.subscribers)?;
        writeln!(
            f,
            "  ingest             {} events acknowledged, {} events/s (target {})",
            thousands(self.events_acknowledged),
            thousands(self.events_per_sec as u64),
            if self.target_rate == 0 {
                "unbounded".to_owned()
            } else {
                thousands(self.target_rate)
            }
        )?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, s: &LatencySummary| {
            writeln!(
                f,
                "  {name:<18} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples)",
                s.p50_ms, s.p99_ms, s.max_ms, s.count
            )
        };
        line(f, "ack latency", &self.ack_latency)?;
        if !self.idle {
            line(f, "delivery latency", &self.delivery_latency)?;
            writeln!(f, "  batches missing    {}", self.batches_missing)?;
        }
        writeln!(f, "  dropped notices    {}", self.dropped_notices)?;
        writeln!(f, "  errors             {}", self.errors)?;
        if let Some(error) = &self.first_error {
            writeln!(f, "  first error        {error}")?;
        }
        Ok(())
    }
}

/// When each batch was acknowledged, by batch number.
type Acks = Arc<Mutex<HashMap<u64, Instant>>>;

/// What one subscriber saw: (batch, when it arrived) for each batch's first event.
struct Seen {
    arrivals: Vec<(u64, Instant)>,
    dropped: u64,
}

/// Runs the tail benchmark described by `args`.
pub async fn run_tail(args: &TailArgs) -> anyhow::Result<TailReport> {
    if args.connections == 0 || args.batch == 0 {
        bail!("--connections and --batch must be at least 1");
    }
    if !args.idle && args.rate == 0 {
        bail!("--rate must be at least 1 (or use --idle)");
    }
    let query = if args.idle {
        MATCHES_NOTHING.to_owned()
    } else {
        format!("service:{SERVICE}")
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tails = Vec::new();
    for _ in 0..args.subscribers {
        let client = HttpClient::connect(&args.url)
            .await?
            .with_token(args.key.as_deref())?;
        let stream = SseStream::open(client, &format!("/v1/tail?q={}", percent_encode(&query)))
            .await
            .context("cannot open a tail")?;
        tails.push(tokio::spawn(subscribe(stream, Arc::clone(&stop))));
    }

    let acks: Acks = Arc::default();
    let next_batch = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration.max(1));
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let client = HttpClient::connect(&args.url)
            .await?
            .with_token(args.key.as_deref())?;
        let sender = Sender {
            client,
            acks: Arc::clone(&acks),
            next_batch: Arc::clone(&next_batch),
            batch: args.batch,
            // One request every `batch / rate` seconds over all connections.
            pace: (!args.idle)
                .then(|| Duration::from_secs_f64(args.batch as f64 / args.rate as f64)),
            started,
            until,
        };
        senders.push(tokio::spawn(sender.run()));
    }
    let mut ack_latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for sender in senders {
        let outcome = sender.await.context("a sender panicked")?;
        ack_latencies.extend(outcome.latencies);
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    let elapsed = started.elapsed();
    // Let the last batches arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.notify_waiters();
    let acks = acks.lock().map(|acks| acks.clone()).unwrap_or_default();
    let mut delivery = Vec::new();
    let (mut missing, mut dropped) = (0, 0);
    for tail in tails {
        let seen = tail.await.context("a subscriber panicked")??;
        dropped += seen.dropped;
        let arrived: HashMap<u64, Instant> = seen.arrivals.into_iter().collect();
        for (batch, acked) in &acks {
            match arrived.get(batch) {
                Some(at) => delivery.push(at.saturating_duration_since(*acked)),
                None => missing += 1,
            }
        }
    }
    let events = acks.len() as u64 * args.batch as u64;
    Ok(TailReport {
        url: args.url.clone(),
        subscribers: args.subscribers,
        idle: args.idle,
        target_rate: if args.idle { 0 } else { args.rate },
        events_acknowledged: events,
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
        errors,
        first_error,
        ack_latency: LatencySummary::from_durations(&ack_latencies),
        delivery_latency: LatencySummary::from_durations(&delivery),
        batches_missing: if args.idle { 0 } else { missing },
        dropped_notices: dropped,
    })
}

/// Reads a tail until told to stop, noting when each batch's first event arrived.
async fn subscribe(mut stream: SseStream, stop: Arc<tokio::sync::Notify>) -> anyhow::Result<Seen> {
    let mut seen = Seen {
        arrivals: Vec::new(),
        dropped: 0,
    };
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            event = stream.next() => event?,
            () = &mut stopped => return Ok(seen),
        };
        let Some(event) = event else {
            bail!("the server ended a tail");
        };
        match event.event.as_str() {
            "message" => {
                if let Some((batch, 0)) = batch_and_index(&event.data) {
                    seen.arrivals.push((batch, Instant::now()));
                }
            }
            "dropped" => {
                let data: serde_json::Value = serde_json::from_str(&event.data)?;
                seen.dropped += data["dropped"].as_u64().unwrap_or(0);
            }
            "close" => bail!("the server closed a tail: {}", event.data),
            _ => {}
        }
    }
}

/// The batch and index an event's message carries, found without parsing the whole event.
fn batch_and_index(json: &str) -> Option<(u64, u64)> {
    let rest = &json[json.find(MARK)? + MARK.len()..];
    let mut numbers = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// One ingest connection.
struct Sender {
    client: HttpClient,
    acks: Acks,
    next_batch: Arc<AtomicU64>,
    batch: usize,
    pace: Option<Duration>,
    started: Instant,
    until: Instant,
}

struct SenderOutcome {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Sender {
    async fn run(mut self) -> SenderOutcome {
        let mut outcome = SenderOutcome {
            latencies: Vec::new(),
            errors: 0,
            first_error: None,
        };
        loop {
            let number = self.next_batch.fetch_add(1, Ordering::Relaxed);
            if let Some(pace) = self.pace {
                let due = self.started + pace.mul_f64(number as f64);
                if due >= self.until {
                    return outcome;
                }
                tokio::time::sleep_until(due.into()).await;
            } else if Instant::now() >= self.until {
                return outcome;
            }
            let body = batch_body(number, self.batch);
            let sent = Instant::now();
            let answer = self
                .client
                .post("/v1/logs", "application/x-ndjson", body)
                .await;
            let acked = Instant::now();
            match answer {
                Ok(response) if response.status == 202 => {
                    outcome.latencies.push(acked - sent);
                    if let Ok(mut acks) = self.acks.lock() {
                        acks.insert(number, acked);
                    }
                }
                Ok(response) => {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert_with(|| {
                        format!("{}: {}", response.status, body_excerpt(&response.body))
                    });
                }
                Err(error) => {
                    outcome.errors += 1;
                    outcome
                        .first_error
                        .get_or_insert_with(|| format!("{error:#}"));
                }
            }
        }
    }
}

/// NDJSON of batch `number`: events `tail-bench <number> <index>`.
fn batch_body(number: u64, events: usize) -> Bytes {
    let mut body = String::with_capacity(events * 96);
    for index in 0..events {
        body.push_str(&format!(
            "{{\"message\":\"tail-bench {number} {index}\",\"service\":\"{SERVICE}\",\"level\":\"info\"}}\n"
        ));
    }
    Bytes::from(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batch_numbers_are_found_in_the_stored_json() {
        let body = batch_body(42, 2);
        let second = std::str::from_utf8(&body).unwrap().lines().nth(1).unwrap();
        let stored = format!("{{\"id\":\"01J\",\"tenant\":\"default\",{}", &second[1..]);
        assert_eq!(batch_and_index(&stored), Some((42, 1)));
        assert_eq!(batch_and_index("{\"message\":\"other\"}"), None);
    }
}
