//! Reading a trail's leaves without opening it for writing: what an offline
//! verifier needs. Nothing is repaired or cut; a frame whose checksum is wrong
//! is still returned, so verification reports the leaf as altered.

use std::io::{BufReader, Read as _};
use std::path::Path;

use super::files::LEAVES_FILE;
use crate::error::AuditError;

/// Larger frames than this are taken for damage rather than allocated.
const MAX_LEAF_BYTES: usize = 64 * 1024 * 1024;

/// The leaves of the trail in `dir`, in stored order.
pub fn read_leaves(dir: &Path) -> Result<LeafReader, AuditError> {
    let path = dir.join(LEAVES_FILE);
    let file = std::fs::File::open(&path).map_err(|source| AuditError::Io {
        action: "open",
        path: path.clone(),
        source,
    })?;
    Ok(LeafReader {
        path,
        reader: BufReader::with_capacity(1 << 20, file),
        done: false,
    })
}

/// An iterator over a trail's leaves (see [`read_leaves`]).
#[derive(Debug)]
pub struct LeafReader {
    path: std::path::PathBuf,
    reader: BufReader<std::fs::File>,
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
