//! Pruning: removing the bodies of a trail's oldest leaves while keeping their leaf hashes,
//! so that every root, proof and checkpoint of the trail stays what it was.
//!
//! [`TrailStore::prune`] records durably, in `pruned.log`, that the first `n` leaves are
//! pruned, with a stub per leaf (what the writer needs to remember of it: Logbook keeps the
//! event's id). From then on their bodies cannot be read. [`TrailStore::compact`] gives
//! their space back: it writes the frames of the leaves kept to `leaves.log.new`, after a
//! header naming the first of them, fsyncs it, renames it over `leaves.log` and fsyncs the
//! directory. Every step leaves a trail that opens as one of the two states around it:
//!
//! - a crash while `pruned.log` is appended leaves a torn last frame, cut on open: nothing
//!   was pruned;
//! - a crash before the rename leaves `leaves.log.new` beside the old file, removed on
//!   open: pruned, not yet compacted (the pruned frames are skipped, never returned);
//! - after the rename, whether or not the directory's fsync happened, either file is a
//!   complete `leaves.log` whose header (or its absence) says where it starts.
//!
//! Files are never changed in place, so a reader that opened `leaves.log` before a rename
//! keeps reading the file it opened; one that took a [`FrameSpan`](super::FrameSpan) of the old file and
//! opens the new one is told so ([`AuditError::Rewritten`]) by the header.

use super::TrailStore;
use super::files::{HEADER_LEN, LEAVES_FILE, REWRITE_FILE, TrailFile, header};
use crate::error::AuditError;
use crate::signing::sync_dir;

/// How much of `leaves.log` one copy step of [`TrailStore::compact`] reads.
const COPY_CHUNK: u64 = 1 << 20;

impl TrailStore {
    /// How many leaves, from the first, are pruned: their hashes are kept, their bodies
    /// cannot be read.
    pub fn pruned(&self) -> u64 {
        self.pruned.count()
    }

    /// Prunes leaves `pruned()..to`: records durably (fsynced) that the first `to` leaves are
    /// pruned, with `stubs[i]` kept for leaf `pruned() + i`, and from then on refuses to read
    /// their bodies ([`AuditError::Pruned`]). Their bytes stay in `leaves.log` until
    /// [`compact`](Self::compact). Pruning what is already pruned does nothing (`to` at or
    /// below [`pruned`](Self::pruned), with no stubs), so a caller may repeat a prune.
    ///
    /// Fails with [`AuditError::PruneOutOfRange`] if `to` is beyond the trail or the stubs
    /// are not one per newly pruned leaf. On failure nothing is pruned.
    pub fn prune(&mut self, to: u64, stubs: Vec<Vec<u8>>) -> Result<(), AuditError> {
        self.check_writable()?;
        let pruned = self.pruned();
        if to <= pruned && stubs.is_empty() {
            return Ok(());
        }
        if to > self.size() || to < pruned || stubs.len() as u64 != to - pruned {
            return Err(AuditError::PruneOutOfRange {
                requested: to,
                pruned,
                size: self.size(),
            });
        }
        self.pruned.append(stubs).map_err(|(error, poisoned)| {
            self.poisoned |= poisoned;
            error
        })
    }

    /// The stubs kept for pruned leaves `from..to` (fewer if `to` is beyond the pruned ones),
    /// read from `pruned.log`.
    pub fn pruned_stubs(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, AuditError> {
        self.pruned.stubs(from, to)
    }

    /// Bytes of `leaves.log` that hold pruned leaves: what [`compact`](Self::compact) gives
    /// back.
    pub fn pruned_bytes(&self) -> u64 {
        self.offsets[(self.pruned() - self.base) as usize] - self.offsets[0]
    }

    /// Bytes of `leaves.log` that hold the leaves kept: what [`compact`](Self::compact)
    /// copies.
    pub fn kept_bytes(&self) -> u64 {
        self.end_offset() - self.offsets[(self.pruned() - self.base) as usize]
    }

    /// Rewrites `leaves.log` without the frames of pruned leaves, returning their space to
    /// the filesystem (see the [module documentation](self) for the steps and what a crash
    /// at each leaves). Costs a copy of the leaves kept; does nothing when no pruned frame
    /// is left in the file.
    pub fn compact(&mut self) -> Result<(), AuditError> {
        self.check_writable()?;
        let pruned = self.pruned();
        if pruned == self.base {
            return Ok(());
        }
        let from = self.offsets[(pruned - self.base) as usize];
        let end = self.end_offset();
        let path = self.dir.join(REWRITE_FILE);
        let rewritten = self.write_rewrite(pruned, from, end).and_then(|file| {
            std::fs::rename(&path, &self.leaves.path)
                .map_err(|e| AuditError::io("rename", &path, e))?;
            Ok(file)
        });
        let file = match rewritten {
            Ok(file) => file,
            Err(error) => {
                // The old file is untouched and still the trail's.
                let _ = std::fs::remove_file(&path);
                return Err(error);
            }
        };
        // The new file is the trail's now, whether or not the directory is synced: either
        // name leads to a complete file.
        self.leaves = TrailFile {
            file: file.file,
            path: self.dir.join(LEAVES_FILE),
        };
        let kept = (pruned - self.base) as usize;
        self.offsets.drain(..kept);
        for offset in &mut self.offsets {
            *offset = *offset - from + HEADER_LEN;
        }
        self.base = pruned;
        sync_dir(&self.dir)
    }

    /// Writes and fsyncs `leaves.log.new`: the header for leaf `base`, then the bytes
    /// `from..end` of `leaves.log`. Locked before it is renamed, so no second writer can
    /// open the trail in between.
    fn write_rewrite(&self, base: u64, from: u64, end: u64) -> Result<TrailFile, AuditError> {
        let file = TrailFile::open(&self.dir, REWRITE_FILE)?;
        file.set_len(0)?;
        file.lock(&self.dir)?;
        file.write_at(&header(base), 0)?;
        let mut buf = vec![0u8; COPY_CHUNK.min(end - from) as usize];
        let mut at = from;
        while at < end {
            let chunk = &mut buf[..COPY_CHUNK.min(end - at) as usize];
            self.leaves.read_at(chunk, at)?;
            file.write_at(chunk, at - from + HEADER_LEN)?;
            at += chunk.len() as u64;
        }
        file.sync()?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests;
