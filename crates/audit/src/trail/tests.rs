#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Instant;

use super::*;
use crate::merkle::{verify_consistency, verify_inclusion};

fn event(i: u64) -> Vec<u8> {
    format!(
        r#"{{"action":"update","actor":"user-{}","seq":{i}}}"#,
        i % 7
    )
    .into_bytes()
}

fn events(range: Range<u64>) -> Vec<Vec<u8>> {
    range.map(event).collect()
}

fn hashes_of(range: Range<u64>) -> Vec<Hash> {
    range.map(|i| leaf_hash(&event(i))).collect()
}

fn leaves_path(dir: &Path) -> PathBuf {
    dir.join(LEAVES_FILE)
}

fn hashes_path(dir: &Path) -> PathBuf {
    dir.join(HASHES_FILE)
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// A trail of `n` events in a fresh temporary directory.
fn trail_of(n: u64) -> (tempfile::TempDir, TrailStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    store.append(&events(0..n)).unwrap();
    (dir, store)
}

/// Asserts the store holds exactly events 0..n, readable and hashed.
fn assert_holds(store: &TrailStore, n: u64) {
    assert_eq!(store.size(), n);
    for i in 0..n {
        assert_eq!(store.leaf(i).unwrap(), event(i), "leaf {i}");
        assert_eq!(store.leaf_hash(i).unwrap(), leaf_hash(&event(i)));
    }
    assert_eq!(store.leaf_hashes(0, n).unwrap(), hashes_of(0..n));
    if n > 1 {
        assert_eq!(store.leaf_hashes(1, n - 1).unwrap(), hashes_of(1..n - 1));
    }
    assert!(store.leaf_hashes(0, n + 1).is_err());
    assert!(matches!(
        store.leaf(n),
        Err(AuditError::SeqOutOfRange { seq, size }) if seq == n && size == n
    ));
    assert_eq!(
        store.root(n).unwrap(),
        merkle::root(&hashes_of(0..n), n).unwrap()
    );
}

#[test]
fn new_trail_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants").join("acme");
    let store = TrailStore::open(&path).unwrap();
    assert_eq!(store.size(), 0);
    assert_eq!(store.root(0).unwrap(), crate::empty_root());
    assert!(store.recovery().is_clean());
    assert_eq!(store.dir(), path);
    assert_eq!(file_len(&leaves_path(&path)), 0);
    assert_eq!(file_len(&hashes_path(&path)), 0);
    assert!(store.leaf(0).is_err());
    assert!(store.leaf_hash(0).is_err());
}

#[test]
fn append_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.append(&[]).unwrap(), 0..0);
    assert_eq!(store.append(&events(0..3)).unwrap(), 0..3);
    assert_eq!(store.append(&events(3..10)).unwrap(), 3..10);
    assert_holds(&store, 10);
    let root = store.root(10).unwrap();
    drop(store);

    let mut store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_holds(&store, 10);
    assert_eq!(store.root(10).unwrap(), root);
    assert_eq!(store.append(&events(10..25)).unwrap(), 10..25);
    assert_holds(&store, 25);

    // The files have exactly the documented layout.
    let log = fs::read(leaves_path(dir.path())).unwrap();
    let first = event(0);
    assert_eq!(log[..4], (first.len() as u32).to_le_bytes());
    assert_eq!(log[4..8], crc32c::crc32c(&first).to_le_bytes());
    assert_eq!(log[8..8 + first.len()], first[..]);
    let hashes = fs::read(hashes_path(dir.path())).unwrap();
    assert_eq!(hashes, hashes_of(0..25).as_flattened());
}

#[test]
fn empty_and_binary_leaves_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    let leaves = vec![
        Vec::new(),
        vec![0u8; 1000],
        (0..=255u8).collect(),
        Vec::new(),
    ];
    store.append(&leaves).unwrap();
    drop(store);
    let store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(&store.leaf(i as u64).unwrap(), leaf);
    }
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let (dir, store) = trail_of(3);
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Locked { .. })
    ));
    drop(store);
    assert_eq!(TrailStore::open(dir.path()).unwrap().size(), 3);
}

#[test]
fn torn_tail_partial_last_frame() {
    let (dir, store) = trail_of(20);
    drop(store);
    let leaves_len = file_len(&leaves_path(dir.path()));
    // Every proper prefix of a new frame, with or without its hash record.
    let frame = {
        let leaf = event(20);
        let mut f = (leaf.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&crc32c::crc32c(&leaf).to_le_bytes());
        f.extend_from_slice(&leaf);
        f
    };
    for cut in [1, 4, 7, 8, 9, frame.len() - 1] {
        for with_hash in [false, true] {
            append_raw(&leaves_path(dir.path()), &frame[..cut]);
            if with_hash {
                append_raw(&hashes_path(dir.path()), &leaf_hash(&event(20)));
            }
            let store = TrailStore::open(dir.path()).unwrap();
            assert_eq!(
                store.recovery(),
                &Recovery {
                    frames_dropped: 0,
                    leaves_bytes_cut: cut as u64,
                    hashes_bytes_cut: if with_hash { 32 } else { 0 },
                    pruned_bytes_cut: 0,
                },
                "cut {cut}, hash {with_hash}"
            );
            assert_holds(&store, 20);
            assert_eq!(file_len(&leaves_path(dir.path())), leaves_len);
            assert_eq!(file_len(&hashes_path(dir.path())), 20 * 32);
        }
    }
    // And the trail carries on normally.
    let mut store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.append(&events(20..30)).unwrap(), 20..30);
    assert_holds(&store, 30);
}

#[test]
fn torn_tail_extra_bytes_in_hashes() {
    let (dir, store) = trail_of(20);
    drop(store);
    // A partial record, then a whole record beyond the leaves.
    append_raw(&hashes_path(dir.path()), &[0xab; 13]);
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().hashes_bytes_cut, 13);
    assert_eq!(store.recovery().leaves_bytes_cut, 0);
    assert_holds(&store, 20);
    drop(store);
    append_raw(&hashes_path(dir.path()), &leaf_hash(b"not a leaf"));
    append_raw(&hashes_path(dir.path()), &[1; 40]);
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().hashes_bytes_cut, 72);
    assert_holds(&store, 20);
}

#[test]
fn torn_tail_missing_hashes() {
    let (dir, store) = trail_of(20);
    drop(store);
    let full = file_len(&leaves_path(dir.path()));
    // The last three leaves' records never reached the disk, one only partly.
    let hashes = hashes_path(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&hashes)
        .unwrap()
        .set_len(17 * 32 + 5)
        .unwrap();
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().frames_dropped, 3);
    assert_eq!(store.recovery().hashes_bytes_cut, 5);
    let dropped: u64 = (17..20).map(|i| 8 + event(i).len() as u64).sum();
    assert_eq!(store.recovery().leaves_bytes_cut, dropped);
    assert_eq!(file_len(&leaves_path(dir.path())), full - dropped);
    assert_holds(&store, 17);
}

#[test]
fn torn_tail_garbage_frames_and_wrong_hashes_are_cut() {
    let (dir, store) = trail_of(20);
    drop(store);
    // Zeroed pages look like empty frames with a valid checksum; their records are zero.
    append_raw(&leaves_path(dir.path()), &[0; 64]);
    append_raw(&hashes_path(dir.path()), &[0; 64]);
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().frames_dropped, 8);
    assert_holds(&store, 20);
    drop(store);

    // A complete last frame with a bad checksum, and one whose record is not its hash.
    let leaf = event(20);
    let mut frame = (leaf.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&(crc32c::crc32c(&leaf) ^ 1).to_le_bytes());
    frame.extend_from_slice(&leaf);
    append_raw(&leaves_path(dir.path()), &frame);
    append_raw(&hashes_path(dir.path()), &leaf_hash(&leaf));
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().frames_dropped, 1);
    assert_holds(&store, 20);
    drop(store);

    frame[4..8].copy_from_slice(&crc32c::crc32c(&leaf).to_le_bytes());
    append_raw(&leaves_path(dir.path()), &frame);
    append_raw(&hashes_path(dir.path()), &leaf_hash(b"other"));
    let store = TrailStore::open(dir.path()).unwrap();
    assert_eq!(store.recovery().frames_dropped, 1);
    assert_holds(&store, 20);
}

#[test]
fn damage_before_the_tail_is_kept_for_verification() {
    let (dir, store) = trail_of(20);
    let offset = store.offsets[5] + FRAME_HEADER + 2;
    drop(store);
    // Change one byte of leaf 5 in place: checksum and hash no longer match it.
    let path = leaves_path(dir.path());
    let mut log = fs::read(&path).unwrap();
    log[offset as usize] ^= 0x20;
    fs::write(&path, &log).unwrap();
    let store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_eq!(store.size(), 20);
    let damaged = store.leaf(5).unwrap();
    assert_ne!(damaged, event(5));
    assert_ne!(leaf_hash(&damaged), store.leaf_hash(5).unwrap());
    assert_eq!(store.leaf(6).unwrap(), event(6));
}

#[test]
fn a_missing_hashes_file_is_refused_not_recovered() {
    let (dir, store) = trail_of(5);
    drop(store);
    fs::remove_file(hashes_path(dir.path())).unwrap();
    assert!(matches!(
        TrailStore::open(dir.path()),
        Err(AuditError::Corrupt { .. })
    ));
    assert_eq!(
        file_len(&leaves_path(dir.path())),
        (0..5).map(|i| 8 + event(i).len() as u64).sum::<u64>()
    );
}

#[test]
fn truncate_cuts_both_files() {
    let (dir, mut store) = trail_of(300);
    let roots: Vec<Hash> = (0..=300).map(|n| store.root(n).unwrap()).collect();
    assert!(matches!(
        store.truncate(301),
        Err(AuditError::TruncateBeyondEnd {
            requested: 301,
            size: 300
        })
    ));
    store.truncate(300).unwrap();
    assert_holds(&store, 300);
    for size in [299, 256, 255, 129, 128, 100, 1, 0] {
        store.truncate(size).unwrap();
        assert_eq!(store.size(), size);
        assert_eq!(store.root(size).unwrap(), roots[size as usize]);
        assert_eq!(file_len(&hashes_path(dir.path())), size * 32);
        let frames: u64 = (0..size).map(|i| 8 + event(i).len() as u64).sum();
        assert_eq!(file_len(&leaves_path(dir.path())), frames);
        // Appending again gives the same tree as before.
        store.append(&events(size..300)).unwrap();
        assert_eq!(store.root(300).unwrap(), roots[300]);
        store.truncate(size).unwrap();
        assert_holds(&store, size);
    }
    drop(store);
    let store = TrailStore::open(dir.path()).unwrap();
    assert!(store.recovery().is_clean());
    assert_eq!(store.size(), 0);
}

#[test]
fn proofs_verify_at_several_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    let all = hashes_of(0..700);
    // Appended in uneven batches, so the cache is built incrementally.
    let mut at = 0;
    for batch in [1, 2, 5, 120, 128, 256, 13, 175] {
        store.append(&events(at..at + batch)).unwrap();
        at += batch;
    }
    assert_eq!(store.size(), 700);
    for size in [1u64, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 699, 700] {
        let root = store.root(size).unwrap();
        assert_eq!(root, merkle::root(&all, size).unwrap());
        for index in [0, size / 3, size / 2, size - 1] {
            let proof = store.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, merkle::inclusion_proof(&all, index, size).unwrap());
            verify_inclusion(&all[index as usize], index, size, &proof, &root).unwrap();
        }
        for old in [1, size / 2, size - 1, size] {
            if old == 0 {
                continue;
            }
            let proof = store.consistency_proof(old, size).unwrap();
            let old_root = store.root(old).unwrap();
            verify_consistency(old, size, &old_root, &root, &proof).unwrap();
        }
    }
    assert!(matches!(
        store.inclusion_proof(700, 700),
        Err(AuditError::Proof(ProofError::IndexOutOfRange { .. }))
    ));
    assert!(matches!(
        store.root(701),
        Err(AuditError::Proof(ProofError::SizeOutOfRange { .. }))
    ));
    assert!(matches!(
        store.consistency_proof(0, 5),
        Err(AuditError::Proof(ProofError::EmptyOldTree))
    ));
}

#[test]
#[ignore = "builds a 1,000,000-leaf trail (~300 MB); run with --release -- --ignored"]
fn million_leaf_proofs_are_fast() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut store = TrailStore::open(dir.path()).unwrap();
    let pad = "x".repeat(230);
    let event = |i: u64| {
        format!(
            r#"{{"action":"update","actor":"user-{}","pad":"{pad}","seq":{i}}}"#,
            i % 97
        )
        .into_bytes()
    };
    let started = Instant::now();
    let mut at = 0;
    while at < N {
        let batch: Vec<Vec<u8>> = (at..(at + 10_000).min(N)).map(event).collect();
        at += batch.len() as u64;
        store.append(&batch).unwrap();
    }
    eprintln!("appended {N} leaves in {:?}", started.elapsed());
    let root = store.root(N).unwrap();
    drop(store);

    let started = Instant::now();
    let store = TrailStore::open(dir.path()).unwrap();
    eprintln!("reopened in {:?}", started.elapsed());
    assert_eq!(store.root(N).unwrap(), root);

    let mut slowest = std::time::Duration::ZERO;
    for index in [0, 1, 255, 256, 123_456, 524_287, 524_288, 999_998, 999_999] {
        let started = Instant::now();
        let proof = store.inclusion_proof(index, N).unwrap();
        slowest = slowest.max(started.elapsed());
        verify_inclusion(&leaf_hash(&event(index)), index, N, &proof, &root).unwrap();
    }
    eprintln!("slowest inclusion proof at {N} leaves: {slowest:?}");
    let mut slowest_consistency = std::time::Duration::ZERO;
    for old in [1, 1000, 500_000, 524_288, 999_999] {
        let started = Instant::now();
        let proof = store.consistency_proof(old, N).unwrap();
        slowest_consistency = slowest_consistency.max(started.elapsed());
        let old_root = store.root(old).unwrap();
        verify_consistency(old, N, &old_root, &root, &proof).unwrap();
    }
    eprintln!("slowest consistency proof at {N} leaves: {slowest_consistency:?}");
    let started = Instant::now();
    let old_root = store.root(777_777).unwrap();
    eprintln!("root at an earlier size: {:?}", started.elapsed());
    assert_ne!(old_root, root);
    assert!(slowest < std::time::Duration::from_millis(5), "{slowest:?}");
    assert!(
        slowest_consistency < std::time::Duration::from_millis(5),
        "{slowest_consistency:?}"
    );
}
