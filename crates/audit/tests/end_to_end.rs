//! The audit trail as the server and an outside verifier use it, through the public API
//! only: events are canonicalised and appended, checkpoints signed, then the trail and
//! single events are verified with nothing but the published verifier key.
#![allow(clippy::unwrap_used)]

use std::fs;

use audit::{
    AuditError, BreakKind, Checkpoint, Expectations, Hash, SigningKey, TrailStore, VerifyReport,
    VerifyingKey, canonical_json, verify_consistency, verify_event_inclusion, verify_trail,
};
use serde_json::{Value, json};

const KEY_NAME: &str = "logbook";

fn event(seq: u64) -> Value {
    json!({"seq": seq, "tenant": "acme", "action": "login", "actor": {"id": format!("u{}", seq % 5)}})
}

/// Reads every leaf of the store, as a verifier would.
fn leaves_of(store: &TrailStore) -> impl Iterator<Item = Result<Vec<u8>, AuditError>> {
    (0..store.size()).map(|seq| store.leaf(seq))
}

/// What acme's trail is verified against.
fn acme<'a>(
    key: &'a VerifyingKey,
    stored: Option<&'a dyn Fn(u64) -> Option<Hash>>,
) -> Expectations<'a> {
    Expectations {
        key,
        tenant: "acme",
        trusted: None,
        signed_only: false,
        stored_hashes: stored,
    }
}

#[test]
fn server_and_verifier_agree() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SigningKey::load_or_create(&dir.path().join("checkpoint.key")).unwrap();
    let published = signer.verifying_key(KEY_NAME).unwrap().to_text();
    let mut store = TrailStore::open(&dir.path().join("acme")).unwrap();

    // The server appends in batches and signs a checkpoint after each.
    let mut notes = Vec::new();
    for batch in 0..8u64 {
        let leaves: Vec<Vec<u8>> = (batch * 40..batch * 40 + 40)
            .map(|seq| canonical_json(&event(seq)))
            .collect();
        store.append(&leaves).unwrap();
        let checkpoint = Checkpoint {
            tenant: "acme".into(),
            size: store.size(),
            root: store.root(store.size()).unwrap(),
            time: 1_700_000_000 + batch as i64,
        };
        notes.push(checkpoint.sign(&signer, KEY_NAME).unwrap());
    }

    // The verifier has only the published key text.
    let key = VerifyingKey::from_text(&published).unwrap();
    let report = verify_trail(leaves_of(&store), &notes, &acme(&key, None), &mut |_| {}).unwrap();
    assert_eq!(
        report,
        VerifyReport::Verified {
            pruned: 0,
            events: 320,
            checkpoint_size: 320,
            trusted: None
        }
    );

    // One event, as the API returns it, against the newest checkpoint.
    let proof = store.inclusion_proof(77, 320).unwrap();
    let checkpoint = verify_event_inclusion(&event(77), 77, &proof, &notes[7], &key).unwrap();
    assert_eq!(checkpoint.size, 320);

    // Each checkpoint extends the previous one.
    for pair in notes.windows(2) {
        let old = Checkpoint::verify(&pair[0], &key).unwrap();
        let new = Checkpoint::verify(&pair[1], &key).unwrap();
        let proof = store.consistency_proof(old.size, new.size).unwrap();
        verify_consistency(old.size, new.size, &old.root, &new.root, &proof).unwrap();
    }
}

#[test]
fn damage_inside_the_files_is_found_by_verification() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SigningKey::generate().unwrap();
    let key = signer.verifying_key(KEY_NAME).unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    let mut notes = Vec::new();
    for batch in 0..4u64 {
        let leaves: Vec<Vec<u8>> = (batch * 25..batch * 25 + 25)
            .map(|seq| canonical_json(&event(seq)))
            .collect();
        store.append(&leaves).unwrap();
        let checkpoint = Checkpoint {
            tenant: "acme".into(),
            size: store.size(),
            root: store.root(store.size()).unwrap(),
            time: 0,
        };
        notes.push(checkpoint.sign(&signer, KEY_NAME).unwrap());
    }
    drop(store);

    // Someone edits event 60 in place: "login" becomes "logon".
    let path = dir.path().join("leaves.log");
    let mut log = fs::read(&path).unwrap();
    let original = canonical_json(&event(60));
    let start = log
        .windows(original.len())
        .position(|w| w == original)
        .unwrap();
    let at = start + original.windows(5).position(|w| w == b"login").unwrap() + 3;
    log[at] = b'o';
    fs::write(&path, &log).unwrap();

    // Opening does not repair it (it is not a torn tail)...
    let store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_eq!(store.size(), 100);
    // ...and verification names it, using the stored hashes to pinpoint it.
    let stored = |seq: u64| store.leaf_hash(seq).ok();
    let report = verify_trail(
        leaves_of(&store),
        &notes,
        &acme(&key, Some(&stored)),
        &mut |_| {},
    )
    .unwrap();
    match report {
        VerifyReport::Broken { seq, kind, .. } => assert_eq!((seq, kind), (60, BreakKind::Altered)),
        other => panic!("{other:?}"),
    }
    // Without them, the first checkpoint that no longer matches bounds it.
    let report = verify_trail(leaves_of(&store), &notes, &acme(&key, None), &mut |_| {}).unwrap();
    match report {
        VerifyReport::Broken { seq, kind, .. } => assert_eq!((seq, kind), (50, BreakKind::Altered)),
        other => panic!("{other:?}"),
    }
}
