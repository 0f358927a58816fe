//! The two files of a trail and positioned, error-wrapped I/O on them.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// The leaf frames: `[u32 LE length][u32 LE CRC-32C of the bytes][bytes]`, one per leaf.
pub(crate) const LEAVES_FILE: &str = "leaves.log";

/// The 32-byte leaf hashes, record `i` at offset `32 * i`.
pub(crate) const HASHES_FILE: &str = "hashes.bin";

/// What is kept of pruned leaves: one frame per prune (see `pruned.rs`).
pub(crate) const PRUNED_FILE: &str = "pruned.log";

/// Where a rewrite of `leaves.log` without its pruned frames is written before it is
/// renamed over `leaves.log`; a leftover one is removed when the trail is opened.
pub(crate) const REWRITE_FILE: &str = "leaves.log.new";

/// The size of a frame header.
pub(crate) const FRAME_HEADER: u64 = 8;

/// The size of the header of a rewritten `leaves.log`: `[u32 LE u32::MAX][u32 LE CRC-32C
/// of the base][u64 LE base]`, where the base is the sequence number of the first frame
/// after it. A `leaves.log` never rewritten has no header: its first frame is leaf 0. No
/// frame length is `u32::MAX` (leaves that long are refused long before), so the first
/// four bytes tell the two apart.
pub(crate) const HEADER_LEN: u64 = 16;

/// The first four bytes of a header.
const HEADER_MARK: u32 = u32::MAX;

/// The header of a `leaves.log` whose first frame is leaf `base`.
pub(crate) fn header(base: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&HEADER_MARK.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c::crc32c(&base.to_le_bytes()).to_le_bytes());
    header[8..].copy_from_slice(&base.to_le_bytes());
    header
}

/// Reads the start of `leaves.log` (`prefix`: its first bytes, up to [`HEADER_LEN`]; fewer
/// only if the file is shorter): the sequence number of its first frame and where that
/// frame starts. `Err` names what is wrong with a damaged header.
pub(crate) fn read_header(prefix: &[u8]) -> Result<(u64, u64), String> {
    if prefix.len() < 4 || prefix[..4] != HEADER_MARK.to_le_bytes() {
        return Ok((0, 0));
    }
    let Some(bytes) = prefix.get(..HEADER_LEN as usize) else {
        return Err("its header is cut short".to_owned());
    };
    let mut base = [0u8; 8];
    base.copy_from_slice(&bytes[8..]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if crc != crc32c::crc32c(&base) {
        return Err("its header's checksum is wrong".to_owned());
    }
    Ok((u64::from_le_bytes(base), HEADER_LEN))
}

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

    /// The first bytes of the file, up to [`HEADER_LEN`], for [`read_header`].
    pub(crate) fn prefix(&self) -> Result<Vec<u8>, AuditError> {
        let len = self.len()?.min(HEADER_LEN);
        let mut prefix = vec![0u8; len as usize];
        self.read_at(&mut prefix, 0)?;
        Ok(prefix)
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
