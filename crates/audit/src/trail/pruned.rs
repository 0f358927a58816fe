//! `pruned.log`: the durable record of how many leaves, from the first, are pruned, and
//! what the writer keeps of each (Logbook: the event's id).
//!
//! One frame per prune, `[u32 LE length][u32 LE CRC-32C][payload]` like `leaves.log`'s,
//! whose payload is `[u64 LE first seq][u32 LE count]` then `count` stubs, each
//! `[u32 LE length][bytes]`. A prune is one frame, so it is recorded whole or not at all:
//! opening cuts a torn last frame, and the pruned count is the end of the last sound one.
//! The file only grows (a prune never rewrites what an earlier one wrote), and it is
//! created by the first prune.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::files::{FRAME_HEADER, PRUNED_FILE, TrailFile};
use crate::error::AuditError;
use crate::signing::sync_dir;

/// One prune as recorded: leaves `first..first + stubs.len()`.
struct Batch {
    first: u64,
    stubs: Vec<Vec<u8>>,
}

impl Batch {
    fn end(&self) -> u64 {
        self.first + self.stubs.len() as u64
    }

    fn encode(&self) -> Result<Vec<u8>, AuditError> {
        let mut payload =
            Vec::with_capacity(12 + self.stubs.iter().map(|stub| 4 + stub.len()).sum::<usize>());
        payload.extend_from_slice(&self.first.to_le_bytes());
        payload.extend_from_slice(&length(self.stubs.len())?.to_le_bytes());
        for stub in &self.stubs {
            payload.extend_from_slice(&length(stub.len())?.to_le_bytes());
            payload.extend_from_slice(stub);
        }
        let mut frame = Vec::with_capacity(payload.len() + FRAME_HEADER as usize);
        frame.extend_from_slice(&length(payload.len())?.to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }

    /// The batch a frame's payload holds, if it is one.
    fn decode(payload: &[u8]) -> Option<Batch> {
        let first = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
        let count = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?);
        let mut rest = payload.get(12..)?;
        let mut stubs = Vec::with_capacity(count.min(1 << 20) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            stubs.push(rest.get(4..4 + len)?.to_vec());
            rest = &rest[4 + len..];
        }
        rest.is_empty().then_some(Batch { first, stubs })
    }
}

fn length(len: usize) -> Result<u32, AuditError> {
    u32::try_from(len).map_err(|_| AuditError::LeafTooLarge { len })
}

/// What a scan of `pruned.log` found: where its frames start and end.
struct Scan {
    /// Start of each sound frame, then the end of the last one.
    offsets: Vec<u64>,
    /// The pruned count: the end of the last sound frame's batch.
    count: u64,
}

/// Scans the frames of `file` (`len` bytes), keeping the longest prefix whose last frame
/// is sound (its checksum right, its batch readable and starting where the one before
/// ended). Damage before the last frame is found when stubs are read.
fn scan(file: &File, path: &Path, len: u64) -> Result<Scan, AuditError> {
    let mut offsets = vec![0u64];
    let mut at = 0u64;
    let mut header = [0u8; FRAME_HEADER as usize];
    while len - at >= FRAME_HEADER {
        file.read_exact_at(&mut header, at)
            .map_err(|e| AuditError::io("read", path, e))?;
        let body = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        if body > len - at - FRAME_HEADER {
            break;
        }
        at += FRAME_HEADER + body;
        offsets.push(at);
    }
    loop {
        let frames = offsets.len() - 1;
        if frames == 0 {
            return Ok(Scan { offsets, count: 0 });
        }
        let last = read_batch(file, path, offsets[frames - 1], offsets[frames])?;
        let previous_end = match frames {
            1 => Some(0),
            _ => read_batch(file, path, offsets[frames - 2], offsets[frames - 1])?
                .map(|batch| batch.end()),
        };
        match (last, previous_end) {
            (Some(last), Some(end)) if last.first == end => {
                let count = last.end();
                return Ok(Scan { offsets, count });
            }
            // A sound frame before a broken one: the broken one is a torn tail.
            (None, Some(_)) => {
                offsets.pop();
            }
            // The frame before the last is damaged too: not a torn tail.
            _ => {
                return Err(AuditError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "frame {} at offset {} is damaged or does not follow the one before it",
                        frames - 1,
                        offsets[frames - 1]
                    ),
                });
            }
        }
    }
}

/// The batch in the frame at `start..end`, or `None` if the frame is not sound.
fn read_batch(file: &File, path: &Path, start: u64, end: u64) -> Result<Option<Batch>, AuditError> {
    let mut frame = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut frame, start)
        .map_err(|e| AuditError::io("read", path, e))?;
    let (header, payload) = frame.split_at(FRAME_HEADER as usize);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if crc32c::crc32c(payload) != crc {
        return Ok(None);
    }
    Ok(Batch::decode(payload))
}

/// `pruned.log` of an open trail.
#[derive(Debug)]
pub(crate) struct PrunedLog {
    dir: PathBuf,
    /// `None` until the first prune creates it.
    file: Option<TrailFile>,
    /// Where each frame starts, and the first leaf it records: finds a leaf's stub without
    /// reading the frames before it.
    frames: Vec<(u64, u64)>,
    /// Where the next frame goes.
    end: u64,
    count: u64,
}

impl PrunedLog {
    /// Opens the trail's `pruned.log`, if it has one, and durably cuts a torn last frame;
    /// returns it with the number of bytes cut.
    pub(crate) fn open(dir: &Path) -> Result<(PrunedLog, u64), AuditError> {
        let mut log = PrunedLog {
            dir: dir.to_path_buf(),
            file: None,
            frames: Vec::new(),
            end: 0,
            count: 0,
        };
        if !dir.join(PRUNED_FILE).exists() {
            return Ok((log, 0));
        }
        let file = TrailFile::open(dir, PRUNED_FILE)?;
        let len = file.len()?;
        let scan = scan(&file.file, &file.path, len)?;
        log.end = scan.offsets.last().copied().unwrap_or(0);
        log.count = scan.count;
        for &offset in &scan.offsets[..scan.offsets.len() - 1] {
            let mut first = [0u8; 8];
            file.read_at(&mut first, offset + FRAME_HEADER)?;
            log.frames.push((offset, u64::from_le_bytes(first)));
        }
        if log.end < len {
            file.set_len(log.end)?;
            file.sync()?;
        }
        log.file = Some(file);
        let cut = len - log.end;
        Ok((log, cut))
    }

    /// How many leaves, from the first, are pruned.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Records leaves `count..count + stubs.len()` as pruned, durably. On failure nothing
    /// is recorded, unless the partial frame could not be cut off again: then `Err` and
    /// `true`, and the caller refuses writes until the trail is reopened (which cuts it).
    pub(crate) fn append(&mut self, stubs: Vec<Vec<u8>>) -> Result<(), (AuditError, bool)> {
        let batch = Batch {
            first: self.count,
            stubs,
        };
        let frame = batch.encode().map_err(|error| (error, false))?;
        let created = self.file.is_none();
        if created {
            let file = TrailFile::open(&self.dir, PRUNED_FILE).map_err(|error| (error, false))?;
            self.file = Some(file);
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        let written = file
            .write_at(&frame, self.end)
            .and_then(|()| file.sync())
            .and_then(|()| if created { sync_dir(&self.dir) } else { Ok(()) });
        if let Err(error) = written {
            let undone = file.set_len(self.end).is_ok();
            return Err((error, !undone));
        }
        self.frames.push((self.end, batch.first));
        self.end += frame.len() as u64;
        self.count = batch.end();
        Ok(())
    }

    /// The stubs of pruned leaves `from..to` (fewer if `to` is beyond the pruned ones), read
    /// from the frames that hold them.
    pub(crate) fn stubs(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, AuditError> {
        let to = to.min(self.count);
        let Some(file) = self.file.as_ref().filter(|_| from < to) else {
            return Ok(Vec::new());
        };
        // The last frame starting at or before `from`, then the ones after it.
        let start = self.frames.partition_point(|(_, first)| *first <= from);
        let mut stubs = Vec::with_capacity((to - from) as usize);
        for (index, &(offset, first)) in
            self.frames.iter().enumerate().skip(start.saturating_sub(1))
        {
            if first >= to {
                break;
            }
            let end = self
                .frames
                .get(index + 1)
                .map_or(self.end, |(next, _)| *next);
            let batch = match read_batch(&file.file, &file.path, offset, end)? {
                Some(batch) if batch.first == first => batch,
                _ => {
                    return Err(AuditError::Corrupt {
                        path: file.path.clone(),
                        detail: format!("the frame at offset {offset} is damaged"),
                    });
                }
            };
            let skip = from.saturating_sub(first) as usize;
            let take = (to.min(batch.end()) - first) as usize;
            stubs.extend(batch.stubs.into_iter().take(take).skip(skip));
        }
        Ok(stubs)
    }
}

/// How many leaves of the trail in `dir` are pruned, read without changing anything (a
/// torn last frame is ignored, not cut): for readers that do not open the trail.
pub(crate) fn pruned_count(dir: &Path) -> Result<u64, AuditError> {
    let path = dir.join(PRUNED_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(AuditError::io("open", &path, error)),
    };
    let len = file
        .metadata()
        .map_err(|e| AuditError::io("stat", &path, e))?
        .len();
    Ok(scan(&file, &path, len)?.count)
}
