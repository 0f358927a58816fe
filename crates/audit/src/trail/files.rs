//! The two files of a trail and positioned, error-wrapped I/O on them.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// The leaf frames: `[u32 LE length][u32 LE CRC-32C of the bytes][bytes]`, one per leaf.
pub(crate) const LEAVES_FILE: &str = "leaves.log";

/// The 32-byte leaf hashes, record `i` at offset `32 * i`.
pub(crate) const HASHES_FILE: &str = "hashes.bin";

/// The size of a frame header.
pub(crate) const FRAME_HEADER: u64 = 8;

/// The size of a hash record.
pub(crate) const HASH_LEN: u64 = 32;

/// An open trail file and its path, for error messages.
#[derive(Debug)]
pub(crate) struct TrailFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl TrailFile {
    /// Opens (creating if needed, mode 0600) `name` in `dir` for reading and writing.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<TrailFile, AuditError> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| AuditError::io("open", &path, e))?;
        Ok(TrailFile { file, path })
    }

    /// Takes the exclusive advisory lock that keeps a second writer out.
    pub(crate) fn lock(&self, dir: &Path) -> Result<(), AuditError> {
        match self.file.try_lock() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(AuditError::Locked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(AuditError::io("lock", &self.path, e)),
        }
    }

    /// The file's current length.
    pub(crate) fn len(&self) -> Result<u64, AuditError> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| AuditError::io("stat", &self.path, e))?
            .len())
    }

    /// Fills `buf` from `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), AuditError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| AuditError::io("read", &self.path, e))
    }

    /// Writes all of `buf` at `offset`.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), AuditError> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| AuditError::io("write", &self.path, e))
    }

    /// Cuts (or extends) the file to `len` bytes.
    pub(crate) fn set_len(&self, len: u64) -> Result<(), AuditError> {
        self.file
            .set_len(len)
            .map_err(|e| AuditError::io("truncate", &self.path, e))
    }

    /// Makes the file's data and length durable.
    pub(crate) fn sync(&self) -> Result<(), AuditError> {
        self.file
            .sync_data()
            .map_err(|e| AuditError::io("fsync", &self.path, e))
    }
}
