//! The audit stream's trails through [`store::AuditLog`]: numbers per tenant,
//! checkpoints by policy and by size, proofs a verifier accepts, and events
//! seen twice numbered once.
#![allow(clippy::unwrap_used)]

use audit::{Checkpoint, VerifyingKey};
use model::{
    IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch, decode_record,
    encode_record,
};
use serde_json::{Value, json};
use store::embedded::CheckpointPolicy;

use crate::backends::{Backend, Settings, Store};
use crate::events::{next_position, stored};

/// Audit events of `tenant` as the worker hands them over; `replace` marks them
/// as the server's own (outbox) events, whose ids it chose.
pub fn audit_events(tenant: &str, events: &[Value], replace: bool) -> Vec<QueuedEvent> {
    let body = serde_json::to_vec(events).unwrap();
    let context = IngestContext::new(
        tenant,
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        None,
    )
    .with_stream(Stream::Audit);
    let batch = decode_batch(
        &body,
        model::BatchFormat::Json,
        &context,
        &Limits::default(),
    )
    .unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let mut queued = decode_record(&encode_record(&batch), next_position()).unwrap();
    for event in &mut queued {
        event.replace_existing = replace;
    }
    queued
}

pub fn actions(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"action": format!("{prefix}.{i}"), "userId": "u1"}))
        .collect()
}

async fn audit_event(store: &dyn Store, tenant: &str, id: &str) -> Value {
    stored(store, tenant, Stream::Audit, id).await.unwrap()
}

pub async fn audit_events_are_numbered_per_tenant_checkpointed_and_provable(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let key = VerifyingKey::from_text(&store.public_key()).unwrap();

    let acme = audit_events("acme", &actions(25, "acme"), false);
    let globex = audit_events("globex", &actions(5, "globex"), false);
    let acme_ids: Vec<String> = acme.iter().map(|e| e.event.id.clone()).collect();
    store.stage(acme).await.unwrap();
    store.stage(globex).await.unwrap();
    store.commit(Some(1)).await.unwrap();

    for (seq, id) in acme_ids.iter().enumerate() {
        assert_eq!(audit_event(store, "acme", id).await["seq"], json!(seq));
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
    store.commit(Some(2)).await.unwrap();
    let globex = store.checkpoint("globex", None).await.unwrap().unwrap();
    assert_eq!(
        Checkpoint::verify(&globex, &key).unwrap().size,
        5,
        "3 new events are not due yet"
    );

    for (seq, id) in acme_ids.iter().enumerate() {
        let event = audit_event(store, "acme", id).await;
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
    assert!(store.inclusion_proof("nobody", 0, 1).await.is_err());
    // The recorded leaf hashes are those of the leaves, and their tree is the signed one.
    let all = store.leaves("acme", 0, 25).await.unwrap();
    let hashes = store.leaf_hashes("acme", 0, 25).await.unwrap();
    let recomputed: Vec<audit::Hash> = all.iter().map(|leaf| audit::leaf_hash(leaf)).collect();
    assert_eq!(hashes, recomputed);
    assert_eq!(audit::root(&hashes, 25).unwrap(), checkpoint.root);
    assert_eq!(
        store.leaf_hashes("acme", 20, 25).await.unwrap(),
        recomputed[20..]
    );
    assert!(
        store.leaf_hashes("acme", 0, 26).await.is_err(),
        "only committed sizes"
    );

    // The leaves are the stored events, byte for byte, in sequence.
    let leaves = store.leaves("acme", 3, 6).await.unwrap();
    for (offset, leaf) in leaves.iter().enumerate() {
        let raw = store
            .get("acme", Stream::Audit, &acme_ids[3 + offset])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(leaf.as_slice(), raw.get().as_bytes());
    }
    assert!(store.leaves("acme", 0, 0).await.is_err());
    assert!(store.leaves("acme", 5, 4).await.is_err());
    assert!(store.leaves("acme", 20, 26).await.is_err());

    // More events: the next checkpoint is consistent with the first.
    store
        .stage(audit_events("acme", &actions(10, "more"), false))
        .await
        .unwrap();
    store.commit(Some(2)).await.unwrap();
    let newer = Checkpoint::verify(
        &store.checkpoint("acme", None).await.unwrap().unwrap(),
        &key,
    )
    .unwrap();
    assert_eq!(newer.size, 35);
    let proof = store.consistency_proof("acme", 25, 35).await.unwrap();
    audit::verify_consistency(25, 35, &checkpoint.root, &newer.root, &proof).unwrap();
    assert!(store.consistency_proof("acme", 0, 35).await.is_err());
    assert!(store.consistency_proof("acme", 30, 25).await.is_err());
}

pub async fn every_checkpoint_is_served_by_its_size_after_a_restart(backend: &dyn Backend) {
    let settings = Settings {
        checkpoints: CheckpointPolicy {
            every_events: 1,
            ..Settings::default().checkpoints
        },
        ..Settings::default()
    };
    for restart in 0..2 {
        let store = backend.open_with(settings).await;
        if restart == 0 {
            for commit in 1..=40u64 {
                store
                    .stage(audit_events(
                        "acme",
                        &actions(2, &format!("c{commit}")),
                        false,
                    ))
                    .await
                    .unwrap();
                store.commit(Some(commit)).await.unwrap();
            }
        }
        let key = VerifyingKey::from_text(&store.public_key()).unwrap();
        for size in 1..=81 {
            let note = store.checkpoint("acme", Some(size)).await.unwrap();
            if size % 2 == 0 && size <= 80 {
                assert_eq!(Checkpoint::verify(&note.unwrap(), &key).unwrap().size, size);
            } else {
                assert!(note.is_none(), "size {size}");
            }
        }
        assert!(store.checkpoint("nobody", Some(2)).await.unwrap().is_none());
        assert!(store.checkpoint("nobody", None).await.unwrap().is_none());
    }
}

pub async fn a_server_event_drained_twice_is_in_the_trail_once(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let events = audit_events("acme", &actions(3, "own"), true);
    store.stage(events.clone()).await.unwrap();
    // The same events again, before and after the commit.
    store.stage(events.clone()).await.unwrap();
    store.commit(Some(1)).await.unwrap();
    store.stage(events.clone()).await.unwrap();
    store.commit(Some(2)).await.unwrap();
    for (seq, event) in events.iter().enumerate() {
        assert_eq!(
            audit_event(store, "acme", &event.event.id).await["seq"],
            json!(seq)
        );
    }
    assert!(
        store.inclusion_proof("acme", 0, 4).await.is_err(),
        "the trail holds 3 events"
    );
    assert!(store.inclusion_proof("acme", 2, 3).await.is_ok());
}
