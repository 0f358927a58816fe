//! The syslog load generator behind `logbook bench syslog`: log lines as
//! octet-counted RFC 5424 messages over several TCP connections, timed until
//! the server's metrics count every one of them as accepted into the queue.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use crate::client::HttpClient;
use crate::events::{Source, level_of, now_ms, time_seed};
use crate::stats::thousands;

/// How many distinct lines the built-in generator makes.
const GENERATED_LINES: usize = 20_000;
/// Bytes handed to the socket in one write.
const WRITE_BYTES: usize = 256 * 1024;
/// How often the metrics are read while waiting for the last events.
const POLL: Duration = Duration::from_millis(20);
/// Waiting for the count fails after this long without progress.
const STALL: Duration = Duration::from_secs(60);

/// Options of `logbook bench syslog`.
#[derive(clap::Args, Debug, Clone)]
pub struct SyslogArgs {
    /// The server's syslog TCP address (`syslog.tcp`).
    #[arg(long, default_value = "127.0.0.1:5514")]
    pub tcp: String,
    /// Base URL serving `/metrics` without credentials (`metrics.listen`): the
    /// accepted count is read there.
    #[arg(long, default_value = "http://127.0.0.1:9100")]
    pub metrics_url: String,
    /// Concurrent TCP connections, each sending its share of the events.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Events to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Log files to replay, one message per line; synthetic lines when none are given.
    #[arg(long = "file")]
    pub files: Vec<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of a syslog run.
#[derive(Debug, Clone, Serialize)]
pub struct SyslogReport {
    pub connections: usize,
    /// Messages written to the sockets.
    pub events_sent: u64,
    /// Messages the server counted as accepted into its queue during the run.
    pub events_accepted: u64,
    /// Seconds until the last message was written.
    pub send_secs: f64,
    /// Seconds until the server counted the last one accepted.
    pub accepted_secs: f64,
    /// `events_accepted / accepted_secs`.
    pub events_per_sec: f64,
    /// Mean size of one framed message, in bytes.
    pub mean_message_bytes: f64,
}

impl fmt::Display for SyslogReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "syslog over TCP, {} connections", self.connections)?;
        writeln!(
            f,
            "  sent      {} messages in {:.2} s ({:.0} bytes each)",
            thousands(self.events_sent),
            self.send_secs,
            self.mean_message_bytes
        )?;
        write!(
            f,
            "  accepted  {} into the queue after {:.2} s: {} events/s",
            thousands(self.events_accepted),
            self.accepted_secs,
            thousands(self.events_per_sec as u64)
        )
    }
}

/// Runs the load described by `args`.
pub async fn run_syslog(args: &SyslogArgs) -> anyhow::Result<SyslogReport> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let sources = if args.files.is_empty() {
        Source::generated(GENERATED_LINES, time_seed())
    } else {
        args.files
            .iter()
            .map(|path| Source::read(path))
            .collect::<anyhow::Result<_>>()?
    };
    let (pool, messages) = frames(&sources, now_ms());
    if messages.is_empty() {
        bail!("no lines to send");
    }
    let mut metrics = HttpClient::connect(&args.metrics_url).await?;
    let baseline = accepted(&mut metrics).await?;

    let started = Instant::now();
    let mut senders = Vec::new();
    let share = args.events / args.connections as u64;
    for index in 0..args.connections {
        let extra = u64::from((index as u64) < args.events % args.connections as u64);
        let stream = tokio::net::TcpStream::connect(&args.tcp)
            .await
            .with_context(|| format!("cannot connect to syslog at {}", args.tcp))?;
        let pool = pool.clone();
        let messages = messages.clone();
        senders.push(tokio::spawn(send(
            stream,
            pool,
            messages,
            index,
            share + extra,
        )));
    }
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.context("a sender panicked")??;
    }
    let send_secs = started.elapsed().as_secs_f64();

    let mut last = (0, Instant::now());
    let count = loop {
        let count = accepted(&mut metrics).await?.saturating_sub(baseline);
        if count >= sent {
            break count;
        }
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() > STALL {
            bail!("the server counted {count} of {sent} messages accepted and no more since");
        }
        tokio::time::sleep(POLL).await;
    };
    let accepted_secs = started.elapsed().as_secs_f64();
    let framed_bytes: usize = messages.iter().map(|(start, end)| end - start).sum();
    Ok(SyslogReport {
        connections: args.connections,
        events_sent: sent,
        events_accepted: count,
        send_secs,
        accepted_secs,
        events_per_sec: count as f64 / accepted_secs,
        mean_message_bytes: framed_bytes as f64 / messages.len().max(1) as f64,
    })
}

/// Writes `events` messages of the pool, starting at a different place per
/// connection, in large writes.
async fn send(
    mut stream: tokio::net::TcpStream,
    pool: bytes::Bytes,
    messages: std::sync::Arc<Vec<(usize, usize)>>,
    offset: usize,
    events: u64,
) -> anyhow::Result<u64> {
    let mut next = offset * 7_919 % messages.len();
    let mut sent = 0;
    while sent < events {
        // Consecutive messages of the pool form one slice to write.
        let (start, _) = messages[next];
        let mut end = start;
        while sent < events && next < messages.len() && end - start < WRITE_BYTES {
            end = messages[next].1;
            next += 1;
            sent += 1;
        }
        stream
            .write_all(&pool[start..end])
            .await
            .context("the server closed the syslog connection")?;
        if next == messages.len() {
            next = 0;
        }
    }
    stream.shutdown().await.ok();
    Ok(sent)
}

/// Every line as one octet-counted RFC 5424 message, one after the other,
/// and where each one lies.
fn frames(sources: &[Source], now_ms: u64) -> (bytes::Bytes, std::sync::Arc<Vec<(usize, usize)>>) {
    let mut pool = Vec::new();
    let mut messages = Vec::new();
    let mut index = 0u64;
    for source in sources {
        for line in source.lines() {
            // Spread over the last day, a millisecond apart.
            let time = rfc3339_ms(now_ms.saturating_sub(86_400_000) + index % 86_400_000);
            let message = format!(
                "<{}>1 {time} host-{} {} {} - - {line}",
                16 * 8 + severity(level_of(line)),
                index % 16,
                source.service(),
                1000 + index % 50,
            );
            let start = pool.len();
            pool.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
            messages.push((start, pool.len()));
            index += 1;
        }
    }
    (pool.into(), std::sync::Arc::new(messages))
}

/// The syslog severity of a level name.
fn severity(level: &str) -> u64 {
    match level {
        "fatal" => 2,
        "error" => 3,
        "warn" => 4,
        "debug" | "trace" => 7,
        _ => 6,
    }
}

/// `2026-12-07T10:00:00.250Z` for milliseconds since the epoch.
fn rfc3339_ms(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let in_day = ms % 86_400_000;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// `logbook_ingest_events_total` of syslog, accepted, over every tenant.
async fn accepted(metrics: &mut HttpClient) -> anyhow::Result<u64> {
    let response = metrics.get("/metrics").await?;
    if response.status != 200 {
        bail!("GET /metrics answered {}", response.status);
    }
    let text = String::from_utf8_lossy(&response.body);
    let total = text
        .lines()
        .filter(|line| line.starts_with("logbook_ingest_events_total{"))
        .filter(|line| {
            line.contains("protocol=\"syslog\"") && line.contains("outcome=\"accepted\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_637_600_250), "2026-12-07T10:00:00.250Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
    }

    #[test]
    fn frames_are_octet_counted_rfc5424() {
        let sources = Source::generated(3, 7);
        let (pool, messages) = frames(&sources, 1_796_637_600_250);
        assert_eq!(messages.len(), 3);
        for (start, end) in messages.iter() {
            let frame = std::str::from_utf8(&pool[*start..*end]).expect("UTF-8");
            let (length, message) = frame.split_once(' ').expect("a count");
            assert_eq!(length.parse::<usize>().expect("digits"), message.len());
            assert!(message.starts_with('<'), "{message}");
            assert!(message.contains(">1 2026-12-06T10:00:00.2"), "{message}");
        }
    }
}
