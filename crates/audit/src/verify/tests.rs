#![allow(clippy::unwrap_used)]

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::*;
use crate::checkpoint::CheckpointError;
use crate::merkle::{self, ProofError, inclusion_proof};
use crate::signing::SigningKey;

pub(super) const N: u64 = 300;
const EVERY: u64 = 50;
const KEY_NAME: &str = "logbook";

fn event_json(seq: u64) -> Value {
    json!({
        "seq": seq,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": format!("user-{}", seq % 9), "ip": "192.0.2.7"},
        "detail": {"document": seq * 7 % 101, "note": "ünïcode \"quoted\"\n"},
    })
}

pub(super) struct Fixture {
    signer: SigningKey,
    pub(super) key: VerifyingKey,
    pub(super) leaves: Vec<Vec<u8>>,
    pub(super) hashes: Vec<Hash>,
    /// Checkpoint notes at sizes 50, 100, …, 300.
    pub(super) notes: Vec<String>,
}

fn checkpoint(hashes: &[Hash], size: u64, tenant: &str) -> Checkpoint {
    Checkpoint {
        tenant: tenant.into(),
        size,
        root: merkle::root(hashes, size).unwrap(),
        time: 1_700_000_000 + size as i64,
    }
}

pub(super) fn fixture() -> Fixture {
    let signer = SigningKey::from_seed(&[42; 32]);
    let key = signer.verifying_key(KEY_NAME).unwrap();
    let leaves: Vec<Vec<u8>> = (0..N).map(|i| canonical_json(&event_json(i))).collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let notes = (1..=N / EVERY)
        .map(|k| {
            checkpoint(&hashes, k * EVERY, "acme")
                .sign(&signer, KEY_NAME)
                .unwrap()
        })
        .collect();
    Fixture {
        signer,
        key,
        leaves,
        hashes,
        notes,
    }
}

fn run(f: &Fixture, leaves: &[Vec<u8>], notes: &[String], stored: Option<&[Hash]>) -> VerifyReport {
    run_with(f, leaves, notes, stored, None, false)
}

/// [`run`] with a trusted checkpoint and `signed_only`.
fn run_with(
    f: &Fixture,
    leaves: &[Vec<u8>],
    notes: &[String],
    stored: Option<&[Hash]>,
    trusted: Option<&Checkpoint>,
    signed_only: bool,
) -> VerifyReport {
    let items = leaves.iter().map(|l| Ok(l.clone()));
    let lookup = |seq: u64| stored.and_then(|s| s.get(seq as usize).copied());
    let lookup: &dyn Fn(u64) -> Option<Hash> = &lookup;
    let expect = Expectations {
        key: &f.key,
        tenant: "acme",
        trusted,
        signed_only,
        stored_hashes: stored.map(|_| lookup),
    };
    verify_trail(items, notes, &expect, &mut |_| {}).unwrap()
}

/// The expectations of the fixture's trail, without stored hashes.
fn acme(key: &VerifyingKey) -> Expectations<'_> {
    Expectations {
        key,
        tenant: "acme",
        trusted: None,
        signed_only: false,
        stored_hashes: None,
    }
}

/// Runs with and without the stored hashes (the fixture's originals).
fn both(f: &Fixture, leaves: &[Vec<u8>], notes: &[String]) -> [VerifyReport; 2] {
    [
        run(f, leaves, notes, Some(&f.hashes)),
        run(f, leaves, notes, None),
    ]
}

#[track_caller]
pub(super) fn assert_broken(report: &VerifyReport, want_seq: u64, want_kind: BreakKind) {
    match report {
        VerifyReport::Broken { seq, kind, detail } => {
            assert_eq!((*seq, *kind), (want_seq, want_kind), "{detail}");
            assert!(!detail.is_empty());
        }
        other => panic!("expected {want_kind} at {want_seq}, got {other:?}"),
    }
}

/// Flips the case of the first letter of "update" in a leaf: still valid JSON.
pub(super) fn flip_byte(leaf: &mut [u8]) {
    let at = leaf.windows(6).position(|w| w == b"update").unwrap();
    leaf[at] ^= 0x20;
}

#[test]
fn an_intact_trail_verifies() {
    let f = fixture();
    for report in both(&f, &f.leaves, &f.notes) {
        assert_eq!(
            report,
            VerifyReport::Verified {
                pruned: 0,
                events: N,
                checkpoint_size: N,
                trusted: None
            }
        );
        assert!(report.is_verified());
        assert_eq!(
            report.to_string(),
            "verified: 300 events, 300 covered by signed checkpoints"
        );
    }
    // In any order, with duplicates.
    let mut notes = f.notes.clone();
    notes.reverse();
    notes.push(f.notes[2].clone());
    notes.swap(0, 3);
    assert!(run(&f, &f.leaves, &notes, None).is_verified());
}

#[test]
fn events_beyond_the_newest_checkpoint_are_counted_and_said() {
    let f = fixture();
    let mut leaves = f.leaves.clone();
    leaves.extend((N..N + 20).map(|i| canonical_json(&event_json(i))));
    let report = run(&f, &leaves, &f.notes, None);
    assert_eq!(
        report,
        VerifyReport::Verified {
            pruned: 0,
            events: 320,
            checkpoint_size: 300,
            trusted: None
        }
    );
    assert!(report.to_string().contains("20 newer events"), "{report}");
    // Without checkpoints nothing is signed, but the sequence is still checked.
    assert_eq!(
        run(&f, &leaves, &[], None),
        VerifyReport::Verified {
            pruned: 0,
            events: 320,
            checkpoint_size: 0,
            trusted: None
        }
    );
    // So an altered event there cannot be seen yet: the next checkpoint will show it.
    flip_byte(&mut leaves[310]);
    assert!(run(&f, &leaves, &f.notes, None).is_verified());
}

#[test]
fn empty_trails() {
    let f = fixture();
    assert_eq!(
        run(&f, &[], &[], None),
        VerifyReport::Verified {
            pruned: 0,
            events: 0,
            checkpoint_size: 0,
            trusted: None
        }
    );
    let empty = checkpoint(&[], 0, "acme")
        .sign(&f.signer, KEY_NAME)
        .unwrap();
    assert!(run(&f, &[], std::slice::from_ref(&empty), None).is_verified());
    // A checkpoint of size 0 must carry the empty tree's root.
    let wrong = Checkpoint {
        root: [1; 32],
        ..checkpoint(&[], 0, "acme")
    }
    .sign(&f.signer, KEY_NAME)
    .unwrap();
    assert_broken(&run(&f, &f.leaves, &[wrong], None), 0, BreakKind::Altered);
    // A trail with checkpoints but no leaves is truncated at 0.
    assert_broken(&run(&f, &[], &f.notes, None), 0, BreakKind::Truncated);
}

#[test]
fn a_flipped_byte_is_altered() {
    let f = fixture();
    for (target, without_stored) in [(123, 100), (0, 0), (49, 0), (50, 50), (299, 250)] {
        let mut leaves = f.leaves.clone();
        flip_byte(&mut leaves[target]);
        let [with, without] = both(&f, &leaves, &f.notes);
        assert_broken(&with, target as u64, BreakKind::Altered);
        assert_broken(&without, without_stored, BreakKind::Altered);
        let VerifyReport::Broken { detail, .. } = &without else {
            unreachable!()
        };
        assert!(detail.contains("no recorded leaf hashes"), "{detail}");
    }
}

#[test]
fn altered_stored_hashes_only_widen_the_report() {
    let f = fixture();
    let mut leaves = f.leaves.clone();
    flip_byte(&mut leaves[123]);
    // The attacker rewrote hashes.bin too: the stored hashes agree with the leaves.
    let rewritten: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let report = run(&f, &leaves, &f.notes, Some(&rewritten));
    assert_broken(&report, 100, BreakKind::Altered);
    assert!(
        report
            .to_string()
            .contains("do not have the checkpoint's root"),
        "{report}"
    );
    // Recorded hashes changed elsewhere (seq 110, whose leaf is intact) would point at
    // the wrong leaf: their root is not the checkpoint's, so only the range is named.
    let mut misleading = f.hashes.clone();
    misleading[110] = [7; 32];
    assert_broken(
        &run(&f, &leaves, &f.notes, Some(&misleading)),
        100,
        BreakKind::Altered,
    );
    // The signed ones name it exactly, and say why they can be trusted.
    let report = run(&f, &leaves, &f.notes, Some(&f.hashes));
    assert_broken(&report, 123, BreakKind::Altered);
    assert!(
        report.to_string().contains("are the signed ones"),
        "{report}"
    );
    // Stored hashes that do not know a seq do not count as a difference.
    let short = &f.hashes[..110];
    assert_broken(
        &run(&f, &leaves, &f.notes, Some(short)),
        100,
        BreakKind::Altered,
    );
}

#[test]
fn a_deleted_leaf_is_missing() {
    let f = fixture();
    for target in [123usize, 0, 50, 298] {
        let mut leaves = f.leaves.clone();
        leaves.remove(target);
        for report in both(&f, &leaves, &f.notes) {
            assert_broken(&report, target as u64, BreakKind::Missing);
        }
    }
    let mut leaves = f.leaves.clone();
    leaves.drain(123..130);
    let report = run(&f, &leaves, &f.notes, None);
    assert_broken(&report, 123, BreakKind::Missing);
    assert!(report.to_string().contains("123..130"), "{report}");
}

#[test]
fn deleting_and_renumbering_is_altered() {
    let f = fixture();
    let mut events: Vec<Value> = (0..N).map(event_json).collect();
    events.remove(123);
    for (i, event) in events.iter_mut().enumerate() {
        event["seq"] = json!(i);
    }
    let leaves: Vec<Vec<u8>> = events.iter().map(canonical_json).collect();
    let [with, without] = both(&f, &leaves, &f.notes);
    assert_broken(&with, 123, BreakKind::Altered);
    assert_broken(&without, 100, BreakKind::Altered);
}

#[test]
fn swapped_leaves_are_reordered() {
    let f = fixture();
    for (a, b) in [(123usize, 124usize), (10, 250), (0, 299), (49, 50)] {
        let mut leaves = f.leaves.clone();
        leaves.swap(a, b);
        for report in both(&f, &leaves, &f.notes) {
            assert_broken(&report, a as u64, BreakKind::Reordered);
        }
    }
    // Moving one event later, or earlier, is a reordering too.
    let mut leaves = f.leaves.clone();
    let moved = leaves.remove(123);
    leaves.insert(140, moved);
    assert_broken(&run(&f, &leaves, &f.notes, None), 123, BreakKind::Reordered);
    let mut leaves = f.leaves.clone();
    let moved = leaves.remove(140);
    leaves.insert(123, moved);
    assert_broken(&run(&f, &leaves, &f.notes, None), 123, BreakKind::Reordered);
}

#[test]
fn a_copied_leaf_is_inserted() {
    let f = fixture();
    // Right after the original: the copy sits at 124.
    let mut leaves = f.leaves.clone();
    leaves.insert(124, f.leaves[123].clone());
    for report in both(&f, &leaves, &f.notes) {
        assert_broken(&report, 124, BreakKind::Inserted);
    }
    // Before the original: the copy sits at 123 and its seq appears again later.
    let mut leaves = f.leaves.clone();
    leaves.insert(123, f.leaves[200].clone());
    assert_broken(&run(&f, &leaves, &f.notes, None), 123, BreakKind::Inserted);
    // At the end, past every checkpoint.
    let mut leaves = f.leaves.clone();
    leaves.push(f.leaves[5].clone());
    assert_broken(&run(&f, &leaves, &f.notes, None), 300, BreakKind::Inserted);
}

#[test]
fn a_cut_tail_is_truncated() {
    let f = fixture();
    for keep in [270usize, 299, 250, 1, 0] {
        let leaves = &f.leaves[..keep];
        for report in both(&f, leaves, &f.notes) {
            assert_broken(&report, keep as u64, BreakKind::Truncated);
        }
    }
    // Cut exactly at a checkpoint and with that checkpoint gone, nothing shows.
    assert!(run(&f, &f.leaves[..250], &f.notes[..5], None).is_verified());
}

#[test]
fn a_replaced_signature_is_a_bad_signature() {
    let f = fixture();
    let target = 2; // the checkpoint at size 150
    let note = &f.notes[target];
    let (body, line) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    // Another key's signature under our key name and hash.
    let forger = SigningKey::from_seed(&[7; 32]);
    let mut blob = f.key.key_hash().to_be_bytes().to_vec();
    blob.extend_from_slice(&forger.sign_bytes(body.as_bytes()));
    let forged = format!("{body}\n\u{2014} {KEY_NAME} {}\n", STANDARD.encode(&blob));
    // Signed by another key altogether.
    let other = checkpoint(&f.hashes, 150, "acme")
        .sign(&forger, KEY_NAME)
        .unwrap();
    // The body changed (a different root), the signature kept.
    let altered_body = format!(
        "logbook/acme\n150\n{}\ntime 1700000150\n\n{line}",
        STANDARD.encode([9u8; 32])
    );
    for bad in [forged, other, altered_body] {
        let mut notes = f.notes.clone();
        notes[target] = bad;
        for report in both(&f, &f.leaves, &notes) {
            assert_broken(&report, 150, BreakKind::BadSignature);
        }
    }
    // Unreadable notes are reported at 0 (no size to read).
    let mut notes = f.notes.clone();
    notes.push("not a checkpoint".into());
    assert_broken(
        &run(&f, &f.leaves, &notes, None),
        0,
        BreakKind::BadSignature,
    );
    // A bad checkpoint beyond the leaves is still a bad signature, not a truncation.
    let mut notes = f.notes.clone();
    let beyond = checkpoint(&f.hashes, 300, "acme")
        .sign(&forger, KEY_NAME)
        .unwrap();
    notes.push(beyond.replace("\n300\n", "\n400\n"));
    assert_broken(
        &run(&f, &f.leaves, &notes, None),
        400,
        BreakKind::BadSignature,
    );
}

#[test]
fn a_checkpoint_for_another_tenant_is_the_wrong_tenant() {
    let f = fixture();
    let mut notes = f.notes.clone();
    notes[3] = checkpoint(&f.hashes, 200, "globex")
        .sign(&f.signer, KEY_NAME)
        .unwrap();
    let report = run(&f, &f.leaves, &notes, None);
    assert_broken(&report, 200, BreakKind::WrongTenant);
    assert!(report.to_string().contains("globex"), "{report}");
    // Even when every checkpoint is another tenant's (a trail copied over this one).
    let notes: Vec<String> = (1..=N / EVERY)
        .map(|k| {
            checkpoint(&f.hashes, k * EVERY, "globex")
                .sign(&f.signer, KEY_NAME)
                .unwrap()
        })
        .collect();
    assert_broken(
        &run(&f, &f.leaves, &notes, None),
        EVERY,
        BreakKind::WrongTenant,
    );
}

#[test]
fn an_event_of_another_tenant_is_the_wrong_tenant() {
    let f = fixture();
    let relabel = |leaf: &[u8], tenant: Value| {
        let mut event: Value = serde_json::from_slice(leaf).unwrap();
        event["tenant"] = tenant;
        canonical_json(&event)
    };
    for (target, tenant) in [
        (0usize, json!("globex")),
        (123, json!("acme ")),
        (299, json!(null)),
    ] {
        let mut leaves = f.leaves.clone();
        leaves[target] = relabel(&leaves[target], tenant);
        for report in both(&f, &leaves, &f.notes) {
            assert_broken(&report, target as u64, BreakKind::WrongTenant);
        }
    }
    // Beyond the newest checkpoint too, where no signature would notice.
    let mut leaves = f.leaves.clone();
    leaves.push(relabel(&canonical_json(&event_json(N)), json!("globex")));
    assert_broken(&run(&f, &leaves, &f.notes, None), N, BreakKind::WrongTenant);
}

#[test]
fn with_signed_only_nothing_may_follow_the_newest_checkpoint() {
    let f = fixture();
    assert!(run_with(&f, &f.leaves, &f.notes, None, None, true).is_verified());
    let mut leaves = f.leaves.clone();
    leaves.push(canonical_json(&event_json(N)));
    let report = run_with(&f, &leaves, &f.notes, None, None, true);
    assert_broken(&report, N, BreakKind::BeyondCheckpoint);
    assert!(report.to_string().contains("1 events follow"), "{report}");
    // Only the newest checkpoint counts (an export has one).
    let report = run_with(&f, &f.leaves, &f.notes[..1], None, None, true);
    assert_broken(&report, EVERY, BreakKind::BeyondCheckpoint);
}

#[test]
fn a_trusted_checkpoint_must_be_extended() {
    let f = fixture();
    let trusted = checkpoint(&f.hashes, 120, "acme");
    let report = run_with(&f, &f.leaves, &f.notes, None, Some(&trusted), false);
    assert_eq!(
        report,
        VerifyReport::Verified {
            pruned: 0,
            events: N,
            checkpoint_size: N,
            trusted: Some(120)
        }
    );
    assert!(
        report
            .to_string()
            .contains("trusted checkpoint of size 120")
    );
    // At the newest size, and beyond the trail's own checkpoints (it signs those leaves).
    let newest = checkpoint(&f.hashes, N, "acme");
    assert!(run_with(&f, &f.leaves, &f.notes, None, Some(&newest), true).is_verified());
    let report = run_with(&f, &f.leaves, &f.notes[..2], None, Some(&trusted), false);
    assert!(
        matches!(
            report,
            VerifyReport::Verified {
                checkpoint_size: 120,
                ..
            }
        ),
        "{report:?}"
    );

    // Rolled back: the trail (and its checkpoints) were cut back to 100 events.
    let report = run_with(
        &f,
        &f.leaves[..100],
        &f.notes[..2],
        None,
        Some(&trusted),
        false,
    );
    assert_broken(&report, 100, BreakKind::RolledBack);
    assert!(
        report.to_string().starts_with("broken: rolled back: "),
        "{report}"
    );

    // Forked: the events from 110 on were rewritten and re-signed with the key.
    let mut events: Vec<Value> = (0..N).map(event_json).collect();
    for event in &mut events[110..] {
        event["action"] = json!("document.forged");
    }
    let forged: Vec<Vec<u8>> = events.iter().map(canonical_json).collect();
    let forged_hashes: Vec<Hash> = forged.iter().map(|l| leaf_hash(l)).collect();
    let forged_notes: Vec<String> = [50, 100, 150, 300]
        .iter()
        .map(|&size| {
            checkpoint(&forged_hashes, size, "acme")
                .sign(&f.signer, KEY_NAME)
                .unwrap()
        })
        .collect();
    assert!(run(&f, &forged, &forged_notes, None).is_verified());
    for notes in [&forged_notes[..], &forged_notes[..1]] {
        let report = run_with(&f, &forged, notes, None, Some(&trusted), false);
        if notes.len() == 1 {
            // No checkpoint of its own covers 120: the trusted one finds the leaves altered.
            assert_broken(&report, 50, BreakKind::Altered);
        } else {
            assert_broken(&report, 120, BreakKind::Forked);
            assert!(
                report.to_string().starts_with("broken: forked: "),
                "{report}"
            );
        }
    }
    // With stored hashes of the original trail, the alteration is named exactly.
    let report = run_with(
        &f,
        &forged,
        &forged_notes[..1],
        Some(&f.hashes),
        Some(&trusted),
        false,
    );
    assert_broken(&report, 110, BreakKind::Altered);
    // A forged leaf under one of the trail's own checkpoints is still just altered.
    let mut leaves = f.leaves.clone();
    flip_byte(&mut leaves[130]);
    assert_broken(
        &run_with(&f, &leaves, &f.notes, None, Some(&trusted), false),
        100,
        BreakKind::Altered,
    );
    // A trusted checkpoint of another tenant.
    let other = checkpoint(&f.hashes, 120, "globex");
    assert_broken(
        &run_with(&f, &f.leaves, &f.notes, None, Some(&other), false),
        0,
        BreakKind::WrongTenant,
    );
}

#[test]
fn conflicting_signed_checkpoints_are_reported() {
    let f = fixture();
    let fork = Checkpoint {
        root: [5; 32],
        ..checkpoint(&f.hashes, 200, "acme")
    }
    .sign(&f.signer, KEY_NAME)
    .unwrap();
    for position in [0, 3, 6] {
        let mut notes = f.notes.clone();
        notes.insert(position, fork.clone());
        let report = run(&f, &f.leaves, &notes, Some(&f.hashes));
        assert_broken(&report, 200, BreakKind::Altered);
        assert!(report.to_string().contains("conflicting"), "{report}");
    }
}

#[test]
fn the_first_break_wins() {
    let f = fixture();
    // An alteration under the checkpoint at 100 comes before a deletion at 180.
    let mut leaves = f.leaves.clone();
    flip_byte(&mut leaves[60]);
    leaves.remove(180);
    assert_broken(
        &run(&f, &leaves, &f.notes, Some(&f.hashes)),
        60,
        BreakKind::Altered,
    );
    // A deletion at 20 comes before an alteration at 60.
    let mut leaves = f.leaves.clone();
    flip_byte(&mut leaves[60]);
    leaves.remove(20);
    assert_broken(
        &run(&f, &leaves, &f.notes, Some(&f.hashes)),
        20,
        BreakKind::Missing,
    );
}

#[test]
fn iterator_errors_stop_verification() {
    let f = fixture();
    let items = f.leaves.iter().enumerate().map(|(i, l)| {
        if i == 77 {
            Err(AuditError::SeqOutOfRange { seq: 77, size: 0 })
        } else {
            Ok(l.clone())
        }
    });
    let result = verify_trail(items, &f.notes, &acme(&f.key), &mut |_| {});
    assert!(matches!(
        result,
        Err(AuditError::SeqOutOfRange { seq: 77, .. })
    ));
}

#[test]
fn progress_is_reported() {
    let f = fixture();
    let count = 10_000u64;
    let leaves: Vec<Vec<u8>> = (0..count).map(|i| i.to_le_bytes().to_vec()).collect();
    let items = leaves.iter().map(|l| Ok(l.clone()));
    let mut seen = Vec::new();
    let report = verify_trail(items, &[], &acme(&f.key), &mut |n| seen.push(n)).unwrap();
    assert!(report.is_verified());
    assert_eq!(seen, vec![4096, 8192, 10_000]);
}

#[test]
fn one_event_verifies_against_a_checkpoint() {
    let f = fixture();
    let note = &f.notes[5]; // size 300
    for index in [0u64, 1, 123, 299] {
        let proof = inclusion_proof(&f.hashes, index, N).unwrap();
        let event = event_json(index);
        let checkpoint = verify_event_inclusion(&event, index, &proof, note, &f.key).unwrap();
        assert_eq!((checkpoint.size, checkpoint.tenant.as_str()), (N, "acme"));
        // The event as a client received it: keys in another order, other whitespace.
        let text = serde_json::to_string_pretty(&event).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        verify_event_inclusion(&reparsed, index, &proof, note, &f.key).unwrap();
    }
    let proof = inclusion_proof(&f.hashes, 123, N).unwrap();
    // A changed event.
    let mut event = event_json(123);
    event["action"] = json!("document.delete");
    assert!(matches!(
        verify_event_inclusion(&event, 123, &proof, note, &f.key),
        Err(AuditError::Proof(ProofError::RootMismatch))
    ));
    // The right event at the wrong index.
    assert!(matches!(
        verify_event_inclusion(&event_json(123), 124, &proof, note, &f.key),
        Err(AuditError::SeqMismatch {
            claimed: 123,
            index: 124
        })
    ));
    // A proof for another tree size.
    let short = inclusion_proof(&f.hashes, 123, 200).unwrap();
    assert!(matches!(
        verify_event_inclusion(&event_json(123), 123, &short, note, &f.key),
        Err(AuditError::Proof(_))
    ));
    // A checkpoint that is not signed by the key.
    let other = SigningKey::from_seed(&[1; 32])
        .verifying_key(KEY_NAME)
        .unwrap();
    assert!(matches!(
        verify_event_inclusion(&event_json(123), 123, &proof, note, &other),
        Err(AuditError::Checkpoint(
            CheckpointError::NoSignatureForKey { .. }
        ))
    ));
}

#[test]
#[ignore = "hashes 1,000,000 leaves of ~300 bytes; run with --release -- --ignored"]
fn verifying_a_million_events_is_fast() {
    const COUNT: u64 = 1_000_000;
    const CHECKPOINT_EVERY: u64 = 10_000;
    let pad = "p".repeat(200);
    let leaves: Vec<Vec<u8>> = (0..COUNT)
        .map(|i| {
            canonical_json(&json!({
                "seq": i, "tenant": "acme", "action": "document.update",
                "actor": {"id": format!("user-{}", i % 977)}, "pad": pad,
            }))
        })
        .collect();
    let average = leaves.iter().map(Vec::len).sum::<usize>() as u64 / COUNT;
    let signer = SigningKey::from_seed(&[3; 32]);
    let key = signer.verifying_key(KEY_NAME).unwrap();
    let mut range = CompactRange::new();
    let mut hashes = Vec::with_capacity(COUNT as usize);
    let mut notes = Vec::new();
    for leaf in &leaves {
        let hash = leaf_hash(leaf);
        hashes.push(hash);
        range.push(hash);
        if range.size().is_multiple_of(CHECKPOINT_EVERY) {
            let checkpoint = Checkpoint {
                tenant: "acme".into(),
                size: range.size(),
                root: range.root(),
                time: 1_700_000_000,
            };
            notes.push(checkpoint.sign(&signer, KEY_NAME).unwrap());
        }
    }

    let copy = leaves.clone();
    let started = Instant::now();
    let items = copy.into_iter().map(Ok);
    let report = verify_trail(items, &notes, &acme(&key), &mut |_| {}).unwrap();
    let plain = started.elapsed();
    assert_eq!(
        report,
        VerifyReport::Verified {
            pruned: 0,
            events: COUNT,
            checkpoint_size: COUNT,
            trusted: None
        }
    );

    let lookup = |seq: u64| hashes.get(seq as usize).copied();
    let started = Instant::now();
    let items = leaves.into_iter().map(Ok);
    let lookup: &dyn Fn(u64) -> Option<Hash> = &lookup;
    let expect = Expectations {
        stored_hashes: Some(lookup),
        ..acme(&key)
    };
    let report = verify_trail(items, &notes, &expect, &mut |_| {}).unwrap();
    let with_stored = started.elapsed();
    assert!(report.is_verified());
    eprintln!(
        "verify_trail over {COUNT} leaves of {average} bytes with {} checkpoints: {plain:?} \
         ({with_stored:?} with stored hashes)",
        notes.len()
    );
    let started = Instant::now();
    for note in &notes {
        Checkpoint::verify(note, &key).unwrap();
    }
    eprintln!(
        "checking one checkpoint note: {:?}",
        started.elapsed() / notes.len() as u32
    );
    assert!(plain < std::time::Duration::from_secs(3), "{plain:?}");
}
