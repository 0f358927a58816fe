//! A tenant's signed checkpoints: an append-only JSON-lines file, repaired on
//! open and searched by size on disk, so no checkpoint but the newest is kept
//! in memory and a lookup needs no lock.
//!
//! Each line is `{"note": "<signed note>"}`. A checkpoint is only ever signed
//! over more leaves than the one before, so the lines are sorted by size and a
//! lookup is a binary search over byte offsets: O(log n) short reads.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use audit::{Checkpoint, VerifyingKey};

use crate::StoreError;

/// Each tenant's signed checkpoints, one JSON line each, in its trail directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// How much of the file's end open reads to find its last lines, and the
/// longest line a lookup reads (a note is a few hundred bytes).
const MAX_LINE: u64 = 64 * 1024;

/// A signed checkpoint and the size it signs.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub size: u64,
    pub note: String,
}

/// The writer's side of `checkpoints.jsonl`.
pub(crate) struct CheckpointLog {
    path: PathBuf,
    /// Open once the first append needs it.
    file: Option<File>,
    /// The bytes of complete lines: where the next line goes.
    len: u64,
    latest: Option<Signed>,
    /// Set when a failed append could not be cut off again.
    poisoned: bool,
}

/// What a reader needs to find a checkpoint without the trails' lock: the
/// file, how much of it was complete when the view was taken, and the newest.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointsView {
    path: PathBuf,
    len: u64,
    latest: Option<Signed>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Corrupt(format!("{}: {error}", path.display()))
}

/// The note of one line, and the size it claims (its second line), read
/// without checking the signature.
fn parse_line(line: &[u8]) -> Option<Signed> {
    #[derive(serde::Deserialize)]
    struct Line {
        note: String,
    }
    let Line { note } = serde_json::from_slice(line).ok()?;
    let size = note.split('\n').nth(1)?.parse().ok()?;
    Some(Signed { size, note })
}

/// Fsyncs a directory, making a file created in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(dir))
}

impl CheckpointLog {
    /// Opens the checkpoints of the trail in `dir`.
    ///
    /// A last line that is unterminated or not a checkpoint (a crash or a full
    /// disk during an append) is cut, durably, with a warning; any other line
    /// that is not one is an error. Reads only the end of the file: the
    /// caller verifies the newest checkpoint, and a lookup the one it finds
    /// (reading every signature would make opening linear in the trail's age).
    pub(crate) fn open(dir: &Path) -> Result<CheckpointLog, StoreError> {
        let path = dir.join(CHECKPOINTS_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CheckpointLog {
                    path,
                    file: None,
                    len: 0,
                    latest: None,
                    poisoned: false,
                });
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        let file_len = file.metadata().map_err(io_error(&path))?.len();
        let tail_start = file_len.saturating_sub(MAX_LINE * 2);
        let mut tail = vec![0u8; (file_len - tail_start) as usize];
        file.read_exact_at(&mut tail, tail_start)
            .map_err(io_error(&path))?;
        // Complete lines end at a newline; whatever follows the last one is torn.
        let mut len = match tail.iter().rposition(|&b| b == b'\n') {
            Some(at) => tail_start + at as u64 + 1,
            None if tail_start == 0 => 0,
            None => return Err(not_checkpoints(&path, tail_start)),
        };
        let mut cut_line = false;
        let latest = loop {
            if len == 0 {
                break None;
            }
            let end = (len - 1 - tail_start) as usize;
            let start = tail[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            if start == 0 && tail_start > 0 {
                return Err(not_checkpoints(&path, tail_start));
            }
            match parse_line(&tail[start..end]) {
                Some(signed) => break Some(signed),
                None if !cut_line && len == file_len => {
                    // The last line is complete but is no checkpoint: the append was torn.
                    cut_line = true;
                    len = tail_start + start as u64;
                }
                None => return Err(not_checkpoints(&path, tail_start + start as u64)),
            }
        };
        if len < file_len {
            tracing::warn!(
                path = %path.display(),
                bytes = file_len - len,
                "cutting a torn last line of the checkpoints (a crash during an append)"
            );
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .map_err(io_error(&path))?;
            sync_dir(dir)?;
        }
        Ok(CheckpointLog {
            path,
            file: Some(file),
            len,
            latest,
            poisoned: false,
        })
    }

    /// The newest checkpoint.
    pub(crate) fn latest(&self) -> Option<&Signed> {
        self.latest.as_ref()
    }

    /// Appends a checkpoint just signed (so already known good) and fsyncs it;
    /// creating the file fsyncs its directory too. A failed write is cut off
    /// again, so the next append never continues a partial line.
    pub(crate) fn append(&mut self, signed: Signed) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Corrupt(format!(
                "{}: an earlier append failed and could not be undone; restart to repair it",
                self.path.display()
            )));
        }
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)
                .map_err(io_error(&self.path))?;
            if let Some(dir) = self.path.parent() {
                sync_dir(dir)?;
            }
            self.file = Some(file);
        }
        let Some(file) = &self.file else {
            return Err(StoreError::Corrupt("checkpoint file vanished".to_owned()));
        };
        let line = format!("{}\n", serde_json::json!({ "note": signed.note }));
        let written = file
            .write_all_at(line.as_bytes(), self.len)
            .and_then(|()| file.sync_data());
        if let Err(error) = written {
            self.poisoned = file
                .set_len(self.len)
                .and_then(|()| file.sync_data())
                .is_err();
            return Err(io_error(&self.path)(error));
        }
        self.len += line.len() as u64;
        self.latest = Some(signed);
        Ok(())
    }

    /// What a reader needs, to use without the trails' lock.
    pub(crate) fn view(&self) -> CheckpointsView {
        CheckpointsView {
            path: self.path.clone(),
            len: self.len,
            latest: self.latest.clone(),
        }
    }
}

fn not_checkpoints(path: &Path, offset: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "{} is damaged near byte {offset}: a line there is not a checkpoint \
         (only a torn last line is repaired); restore the file from a backup",
        path.display()
    ))
}

impl CheckpointsView {
    /// The newest checkpoint's note.
    pub(crate) fn latest(&self) -> Option<String> {
        self.latest.as_ref().map(|signed| signed.note.clone())
    }

    /// The checkpoint of exactly `size`, found by binary search over the
    /// file's bytes and verified with `key` before it is returned.
    pub(crate) fn of_size(
        &self,
        size: u64,
        key: &VerifyingKey,
    ) -> Result<Option<String>, StoreError> {
        let found = match &self.latest {
            None => return Ok(None),
            Some(latest) if latest.size == size => Some(latest.clone()),
            Some(latest) if latest.size < size => return Ok(None),
            Some(_) => self.search(size)?,
        };
        let Some(signed) = found else { return Ok(None) };
        Checkpoint::verify(&signed.note, key).map_err(|error| {
            StoreError::Corrupt(format!(
                "the checkpoint of size {size} in {} does not verify: {error}",
                self.path.display()
            ))
        })?;
        Ok(Some(signed.note))
    }

    /// Invariant: if a line of `size` exists, it starts in `lo..hi`.
    fn search(&self, size: u64) -> Result<Option<Signed>, StoreError> {
        let file = File::open(&self.path).map_err(io_error(&self.path))?;
        let mut reader = BufReader::with_capacity(4096, file);
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some((start, end, signed)) = self.line_from(&mut reader, mid)? else {
                hi = mid;
                continue;
            };
            if signed.size == size {
                return Ok(Some(signed));
            }
            if signed.size < size {
                lo = end;
            } else {
                // No line starts in `mid..start`, so the one sought starts before `mid`.
                debug_assert!(start >= mid);
                hi = mid;
            }
        }
        Ok(None)
    }

    /// The first line starting at or after `offset` (and within the view):
    /// its start, the start of the next line, and its checkpoint.
    fn line_from(
        &self,
        reader: &mut BufReader<File>,
        offset: u64,
    ) -> Result<Option<(u64, u64, Signed)>, StoreError> {
        let mut start = offset;
        reader
            .seek(SeekFrom::Start(offset.saturating_sub(1)))
            .map_err(io_error(&self.path))?;
        let mut line = Vec::new();
        if offset > 0 {
            // Skip to just after the newline ending the line that holds `offset - 1`.
            let skipped = reader
                .by_ref()
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(io_error(&self.path))?;
            start = offset - 1 + skipped as u64;
            line.clear();
        }
        if start >= self.len {
            return Ok(None);
        }
        let read = reader
            .by_ref()
            .take(MAX_LINE.min(self.len - start))
            .read_until(b'\n', &mut line)
            .map_err(io_error(&self.path))?;
        let end = start + read as u64;
        if line.pop() != Some(b'\n') {
            return Err(not_checkpoints(&self.path, start));
        }
        match parse_line(&line) {
            Some(signed) => Ok(Some((start, end, signed))),
            None => Err(not_checkpoints(&self.path, start)),
        }
    }
}

#[cfg(test)]
mod tests;
