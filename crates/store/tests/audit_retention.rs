//! Audit retention in the embedded store, beyond what every store does (see
//! the conformance suite): the index catching up with a trail pruned behind
//! its back (lost, or older than the prune, as after a crash between the two),
//! a prune that waits for the pipeline's commit, and the space it returns.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use model::{
    BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch,
    decode_record, encode_record,
};
use serde_json::json;
use store::embedded::{CheckpointPolicy, EmbeddedStore, EmbeddedStoreConfig};
use store::{AuditLog, EventStore, Filter, Order, SearchRequest};

const T0: i64 = 1_800_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn next_position() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1 << 20, std::sync::atomic::Ordering::Relaxed)
}

fn config(dir: &Path) -> EmbeddedStoreConfig {
    config_with_index(dir, "index")
}

/// The store of `dir` with its index in `dir/<index>`.
fn config_with_index(dir: &Path, index: &str) -> EmbeddedStoreConfig {
    let mut config = EmbeddedStoreConfig::new(dir.join(index));
    config.audit_dir = dir.join("audit");
    config.writer_memory_bytes = 16 * 1024 * 1024;
    config.checkpoints = CheckpointPolicy {
        every_events: 10,
        interval: Duration::from_secs(3600),
    };
    config
}

/// `n` events of `stream`, event `i` received `i` seconds after [`T0`].
fn events(stream: Stream, n: usize, prefix: &str) -> Vec<QueuedEvent> {
    let body: Vec<_> = (0..n)
        .map(|i| json!({"action": format!("{prefix}.{i}"), "userId": "u1", "message": prefix}))
        .collect();
    let context = IngestContext::new("acme", Timestamp::from_nanos(T0), None).with_stream(stream);
    let batch = decode_batch(
        &serde_json::to_vec(&body).unwrap(),
        BatchFormat::Json,
        &context,
        &Limits::default(),
    )
    .unwrap();
    let mut queued = decode_record(&encode_record(&batch), next_position()).unwrap();
    for (i, event) in queued.iter_mut().enumerate() {
        event.event.received_at = Timestamp::from_nanos(T0 + i as i64 * SECOND);
    }
    queued
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_nanos(T0 + seconds * SECOND)
}

async fn found(store: &EmbeddedStore, stream: Stream, q: &str) -> usize {
    store
        .search(SearchRequest {
            filter: Filter {
                tenant: "acme".into(),
                stream,
                query: query::parse(q).unwrap(),
                from: None,
                to: None,
            },
            limit: 1000,
            cursor: None,
            order: Order::Descending,
        })
        .await
        .unwrap()
        .events
        .len()
}

/// Copies an index directory without tantivy's lock files: a backup.
fn copy_index(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Checks the store's view of a trail of 40 events whose first 25 are pruned.
async fn assert_pruned_25_of_40(store: &EmbeddedStore, audit: &[QueuedEvent]) {
    assert_eq!(store.pruned("acme").await.unwrap(), 25);
    assert_eq!(found(store, Stream::Audit, "message:audit").await, 15);
    for (seq, event) in audit.iter().enumerate() {
        let id = &event.event.id;
        let body = store.get("acme", Stream::Audit, id).await.unwrap();
        let pruned = store.pruned_seq("acme", id).await.unwrap();
        if seq < 25 {
            assert!(body.is_none(), "event {seq}");
            assert_eq!(pruned, Some(seq as u64));
        } else {
            assert!(body.is_some(), "event {seq}");
            assert_eq!(pruned, None);
        }
    }
    // Replayed, the pruned events are recognised, not appended again.
    store.stage(audit.to_vec()).await.unwrap();
    store.commit(None).await.unwrap();
    assert!(store.leaf_hashes("acme", 0, 41).await.is_err(), "still 40");
    assert_eq!(found(store, Stream::Audit, "message:audit").await, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_gets_tombstones_back_from_the_trail_and_no_pruned_event() {
    let dir = tempfile::tempdir().unwrap();
    let audit = events(Stream::Audit, 40, "audit");
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store.stage(audit.clone()).await.unwrap();
        store.commit(Some(1)).await.unwrap();
        assert_eq!(store.expire_audit("acme", at(25)).await.unwrap(), 25);
    }
    // An empty index beside the trails (the old one may still be finishing a merge).
    let store = EmbeddedStore::open(&config_with_index(dir.path(), "lost")).unwrap();
    assert_pruned_25_of_40(&store, &audit).await;
    drop(store);
    let store = EmbeddedStore::open(&config_with_index(dir.path(), "lost")).unwrap();
    assert_pruned_25_of_40(&store, &audit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_from_before_the_prune_drops_the_pruned_events_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let audit = events(Stream::Audit, 40, "audit");
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store.stage(audit.clone()).await.unwrap();
        store.commit(Some(1)).await.unwrap();
        store.expire_audit("acme", at(10)).await.unwrap();
        copy_index(&dir.path().join("index"), &dir.path().join("backup"));
        assert_eq!(store.expire_audit("acme", at(25)).await.unwrap(), 15);
    }
    // The index as it was between the two prunes: what a crash after the trail
    // recorded the second prune and before the index committed it leaves. (Opened
    // where it is: the old index may still be finishing a merge.)
    let store = EmbeddedStore::open(&config_with_index(dir.path(), "backup")).unwrap();
    assert_pruned_25_of_40(&store, &audit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_goes_with_the_pipelines_commit_when_it_has_events_staged() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    let audit = events(Stream::Audit, 40, "audit");
    store.stage(audit.clone()).await.unwrap();
    store.commit(Some(1)).await.unwrap();
    // Staged by the pipeline, not committed yet.
    store.stage(events(Stream::Logs, 5, "logs")).await.unwrap();
    assert_eq!(store.expire_audit("acme", at(25)).await.unwrap(), 25);
    assert_eq!(store.pruned("acme").await.unwrap(), 25);
    assert_eq!(
        found(&store, Stream::Logs, "message:logs").await,
        0,
        "the pipeline's events were not committed for it"
    );
    store.commit(Some(2)).await.unwrap();
    assert_eq!(store.committed_position().await.unwrap(), Some(2));
    assert_eq!(found(&store, Stream::Logs, "message:logs").await, 5);
    assert_pruned_25_of_40(&store, &audit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_gives_the_space_of_the_bodies_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    store
        .stage(events(Stream::Audit, 400, "audit"))
        .await
        .unwrap();
    store.commit(Some(1)).await.unwrap();
    let leaves = dir.path().join("audit").join("acme").join("leaves.log");
    let hashes = dir.path().join("audit").join("acme").join("hashes.bin");
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();
    let (before, hashes_before) = (size(&leaves), size(&hashes));
    // A tenth of the bodies: not yet worth a rewrite (a quarter is).
    assert_eq!(store.expire_audit("acme", at(40)).await.unwrap(), 40);
    assert_eq!(size(&leaves), before);
    assert_eq!(store.expire_audit("acme", at(300)).await.unwrap(), 260);
    let after = size(&leaves);
    assert!(after < before * 3 / 10, "{after} of {before} bytes left");
    assert_eq!(size(&hashes), hashes_before, "every leaf hash is kept");
    assert_eq!(found(&store, Stream::Audit, "message:audit").await, 100);
}
