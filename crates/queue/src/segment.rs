//! On-disk layout of the embedded queue: segment file naming, record framing, recovery scans and checksummed reads.
//!
//! A segment file is named after the logical position of its first byte,
//! zero-padded to 20 digits (`00000000000000000000.seg`), and has no header:
//! the record at position `p` of a segment starting at `s` is at byte `p - s`.
//! Each record is `[u32 LE payload length][u32 LE checksum][payload]`, where
//! the checksum is CRC-32C over the four length bytes followed by the payload.
//! Covering the length means a zero-filled region (what some file systems
//! leave behind after a crash) never parses as a valid empty record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::{Position, QueueError, Record};

/// Bytes of framing before each payload.
pub(crate) const HEADER_LEN: u64 = 8;

const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;
const SCAN_BUFFER: usize = 1 << 20;
const READ_AHEAD: u64 = 256 << 10;

/// One segment file, kept open for positional reads.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Logical position of the file's first byte.
    pub(crate) start: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
}

/// File name of the segment starting at `start`.
pub(crate) fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!(
        "{start:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_DIGITS
    ))
}

/// Checksum stored in a record header.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    let len = payload.len() as u32;
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// Appends the framed record to `buf`. The caller guarantees the payload fits in a u32 length.
pub(crate) fn encode(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

fn decode_header(header: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    (word(0), word(4))
}

/// Fsyncs a directory so that file creations and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| QueueError::io(format!("syncing directory {}", dir.display()), e))
}

/// Creates an empty segment starting at `start`, makes its directory entry durable, and returns it with a write handle.
pub(crate) fn create_segment(dir: &Path, start: u64) -> Result<(Arc<Segment>, File), QueueError> {
    let path = segment_path(dir, start);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| QueueError::io(format!("creating segment {}", path.display()), e))?;
    sync_dir(dir)?;
    let reader = file
        .try_clone()
        .map_err(|e| QueueError::io(format!("duplicating handle of {}", path.display()), e))?;
    let segment = Segment {
        start,
        path,
        file: reader,
    };
    Ok((Arc::new(segment), file))
}

/// Segment files in `dir` as (start, path), sorted by start. Files not ending in `.seg` are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, QueueError> {
    let context = || format!("listing queue directory {}", dir.display());
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| QueueError::io(context(), e))? {
        let entry = entry.map_err(|e| QueueError::io(context(), e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        let start = (stem.len() == SEGMENT_DIGITS && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                QueueError::Corrupt(format!(
                    "unexpected segment file name {} (expected {SEGMENT_DIGITS} digits)",
                    path.display()
                ))
            })?;
        found.push((start, path));
    }
    found.sort_unstable();
    Ok(found)
}

/// Result of validating a segment file from its beginning.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Bytes of whole, checksummed records at the start of the file.
    pub(crate) valid_len: u64,
    /// Size of the file.
    pub(crate) file_len: u64,
    /// Why the record at `valid_len` is invalid, if the file does not end there.
    pub(crate) defect: Option<String>,
}

/// Reads a whole segment, checking every record's framing and checksum, and reports where the valid prefix ends.
pub(crate) fn scan(path: &Path, file: &File) -> Result<Scan, QueueError> {
    let context = || format!("scanning segment {}", path.display());
    let file_len = file
        .metadata()
        .map_err(|e| QueueError::io(context(), e))?
        .len();
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut payload = Vec::new();
    let mut offset = 0;
    let defect = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < HEADER_LEN {
            break Some(format!("incomplete record header ({remaining} bytes)"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| QueueError::io(context(), e))?;
        let (len, crc) = decode_header(&header);
        if u64::from(len) > remaining - HEADER_LEN {
            break Some(format!(
                "record length {len} runs past the end of the file ({} bytes left)",
                remaining - HEADER_LEN
            ));
        }
        payload.resize(len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(|e| QueueError::io(context(), e))?;
        if checksum(&payload) != crc {
            break Some(format!("checksum mismatch in record of {len} bytes"));
        }
        offset += HEADER_LEN + u64::from(len);
    };
    Ok(Scan {
        valid_len: offset,
        file_len,
        defect,
    })
}

/// A durable part of one segment that a read may cover: `[segment.start, end)`.
#[derive(Debug)]
pub(crate) struct Span {
    pub(crate) segment: Arc<Segment>,
    pub(crate) end: u64,
}

/// Reads one span through a read-ahead buffer, so small records cost one syscall per chunk rather than two each.
struct SpanReader<'a> {
    span: &'a Span,
    buf: Vec<u8>,
    buf_start: u64,
}

impl SpanReader<'_> {
    /// Bytes `[pos, pos + len)`; the caller has checked they lie within the span.
    fn bytes(&mut self, pos: u64, len: u64, read_ahead: u64) -> Result<&[u8], QueueError> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + len > buf_end {
            let segment = &self.span.segment;
            let fill = len.max(read_ahead).min(self.span.end - pos);
            self.buf.resize(fill as usize, 0);
            let offset = pos - segment.start;
            segment
                .file
                .read_exact_at(&mut self.buf, offset)
                .map_err(|e| {
                    QueueError::io(
                        format!(
                            "reading {fill} bytes at offset {offset} of {}",
                            segment.path.display()
                        ),
                        e,
                    )
                })?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(&self.buf[at..at + len as usize])
    }
}

/// Reads records from `from` across `spans` (contiguous, in order, the first containing `from`), verifying checksums.
///
/// Stops after `max_records` records, before exceeding `max_bytes` payload
/// bytes (but always returns at least one record if there is one), or at the
/// end of the last span.
pub(crate) fn read_records(
    spans: &[Span],
    from: u64,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<Record>, QueueError> {
    let read_ahead = (max_bytes as u64)
        .saturating_add(HEADER_LEN)
        .min(READ_AHEAD);
    let mut records = Vec::new();
    let mut total = 0usize;
    let mut pos = from;
    'spans: for span in spans {
        let mut reader = SpanReader {
            span,
            buf: Vec::new(),
            buf_start: 0,
        };
        let corrupt = |pos: u64, what: &str| {
            QueueError::Corrupt(format!(
                "{what} at position {pos} (byte offset {} of {})",
                pos - span.segment.start,
                span.segment.path.display()
            ))
        };
        while pos < span.end {
            if records.len() >= max_records {
                break 'spans;
            }
            if pos + HEADER_LEN > span.end {
                return Err(corrupt(pos, "incomplete record header"));
            }
            let (len, crc) = decode_header(reader.bytes(pos, HEADER_LEN, read_ahead)?);
            let next = pos + HEADER_LEN + u64::from(len);
            if next > span.end {
                return Err(corrupt(pos, "record runs past the end of its segment"));
            }
            if !records.is_empty() && total.saturating_add(len as usize) > max_bytes {
                break 'spans;
            }
            let payload = reader.bytes(pos + HEADER_LEN, u64::from(len), read_ahead)?;
            if checksum(payload) != crc {
                return Err(corrupt(pos, "checksum mismatch"));
            }
            records.push(Record {
                position: Position(pos),
                next: Position(next),
                payload: Bytes::copy_from_slice(payload),
                redelivered: false,
                receipt: None,
                partition: None,
                attempts: 0,
            });
            total += len as usize;
            pos = next;
        }
    }
    Ok(records)
}
