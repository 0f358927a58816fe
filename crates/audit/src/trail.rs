//! One tenant's audit trail on disk: an append-only, crash-safe store of leaves, their leaf
//! hashes, and the Merkle tree over them.
//!
//! A trail is a directory with two files, and a third once leaves are pruned:
//!
//! - `leaves.log`: one frame per leaf, `[u32 LE length][u32 LE CRC-32C (Castagnoli) of the
//!   bytes][bytes]`, back to back; once rewritten without pruned leaves, after a 16-byte
//!   header naming its first leaf (see [`TrailStore::compact`]);
//! - `hashes.bin`: the 32-byte RFC 9162 leaf hash of leaf `i` at offset `32 * i`, for every
//!   leaf, pruned or not;
//! - `pruned.log`: how many leaves, from the first, are pruned, with a stub the writer
//!   chose for each (see [`TrailStore::prune`]).
//!
//! [`TrailStore::append`] writes and fsyncs `leaves.log`, then writes and fsyncs
//! `hashes.bin`, so a crash leaves at most the last append incomplete: a torn tail.
//! [`TrailStore::open`] cuts that tail back (see [`Recovery`]). Logbook's server never cuts
//! more: the trail is the source of truth, and the server re-indexes leaves its database
//! lacks rather than drop them.
//!
//! Pruning removes the bodies of the oldest leaves and keeps their hashes, so every root,
//! proof and checkpoint stays the same; the files change only by appends, and by renaming
//! a rewritten `leaves.log` over the old one, never in place.
//!
//! In memory the store keeps the offset of every frame in `leaves.log` (8 bytes per leaf),
//! so reading a leaf is one read, and a [`SubtreeCache`] of the tree (about 250 KiB per million leaves), so the
//! current root is O(log n) hashes and proofs are O(log n) small reads.

mod files;
mod hashes;
mod prune;
mod pruned;
mod reader;
mod recovery;

use std::ops::Range;
use std::path::{Path, PathBuf};

use files::{FRAME_HEADER, HASH_LEN, HASHES_FILE, LEAVES_FILE, REWRITE_FILE, TrailFile};
use hashes::FileHashes;
use pruned::PrunedLog;
pub use reader::{FrameSpan, LeafReader, read_leaves, read_leaves_in};
use recovery::Layout;

use crate::error::AuditError;
use crate::merkle::{self, Hash, ProofError, SubtreeCache, leaf_hash};
use crate::signing::sync_dir;

/// The smallest subtree level the in-memory cache keeps: subtrees of 256 leaves and up.
/// Proofs then read fewer than 512 hashes from `hashes.bin`, in a few large reads.
const CACHE_LEVEL: u32 = 8;

/// What [`TrailStore::open`] cut from the ends of the files to make them agree.
///
/// A crash during an append can leave a partial frame at the end of `leaves.log`, and
/// `hashes.bin` shorter than the leaves, longer, or not a multiple of 32 bytes. Open keeps
/// the longest prefix on which the two files agree: complete frames, as many hash records,
/// and a last frame whose checksum is right and whose leaf hash is its record. Damage
/// *before* that tail is not repaired: a leaf changed in place keeps its frame and record and
/// is reported by verification ([`verify_trail`](crate::verify_trail)) against the signed
/// checkpoints. Cutting more than the server's last append is a sign of such damage: the
/// server compares [`TrailStore::size`] with the size its database committed. (Open
/// refuses a trail whose `hashes.bin` is missing altogether rather than cut every leaf.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Complete frames dropped from the end of `leaves.log`: without a hash record, with a
    /// wrong checksum, or with a record that is not their leaf hash.
    pub frames_dropped: u64,
    /// Bytes cut from the end of `leaves.log` (dropped frames and any partial frame).
    pub leaves_bytes_cut: u64,
    /// Bytes cut from the end of `hashes.bin`.
    pub hashes_bytes_cut: u64,
    /// Bytes cut from the end of `pruned.log`: a prune that did not finish.
    pub pruned_bytes_cut: u64,
}

impl Recovery {
    /// Whether open found both files already in agreement and cut nothing.
    pub fn is_clean(&self) -> bool {
        *self == Recovery::default()
    }
}

/// An open trail directory (see the [module documentation](self)). It holds an exclusive
/// lock on the trail: a second store on the same directory fails to open with
/// [`AuditError::Locked`].
#[derive(Debug)]
pub struct TrailStore {
    dir: PathBuf,
    leaves: TrailFile,
    hashes: TrailFile,
    pruned: PrunedLog,
    /// The first leaf whose frame is in `leaves.log` (0 until it is rewritten).
    base: u64,
    /// `offsets[i]`: where the frame of leaf `base + i` starts; the last entry: where the
    /// last frame ends.
    offsets: Vec<u64>,
    cache: SubtreeCache,
    recovery: Recovery,
    /// Set when a failed write could not be undone: writes are refused until reopening.
    poisoned: bool,
}

impl TrailStore {
    /// Opens the trail in `dir`, creating the directory and empty files if needed, and
    /// recovers from a crash (see [`Recovery`], available from [`recovery`](Self::recovery)).
    ///
    /// Reads all of `hashes.bin` (to rebuild the tree cache) and the frame headers of
    /// `leaves.log` (to index the frames): linear in the trail's size.
    pub fn open(dir: &Path) -> Result<TrailStore, AuditError> {
        let existed = dir.is_dir();
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create directory", dir, e))?;
        if !existed && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let leaves = TrailFile::open(dir, LEAVES_FILE)?;
        leaves.lock(dir)?;
        // A rewrite that did not reach its rename: the old file is still the trail.
        match std::fs::remove_file(dir.join(REWRITE_FILE)) {
            Ok(()) => sync_dir(dir)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(AuditError::io("remove", &dir.join(REWRITE_FILE), error)),
        }
        let hashes_path = dir.join(HASHES_FILE);
        if !hashes_path.exists() && leaves.len()? > 0 {
            // Not a torn tail: recovery would cut every leaf.
            return Err(AuditError::Corrupt {
                path: hashes_path,
                detail: format!("missing while {LEAVES_FILE} holds leaves; restore it"),
            });
        }
        let hashes = TrailFile::open(dir, HASHES_FILE)?;
        sync_dir(dir)?;

        let (base, start) =
            files::read_header(&leaves.prefix()?).map_err(|detail| AuditError::Corrupt {
                path: leaves.path.clone(),
                detail,
            })?;
        let (pruned, pruned_bytes_cut) = PrunedLog::open(dir)?;
        if pruned.count() < base {
            return Err(AuditError::Corrupt {
                path: leaves.path.clone(),
                detail: format!(
                    "it starts at leaf {base} but only {} leaves are recorded as pruned",
                    pruned.count()
                ),
            });
        }
        let layout = Layout {
            base,
            start,
            floor: pruned.count(),
        };
        let (offsets, mut recovery) = recovery::recover(&leaves, &hashes, &layout)?;
        recovery.pruned_bytes_cut = pruned_bytes_cut;
        let size = base + offsets.len() as u64 - 1;
        let cache = build_cache(&hashes, size)?;
        Ok(TrailStore {
            dir: dir.to_path_buf(),
            leaves,
            hashes,
            pruned,
            base,
            offsets,
            cache,
            recovery,
            poisoned: false,
        })
    }

    /// The trail directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening cut from the files' tails.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The number of leaves, pruned or not.
    pub fn size(&self) -> u64 {
        self.cache.size()
    }

    /// Appends `leaves` (canonical event bytes) as the next leaves and returns their
    /// sequence numbers. Both files are written and fsynced before it returns, so the leaves
    /// survive a crash once it has. On failure nothing is appended (the partial write is cut
    /// off again, or, if even that fails, the store refuses appends until reopened).
    pub fn append(&mut self, leaves: &[Vec<u8>]) -> Result<Range<u64>, AuditError> {
        self.check_writable()?;
        let first = self.size();
        if leaves.is_empty() {
            return Ok(first..first);
        }
        let total: usize = leaves.iter().map(Vec::len).sum();
        let mut frames = Vec::with_capacity(total + leaves.len() * FRAME_HEADER as usize);
        let mut hashes = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let len = u32::try_from(leaf.len())
                .map_err(|_| AuditError::LeafTooLarge { len: leaf.len() })?;
            frames.extend_from_slice(&len.to_le_bytes());
            frames.extend_from_slice(&crc32c::crc32c(leaf).to_le_bytes());
            frames.extend_from_slice(leaf);
            hashes.push(leaf_hash(leaf));
        }
        let frames_at = self.end_offset();
        let hashes_at = first * HASH_LEN;
        if let Err(error) = self.write_durably(&frames, frames_at, &hashes, hashes_at) {
            let undone =
                self.hashes.set_len(hashes_at).is_ok() && self.leaves.set_len(frames_at).is_ok();
            self.poisoned = !undone;
            return Err(error);
        }
        let mut end = frames_at;
        for (leaf, hash) in leaves.iter().zip(&hashes) {
            end += FRAME_HEADER + leaf.len() as u64;
            self.offsets.push(end);
            self.cache.push(*hash);
        }
        Ok(first..self.size())
    }

    /// Writes frames then hashes, each fsynced before the next step.
    fn write_durably(
        &self,
        frames: &[u8],
        frames_at: u64,
        hashes: &[Hash],
        hashes_at: u64,
    ) -> Result<(), AuditError> {
        self.leaves.write_at(frames, frames_at)?;
        self.leaves.sync()?;
        self.hashes.write_at(hashes.as_flattened(), hashes_at)?;
        self.hashes.sync()
    }

    /// Where the next frame goes.
    fn end_offset(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Cuts the trail back to its first `size` leaves and fsyncs both files, for a writer
    /// that knows the leaves beyond `size` were never signed nor acknowledged (Logbook's
    /// server does not use it). Fails if the trail holds fewer than `size` leaves, or if
    /// pruned leaves would be cut.
    pub fn truncate(&mut self, size: u64) -> Result<(), AuditError> {
        self.check_writable()?;
        let current = self.size();
        if size > current {
            return Err(AuditError::TruncateBeyondEnd {
                requested: size,
                size: current,
            });
        }
        if size == current {
            return Ok(());
        }
        if size < self.pruned() {
            return Err(AuditError::Pruned {
                seq: size,
                pruned: self.pruned(),
            });
        }
        let keep = (size - self.base) as usize + 1;
        let result = (|| {
            self.hashes.set_len(size * HASH_LEN)?;
            self.hashes.sync()?;
            self.leaves.set_len(self.offsets[keep - 1])?;
            self.leaves.sync()
        })();
        if let Err(error) = result {
            // The files may be cut only partly; reopening reconciles them.
            self.poisoned = true;
            return Err(error);
        }
        self.offsets.truncate(keep);
        let source = FileHashes::new(&self.hashes, size);
        self.cache.truncate(size, &source);
        if let Err(error) = source.finish(()) {
            self.poisoned = true;
            return Err(error);
        }
        Ok(())
    }

    /// The bytes of leaf `seq`, read with one positioned read; [`AuditError::Pruned`] if
    /// it was pruned (its hash is still there: [`leaf_hash`](Self::leaf_hash)).
    ///
    /// The frame's length is checked against the index, its checksum is not: the checksum
    /// finds torn tails on open, while bytes changed in place are returned as stored so
    /// that verification against the signed checkpoints reports them.
    pub fn leaf(&self, seq: u64) -> Result<Vec<u8>, AuditError> {
        self.check_seq(seq)?;
        self.check_unpruned(seq)?;
        let at = (seq - self.base) as usize;
        let (start, end) = (self.offsets[at], self.offsets[at + 1]);
        let mut frame = vec![0u8; (end - start) as usize];
        self.leaves.read_at(&mut frame, start)?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if u64::from(len) != end - start - FRAME_HEADER {
            return Err(AuditError::Corrupt {
                path: self.leaves.path.clone(),
                detail: format!(
                    "frame {seq} at offset {start} has length {len}, expected {}",
                    end - start - FRAME_HEADER
                ),
            });
        }
        frame.copy_within(FRAME_HEADER as usize.., 0);
        frame.truncate(len as usize);
        Ok(frame)
    }

    /// Where in `leaves.log` the frames of leaves `from..to` are, for [`read_leaves_in`];
    /// [`AuditError::Pruned`] if `from` is pruned.
    pub fn frame_span(&self, from: u64, to: u64) -> Result<FrameSpan, AuditError> {
        if from > to || to > self.size() {
            return Err(AuditError::SeqOutOfRange {
                seq: to.max(from),
                size: self.size(),
            });
        }
        self.check_unpruned(from)?;
        Ok(FrameSpan {
            base: self.base,
            first: from,
            bytes: self.offsets[(from - self.base) as usize]
                ..self.offsets[(to - self.base) as usize],
        })
    }

    /// The stored leaf hash of leaf `seq` (record `seq` of `hashes.bin`).
    pub fn leaf_hash(&self, seq: u64) -> Result<Hash, AuditError> {
        self.check_seq(seq)?;
        let mut hash = [0u8; 32];
        self.hashes.read_at(&mut hash, seq * HASH_LEN)?;
        Ok(hash)
    }

    /// The stored leaf hashes of leaves `from..to` (records `from..to` of `hashes.bin`),
    /// read with one positioned read.
    pub fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditError> {
        if from > to || to > self.size() {
            return Err(AuditError::SeqOutOfRange {
                seq: to.max(from),
                size: self.size(),
            });
        }
        let mut bytes = vec![0u8; ((to - from) * HASH_LEN) as usize];
        self.hashes.read_at(&mut bytes, from * HASH_LEN)?;
        Ok(bytes
            .chunks_exact(HASH_LEN as usize)
            .map(|record| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(record);
                hash
            })
            .collect())
    }

    /// `MTH` of the first `size` leaves. The current size's root comes from memory;
    /// an earlier one costs O(log n) cached subtrees and a few reads.
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        if size == self.size() {
            return Ok(self.cache.root());
        }
        self.with_tree(|tree| merkle::root(tree, size))
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of the first `size` leaves,
    /// for [`verify_inclusion`](crate::verify_inclusion).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.with_tree(|tree| merkle::inclusion_proof(tree, index, size))
    }

    /// The RFC 9162 consistency proof from the tree of the first `from` leaves to that of
    /// the first `to`, for [`verify_consistency`](crate::verify_consistency).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditError> {
        self.with_tree(|tree| merkle::consistency_proof(tree, from, to))
    }

    /// Runs a Merkle function over `hashes.bin` and the subtree cache.
    fn with_tree<T>(
        &self,
        f: impl FnOnce(&merkle::CachedLeaves<'_, FileHashes<'_>>) -> Result<T, ProofError>,
    ) -> Result<T, AuditError> {
        let source = FileHashes::new(&self.hashes, self.size());
        let result = f(&self.cache.over(&source));
        source.finish(())?;
        Ok(result?)
    }

    /// Refuses writes after a failed write that could not be undone.
    fn check_writable(&self) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Rejects a pruned sequence number.
    fn check_unpruned(&self, seq: u64) -> Result<(), AuditError> {
        let pruned = self.pruned();
        if seq < pruned {
            return Err(AuditError::Pruned { seq, pruned });
        }
        Ok(())
    }

    /// Rejects a sequence number outside the trail.
    fn check_seq(&self, seq: u64) -> Result<(), AuditError> {
        if seq >= self.size() {
            return Err(AuditError::SeqOutOfRange {
                seq,
                size: self.size(),
            });
        }
        Ok(())
    }
}

/// The tree cache of the first `size` records of `hashes.bin`, read in large chunks.
fn build_cache(hashes: &TrailFile, size: u64) -> Result<SubtreeCache, AuditError> {
    const CHUNK: u64 = 4096;
    let mut cache = SubtreeCache::new(CACHE_LEVEL);
    let mut buf = vec![0u8; (CHUNK.min(size) * HASH_LEN) as usize];
    let mut at = 0;
    while at < size {
        let count = CHUNK.min(size - at);
        let bytes = &mut buf[..(count * HASH_LEN) as usize];
        hashes.read_at(bytes, at * HASH_LEN)?;
        for record in bytes.chunks_exact(HASH_LEN as usize) {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(record);
            cache.push(hash);
        }
        at += count;
    }
    Ok(cache)
}

#[cfg(test)]
mod tests;
