//! The audit trails of the embedded store: sequence numbers, crash recovery
//! against the index commit, deduplication of re-drained events, signed
//! checkpoints and proofs that a verifier accepts.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_are_numbered_per_tenant_checkpointed_and_provable() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    let key = VerifyingKey::from_text(&store.public_key()).unwrap();

    let acme = audit_events("acme", &actions(25, "acme"), false);
    let globex = audit_events("globex", &actions(5, "globex"), false);
    let acme_ids: Vec<String> = acme.iter().map(|e| e.event.id.clone()).collect();
    store.stage(acme).await.unwrap();
    store.stage(globex).await.unwrap();
    store.commit(1).await.unwrap();

    for (seq, id) in acme_ids.iter().enumerate() {
        assert_eq!(stored(&store, "acme", id).await["seq"], json!(seq));
    }
    // A tenant's first events are checkpointed at once; later ones every 10 events
    // (or every interval).
    let note = store.checkpoint("acme", None).await.unwrap().unwrap();
    let checkpoint = Checkpoint::verify(&note, &key).unwrap();
    assert_eq!((checkpoint.tenant.as_str(), checkpoint.size), ("acme", 25));
    let globex = store.checkpoint("globex", None).await.unwrap().unwrap();
    assert_eq!(Checkpoint::verify(&globex, &key).unwrap().size, 5);
    store
        .stage(audit_events("globex", &actions(3, "few"), false))
        .await
        .unwrap();
    store.commit(2).await.unwrap();
    let globex = store.checkpoint("globex", None).await.unwrap().unwrap();
    assert_eq!(
        Checkpoint::verify(&globex, &key).unwrap().size,
        5,
        "3 new events are not due yet"
    );

    for (seq, id) in acme_ids.iter().enumerate() {
        let event = stored(&store, "acme", id).await;
        let proof = store.inclusion_proof("acme", seq as u64, 25).await.unwrap();
        audit::verify_event_inclusion(&event, seq as u64, &proof, &note, &key).unwrap();
        // The proof does not fit another position.
        if seq > 0 {
            assert!(
                audit::verify_event_inclusion(&event, seq as u64 - 1, &proof, &note, &key).is_err()
            );
        }
    }
    assert!(store.inclusion_proof("acme", 25, 25).await.is_err());
    assert!(
        store.inclusion_proof("acme", 0, 26).await.is_err(),
        "only committed sizes"
    );

    // More events: the next checkpoint is consistent with the first.
    store
        .stage(audit_events("acme", &actions(10, "more"), false))
        .await
        .unwrap();
    store.commit(2).await.unwrap();
    let newer = Checkpoint::verify(
        &store.checkpoint("acme", None).await.unwrap().unwrap(),
        &key,
    )
    .unwrap();
    assert_eq!(newer.size, 35);
    let proof = store.consistency_proof("acme", 25, 35).await.unwrap();
    audit::verify_consistency(25, 35, &checkpoint.root, &newer.root, &proof).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_commit_is_cut_and_replayed_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let first = audit_events("acme", &actions(12, "first"), false);
    let second = audit_events("acme", &actions(8, "second"), false);
    {
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        store.stage(first).await.unwrap();
        store.commit(1).await.unwrap();
        store.stage(second.clone()).await.unwrap();
        // A crash before the commit: the store is dropped with the batch staged.
    }
    {
        // The worse moment: leaves appended and synced, the index commit not made.
        let mut trail = audit::TrailStore::open(&dir.path().join("audit").join("acme")).unwrap();
        trail
            .append(&[b"{\"seq\":12}".to_vec(), b"{\"seq\":13}".to_vec()])
            .unwrap();
        assert_eq!(trail.size(), 14);
    }
    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    assert_eq!(store.committed_position().await.unwrap(), Some(1));
    // The queue replays the second batch: it gets 12..20, not 20..28.
    let ids: Vec<String> = second.iter().map(|e| e.event.id.clone()).collect();
    store.stage(second).await.unwrap();
    store.commit(2).await.unwrap();
    for (offset, id) in ids.iter().enumerate() {
        assert_eq!(stored(&store, "acme", id).await["seq"], json!(12 + offset));
    }
    let key = VerifyingKey::from_text(&store.public_key()).unwrap();
    let note = store.checkpoint("acme", None).await.unwrap().unwrap();
    let first = Checkpoint::verify(&note, &key).unwrap();
    assert_eq!(
        first.size, 12,
        "8 new events are not due for a checkpoint yet"
    );
    // The replayed events extend the checkpointed tree consistently.
    assert!(
        !store
            .consistency_proof("acme", 12, 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.inclusion_proof("acme", 0, 21).await.is_err(),
        "the trail holds 20"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_event_drained_twice_is_in_the_trail_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&config(dir.path())).unwrap();
    let events = audit_events("acme", &actions(3, "own"), true);
    store.stage(events.clone()).await.unwrap();
    // The same events again, before and after the commit.
    store.stage(events.clone()).await.unwrap();
    store.commit(1).await.unwrap();
    store.stage(events.clone()).await.unwrap();
    store.commit(2).await.unwrap();
    for (seq, event) in events.iter().enumerate() {
        assert_eq!(
            stored(&store, "acme", &event.event.id).await["seq"],
            json!(seq)
        );
    }
    assert!(
        store.inclusion_proof("acme", 0, 4).await.is_err(),
        "the trail holds 3 events"
    );
    assert!(store.inclusion_proof("acme", 2, 3).await.is_ok());
}
