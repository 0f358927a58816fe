//! The embedded store gives the space of expired events back: a segment
//! left empty is dropped by the expiry's commit, and one left mostly empty is
//! rewritten without its deleted events by the merge policy. The events are
//! Loghub's OpenSSH sample (skipped, visibly, when it is absent).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use model::{
    BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch,
    decode_record, encode_record,
};
use serde_json::{Value, json};
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{EventStore, Filter};

const DAY: i64 = 86_400_000_000_000;
/// 2026-02-16T00:00:00Z.
const FIRST_DAY: i64 = 1_771_200_000 * 1_000_000_000;

fn openssh_lines() -> Option<Vec<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/loghub/OpenSSH/OpenSSH_2k.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: the Loghub samples are not at {}", path.display());
        return None;
    };
    Some(text.lines().map(str::to_owned).collect())
}

/// The lines as events of `day` (0-based from [`FIRST_DAY`]), a second apart.
fn events_of_day(lines: &[String], day: i64, position: u64) -> Vec<QueuedEvent> {
    let events: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            json!({"timestamp": FIRST_DAY + day * DAY + i as i64 * 1_000_000_000,
                   "service": "sshd", "message": line})
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    let context = IngestContext::new("acme", Timestamp::from_nanos(FIRST_DAY), None);
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    decode_record(&encode_record(&batch), position).unwrap()
}

fn everything() -> Filter {
    Filter {
        tenant: "acme".into(),
        stream: Stream::Logs,
        query: query::Query::All,
        from: None,
        to: None,
    }
}

/// Waits for `done` (a background merge), failing after 30 s.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_days_give_their_space_back() {
    let Some(lines) = openssh_lines() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedStoreConfig::new(dir.path().join("index"));
    config.writer_memory_bytes = 32 * 1024 * 1024;
    let store = EmbeddedStore::open(&config).unwrap();
    // One segment per commit: day 0, day 1, then days 2 and 3 together.
    for (commit, days) in [vec![0], vec![1], vec![2, 3]].into_iter().enumerate() {
        for day in days {
            store
                .stage(events_of_day(&lines, day, (day as u64) << 20))
                .await
                .unwrap();
        }
        store.commit(Some(commit as u64)).await.unwrap();
    }
    let per_day = lines.len() as u64;
    let full = store.footprint().await.unwrap();
    assert_eq!(full.events, 4 * per_day);

    // Day 0 is a whole segment: the expiry's commit drops it.
    store
        .expire_logs("acme", Timestamp::from_nanos(FIRST_DAY + DAY))
        .await
        .unwrap();
    assert_eq!(store.stats(everything()).await.unwrap().total, 3 * per_day);
    let one_day_less = store.footprint().await.unwrap();
    assert_eq!(one_day_less.events, 3 * per_day);
    assert!(
        one_day_less.bytes * 100 < full.bytes * 85,
        "a dropped day gave back too little: {} of {} bytes",
        full.bytes - one_day_less.bytes,
        full.bytes
    );

    // Days 1 and 2: a whole segment and half of another, which the merge
    // policy rewrites with only day 3.
    store
        .expire_logs("acme", Timestamp::from_nanos(FIRST_DAY + 3 * DAY))
        .await
        .unwrap();
    assert_eq!(store.stats(everything()).await.unwrap().total, per_day);
    eventually("rewriting the half-expired segment", async || {
        let now = store.footprint().await.unwrap();
        now.events == per_day && now.bytes * 100 < full.bytes * 45
    })
    .await;
    // The position the pipeline resumes from is the last commit's, untouched.
    assert_eq!(store.committed_position().await.unwrap(), Some(2));
}
