//! Loads events made from the Loghub samples into a store and reports how fast
//! staging and commits go, to compare backends and write paths:
//! `cargo run --release -p store --example load -- TARGET [EVENTS] [BATCH]`,
//! where TARGET is a `postgres://` URL or an embedded store's directory.
#![allow(clippy::unwrap_used)] // a measuring tool: failing loudly is what it should do

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use model::{
    BatchFormat, IngestContext, Limits, Timestamp, decode_batch, decode_record, encode_record,
};
use serde_json::json;
use store::EventStore;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::postgres::{PostgresStore, PostgresStoreOptions};

/// Every `*_2k.log` line of the samples, with its system's name.
fn lines() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    let mut systems: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    systems.sort();
    let mut lines = Vec::new();
    for system in systems {
        let path = root.join(&system).join(format!("{system}_2k.log"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            lines.push((system.to_lowercase(), line.trim_end().to_owned()));
        }
    }
    lines
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: load postgres://…|DIR [EVENTS] [BATCH]");
        std::process::exit(2);
    };
    let count: usize = args.next().map_or(100_000, |n| n.parse().unwrap());
    let batch: usize = args.next().map_or(5_000, |n| n.parse().unwrap());
    let store: Arc<dyn EventStore> = if target.starts_with("postgres://") {
        // The checkpoint key of a measuring run: anything will do.
        let key = std::env::temp_dir().join("logbook-load-checkpoint.key");
        let options = PostgresStoreOptions::new(key);
        Arc::new(PostgresStore::open(&target, &options).await.unwrap())
    } else {
        Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(&target)).unwrap())
    };
    let lines = lines();
    let base = Timestamp::parse("2026-02-16T00:00:00Z").unwrap().nanos();
    let context = IngestContext::new("default", Timestamp::now(), None);
    let mut records = Vec::new();
    let mut position = 0u64;
    for start in (0..count).step_by(batch) {
        let events: Vec<_> = (start..(start + batch).min(count))
            .map(|i| {
                let (service, message) = &lines[i % lines.len()];
                json!({"service": service, "message": message, "timestamp": base + i as i64 * 100_000_000})
            })
            .collect();
        let body = serde_json::to_vec(&events).unwrap();
        let decoded = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
        let record = encode_record(&decoded);
        records.push((decode_record(&record, position).unwrap(), position));
        position += record.len() as u64;
    }
    let started = Instant::now();
    let mut committing = std::time::Duration::ZERO;
    for (events, position) in records {
        store.stage(events).await.unwrap();
        let commit = Instant::now();
        store.commit(Some(position)).await.unwrap();
        committing += commit.elapsed();
    }
    let elapsed = started.elapsed();
    let footprint = store.footprint().await.unwrap();
    println!(
        "{count} events in batches of {batch}: {:.1} s, {:.0} events/s (commits {:.1} s); {} stored, {:.0} bytes each",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        committing.as_secs_f64(),
        footprint.events,
        footprint.bytes as f64 / footprint.events.max(1) as f64,
    );
}
