//! Writing a backup archive: each file streamed into a tar entry while its
//! SHA-256 is computed, then the manifest as the last entry.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use crate::BackupError;
use crate::manifest::{Hasher, MANIFEST_FILE, Manifest, relative_path};

/// A file to put in the archive.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its path in the archive: relative to the data directory, `/`-separated.
    pub path: String,
    /// Where to read it (a copy or hard link the server made for the backup).
    pub file: PathBuf,
    /// How many of its first bytes belong to the backup: an append-only file
    /// may have grown since the snapshot, and only its snapshot prefix counts.
    pub bytes: u64,
}

/// Streams `sources` into `out` as a tar archive ending with the manifest,
/// which it returns. Only `bytes` of each file are read, in one pass: what is
/// hashed is what is sent. A file shorter than its `bytes` fails the archive
/// (it can then have no manifest, so nobody will take it for a backup).
pub fn write_archive<W: Write>(
    sources: &[Source],
    created_at_ms: i64,
    logbook_version: &str,
    out: W,
) -> Result<Manifest, BackupError> {
    let mut manifest = Manifest::new(created_at_ms, logbook_version);
    let mtime = u64::try_from(created_at_ms / 1000).unwrap_or(0);
    let mut builder = tar::Builder::new(out);
    for source in sources {
        relative_path(&source.path)?;
        let file = File::open(&source.file)
            .map_err(BackupError::io("cannot open for the backup", &source.file))?;
        let mut reader = Exact {
            inner: file.take(source.bytes),
            remaining: source.bytes,
            hasher: Hasher::default(),
        };
        let mut header = header(source.bytes, mtime);
        builder
            .append_data(&mut header, &source.path, &mut reader)
            .map_err(BackupError::io("cannot archive", &source.file))?;
        manifest.files.push(reader.hasher.finish(&source.path));
    }
    let json = manifest.to_json();
    let mut header = header(json.len() as u64, mtime);
    builder
        .append_data(&mut header, MANIFEST_FILE, json.as_slice())
        .map_err(BackupError::io("cannot archive", MANIFEST_FILE))?;
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(BackupError::io("cannot finish the archive", MANIFEST_FILE))?;
    Ok(manifest)
}

/// A regular file's header, readable by its owner only (backups hold secrets).
fn header(bytes: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header
}

/// Reads exactly `remaining` bytes, hashing them; an early end is an error.
struct Exact<R> {
    inner: R,
    remaining: u64,
    hasher: Hasher,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let read = self.inner.read(buf)?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes before its snapshot size",
                    self.remaining
                ),
            ));
        }
        self.hasher.update(&buf[..read]);
        self.remaining -= read as u64;
        Ok(read)
    }
}
