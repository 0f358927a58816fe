//! RFC 9162 §2.1 Merkle tree hashes, inclusion and consistency proofs, and their verification.
//!
//! Notation follows the RFC: `D[n]` is the list of the first `n` leaves, `MTH` the Merkle
//! Tree Hash, `PATH(m, D[n])` the inclusion proof of leaf `m` and `PROOF(m, D[n])` the
//! consistency proof from size `m` to size `n`. Leaves are handled as their leaf hashes
//! (`HASH(0x00 || entry)`), which is what a log stores; the entries themselves never reach
//! this module.
//!
//! Generation walks the tree from the root down with loops (never recursion) and asks the
//! [`LeafHashes`] source only for the hashes of the perfect subtrees it needs; see the crate
//! documentation for the costs this implies. Verification follows the RFC's numbered steps
//! literally, after an up-front check of the proof length that only makes errors clearer.

use sha2::{Digest, Sha256};

mod compact;

pub use compact::{CachedLeaves, CompactRange, SubtreeCache};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || leaf)` (RFC 9162 §2.1.1).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1),
/// `e3b0c442…b855`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Why a tree hash or a proof could not be produced, or why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree (`index >= size`; every index is outside the
    /// empty tree).
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size it was asked for.
        size: u64,
    },
    /// The tree size asked for is larger than the number of leaves available.
    #[error("tree size {size} exceeds the {available} leaves available")]
    SizeOutOfRange {
        /// The tree size asked for.
        size: u64,
        /// How many leaf hashes the source holds.
        available: u64,
    },
    /// A consistency proof was asked for, or presented, from a larger tree to a smaller one.
    #[error("old tree size {old_size} exceeds new tree size {new_size}")]
    OldSizeExceedsNewSize {
        /// The old (earlier) tree size.
        old_size: u64,
        /// The new (later) tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree: RFC 9162 defines `PROOF(m, D[n])` and its
    /// verification only for `0 < m`. Every tree extends the empty tree, so there is nothing
    /// to prove; callers that start from nothing should skip the check instead.
    #[error(
        "a consistency proof from the empty tree is not defined (RFC 9162 requires 0 < old size)"
    )]
    EmptyOldTree,
    /// The proof does not have the number of hashes that the sizes (and index) imply.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length RFC 9162 implies for these sizes.
        expected: usize,
        /// The length presented.
        got: usize,
    },
    /// A [`CompactRange`] frontier must hold exactly one hash per set bit of its size.
    #[error("a frontier for tree size {size} has {expected} hashes, got {got}")]
    WrongFrontierLength {
        /// The tree size given with the frontier.
        size: u64,
        /// The number of set bits of `size`.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A consistency proof rebuilt a different old root than the one given.
    #[error("the proof does not lead to the given old root")]
    OldRootMismatch,
    /// The proof rebuilt a different (new) root than the one given.
    #[error("the proof does not lead to the given root")]
    RootMismatch,
}

/// Read access to a log's stored leaf hashes, so trees of millions of leaves can be hashed
/// and proven straight from storage, reading only what is needed.
///
/// Implemented for `[Hash]` and `Vec<Hash>` (leaf `i` at position `i`). A store implements
/// [`len`](Self::len) and [`leaf`](Self::leaf); if it also keeps interior hashes it should
/// override [`perfect_subtree`](Self::perfect_subtree), which turns every tree hash and
/// proof in this module from O(n) into O(log n) work. [`SubtreeCache`] does that in memory.
pub trait LeafHashes {
    /// How many leaf hashes are available.
    fn len(&self) -> u64;

    /// Whether no leaf hash is available.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of leaf `index`. Callers ask only for `index < self.len()`; an
    /// implementation may panic otherwise.
    fn leaf(&self, index: u64) -> Hash;

    /// The Merkle Tree Hash of the perfect subtree of `2^level` leaves that starts at leaf
    /// `index << level`, i.e. `MTH(D[index·2^level : (index+1)·2^level])`.
    ///
    /// Callers ask only for subtrees that lie within `self.len()` leaves. The default reads
    /// the `2^level` leaves and combines them iteratively: `2^level − 1` node hashes and
    /// O(`level`) memory, never recursion. Stores that keep interior hashes override it.
    fn perfect_subtree(&self, level: u32, index: u64) -> Hash {
        let start = index << level;
        let mut range = CompactRange::new();
        for offset in 0..(1u64 << level) {
            range.push(self.leaf(start + offset));
        }
        range.root()
    }
}

impl LeafHashes for [Hash] {
    fn len(&self) -> u64 {
        <[Hash]>::len(self) as u64
    }

    fn leaf(&self, index: u64) -> Hash {
        self[usize::try_from(index).expect("leaf index fits in usize")]
    }
}

impl LeafHashes for Vec<Hash> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn leaf(&self, index: u64) -> Hash {
        self.as_slice().leaf(index)
    }
}

/// `MTH(D[0:size])`, the root of the tree made of the first `size` leaves (RFC 9162 §2.1.1);
/// [`empty_root`] for `size == 0`.
///
/// Cost: one [`LeafHashes::perfect_subtree`] call per set bit of `size` plus as many node
/// hashes, so O(n) hashes over plain leaf hashes and O(log n) lookups over a source that
/// answers subtrees directly. A writer appending leaves should keep a [`CompactRange`],
/// whose root costs O(log n) hashes and no reads.
pub fn root(leaves: &(impl LeafHashes + ?Sized), size: u64) -> Result<Hash, ProofError> {
    check_size(leaves, size)?;
    Ok(if size == 0 {
        empty_root()
    } else {
        range_hash(leaves, 0, size)
    })
}

/// `PATH(index, D[size])`, the inclusion proof of leaf `index` in the tree of the first
/// `size` leaves (RFC 9162 §2.1.3.1), ordered from the leaf's sibling up to the root's
/// child, as [`verify_inclusion`] expects.
///
/// Cost: the proof holds O(log n) hashes; producing it needs the hashes of subtrees that
/// together cover the other `size − 1` leaves. Over plain leaf hashes that is O(n) reads and
/// hashes; over a source that answers perfect subtrees directly it is O(log n) lookups
/// (plus, with a [`SubtreeCache`] of level `k`, fewer than 2^(k+1) leaf reads and hashes).
pub fn inclusion_proof(
    leaves: &(impl LeafHashes + ?Sized),
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    check_size(leaves, size)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root; each step records the sibling of the subtree holding the
    // leaf. PATH lists them bottom-up, so the walk's order is reversed at the end.
    let mut path = Vec::with_capacity(inclusion_proof_len(index, size));
    let (mut start, mut end) = (0, size);
    while end - start > 1 {
        let k = split_point(end - start);
        let mid = start + k;
        if index < mid {
            path.push(range_hash(leaves, mid, end));
            end = mid;
        } else {
            path.push(leaves.perfect_subtree(k.trailing_zeros(), start / k));
            start = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// `PROOF(old_size, D[new_size])`, the consistency proof that the tree of the first
/// `new_size` leaves extends the tree of the first `old_size` leaves (RFC 9162 §2.1.4.1).
///
/// `old_size == new_size` gives the empty proof (`SUBPROOF(m, D[m], true)`);
/// `old_size == 0` is [`ProofError::EmptyOldTree`], as the RFC defines `PROOF` only for
/// `0 < m`.
///
/// Cost: like [`inclusion_proof`], O(n) reads and hashes over plain leaf hashes, O(log n)
/// lookups over a source that answers perfect subtrees directly.
pub fn consistency_proof(
    leaves: &(impl LeafHashes + ?Sized),
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    check_size(leaves, new_size)?;
    check_sizes(old_size, new_size)?;
    // Walk down from the root of D[new_size] as SUBPROOF does; `complete` is its `b`: whether
    // the current subtree is still a prefix of the whole new tree (then the old root needs no
    // proof hash of its own, the verifier knows it).
    let mut proof = Vec::new();
    let (mut start, mut end) = (0, new_size);
    let mut complete = true;
    while old_size < end {
        let k = split_point(end - start);
        let mid = start + k;
        if old_size <= mid {
            proof.push(range_hash(leaves, mid, end));
            end = mid;
        } else {
            proof.push(leaves.perfect_subtree(k.trailing_zeros(), start / k));
            start = mid;
            complete = false;
        }
    }
    if !complete {
        proof.push(range_hash(leaves, start, end));
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `proof` proves the leaf with hash `leaf_hash` at `index` in the tree of
/// `size` leaves whose root is `root`, following RFC 9162 §2.1.3.2 step by step.
///
/// The proof length is checked against the one `index` and `size` imply before the RFC's
/// steps run (the RFC's own `sn` checks reject the same proofs, less informatively). Note
/// that, as in the RFC, the tree size is authenticated by the tree head that `root` comes
/// from, not by the proof. Cost: O(log n) hashes, no reads.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // Step 1: the index must be inside the tree.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Step 2.
    let mut f_n = index;
    let mut s_n = size - 1;
    // Step 3.
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if s_n == 0 {
            return Err(wrong_length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    if s_n != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` proves the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root`, following RFC 9162 §2.1.4.2 step by step.
///
/// Every step is enforced, including the ones whose omission lets forged proofs through:
/// - `old_size > new_size` is rejected; `old_size == 0` is [`ProofError::EmptyOldTree`]
///   (the RFC's algorithm is for `0 < first`; the empty tree is extended by every tree and
///   has nothing to prove, so callers starting from nothing skip the check);
/// - `old_size == new_size` requires an empty proof and `old_root == new_root`;
/// - otherwise the proof must be non-empty (step 1), `old_root` is prepended when
///   `old_size` is a power of two (step 2), and at the end the rebuilt old root must equal
///   `old_root`, the rebuilt new root must equal `new_root`, and the proof must be consumed
///   exactly (`sn` reaches 0, never before the last hash) (step 7).
///
/// The proof length is also checked up front against the one the sizes imply. Cost:
/// O(log n) hashes, no reads.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    check_sizes(old_size, new_size)?;
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    // From here on 0 < old_size < new_size, as RFC 9162 §2.1.4.2 requires.
    let expected = consistency_proof_len(old_size, new_size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Step 1: an empty consistency_path fails.
    let Some((head, tail)) = proof.split_first() else {
        return Err(wrong_length);
    };
    // Step 2: if first is an exact power of 2, prepend first_hash to the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (head, tail)
    };
    // Step 3.
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    // Step 4.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut fr = *first;
    let mut sr = *first;
    // Step 6.
    for c in rest {
        if s_n == 0 {
            return Err(wrong_length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7: sn must be 0, and both rebuilt roots must match.
    if s_n != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Rejects a tree size larger than the leaves available.
fn check_size(leaves: &(impl LeafHashes + ?Sized), size: u64) -> Result<(), ProofError> {
    let available = leaves.len();
    if size > available {
        return Err(ProofError::SizeOutOfRange { size, available });
    }
    Ok(())
}

/// Rejects size pairs for which RFC 9162 defines no consistency proof.
fn check_sizes(old_size: u64, new_size: u64) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNewSize { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    Ok(())
}

/// The RFC's `k`: the largest power of two smaller than `n`, for `n >= 2`.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a subtree of the RFC tree (`start < end`, `start` a multiple of
/// the smallest power of two `>= end - start`, as every subtree of an RFC tree is).
///
/// Such a range splits into perfect subtrees, one per set bit of its size, largest first;
/// its hash folds them from the right: `MTH = H(P1, H(P2, … Pk))`.
fn range_hash(leaves: &(impl LeafHashes + ?Sized), start: u64, end: u64) -> Hash {
    let mut rest = end - start;
    let mut level = rest.trailing_zeros();
    let mut chunk_start = end - (1 << level);
    let mut hash = leaves.perfect_subtree(level, chunk_start >> level);
    rest &= rest - 1;
    while rest != 0 {
        level = rest.trailing_zeros();
        chunk_start -= 1 << level;
        hash = node_hash(&leaves.perfect_subtree(level, chunk_start >> level), &hash);
        rest &= rest - 1;
    }
    hash
}

/// The length of `PATH(index, D[size])` for `index < size`: one hash per level where the
/// leaf's subtree has a full sibling (`inner`) plus one per right-border step (`border`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (inner, border) = decompose_inclusion(index, size);
    (inner + border) as usize
}

/// The length of `PROOF(old_size, D[new_size])` for `0 < old_size < new_size`.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (inner, border) = decompose_inclusion(old_size - 1, new_size);
    // The lowest `shift` levels of the old tree's last leaf path lie inside one perfect
    // subtree of the old tree; it is one proof hash, or none when it is the whole old tree
    // (whose root the verifier already has). `inner > shift` whenever old_size < new_size.
    let shift = old_size.trailing_zeros();
    let seed = u32::from(!old_size.is_power_of_two());
    (inner - shift + border + seed) as usize
}

/// Splits the inclusion path of leaf `index` in a tree of `size` leaves into its `inner`
/// levels (below the point where the paths to `index` and to the last leaf diverge) and its
/// `border` levels (above it, one per left sibling on the right border).
fn decompose_inclusion(index: u64, size: u64) -> (u32, u32) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}
