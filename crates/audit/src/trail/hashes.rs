//! `hashes.bin` read through the [`LeafHashes`] trait, so the Merkle functions can prove
//! straight from the file.

use std::cell::RefCell;

use super::files::{HASH_LEN, TrailFile};
use crate::error::AuditError;
use crate::merkle::{CompactRange, Hash, LeafHashes};

/// How many hashes one read fetches when a whole subtree is combined.
const CHUNK: u64 = 1024;

/// The first `len` records of `hashes.bin`.
///
/// [`LeafHashes`] cannot fail, so a read error is kept (the first one) and zero hashes are
/// returned meanwhile; [`finish`](Self::finish) turns the result into an error if any read
/// failed. Results computed while a read failed are never returned.
pub(crate) struct FileHashes<'a> {
    file: &'a TrailFile,
    len: u64,
    error: RefCell<Option<AuditError>>,
}

impl<'a> FileHashes<'a> {
    /// The first `len` hash records of `file`.
    pub(crate) fn new(file: &'a TrailFile, len: u64) -> Self {
        FileHashes {
            file,
            len,
            error: RefCell::new(None),
        }
    }

    /// `value`, unless a read failed while it was computed.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, AuditError> {
        match self.error.into_inner() {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }

    /// Fills `buf` with consecutive records from record `first`, remembering a failure.
    fn read(&self, first: u64, buf: &mut [u8]) {
        if let Err(error) = self.file.read_at(buf, first * HASH_LEN) {
            buf.fill(0);
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                *slot = Some(error);
            }
        }
    }
}

impl LeafHashes for FileHashes<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn leaf(&self, index: u64) -> Hash {
        let mut hash = [0u8; 32];
        self.read(index, &mut hash);
        hash
    }

    /// Reads the subtree's records in a few large reads rather than one per leaf.
    fn perfect_subtree(&self, level: u32, index: u64) -> Hash {
        let start = index << level;
        let end = start + (1u64 << level);
        let mut range = CompactRange::new();
        let mut buf = vec![0u8; (CHUNK.min(end - start) * HASH_LEN) as usize];
        let mut at = start;
        while at < end {
            let count = CHUNK.min(end - at);
            let bytes = &mut buf[..(count * HASH_LEN) as usize];
            self.read(at, bytes);
            for record in bytes.chunks_exact(HASH_LEN as usize) {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(record);
                range.push(hash);
            }
            at += count;
        }
        range.root()
    }
}
