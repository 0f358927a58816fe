//! Reading a trail's leaves without opening it for writing: what an offline
//! verifier needs. Nothing is repaired or cut; a frame whose checksum is wrong
//! is still returned, so verification reports the leaf as altered.

use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Take};
use std::ops::Range;
use std::path::Path;

use super::files::LEAVES_FILE;
use crate::error::AuditError;

/// Larger frames than this are taken for damage rather than allocated.
const MAX_LEAF_BYTES: usize = 64 * 1024 * 1024;

/// The leaves of the trail in `dir`, in stored order.
pub fn read_leaves(dir: &Path) -> Result<LeafReader, AuditError> {
    read_leaves_in(dir, 0..u64::MAX)
}

/// The leaves whose frames lie in the byte range `span` of the trail in `dir`
/// (see [`TrailStore::frame_span`](super::TrailStore::frame_span)): lets a
/// server read committed leaves without holding the lock its writer needs,
/// since an append never changes bytes already written.
pub fn read_leaves_in(dir: &Path, span: Range<u64>) -> Result<LeafReader, AuditError> {
    let path = dir.join(LEAVES_FILE);
    let mut file = std::fs::File::open(&path).map_err(|e| AuditError::io("open", &path, e))?;
    file.seek(SeekFrom::Start(span.start))
        .map_err(|e| AuditError::io("seek", &path, e))?;
    let bounded = file.take(span.end.saturating_sub(span.start));
    Ok(LeafReader {
        path,
        reader: BufReader::with_capacity(1 << 20, bounded),
        done: false,
    })
}

/// An iterator over a trail's leaves (see [`read_leaves`]).
#[derive(Debug)]
pub struct LeafReader {
    path: std::path::PathBuf,
    reader: BufReader<Take<std::fs::File>>,
    done: bool,
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
