//! Audit retention through [`store::AuditLog::expire_audit`]: the oldest
//! events lose their bodies everywhere they could be read, their leaf hashes
//! keep every checkpoint, proof and verification whole, and all of it stays so
//! after a restart. Time is a chosen receive time on each event and a cutoff.
#![allow(clippy::unwrap_used)]

use audit::{Checkpoint, Leaf, VerifyReport, VerifyingKey};
use model::{QueuedEvent, Stream, Timestamp};
use serde_json::{Value, json};
use store::HistogramRequest;

use crate::audit_trails::{actions, audit_events};
use crate::backends::{Backend, Store};
use crate::events::{stored, stream_filter, stream_ids, total};

/// The receive time of the test's first event.
const T0: i64 = 1_800_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

/// `n` audit events of `tenant`, event `i` received `received[i]` seconds
/// after [`T0`].
fn received(tenant: &str, prefix: &str, received: &[i64]) -> Vec<QueuedEvent> {
    let mut events = audit_events(tenant, &actions(received.len(), prefix), false);
    for (event, at) in events.iter_mut().zip(received) {
        event.event.received_at = Timestamp::from_nanos(T0 + at * SECOND);
    }
    events
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_nanos(T0 + seconds * SECOND)
}

/// What the store serves of the tenant's trail, checked like `logbook verify`
/// checks a trail: pruned leaves by their recorded hashes, the rest by their
/// bytes, against every signed checkpoint.
async fn verify(store: &dyn Store, tenant: &str, size: u64) -> VerifyReport {
    let key = VerifyingKey::from_text(&store.public_key()).unwrap();
    let pruned = store.pruned(tenant).await.unwrap();
    let mut leaves: Vec<Leaf> = store
        .leaf_hashes(tenant, 0, pruned)
        .await
        .unwrap()
        .into_iter()
        .map(Leaf::Pruned)
        .collect();
    leaves.extend(
        store
            .leaves(tenant, pruned, size)
            .await
            .unwrap()
            .into_iter()
            .map(Leaf::Body),
    );
    let mut notes = Vec::new();
    for size in 1..=size {
        notes.extend(store.checkpoint(tenant, Some(size)).await.unwrap());
    }
    let expect = audit::Expectations {
        key: &key,
        tenant,
        trusted: None,
        signed_only: false,
        stored_hashes: None,
    };
    audit::verify_trail(leaves.into_iter().map(Ok), &notes, &expect, &mut |_| {}).unwrap()
}

async fn histogram_total(store: &dyn Store, tenant: &str) -> u64 {
    store
        .histogram(HistogramRequest {
            filter: stream_filter(tenant, Stream::Audit, "*"),
            interval_nanos: 3600 * SECOND,
        })
        .await
        .unwrap()
        .iter()
        .map(|bucket| bucket.count)
        .sum()
}

pub async fn expired_audit_events_lose_their_bodies_and_keep_their_proofs(backend: &dyn Backend) {
    // Event 15 arrived late: received after the events numbered after it.
    let mut times: Vec<i64> = (0..30).collect();
    times[15] = 100;
    let acme = received("acme", "acme", &times);
    let globex = received("globex", "globex", &[0, 1, 2]);
    let ids: Vec<String> = acme.iter().map(|e| e.event.id.clone()).collect();
    let (key, note, originals) = {
        let store = backend.open().await;
        let store = &*store;
        store.stage(acme.clone()).await.unwrap();
        store.stage(globex).await.unwrap();
        store.commit(Some(1)).await.unwrap();
        let key = VerifyingKey::from_text(&store.public_key()).unwrap();
        let note = store.checkpoint("acme", None).await.unwrap().unwrap();
        assert_eq!(Checkpoint::verify(&note, &key).unwrap().size, 30);
        let mut originals: Vec<Value> = Vec::new();
        for id in &ids {
            originals.push(stored(store, "acme", Stream::Audit, id).await.unwrap());
        }
        assert_eq!(store.pruned("acme").await.unwrap(), 0);
        assert_eq!(store.expire_audit("acme", at(0)).await.unwrap(), 0);
        assert_eq!(store.expire_audit("nobody", at(50)).await.unwrap(), 0);

        // Events 0..12 were received before second 12.
        assert_eq!(store.expire_audit("acme", at(12)).await.unwrap(), 12);
        assert_eq!(store.pruned("acme").await.unwrap(), 12);
        assert_eq!(
            store.expire_audit("acme", at(12)).await.unwrap(),
            0,
            "no more"
        );
        // The trail is a prefix: event 15 (received at 100 s) keeps 16..30 too.
        assert_eq!(store.expire_audit("acme", at(50)).await.unwrap(), 3);
        assert_eq!(store.pruned("acme").await.unwrap(), 15);
        assert_eq!(store.pruned("globex").await.unwrap(), 0, "tenants apart");
        (key, note, originals)
    };

    // The same holds after a restart.
    for restart in 0..2 {
        let store = backend.open().await;
        let store = &*store;
        let all = stream_filter("acme", Stream::Audit, "*");
        let found = stream_ids(store, "acme", Stream::Audit, "action:acme.*").await;
        assert_eq!(found.len(), 15, "restart {restart}");
        assert!(found.iter().all(|id| !ids[..15].contains(id)));
        // After the first restart two more events were added.
        let kept = 15 + 2 * restart;
        assert_eq!(total(store, all).await, kept);
        assert_eq!(histogram_total(store, "acme").await, kept);
        assert_eq!(
            total(store, stream_filter("globex", Stream::Audit, "*")).await,
            3
        );
        for (seq, id) in ids.iter().enumerate() {
            let kept = stored(store, "acme", Stream::Audit, id).await;
            let pruned_seq = store.pruned_seq("acme", id).await.unwrap();
            if seq < 15 {
                assert_eq!(kept, None, "event {seq} is gone");
                assert_eq!(pruned_seq, Some(seq as u64));
            } else {
                assert_eq!(kept.as_ref(), Some(&originals[seq]));
                assert_eq!(pruned_seq, None, "event {seq} is not pruned");
            }
            // Whoever kept the event's bytes can still prove it is in the trail.
            let proof = store.inclusion_proof("acme", seq as u64, 30).await.unwrap();
            audit::verify_event_inclusion(&originals[seq], seq as u64, &proof, &note, &key)
                .unwrap();
        }
        assert_eq!(store.pruned_seq("acme", "no-such-id").await.unwrap(), None);
        assert_eq!(store.pruned_seq("globex", &ids[0]).await.unwrap(), None);
        assert!(store.leaves("acme", 14, 30).await.is_err());
        assert_eq!(store.leaves("acme", 15, 30).await.unwrap().len(), 15);
        let hashes = store.leaf_hashes("acme", 0, 30).await.unwrap();
        let originals_hashed: Vec<audit::Hash> = originals
            .iter()
            .map(|event| audit::leaf_hash(&audit::canonical_json(event)))
            .collect();
        assert_eq!(hashes, originals_hashed);
        let checkpoint = Checkpoint::verify(&note, &key).unwrap();
        assert_eq!(audit::root(&hashes, 30).unwrap(), checkpoint.root);
        let proof = store.consistency_proof("acme", 10, 30).await.unwrap();
        let old = audit::root(&hashes, 10).unwrap();
        audit::verify_consistency(10, 30, &old, &checkpoint.root, &proof).unwrap();
        assert_eq!(
            verify(store, "acme", 30).await,
            VerifyReport::Verified {
                events: 30,
                pruned: 15,
                checkpoint_size: 30,
                trusted: None,
            }
        );
        if restart == 0 {
            // Pruned events sent again (an outbox drained twice, a queue replaying)
            // are not appended again; new events carry on the numbering.
            store.stage(acme[..15].to_vec()).await.unwrap();
            store.commit(Some(2)).await.unwrap();
            assert!(store.leaf_hashes("acme", 0, 31).await.is_err(), "still 30");
            let more = received("acme", "more", &[200, 201]);
            let more_ids: Vec<String> = more.iter().map(|e| e.event.id.clone()).collect();
            store.stage(more).await.unwrap();
            store.commit(Some(3)).await.unwrap();
            for (offset, id) in more_ids.iter().enumerate() {
                let event = stored(store, "acme", Stream::Audit, id).await.unwrap();
                assert_eq!(event["seq"], json!(30 + offset));
            }
        }
    }
}
