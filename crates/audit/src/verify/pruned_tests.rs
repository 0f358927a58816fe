//! Verifying trails whose oldest leaves are pruned: known by their recorded hashes only.

#![allow(clippy::unwrap_used)]

use super::tests::{Fixture, N, assert_broken, fixture, flip_byte};
use super::*;

/// The fixture's trail with its first `pruned` leaves given as their hashes.
fn pruned_leaves(f: &Fixture, pruned: u64) -> Vec<Leaf> {
    f.hashes[..pruned as usize]
        .iter()
        .map(|hash| Leaf::Pruned(*hash))
        .chain(f.leaves[pruned as usize..].iter().cloned().map(Leaf::Body))
        .collect()
}

fn run(f: &Fixture, leaves: Vec<Leaf>, stored: bool, trusted: Option<&Checkpoint>) -> VerifyReport {
    let lookup = |seq: u64| f.hashes.get(seq as usize).copied();
    let lookup: &dyn Fn(u64) -> Option<Hash> = &lookup;
    let expect = Expectations {
        key: &f.key,
        tenant: "acme",
        trusted,
        signed_only: false,
        stored_hashes: stored.then_some(lookup),
    };
    verify_trail(leaves.into_iter().map(Ok), &f.notes, &expect, &mut |_| {}).unwrap()
}

#[test]
fn a_pruned_prefix_verifies_and_is_counted() {
    let f = fixture();
    for pruned in [0, 1, 49, 50, 137, N - 1, N] {
        for stored in [false, true] {
            let report = run(&f, pruned_leaves(&f, pruned), stored, None);
            assert_eq!(
                report,
                VerifyReport::Verified {
                    events: N,
                    pruned,
                    checkpoint_size: N,
                    trusted: None,
                },
                "{pruned} pruned"
            );
        }
    }
    let report = run(&f, pruned_leaves(&f, 120), true, None);
    assert_eq!(
        report.to_string(),
        "verified: 300 events, the first 120 pruned (hashes only), 300 covered by signed checkpoints"
    );
    let trusted = Checkpoint::verify(&f.notes[1], &f.key).unwrap();
    assert!(matches!(
        run(&f, pruned_leaves(&f, 120), true, Some(&trusted)),
        VerifyReport::Verified {
            pruned: 120,
            trusted: Some(100),
            ..
        }
    ));
}

#[test]
fn every_pruned_hash_is_checked_by_the_checkpoints() {
    let f = fixture();
    let mut leaves = pruned_leaves(&f, 120);
    if let Leaf::Pruned(hash) = &mut leaves[77] {
        hash[0] ^= 1;
    }
    // The recorded hash itself is what changed: the range after the last good checkpoint.
    assert_broken(
        &run(&f, leaves.clone(), false, None),
        50,
        BreakKind::Altered,
    );
    assert_broken(&run(&f, leaves, true, None), 50, BreakKind::Altered);
}

#[test]
fn an_altered_body_after_the_pruned_ones_is_named_exactly() {
    let f = fixture();
    let mut leaves = pruned_leaves(&f, 120);
    if let Leaf::Body(bytes) = &mut leaves[133] {
        flip_byte(bytes);
    }
    assert_broken(
        &run(&f, leaves.clone(), true, None),
        133,
        BreakKind::Altered,
    );
    assert_broken(&run(&f, leaves, false, None), 100, BreakKind::Altered);
}

#[test]
fn a_body_removed_after_kept_ones_is_missing() {
    let f = fixture();
    let mut leaves = pruned_leaves(&f, 20);
    leaves[140] = Leaf::Pruned(f.hashes[140]);
    assert_broken(&run(&f, leaves, true, None), 140, BreakKind::Missing);
}

#[test]
fn a_pruned_trail_cut_short_is_truncated() {
    let f = fixture();
    let mut leaves = pruned_leaves(&f, 200);
    leaves.truncate(180);
    assert_broken(&run(&f, leaves, true, None), 180, BreakKind::Truncated);
}
