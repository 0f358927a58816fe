//! Reading a trail's leaves without opening it for writing: what an offline
//! verifier needs. Nothing is repaired or cut; a frame whose checksum is wrong
//! is still returned, so verification reports the leaf as altered.

use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Take};
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::files::{FRAME_HEADER, HEADER_LEN, LEAVES_FILE, read_header};
use super::pruned::pruned_count;
use crate::error::AuditError;

/// Larger frames than this are taken for damage rather than allocated.
const MAX_LEAF_BYTES: usize = 64 * 1024 * 1024;

/// Where some leaves' frames are in `leaves.log`
/// ([`TrailStore::frame_span`](super::TrailStore::frame_span)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpan {
    /// The first leaf of the file the span was taken in: a rewrite without pruned leaves
    /// makes a file with a larger one, where the same leaves are elsewhere.
    pub base: u64,
    /// The leaf whose frame starts the span.
    pub first: u64,
    /// The bytes of that file holding the frames.
    pub bytes: Range<u64>,
}

/// The leaves of the trail in `dir` that are not pruned, in stored order: the reader's
/// [`first`](LeafReader::first) is the first of them (how many are pruned). Pruned leaves
/// still in `leaves.log` are skipped.
pub fn read_leaves(dir: &Path) -> Result<LeafReader, AuditError> {
    let path = dir.join(LEAVES_FILE);
    let file = std::fs::File::open(&path).map_err(|e| AuditError::io("open", &path, e))?;
    let (base, start) = read_start(&file, &path)?;
    let pruned = pruned_count(dir)?;
    if pruned < base {
        return Err(AuditError::Corrupt {
            path,
            detail: format!("it starts at leaf {base} but only {pruned} leaves are pruned"),
        });
    }
    // Skip the frames of pruned leaves the file still holds, reading their headers only.
    let mut at = start;
    let mut header = [0u8; FRAME_HEADER as usize];
    for _ in base..pruned {
        file.read_exact_at(&mut header, at)
            .map_err(|e| AuditError::io("read", &path, e))?;
        at += FRAME_HEADER
            + u64::from(u32::from_le_bytes([
                header[0], header[1], header[2], header[3],
            ]));
    }
    reader(path, file, at..u64::MAX, pruned)
}

/// The leaves whose frames lie in `span` of the trail in `dir` (see
/// [`TrailStore::frame_span`](super::TrailStore::frame_span)): lets a server read committed
/// leaves without holding the lock its writer needs, since an append never changes bytes
/// already written. [`AuditError::Rewritten`] if `leaves.log` was rewritten without pruned
/// leaves since the span was taken: take it again.
pub fn read_leaves_in(dir: &Path, span: FrameSpan) -> Result<LeafReader, AuditError> {
    let path = dir.join(LEAVES_FILE);
    let file = std::fs::File::open(&path).map_err(|e| AuditError::io("open", &path, e))?;
    let (base, _) = read_start(&file, &path)?;
    if base != span.base {
        return Err(AuditError::Rewritten { path });
    }
    reader(path, file, span.bytes, span.first)
}

/// The first leaf of the `leaves.log` open as `file` and where its frame starts.
fn read_start(file: &std::fs::File, path: &Path) -> Result<(u64, u64), AuditError> {
    let mut prefix = [0u8; HEADER_LEN as usize];
    let mut read = 0;
    while read < prefix.len() {
        match file.read_at(&mut prefix[read..], read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(AuditError::io("read", path, error)),
        }
    }
    read_header(&prefix[..read]).map_err(|detail| AuditError::Corrupt {
        path: path.to_path_buf(),
        detail,
    })
}

fn reader(
    path: std::path::PathBuf,
    mut file: std::fs::File,
    span: Range<u64>,
    first: u64,
) -> Result<LeafReader, AuditError> {
    file.seek(SeekFrom::Start(span.start))
        .map_err(|e| AuditError::io("seek", &path, e))?;
    let bounded = file.take(span.end.saturating_sub(span.start));
    Ok(LeafReader {
        path,
        reader: BufReader::with_capacity(1 << 20, bounded),
        done: false,
        first,
    })
}

/// An iterator over a trail's leaves (see [`read_leaves`]).
#[derive(Debug)]
pub struct LeafReader {
    path: std::path::PathBuf,
    reader: BufReader<Take<std::fs::File>>,
    done: bool,
    first: u64,
}

impl LeafReader {
    /// The sequence number of the first leaf it yields: from [`read_leaves`], how many of the
    /// trail's leaves are pruned; from [`read_leaves_in`], the span's first leaf.
    pub fn first(&self) -> u64 {
        self.first
    }
}

impl Iterator for LeafReader {
    type Item = Result<Vec<u8>, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut header = [0u8; 8];
        match self.reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                // A clean end, or a torn header: either way no further leaf.
                self.done = true;
                return None;
            }
            Err(source) => {
                self.done = true;
                return Some(Err(AuditError::Io {
                    action: "read",
                    path: self.path.clone(),
                    source,
                }));
            }
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_LEAF_BYTES {
            // A damaged length: nothing after it can be framed.
            self.done = true;
            return Some(Err(AuditError::LeafTooLarge { len }));
        }
        let mut leaf = vec![0u8; len];
        if let Err(source) = self.reader.read_exact(&mut leaf) {
            self.done = true;
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                return None;
            }
            return Some(Err(AuditError::Io {
                action: "read",
                path: self.path.clone(),
                source,
            }));
        }
        Some(Ok(leaf))
    }
}
