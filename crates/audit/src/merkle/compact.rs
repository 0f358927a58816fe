//! The writer's side of the tree: the compact frontier that yields the root at any size as
//! leaves are appended, and an in-memory cache of large perfect subtrees for fast proofs.

use super::{Hash, LeafHashes, ProofError, empty_root, node_hash};

/// The frontier of an append-only RFC 9162 tree: the roots of the perfect subtrees that
/// make up its first [`size`](Self::size) leaves, one per set bit of the size, largest
/// (leftmost) first: at most ⌊log2(n)⌋ + 1 hashes (32 for four billion leaves).
///
/// A writer keeps one per tenant, [`push`](Self::push)es each new leaf hash and reads the
/// current [`root`](Self::root) without re-hashing the tree; it persists
/// [`frontier`](Self::frontier) with the size and restores it with
/// [`from_frontier`](Self::from_frontier). Its root always equals
/// [`root`](super::root) of the same leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a frontier saved from [`frontier`](Self::frontier) for a tree of `size`
    /// leaves. Fails unless there is exactly one hash per set bit of `size`; the hashes
    /// themselves cannot be checked here (compare the resulting root with a signed one).
    pub fn from_frontier(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(ProofError::WrongFrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// The perfect-subtree roots, largest (leftmost) first, for persistence.
    pub fn frontier(&self) -> &[Hash] {
        &self.hashes
    }

    /// How many leaves have been appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the next leaf hash. Cost: amortised 1 node hash (at most log2(n)).
    pub fn push(&mut self, leaf_hash: Hash) {
        self.push_reporting(leaf_hash, |_, _, _| {});
    }

    /// Appends the next leaf hash and reports every perfect subtree it completes, the leaf
    /// itself included, as `(level, index, hash)`: the subtree of `2^level` leaves starting
    /// at leaf `index << level`.
    pub(crate) fn push_reporting(
        &mut self,
        leaf_hash: Hash,
        mut on_subtree: impl FnMut(u32, u64, &Hash),
    ) {
        let index = self.size;
        let mut hash = leaf_hash;
        let mut level = 0;
        on_subtree(level, index, &hash);
        // Leaf `index` completes one subtree per trailing one bit of `index`.
        while (index >> level) & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("the frontier holds one hash per set bit of the size");
            hash = node_hash(&left, &hash);
            level += 1;
            on_subtree(level, index >> level, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// `MTH` of the leaves appended so far ([`empty_root`] when there are none), folding the
    /// frontier from the right. Cost: one node hash per frontier hash but the first.
    pub fn root(&self) -> Hash {
        let mut hashes = self.hashes.iter().rev();
        match hashes.next() {
            None => empty_root(),
            Some(&last) => hashes.fold(last, |right, left| node_hash(left, &right)),
        }
    }
}

/// The hashes of every perfect subtree of at least `2^min_level` leaves of an append-only
/// tree, kept in memory so that proofs over millions of leaves need microseconds, not a pass
/// over the whole log.
///
/// It holds about `n / 2^(min_level − 1)` hashes (for `min_level = 8` and a million leaves,
/// ~8,000 hashes, 250 KiB) and is built as leaves are [`push`](Self::push)ed, at the cost
/// of a [`CompactRange`] push, or once with [`from_leaves`](Self::from_leaves) (O(n)
/// hashes). [`over`](Self::over) pairs it with the leaf hashes it was built from; proofs
/// and roots over the pair then cost O(log n) lookups plus fewer than `2^(min_level + 1)`
/// leaf reads and hashes for the subtrees below `min_level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtreeCache {
    min_level: u32,
    range: CompactRange,
    /// `levels[i]`: the perfect subtrees of `2^(min_level + i)` leaves, by index.
    levels: Vec<Vec<Hash>>,
}

impl SubtreeCache {
    /// An empty cache that will keep subtrees of `2^min_level` leaves or more.
    pub fn new(min_level: u32) -> Self {
        Self {
            min_level,
            range: CompactRange::new(),
            levels: Vec::new(),
        }
    }

    /// A cache of the perfect subtrees of all of `leaves`. Cost: reads every leaf once and
    /// computes about one node hash per leaf.
    pub fn from_leaves(leaves: &(impl LeafHashes + ?Sized), min_level: u32) -> Self {
        let mut cache = Self::new(min_level);
        for index in 0..leaves.len() {
            cache.push(leaves.leaf(index));
        }
        cache
    }

    /// Appends the next leaf hash, recording the large subtrees it completes. Cost: as
    /// [`CompactRange::push`].
    pub fn push(&mut self, leaf_hash: Hash) {
        let min_level = self.min_level;
        let levels = &mut self.levels;
        self.range.push_reporting(leaf_hash, |level, index, hash| {
            let Some(slot) = level.checked_sub(min_level) else {
                return;
            };
            let slot = slot as usize;
            // Level L's first subtree completes before level L + 1's, so levels grow by one.
            if levels.len() == slot {
                levels.push(Vec::new());
            }
            debug_assert_eq!(levels[slot].len() as u64, index);
            levels[slot].push(*hash);
        });
    }

    /// How many leaves have been appended.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// Forgets every leaf from `size` on, leaving the cache as if only the first `size`
    /// leaves had been pushed; does nothing if it holds `size` leaves or fewer.
    ///
    /// `leaves` must hold the leaf hashes that were pushed (at least the first `size`). It
    /// is read only for the new frontier's subtrees smaller than `2^min_level` leaves:
    /// fewer than `2^min_level` leaf reads, plus O(log n) node hashes.
    pub fn truncate(&mut self, size: u64, leaves: &(impl LeafHashes + ?Sized)) {
        if size >= self.size() {
            return;
        }
        // The new frontier: one perfect subtree per set bit of `size`, largest first. The
        // large ones are complete subtrees of the old tree, so the cache holds them.
        let mut frontier = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            if (size >> level) & 1 == 1 {
                let index = start >> level;
                let hash = self
                    .get(level, index)
                    .unwrap_or_else(|| leaves.perfect_subtree(level, index));
                frontier.push(hash);
                start += 1 << level;
            }
        }
        for (slot, hashes) in self.levels.iter_mut().enumerate() {
            let keep = size.checked_shr(self.min_level + slot as u32).unwrap_or(0);
            hashes.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
        self.range = CompactRange {
            size,
            hashes: frontier,
        };
    }

    /// The smallest subtree level kept.
    pub fn min_level(&self) -> u32 {
        self.min_level
    }

    /// `MTH` of the leaves appended so far, from the frontier (no reads).
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The hash of the perfect subtree of `2^level` leaves starting at leaf
    /// `index << level`, if it is kept: `level >= min_level` and the subtree is complete.
    pub fn get(&self, level: u32, index: u64) -> Option<Hash> {
        let slot = level.checked_sub(self.min_level)? as usize;
        let index = usize::try_from(index).ok()?;
        self.levels.get(slot)?.get(index).copied()
    }

    /// The leaf hashes this cache was built from, answering large perfect subtrees from the
    /// cache. `leaves` must hold the same leaf hashes, in the same order, as were pushed;
    /// it may hold more (subtrees the cache lacks are computed from the leaves).
    pub fn over<'a, L: LeafHashes + ?Sized>(&'a self, leaves: &'a L) -> CachedLeaves<'a, L> {
        CachedLeaves {
            cache: self,
            leaves,
        }
    }
}

/// Leaf hashes paired with a [`SubtreeCache`] built from them (see [`SubtreeCache::over`]).
#[derive(Debug)]
pub struct CachedLeaves<'a, L: ?Sized> {
    cache: &'a SubtreeCache,
    leaves: &'a L,
}

impl<L: LeafHashes + ?Sized> LeafHashes for CachedLeaves<'_, L> {
    fn len(&self) -> u64 {
        self.leaves.len()
    }

    fn leaf(&self, index: u64) -> Hash {
        self.leaves.leaf(index)
    }

    /// From the cache when it holds the subtree, otherwise from the leaves.
    fn perfect_subtree(&self, level: u32, index: u64) -> Hash {
        match self.cache.get(level, index) {
            Some(hash) => hash,
            None => self.leaves.perfect_subtree(level, index),
        }
    }
}
