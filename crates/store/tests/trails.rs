//! The audit trails of the embedded store, beyond what every store does (see
//! the conformance suite): the index rebuilt from the trails after a crash or
//! its loss, replays that keep their numbers, and trails refused when signed
//! events or their key are missing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use audit::{Checkpoint, VerifyingKey};
use model::{
    BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch,
    decode_record, encode_record,
};
use serde_json::{Value, json};
use store::embedded::{CheckpointPolicy, EmbeddedStore, EmbeddedStoreConfig};
use store::{AuditLog, EventStore};

/// A fresh queue position for each record, as the queue would give them, so
/// that arrival numbers never repeat within a test.
fn next_position() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1 << 20, std::sync::atomic::Ordering::Relaxed)
}

fn config(dir: &std::path::Path) -> EmbeddedStoreConfig {
    let mut config = EmbeddedStoreConfig::new(dir.join("index"));
    config.audit_dir = dir.join("audit");
    config.writer_memory_bytes = 16 * 1024 * 1024;
    config.checkpoints = CheckpointPolicy {
        every_events: 10,
        interval: Duration::from_secs(3600),
    };
    config
}

/// Audit events of `tenant` as the worker hands them over; `replace` marks them
/// as the server's own (outbox) events, whose ids it chose.
fn audit_events(tenant: &str, events: &[Value], replace: bool) -> Vec<QueuedEvent> {
    let body = serde_json::to_vec(events).unwrap();
    let context = IngestContext::new(
        tenant,
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        None,
    )
    .with_stream(Stream::Audit);
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let mut queued = decode_record(&encode_record(&batch), next_position()).unwrap();
    for event in &mut queued {
        event.replace_existing = replace;
    }
    queued
}

fn actions(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"action": format!("{prefix}.{i}"), "userId": "u1"}))
        .collect()
}

async fn stored(store: &EmbeddedStore, tenant: &str, id: &str) -> Value {
    let raw = store.get(tenant, Stream::Audit, id).await.unwrap().unwrap();
    serde_json::from_str(raw.get()).unwrap()
}

/// Copies an index directory without tantivy's lock files: a backup.
fn copy_index(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn ids(events: &[QueuedEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.id.clone()).collect()
}

async fn latest_size(store: &EmbeddedStore, tenant: &str) -> u64 {
    let key = VerifyingKey::from_text(&store.public_key()).unwrap();
    let note = store.checkpoint(tenant, None).await.unwrap().unwrap();
    Checkpoint::verify(&note, &key).unwrap().size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_beyond_the_index_commit_are_reindexed_and_replays_keep_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let first = audit_events("acme", &actions(12, "first"), false);
    let second = audit_events("acme", &actions(10, "second"), false);
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store.stage(first).await.unwrap();
        store.commit(Some(1)).await.unwrap();
        copy_index(&dir.path().join("index"), &dir.path().join("backup"));
        store.stage(second.clone()).await.unwrap();
        store.commit(Some(2)).await.unwrap();
        assert_eq!(
            latest_size(&store, "acme").await,
            22,
            "22 events are signed"
        );
    }
    // The index goes back to its first commit (a restore, or the worst moment of
    // a crash: leaves appended and synced, the index commit not made).
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    std::fs::rename(dir.path().join("backup"), dir.path().join("index")).unwrap();

    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    assert_eq!(store.committed_position().await.unwrap(), Some(1));
    assert_eq!(
        latest_size(&store, "acme").await,
        22,
        "no signed event is cut"
    );
    for (offset, id) in ids(&second).iter().enumerate() {
        assert_eq!(stored(&store, "acme", id).await["seq"], json!(12 + offset));
    }
    // The queue replays the second batch from position 1: nothing is numbered again.
    store.stage(second.clone()).await.unwrap();
    store.commit(Some(2)).await.unwrap();
    for (offset, id) in ids(&second).iter().enumerate() {
        assert_eq!(stored(&store, "acme", id).await["seq"], json!(12 + offset));
    }
    assert!(store.inclusion_proof("acme", 21, 22).await.is_ok());
    assert!(
        store.inclusion_proof("acme", 0, 23).await.is_err(),
        "the trail holds 22"
    );
    let third = audit_events("acme", &actions(1, "third"), false);
    store.stage(third.clone()).await.unwrap();
    store.commit(Some(3)).await.unwrap();
    assert_eq!(
        stored(&store, "acme", &third[0].event.id).await["seq"],
        json!(22)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_rebuilt_from_the_trails_and_a_full_replay_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let acme = audit_events("acme", &actions(15, "acme"), false);
    let globex = audit_events("globex", &actions(4, "globex"), true);
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store.stage(acme.clone()).await.unwrap();
        store.commit(Some(1)).await.unwrap();
        store.stage(globex.clone()).await.unwrap();
        store.commit(Some(2)).await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();

    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    assert_eq!(
        store.committed_position().await.unwrap(),
        None,
        "the queue position died with the index"
    );
    let found = store
        .search(store::SearchRequest {
            filter: store::Filter {
                tenant: "acme".into(),
                stream: Stream::Audit,
                query: query::parse("action:acme.7").unwrap(),
                from: None,
                to: None,
            },
            limit: 10,
            cursor: None,
            order: store::Order::Descending,
        })
        .await
        .unwrap();
    assert_eq!(
        found.events.len(),
        1,
        "search finds re-indexed audit events"
    );
    // The queue replays everything it still holds, server events and client events alike.
    store.stage(acme.clone()).await.unwrap();
    store.stage(globex.clone()).await.unwrap();
    store.commit(Some(2)).await.unwrap();
    for (seq, id) in ids(&acme).iter().enumerate() {
        assert_eq!(stored(&store, "acme", id).await["seq"], json!(seq));
    }
    for (seq, id) in ids(&globex).iter().enumerate() {
        assert_eq!(stored(&store, "globex", id).await["seq"], json!(seq));
    }
    assert!(store.inclusion_proof("acme", 0, 16).await.is_err());
    assert!(store.inclusion_proof("globex", 0, 5).await.is_err());
    assert_eq!(latest_size(&store, "acme").await, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_missing_signed_events_or_its_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store
            .stage(audit_events("acme", &actions(12, "a"), false))
            .await
            .unwrap();
        store.commit(Some(1)).await.unwrap();
        assert_eq!(latest_size(&store, "acme").await, 12);
    }
    let message = |result: Result<EmbeddedStore, store::StoreError>| match result {
        Ok(_) => panic!("the store opened"),
        Err(error) => error.to_string(),
    };
    let key = dir.path().join("audit").join("checkpoint.key");
    std::fs::rename(&key, dir.path().join("key.bak")).unwrap();
    let text = message(EmbeddedStore::open(&config(dir.path())));
    assert!(
        text.contains("checkpoint.key is missing") && text.contains("Restore the key file"),
        "{text}"
    );
    assert!(!key.exists(), "no new key was made");
    std::fs::rename(dir.path().join("key.bak"), &key).unwrap();

    // Signed leaves cut away (the index lost as well, so nothing else notices).
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    audit::TrailStore::open(&dir.path().join("audit").join("acme"))
        .unwrap()
        .truncate(5)
        .unwrap();
    let text = message(EmbeddedStore::open(&config(dir.path())));
    assert!(
        text.contains("holds 5 events but a checkpoint signed 12"),
        "{text}"
    );
}
