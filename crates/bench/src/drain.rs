//! `logbook bench ingest --wait-drained`: after the load, polls the server's status
//! until every acknowledged event is committed to the store (so searchable), and
//! reports how long that took, the searchable rate and what the store then holds.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use crate::client::HttpClient;
use crate::ingest::IngestArgs;
use crate::progress::progress_bar;
use crate::stats::{ratio, thousands};

/// How often the server's status is polled while waiting for the queue to drain.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// Waiting for the drain fails after this long without any progress.
const DRAIN_STALL: Duration = Duration::from_secs(120);

/// What happened after the load, with `--wait-drained`.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// Seconds from the end of the load until everything was seen committed.
    pub drain_secs: f64,
    /// Seconds from the first request until everything was seen committed.
    pub searchable_secs: f64,
    /// The events this run had accepted, per `searchable_secs`: the rate at which
    /// events became searchable, as opposed to acknowledged.
    pub searchable_events_per_sec: f64,
    /// `store.events` from `/v1/admin/status` (all events stored, not only this run's).
    pub store_events: u64,
    /// `store.bytes` from `/v1/admin/status`.
    pub store_bytes: u64,
    /// `store_bytes / store_events`.
    pub store_bytes_per_event: f64,
    /// `store_bytes` divided by the NDJSON bytes this run sent.
    pub store_to_raw_ratio: f64,
}

/// What the load left to wait for and measure against.
pub(crate) struct Load {
    /// When the first request was sent.
    pub(crate) start: Instant,
    /// When the last answer was read.
    pub(crate) end: Instant,
    /// Events the server accepted.
    pub(crate) accepted: u64,
    /// Request body bytes the server accepted.
    pub(crate) bytes: u64,
}

/// Polls `/v1/admin/status` with `admin` (see [`admin_client`]) until the load is
/// committed; see [`committed`].
pub(crate) async fn wait_drained(
    args: &IngestArgs,
    admin: HttpClient,
    load: &Load,
) -> anyhow::Result<DrainReport> {
    let progress = progress_bar(args.quiet, None, "polls")?;
    let result = poll_until_drained(args, admin, load, &progress).await;
    progress.finish_and_clear();
    result
}

/// A client carrying the super-admin's access token. Made before the load: the
/// login is itself an event the server queues, which must not delay the drain.
pub(crate) async fn admin_client(args: &IngestArgs) -> anyhow::Result<HttpClient> {
    let password = args.admin_password.as_deref().context(
        "--wait-drained reads the server's status, which is the super-admin's: pass --admin-password or set LOGBOOK_ADMIN_PASSWORD",
    )?;
    HttpClient::connect(&args.url)
        .await?
        .log_in(&args.admin_user, password)
        .await
        .context("cannot read the server's status")
}

/// The figures of one status answer that tell whether the load is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    pending_bytes: u64,
    store_events: u64,
    store_bytes: u64,
    committed_events: u64,
    /// The embedded queue's end and the worker's committed position in it: the
    /// same space only for that queue (brokers count their own way).
    embedded: Option<(u64, u64)>,
}

impl Figures {
    fn read(status: &Value) -> anyhow::Result<Figures> {
        let field = |pointer: &str| {
            status
                .pointer(pointer)
                .and_then(Value::as_u64)
                .with_context(|| format!("the status has no number at {pointer}: {status}"))
        };
        let embedded = match status.pointer("/queue/backend").and_then(Value::as_str) {
            Some("embedded") => Some((
                field("/queue/durable_end")?,
                field("/worker/committed_position")?,
            )),
            _ => None,
        };
        Ok(Figures {
            pending_bytes: field("/queue/pending_bytes")?,
            store_events: field("/store/events")?,
            store_bytes: field("/store/bytes")?,
            committed_events: field("/worker/committed_events")?,
            embedded,
        })
    }

    /// Whether nothing is left to commit: the queue holds no unreleased bytes (it
    /// releases records only once the worker has committed them to the store) and,
    /// for the embedded queue, the worker's last commit covers the queue's end.
    fn queue_empty(&self) -> bool {
        self.pending_bytes == 0
            && self
                .embedded
                .is_none_or(|(durable_end, committed)| committed >= durable_end)
    }
}

/// Whether the load is committed: the queue was seen empty on two polls in a row
/// with the same stored and committed event counts (a commit in flight between the
/// two would change them).
fn committed(earlier: &Figures, now: &Figures) -> bool {
    earlier.queue_empty()
        && now.queue_empty()
        && (earlier.store_events, earlier.committed_events)
            == (now.store_events, now.committed_events)
}

async fn poll_until_drained(
    args: &IngestArgs,
    mut client: HttpClient,
    load: &Load,
    progress: &ProgressBar,
) -> anyhow::Result<DrainReport> {
    // The first poll of the run of polls that saw an empty queue, and its figures.
    let mut empty_since: Option<(Instant, Figures)> = None;
    let mut last_change = Instant::now();
    let mut last_seen: Option<Figures> = None;
    let mut logged_in_again = false;
    loop {
        let polled_at = Instant::now();
        let response = client.get("/v1/admin/status").await?;
        if response.status == 401 && !logged_in_again {
            // The access token expired during a long load.
            client = admin_client(args).await?;
            logged_in_again = true;
            continue;
        }
        logged_in_again = false;
        anyhow::ensure!(
            response.status == 200,
            "cannot read the server's status: HTTP {}",
            response.status
        );
        let figures = Figures::read(&response.json()?)?;
        progress.inc(1);
        progress.set_message(format!(
            "draining: {} bytes pending, {} events stored",
            thousands(figures.pending_bytes),
            thousands(figures.store_events)
        ));

        match empty_since {
            Some((since, earlier)) if committed(&earlier, &figures) => {
                let searchable = since.saturating_duration_since(load.start).as_secs_f64();
                return Ok(DrainReport {
                    drain_secs: since.saturating_duration_since(load.end).as_secs_f64(),
                    searchable_secs: searchable,
                    searchable_events_per_sec: load.accepted as f64
                        / searchable.max(f64::MIN_POSITIVE),
                    store_events: figures.store_events,
                    store_bytes: figures.store_bytes,
                    store_bytes_per_event: ratio(figures.store_bytes, figures.store_events),
                    store_to_raw_ratio: ratio(figures.store_bytes, load.bytes),
                });
            }
            _ if figures.queue_empty() => empty_since = Some((polled_at, figures)),
            _ => empty_since = None,
        }
        if last_seen != Some(figures) {
            last_seen = Some(figures);
            last_change = Instant::now();
        } else if last_change.elapsed() > DRAIN_STALL {
            bail!(
                "the queue stopped draining: {} bytes pending and {} events stored for {}s",
                figures.pending_bytes,
                figures.store_events,
                DRAIN_STALL.as_secs()
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(pending: u64, end: u64, committed: u64, events: u64) -> Value {
        serde_json::json!({
            "queue": {"pending_bytes": pending, "durable_end": end, "backend": "embedded"},
            "store": {"events": events, "bytes": events * 100},
            "worker": {"committed_position": committed, "committed_events": events},
        })
    }

    #[test]
    fn committed_needs_an_empty_queue_twice_with_the_same_counts() {
        let read = |value: Value| Figures::read(&value).unwrap();
        let done = read(status(0, 500, 500, 10));
        assert!(committed(&done, &done));
        // Bytes pending, or a commit short of the queue's end, is not empty.
        assert!(!read(status(7, 500, 500, 10)).queue_empty());
        assert!(!read(status(0, 500, 400, 10)).queue_empty());
        // Counts that moved between two empty polls: a commit landed in between.
        assert!(!committed(&read(status(0, 500, 500, 9)), &done));
        // Brokers' positions are not compared.
        let broker = serde_json::json!({
            "queue": {"pending_bytes": 0, "durable_end": 9, "backend": "redis"},
            "store": {"events": 3, "bytes": 300},
            "worker": {"committed_position": 0, "committed_events": 3},
        });
        assert!(read(broker).queue_empty());
        assert!(Figures::read(&serde_json::json!({"queue": {}})).is_err());
    }
}
