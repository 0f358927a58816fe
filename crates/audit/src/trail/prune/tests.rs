#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::AuditError;
use crate::merkle::{self, Hash, leaf_hash, verify_consistency, verify_inclusion};
use crate::trail::files::{HEADER_LEN, LEAVES_FILE, PRUNED_FILE, REWRITE_FILE, header};
use crate::trail::{TrailStore, read_leaves, read_leaves_in};

fn event(i: u64) -> Vec<u8> {
    format!(r#"{{"action":"update","id":"ev-{i}","seq":{i}}}"#).into_bytes()
}

fn stub(i: u64) -> Vec<u8> {
    format!("ev-{i}").into_bytes()
}

fn stubs(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(stub).collect()
}

fn hashes_of(range: std::ops::Range<u64>) -> Vec<Hash> {
    range.map(|i| leaf_hash(&event(i))).collect()
}

fn frame_len(i: u64) -> u64 {
    8 + event(i).len() as u64
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn trail_of(n: u64) -> (tempfile::TempDir, TrailStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    store
        .append(&(0..n).map(event).collect::<Vec<_>>())
        .unwrap();
    (dir, store)
}

/// Asserts the store holds `n` leaves of which the first `pruned` are pruned: their bodies
/// refused, every hash, root and proof as before, the rest readable.
fn assert_pruned(store: &TrailStore, n: u64, pruned: u64) {
    assert_eq!(store.size(), n);
    assert_eq!(store.pruned(), pruned);
    let all = hashes_of(0..n);
    for seq in 0..n {
        if seq < pruned {
            assert!(
                matches!(store.leaf(seq), Err(AuditError::Pruned { seq: s, pruned: p }) if s == seq && p == pruned),
                "leaf {seq}"
            );
        } else {
            assert_eq!(store.leaf(seq).unwrap(), event(seq), "leaf {seq}");
        }
        assert_eq!(store.leaf_hash(seq).unwrap(), all[seq as usize]);
    }
    assert_eq!(store.leaf_hashes(0, n).unwrap(), all);
    let root = merkle::root(&all, n).unwrap();
    assert_eq!(store.root(n).unwrap(), root);
    for index in [0, pruned.saturating_sub(1), pruned.min(n - 1), n - 1] {
        let proof = store.inclusion_proof(index, n).unwrap();
        verify_inclusion(&all[index as usize], index, n, &proof, &root).unwrap();
    }
    for old in [1, pruned.max(1), n] {
        let proof = store.consistency_proof(old, n).unwrap();
        verify_consistency(old, n, &merkle::root(&all, old).unwrap(), &root, &proof).unwrap();
    }
    if pruned > 0 {
        assert!(matches!(
            store.frame_span(pruned - 1, n),
            Err(AuditError::Pruned { .. })
        ));
    }
    let span = store.frame_span(pruned, n).unwrap();
    let read: Vec<Vec<u8>> = read_leaves_in(store.dir(), span)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, (pruned..n).map(event).collect::<Vec<_>>());
    let reader = read_leaves(store.dir()).unwrap();
    assert_eq!(reader.first(), pruned);
    let read: Vec<Vec<u8>> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(read, (pruned..n).map(event).collect::<Vec<_>>());
    assert_eq!(store.pruned_stubs(0, pruned).unwrap(), stubs(0..pruned));
}

#[test]
fn pruning_refuses_the_bodies_and_keeps_every_hash_and_proof() {
    let (dir, mut store) = trail_of(40);
    let leaves_before = file_len(&path(dir.path(), LEAVES_FILE));
    let hashes_before = fs::read(path(dir.path(), "hashes.bin")).unwrap();
    store.prune(10, stubs(0..10)).unwrap();
    assert_pruned(&store, 40, 10);
    store.prune(25, stubs(10..25)).unwrap();
    assert_pruned(&store, 40, 25);
    assert_eq!(store.pruned_stubs(7, 12).unwrap(), stubs(7..12));
    assert_eq!(store.pruned_stubs(20, 99).unwrap(), stubs(20..25));
    // Nothing is rewritten until compaction; hashes.bin never changes.
    assert_eq!(file_len(&path(dir.path(), LEAVES_FILE)), leaves_before);
    assert_eq!(store.pruned_bytes(), (0..25).map(frame_len).sum::<u64>());
    assert_eq!(store.kept_bytes(), (25..40).map(frame_len).sum::<u64>());
    drop(store);

    let mut store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_pruned(&store, 40, 25);
    store
        .append(&(40..45).map(event).collect::<Vec<_>>())
        .unwrap();
    assert_pruned(&store, 45, 25);
    assert_eq!(
        fs::read(path(dir.path(), "hashes.bin")).unwrap()[..hashes_before.len()],
        hashes_before[..]
    );
}

#[test]
fn a_prune_is_idempotent_and_never_skips_or_overruns() {
    let (_dir, mut store) = trail_of(10);
    store.prune(4, stubs(0..4)).unwrap();
    // Repeating it, or asking for less, changes nothing.
    store.prune(4, Vec::new()).unwrap();
    store.prune(2, Vec::new()).unwrap();
    assert_pruned(&store, 10, 4);
    let out_of_range = |result| matches!(result, Err(AuditError::PruneOutOfRange { .. }));
    assert!(out_of_range(store.prune(11, stubs(4..11))));
    assert!(
        out_of_range(store.prune(6, stubs(4..5))),
        "one stub per leaf"
    );
    assert!(out_of_range(store.prune(3, stubs(0..1))));
    assert_pruned(&store, 10, 4);
    // Every leaf may be pruned.
    store.prune(10, stubs(4..10)).unwrap();
    assert_eq!(store.pruned(), 10);
    assert!(matches!(store.leaf(9), Err(AuditError::Pruned { .. })));
    store.compact().unwrap();
    assert_eq!(file_len(&path(store.dir(), LEAVES_FILE)), HEADER_LEN);
    let dir = store.dir().to_path_buf();
    drop(store);
    let mut store = TrailStore::open(&dir).unwrap();
    assert_eq!((store.size(), store.pruned()), (10, 10));
    store.append(&[event(10)]).unwrap();
    assert_pruned(&store, 11, 10);
}

#[test]
fn truncation_never_cuts_pruned_leaves() {
    let (_dir, mut store) = trail_of(10);
    store.prune(6, stubs(0..6)).unwrap();
    assert!(matches!(
        store.truncate(5),
        Err(AuditError::Pruned { seq: 5, pruned: 6 })
    ));
    store.truncate(6).unwrap();
    assert_eq!(store.size(), 6);
    store
        .append(&(6..8).map(event).collect::<Vec<_>>())
        .unwrap();
    assert_pruned(&store, 8, 6);
}

#[test]
fn compaction_returns_the_space_and_keeps_the_trail() {
    let (dir, mut store) = trail_of(50);
    let root = store.root(50).unwrap();
    store.prune(30, stubs(0..30)).unwrap();
    let old_span = store.frame_span(30, 50).unwrap();
    // A reader that opened the file before the rewrite keeps reading it.
    let early = read_leaves_in(dir.path(), old_span.clone()).unwrap();
    store.compact().unwrap();
    let kept: u64 = (30..50).map(frame_len).sum();
    assert_eq!(file_len(&path(dir.path(), LEAVES_FILE)), HEADER_LEN + kept);
    assert_eq!(
        fs::read(path(dir.path(), LEAVES_FILE)).unwrap()[..HEADER_LEN as usize],
        header(30)
    );
    assert!(!path(dir.path(), REWRITE_FILE).exists());
    assert_eq!(store.pruned_bytes(), 0);
    assert_eq!(store.kept_bytes(), kept);
    assert_pruned(&store, 50, 30);
    assert_eq!(store.root(50).unwrap(), root);
    let read: Vec<Vec<u8>> = early.collect::<Result<_, _>>().unwrap();
    assert_eq!(read, (30..50).map(event).collect::<Vec<_>>());
    // A span of the old file is refused in the new one, never misread.
    assert!(matches!(
        read_leaves_in(dir.path(), old_span),
        Err(AuditError::Rewritten { .. })
    ));
    // Compacting again does nothing; appends, prunes and compactions carry on.
    store.compact().unwrap();
    store
        .append(&(50..60).map(event).collect::<Vec<_>>())
        .unwrap();
    assert_pruned(&store, 60, 30);
    store.prune(41, stubs(30..41)).unwrap();
    assert_pruned(&store, 60, 41);
    store.compact().unwrap();
    assert_pruned(&store, 60, 41);
    drop(store);

    let mut store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_pruned(&store, 60, 41);
    // A second writer is still kept out after the rename.
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Locked { .. })
    ));
    store.truncate(55).unwrap();
    assert_pruned(&store, 55, 41);
}

/// Appends raw bytes to a file, as a crash mid-write leaves them.
fn append_raw(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Copies a trail directory (its files only), for states a crash would leave.
fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_crash_while_recording_a_prune_prunes_nothing() {
    let (dir, mut store) = trail_of(20);
    store.prune(5, stubs(0..5)).unwrap();
    drop(store);
    // The frame a prune of 5..12 appends, as a second trail writes it.
    let frame = {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), scratch.path());
        let before = fs::read(path(scratch.path(), PRUNED_FILE)).unwrap();
        let mut store = TrailStore::open(scratch.path()).unwrap();
        store.prune(12, stubs(5..12)).unwrap();
        drop(store);
        fs::read(path(scratch.path(), PRUNED_FILE)).unwrap()[before.len()..].to_vec()
    };
    let pruned_len = file_len(&path(dir.path(), PRUNED_FILE));
    for cut in [1, 4, 8, 9, 20, frame.len() - 1] {
        append_raw(&path(dir.path(), PRUNED_FILE), &frame[..cut]);
        let store = TrailStore::open(dir.path()).unwrap();
        assert_eq!(store.recovery().pruned_bytes_cut, cut as u64, "cut {cut}");
        assert_eq!(file_len(&path(dir.path(), PRUNED_FILE)), pruned_len);
        assert_pruned(&store, 20, 5);
    }
    // The whole frame: the prune happened.
    append_raw(&path(dir.path(), PRUNED_FILE), &frame);
    let store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_pruned(&store, 20, 12);
    drop(store);
    // A whole frame with a wrong checksum is a torn tail too.
    let mut bad = frame.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(
        path(dir.path(), PRUNED_FILE),
        [
            &fs::read(path(dir.path(), PRUNED_FILE)).unwrap()[..pruned_len as usize],
            &bad,
        ]
        .concat(),
    )
    .unwrap();
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().pruned_bytes_cut, frame.len() as u64);
    assert_pruned(&store, 20, 5);
}

#[test]
fn a_crash_at_every_step_of_a_compaction_leaves_an_openable_trail() {
    let (dir, mut store) = trail_of(30);
    store.prune(18, stubs(0..18)).unwrap();
    drop(store);
    // The file the compaction renames into place, made in a copy.
    let rewritten = {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), scratch.path());
        let mut store = TrailStore::open(scratch.path()).unwrap();
        store.compact().unwrap();
        drop(store);
        fs::read(path(scratch.path(), LEAVES_FILE)).unwrap()
    };
    let original = fs::read(path(dir.path(), LEAVES_FILE)).unwrap();
    // Before the rename: any prefix of the new file lies beside the old one.
    for cut in [
        0,
        3,
        HEADER_LEN as usize,
        rewritten.len() / 2,
        rewritten.len(),
    ] {
        fs::write(path(dir.path(), REWRITE_FILE), &rewritten[..cut]).unwrap();
        let store = TrailStore::open(dir.path()).unwrap();
        assert!(!path(dir.path(), REWRITE_FILE).exists(), "cut {cut}");
        assert_eq!(fs::read(path(dir.path(), LEAVES_FILE)).unwrap(), original);
        assert_pruned(&store, 30, 18);
        assert_eq!(store.pruned_bytes(), (0..18).map(frame_len).sum::<u64>());
    }
    // After the rename: the new file is the trail.
    fs::write(path(dir.path(), LEAVES_FILE), &rewritten).unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_pruned(&store, 30, 18);
    assert_eq!(store.pruned_bytes(), 0);
    // A torn append after a compaction is cut like any other.
    store.append(&[event(30)]).unwrap();
    drop(store);
    append_raw(&path(dir.path(), LEAVES_FILE), &[7, 0, 0]);
    append_raw(&path(dir.path(), "hashes.bin"), &[1; 32]);
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().leaves_bytes_cut, 3);
    assert_eq!(store.recovery().hashes_bytes_cut, 32);
    assert_pruned(&store, 31, 18);
}

#[test]
fn damage_to_the_prune_records_is_refused_not_repaired() {
    let (dir, mut store) = trail_of(20);
    store.prune(5, stubs(0..5)).unwrap();
    store.prune(9, stubs(5..9)).unwrap();
    store.compact().unwrap();
    drop(store);
    let pruned = fs::read(path(dir.path(), PRUNED_FILE)).unwrap();

    // The first of two frames altered: not a torn tail.
    let mut damaged = pruned.clone();
    damaged[10] ^= 1;
    fs::write(path(dir.path(), PRUNED_FILE), &damaged).unwrap();
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Corrupt { .. })
    ));
    assert_eq!(fs::read(path(dir.path(), PRUNED_FILE)).unwrap(), damaged);

    // pruned.log lost while leaves.log starts after the pruned leaves.
    fs::remove_file(path(dir.path(), PRUNED_FILE)).unwrap();
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Corrupt { .. })
    ));
    assert!(matches!(
        read_leaves(dir.path()),
        Err(AuditError::Corrupt { .. })
    ));

    // A header whose checksum is wrong.
    fs::write(path(dir.path(), PRUNED_FILE), &pruned).unwrap();
    let leaves = fs::read(path(dir.path(), LEAVES_FILE)).unwrap();
    let mut bad = leaves.clone();
    bad[9] ^= 1;
    fs::write(path(dir.path(), LEAVES_FILE), &bad).unwrap();
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Corrupt { .. })
    ));
    fs::write(path(dir.path(), LEAVES_FILE), &leaves).unwrap();
    assert_pruned(&TrailStore::open(dir.path()).unwrap(), 20, 9);
}
