//! Checks the tree against a recursive reference written straight from RFC 9162 §2.1, over
//! every tree size up to 300, plus tampered proofs, the frontier, the cache and huge trees.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::time::Instant;

use super::*;

// ---------------------------------------------------------------------------------------
// Reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed literally, over the raw
// entries D (not their hashes), recursive and slow on purpose.

/// The RFC's k: the largest power of two smaller than n (n > 1).
fn ref_k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D_n).
fn ref_mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => leaf_hash(&d[0]),
        n => {
            let k = ref_k(n);
            node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
        }
    }
}

/// PATH(m, D_n).
fn ref_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = ref_k(n);
    if m < k {
        let mut path = ref_path(m, &d[..k]);
        path.push(ref_mth(&d[k..]));
        path
    } else {
        let mut path = ref_path(m - k, &d[k..]);
        path.push(ref_mth(&d[..k]));
        path
    }
}

/// PROOF(m, D_n) = SUBPROOF(m, D_n, true).
fn ref_proof(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    ref_subproof(m, d, true)
}

/// SUBPROOF(m, D_n, b).
fn ref_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![ref_mth(d)] };
    }
    let k = ref_k(n);
    if m <= k {
        let mut proof = ref_subproof(m, &d[..k], b);
        proof.push(ref_mth(&d[k..]));
        proof
    } else {
        let mut proof = ref_subproof(m - k, &d[k..], false);
        proof.push(ref_mth(&d[..k]));
        proof
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures.

const MAX: usize = 300;

struct Fixture {
    entries: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
    /// Reference roots, by size 0..=MAX.
    roots: Vec<Hash>,
}

fn fixture() -> Fixture {
    let entries: Vec<Vec<u8>> = (0..MAX)
        .map(|i| format!("audit event {i}").into_bytes())
        .collect();
    let hashes = entries.iter().map(|e| leaf_hash(e)).collect();
    let roots = (0..=MAX).map(|n| ref_mth(&entries[..n])).collect();
    Fixture {
        entries,
        hashes,
        roots,
    }
}

fn flipped(hash: &Hash, byte: usize) -> Hash {
    let mut out = *hash;
    out[byte % 32] ^= 0x10;
    out
}

fn u(n: usize) -> u64 {
    n as u64
}

// ---------------------------------------------------------------------------------------
// Basic hashes.

#[test]
fn hashes_use_rfc_domain_separation() {
    assert_eq!(
        hex(&empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_ne!(leaf_hash(b""), empty_root());
    let l = leaf_hash(b"a");
    let r = leaf_hash(b"b");
    let mut joined = Vec::from(l);
    joined.extend_from_slice(&r);
    assert_ne!(node_hash(&l, &r), leaf_hash(&joined));
    assert_ne!(node_hash(&l, &r), node_hash(&r, &l));
}

pub(super) fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Roots and inclusion proofs, every size 1..=300, every index.

fn check_inclusion(sizes: std::ops::RangeInclusive<usize>) {
    let f = fixture();
    let cache = SubtreeCache::from_leaves(&f.hashes, 2);
    let cached = cache.over(&f.hashes);
    for n in sizes {
        let size = u(n);
        assert_eq!(root(&f.hashes, size).unwrap(), f.roots[n], "root of {n}");
        assert_eq!(
            root(&cached, size).unwrap(),
            f.roots[n],
            "cached root of {n}"
        );
        let root_n = &f.roots[n];
        for m in 0..n {
            let index = u(m);
            let leaf = &f.hashes[m];
            let proof = inclusion_proof(&f.hashes, index, size).unwrap();
            assert_eq!(proof, ref_path(m, &f.entries[..n]), "PATH({m}, D[{n}])");
            assert_eq!(inclusion_proof(&cached, index, size).unwrap(), proof);
            verify_inclusion(leaf, index, size, &proof, root_n).unwrap();

            let must_fail = |leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash| {
                assert!(
                    verify_inclusion(leaf, index, size, proof, root).is_err(),
                    "forged inclusion accepted: m={m} n={n} -> index {index} size {size}"
                );
            };
            // Wrong leaf.
            must_fail(&f.hashes[(m + 1) % MAX], index, size, &proof, root_n);
            must_fail(&flipped(leaf, m), index, size, &proof, root_n);
            // Wrong index, including out of range.
            for wrong in [index.wrapping_sub(1), index + 1, index ^ 1, index ^ 2, size] {
                if wrong != index {
                    must_fail(leaf, wrong, size, &proof, root_n);
                }
            }
            // Wrong size, with the genuine root of that size.
            for wrong in [n - 1, n + 1, n * 2, n / 2] {
                if wrong != n && wrong > m && wrong <= MAX {
                    must_fail(leaf, index, u(wrong), &proof, &f.roots[wrong]);
                }
            }
            // Wrong root.
            must_fail(leaf, index, size, &proof, &f.roots[n - 1]);
            must_fail(leaf, index, size, &proof, &flipped(root_n, n));
            // Truncated, extended at either end.
            if let Some((_, shorter)) = proof.split_last() {
                must_fail(leaf, index, size, shorter, root_n);
            }
            for extra in [*root_n, *leaf, [0; 32]] {
                let mut longer = proof.clone();
                longer.push(extra);
                must_fail(leaf, index, size, &longer, root_n);
                longer.pop();
                longer.insert(0, extra);
                must_fail(leaf, index, size, &longer, root_n);
            }
            // One hash flipped, at every position.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flipped(&bad[i], i + m);
                assert_eq!(
                    verify_inclusion(leaf, index, size, &bad, root_n),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }
}

#[test]
fn inclusion_matches_reference_sizes_1_to_150() {
    check_inclusion(1..=150);
}

#[test]
fn inclusion_matches_reference_sizes_151_to_300() {
    check_inclusion(151..=MAX);
}

#[test]
fn inclusion_rejects_bad_arguments() {
    let f = fixture();
    assert_eq!(root(&f.hashes, 0).unwrap(), empty_root());
    assert_eq!(
        root(&f.hashes, u(MAX) + 1),
        Err(ProofError::SizeOutOfRange {
            size: u(MAX) + 1,
            available: u(MAX)
        })
    );
    assert_eq!(
        inclusion_proof(&f.hashes, 5, 5),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        inclusion_proof(&f.hashes, 0, 0),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert!(matches!(
        inclusion_proof(&f.hashes, 0, u(MAX) + 1),
        Err(ProofError::SizeOutOfRange { .. })
    ));
    assert_eq!(
        verify_inclusion(&f.hashes[0], 0, 0, &[], &empty_root()),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    // Size one: the leaf hash is the root and the proof is empty.
    verify_inclusion(&f.hashes[0], 0, 1, &[], &f.hashes[0]).unwrap();
    assert_eq!(
        verify_inclusion(&f.hashes[0], 0, 1, &[f.hashes[1]], &f.hashes[0]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
}

// ---------------------------------------------------------------------------------------
// Consistency proofs: every pair up to 100, a sample of pairs up to 300.

fn check_consistency(f: &Fixture, old: usize, new: usize) {
    let (old_size, new_size) = (u(old), u(new));
    let (old_root, new_root) = (&f.roots[old], &f.roots[new]);
    let proof = consistency_proof(&f.hashes, old_size, new_size).unwrap();
    assert_eq!(
        proof,
        ref_proof(old, &f.entries[..new]),
        "PROOF({old}, D[{new}])"
    );
    verify_consistency(old_size, new_size, old_root, new_root, &proof).unwrap();
    if old == new {
        assert!(proof.is_empty());
        return;
    }

    let must_fail = |old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, p: &[Hash]| {
        assert!(
            verify_consistency(old_size, new_size, old_root, new_root, p).is_err(),
            "forged consistency accepted: {old}->{new} as {old_size}->{new_size}"
        );
    };
    // Wrong old root: the neighbours' genuine roots, a flipped one, the new root. When the
    // old size is a power of two, step 2 makes the old root the seed of both rebuilt roots,
    // so a wrong one surfaces as a new-root mismatch.
    must_fail(old_size, new_size, &f.roots[old - 1], new_root, &proof);
    must_fail(old_size, new_size, &f.roots[old + 1], new_root, &proof);
    let bad_old = flipped(old_root, old);
    assert_eq!(
        verify_consistency(old_size, new_size, &bad_old, new_root, &proof),
        Err(if old.is_power_of_two() {
            ProofError::RootMismatch
        } else {
            ProofError::OldRootMismatch
        })
    );
    must_fail(old_size, new_size, new_root, new_root, &proof);
    // Wrong new root.
    must_fail(old_size, new_size, old_root, &f.roots[new - 1], &proof);
    if new < MAX {
        must_fail(old_size, new_size, old_root, &f.roots[new + 1], &proof);
    }
    assert_eq!(
        verify_consistency(
            old_size,
            new_size,
            old_root,
            &flipped(new_root, new),
            &proof
        ),
        Err(ProofError::RootMismatch)
    );
    must_fail(old_size, new_size, new_root, old_root, &proof);
    // Wrong sizes, each with the genuine root of that size.
    for wrong in [old - 1, old + 1, old * 2, old / 2] {
        if wrong != old && wrong <= new {
            must_fail(u(wrong), new_size, &f.roots[wrong], new_root, &proof);
        }
    }
    for wrong in [new - 1, new + 1, new * 2, new / 2] {
        if wrong != new && wrong >= old && wrong <= MAX {
            must_fail(old_size, u(wrong), old_root, &f.roots[wrong], &proof);
        }
    }
    must_fail(new_size, old_size, new_root, old_root, &proof);
    // Empty, truncated, extended at either end (prepending the old root is what a verifier
    // that skipped step 2's condition would accept).
    must_fail(old_size, new_size, old_root, new_root, &[]);
    if let Some((_, shorter)) = proof.split_last() {
        must_fail(old_size, new_size, old_root, new_root, shorter);
    }
    for extra in [*old_root, *new_root, proof[0], [0; 32]] {
        let mut longer = proof.clone();
        longer.push(extra);
        must_fail(old_size, new_size, old_root, new_root, &longer);
        longer.pop();
        longer.insert(0, extra);
        must_fail(old_size, new_size, old_root, new_root, &longer);
    }
    // One hash flipped, at every position.
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] = flipped(&bad[i], i + old);
        must_fail(old_size, new_size, old_root, new_root, &bad);
    }
}

#[test]
fn consistency_matches_reference_every_pair_to_100() {
    let f = fixture();
    for new in 1..=100 {
        for old in 1..=new {
            check_consistency(&f, old, new);
        }
    }
}

#[test]
fn consistency_matches_reference_sampled_pairs_to_300() {
    let f = fixture();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for new in 101..=MAX {
        let mut olds = vec![1, 2, 3, new / 2, new - 1, new];
        olds.extend((0..9).map(|shift| 1 << shift).filter(|&old| old <= new));
        for _ in 0..6 {
            // xorshift64: a fixed, reproducible sample.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            olds.push(1 + (seed % u(new)) as usize);
        }
        for old in olds {
            check_consistency(&f, old, new);
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let f = fixture();
    let r = &f.roots;
    // From the empty tree: undefined by RFC 9162, rejected both ways.
    assert_eq!(
        consistency_proof(&f.hashes, 0, 5),
        Err(ProofError::EmptyOldTree)
    );
    assert_eq!(
        consistency_proof(&f.hashes, 0, 0),
        Err(ProofError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(0, 5, &empty_root(), &r[5], &[]),
        Err(ProofError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
        Err(ProofError::EmptyOldTree)
    );
    // Backwards.
    assert_eq!(
        consistency_proof(&f.hashes, 6, 5),
        Err(ProofError::OldSizeExceedsNewSize {
            old_size: 6,
            new_size: 5
        })
    );
    assert_eq!(
        verify_consistency(6, 5, &r[6], &r[5], &[]),
        Err(ProofError::OldSizeExceedsNewSize {
            old_size: 6,
            new_size: 5
        })
    );
    // Equal sizes: empty proof and equal roots, nothing else.
    verify_consistency(7, 7, &r[7], &r[7], &[]).unwrap();
    assert_eq!(
        verify_consistency(7, 7, &r[7], &r[6], &[]),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(7, 7, &r[7], &r[7], &[r[7]]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    // Beyond the leaves available.
    assert!(matches!(
        consistency_proof(&f.hashes, 1, u(MAX) + 1),
        Err(ProofError::SizeOutOfRange { .. })
    ));
}

/// A server that rewrote history serves a proof from its forged tree; whatever its shape,
/// the rebuilt old root cannot match the one the client holds.
#[test]
fn consistency_rejects_proofs_from_a_rewritten_tree() {
    let f = fixture();
    let forged: Vec<Hash> = (0..MAX)
        .map(|i| leaf_hash(format!("rewritten {i}").as_bytes()))
        .collect();
    for new in 2..=64 {
        let forged_new_root = root(&forged, u(new)).unwrap();
        for old in 1..new {
            let proof = consistency_proof(&forged, u(old), u(new)).unwrap();
            let genuine_old = &f.roots[old];
            let result = verify_consistency(u(old), u(new), genuine_old, &forged_new_root, &proof);
            assert!(result.is_err(), "{old}->{new}");
            if !old.is_power_of_two() {
                assert_eq!(result, Err(ProofError::OldRootMismatch), "{old}->{new}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// CompactRange and SubtreeCache.

#[test]
fn compact_range_root_matches_reference_every_size_to_1000() {
    let entries: Vec<Vec<u8>> = (0..1000).map(|i| format!("e{i}").into_bytes()).collect();
    let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut range = CompactRange::new();
    assert_eq!(range.root(), empty_root());
    for n in 0..=1000 {
        assert_eq!(range.size(), u(n));
        assert!(range.frontier().len() <= 10);
        let want = ref_mth(&entries[..n]);
        assert_eq!(range.root(), want, "size {n}");
        assert_eq!(root(&hashes, u(n)).unwrap(), want);
        // Persist and restore, then carry on from the copy.
        let restored =
            CompactRange::from_frontier(range.size(), range.frontier().to_vec()).unwrap();
        assert_eq!(restored, range);
        assert_eq!(restored.root(), want);
        range = restored;
        if n < 1000 {
            range.push(hashes[n]);
        }
    }
}

#[test]
fn compact_range_rejects_malformed_frontiers() {
    let h = leaf_hash(b"x");
    assert_eq!(
        CompactRange::from_frontier(5, vec![h]),
        Err(ProofError::WrongFrontierLength {
            size: 5,
            expected: 2,
            got: 1
        })
    );
    assert!(CompactRange::from_frontier(0, vec![h]).is_err());
    assert_eq!(
        CompactRange::from_frontier(0, Vec::new()).unwrap(),
        CompactRange::new()
    );
    assert_eq!(CompactRange::from_frontier(1, vec![h]).unwrap().root(), h);
}

#[test]
fn subtree_cache_gives_the_same_roots_and_proofs() {
    let f = fixture();
    for min_level in [0, 1, 3, 5, 9] {
        let cache = SubtreeCache::from_leaves(&f.hashes, min_level);
        assert_eq!(cache.size(), u(MAX));
        assert_eq!(cache.min_level(), min_level);
        assert_eq!(cache.root(), f.roots[MAX]);
        let cached = cache.over(&f.hashes);
        for n in [1, 2, 7, 8, 9, 100, 255, 256, 257, MAX] {
            let size = u(n);
            assert_eq!(root(&cached, size).unwrap(), f.roots[n]);
            for m in [0, n / 3, n - 1] {
                assert_eq!(
                    inclusion_proof(&cached, u(m), size).unwrap(),
                    inclusion_proof(&f.hashes, u(m), size).unwrap()
                );
            }
            for old in [1, n / 2, n - 1] {
                if old > 0 {
                    assert_eq!(
                        consistency_proof(&cached, u(old), size).unwrap(),
                        consistency_proof(&f.hashes, u(old), size).unwrap()
                    );
                }
            }
        }
    }
}

#[test]
fn subtree_cache_lagging_behind_the_leaves_falls_back_to_them() {
    let f = fixture();
    let cache = SubtreeCache::from_leaves(&f.hashes[..100], 2);
    assert_eq!(cache.get(2, 24), Some(root(&f.hashes[96..100], 4).unwrap()));
    assert_eq!(cache.get(2, 25), None);
    assert_eq!(cache.get(1, 0), None);
    let cached = cache.over(&f.hashes);
    for n in [150, MAX] {
        assert_eq!(root(&cached, u(n)).unwrap(), f.roots[n]);
        let proof = inclusion_proof(&cached, 120, u(n)).unwrap();
        verify_inclusion(&f.hashes[120], 120, u(n), &proof, &f.roots[n]).unwrap();
    }
}

#[test]
fn subtree_cache_truncates_to_what_pushing_fewer_leaves_gives() {
    let f = fixture();
    for min_level in [0, 2, 4] {
        let full = SubtreeCache::from_leaves(&f.hashes, min_level);
        for n in 0..=MAX {
            let mut cut = full.clone();
            cut.truncate(u(n), &f.hashes);
            assert_eq!(
                cut,
                SubtreeCache::from_leaves(&f.hashes[..n], min_level),
                "{n}"
            );
            assert_eq!(cut.root(), f.roots[n]);
        }
        // Truncating to the current size or beyond changes nothing; pushing carries on.
        let mut cut = full.clone();
        cut.truncate(u(MAX), &f.hashes);
        cut.truncate(u(MAX) + 5, &f.hashes);
        assert_eq!(cut, full);
        cut.truncate(77, &f.hashes);
        for hash in &f.hashes[77..] {
            cut.push(*hash);
        }
        assert_eq!(cut, full);
    }
}

// ---------------------------------------------------------------------------------------
// Scale: huge trees (iteration, not recursion; no overflow) and a million leaves.

/// A tree whose leaves are all the same hash, so that every perfect subtree of a level has
/// one known hash: trees of up to 2^64 − 1 leaves, answered in O(1) per subtree.
struct Uniform {
    size: u64,
    by_level: Vec<Hash>,
}

impl Uniform {
    fn new(size: u64) -> Self {
        let mut by_level = vec![leaf_hash(b"same")];
        for level in 1..64 {
            let below = by_level[level - 1];
            by_level.push(node_hash(&below, &below));
        }
        Uniform { size, by_level }
    }
}

impl LeafHashes for Uniform {
    fn len(&self) -> u64 {
        self.size
    }

    fn leaf(&self, _index: u64) -> Hash {
        self.by_level[0]
    }

    fn perfect_subtree(&self, level: u32, _index: u64) -> Hash {
        self.by_level[level as usize]
    }
}

#[test]
fn huge_trees_prove_and_verify() {
    let sizes = [
        1 << 24,
        (1 << 24) + 1,
        (1 << 40) + 12_345,
        u64::MAX / 3,
        u64::MAX - 1,
        u64::MAX,
    ];
    for &size in &sizes {
        let tree = Uniform::new(size);
        let root_n = root(&tree, size).unwrap();
        let leaf = tree.by_level[0];
        for index in [0, 1, size / 2, size / 3 + 7, size - 2, size - 1] {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            verify_inclusion(&leaf, index, size, &proof, &root_n).unwrap();
        }
        for old in [1, 2, 3, 1 << 20, (1 << 20) + 5, size / 2, size - 1] {
            let old_root = root(&tree, old).unwrap();
            let proof = consistency_proof(&tree, old, size).unwrap();
            verify_consistency(old, size, &old_root, &root_n, &proof).unwrap();
            assert!(verify_consistency(old, size, &root_n, &root_n, &proof).is_err());
        }
    }
}

#[test]
fn default_perfect_subtree_is_iterative() {
    // 2^20 leaves through the default (leaf-by-leaf) path, with O(20) memory.
    struct Plain(Uniform);
    impl LeafHashes for Plain {
        fn len(&self) -> u64 {
            self.0.size
        }
        fn leaf(&self, index: u64) -> Hash {
            self.0.leaf(index)
        }
    }
    let plain = Plain(Uniform::new(1 << 20));
    assert_eq!(plain.perfect_subtree(20, 0), plain.0.by_level[20]);
    assert_eq!(root(&plain, 1 << 20).unwrap(), plain.0.by_level[20]);
}

/// Counts leaf reads, to check what a proof costs without timing it.
struct Counting<'a> {
    inner: &'a [Hash],
    reads: Cell<u64>,
}

impl LeafHashes for Counting<'_> {
    fn len(&self) -> u64 {
        self.inner.len() as u64
    }

    fn leaf(&self, index: u64) -> Hash {
        self.reads.set(self.reads.get() + 1);
        self.inner[index as usize]
    }
}

#[test]
fn a_million_leaves() {
    const N: u64 = 1_000_000;
    const MIN_LEVEL: u32 = 8;

    // What verifying a whole log costs: hash every event, fold them into a frontier.
    let started = Instant::now();
    let mut range = CompactRange::new();
    let mut hashes = Vec::with_capacity(N as usize);
    for i in 0..N {
        let hash = leaf_hash(format!("{{\"event\":{i}}}").as_bytes());
        range.push(hash);
        hashes.push(hash);
    }
    let full_root = range.root();
    eprintln!("hash {N} events and fold the root: {:?}", started.elapsed());

    let started = Instant::now();
    assert_eq!(root(&hashes, N).unwrap(), full_root);
    eprintln!(
        "root() over {N} stored leaf hashes: {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let cache = SubtreeCache::from_leaves(&hashes, MIN_LEVEL);
    eprintln!("SubtreeCache::from_leaves: {:?}", started.elapsed());
    assert_eq!(cache.root(), full_root);
    let counting = Counting {
        inner: &hashes,
        reads: Cell::new(0),
    };
    let counted = cache.over(&counting);
    assert_eq!(root(&counted, N).unwrap(), full_root);

    let mut slowest = std::time::Duration::ZERO;
    for index in [0, 1, 255, 256, 123_456, 524_287, 524_288, 999_998, 999_999] {
        counting.reads.set(0);
        let started = Instant::now();
        let proof = inclusion_proof(&counted, index, N).unwrap();
        slowest = slowest.max(started.elapsed());
        // Below the cached level, at most one subtree per level is read from the leaves.
        assert!(
            counting.reads.get() < 2 << MIN_LEVEL,
            "{} reads",
            counting.reads.get()
        );
        verify_inclusion(&hashes[index as usize], index, N, &proof, &full_root).unwrap();
    }
    eprintln!("slowest inclusion proof at {N} leaves (cached): {slowest:?}");

    for old in [1, 1000, 500_000, 524_288, 999_999] {
        counting.reads.set(0);
        let proof = consistency_proof(&counted, old, N).unwrap();
        assert!(
            counting.reads.get() < 2 << MIN_LEVEL,
            "{} reads",
            counting.reads.get()
        );
        let old_root = root(&counted, old).unwrap();
        verify_consistency(old, N, &old_root, &full_root, &proof).unwrap();
    }
}
