//! Opening a trail after a crash: find the frames, then cut the torn tail of both files back
//! to the longest prefix on which they agree.

use super::Recovery;
use super::files::{FRAME_HEADER, HASH_LEN, TrailFile};
use crate::error::AuditError;
use crate::merkle::leaf_hash;

/// How much of `leaves.log` one read fetches while scanning for frames.
const SCAN_CHUNK: u64 = 1 << 20;

/// Where the frames of `leaves.log` start and what recovery must keep.
pub(super) struct Layout {
    /// The sequence number of the first frame in the file (0 unless it was rewritten).
    pub base: u64,
    /// The byte offset of that frame (after the header of a rewritten file).
    pub start: u64,
    /// The pruned leaves: recovery never cuts the trail below them, since only leaves an
    /// index commit covered are ever pruned and a torn tail is never one of those.
    pub floor: u64,
}

/// Scans both files, cuts their torn tails (durably) and returns the frame offsets of the
/// leaves kept (`offsets[i]` is where frame `base + i` starts, the last entry where the
/// last frame ends) with what was cut.
///
/// The recovered size `n` is the largest for which `leaves.log` holds frames up to leaf
/// `n − 1`, `hashes.bin` holds `n` records, and frame `n − 1` has a correct checksum and a
/// leaf hash equal to record `n − 1`. Only the tail is examined: the walk back stops at the
/// first sound record, or at the pruned leaves, so damage before it is kept, for
/// verification to report. A trail that holds fewer leaves than are pruned is refused.
pub(super) fn recover(
    leaves: &TrailFile,
    hashes: &TrailFile,
    layout: &Layout,
) -> Result<(Vec<u64>, Recovery), AuditError> {
    let leaves_len = leaves.len()?;
    let hashes_len = hashes.len()?;
    let mut offsets = scan_frames(leaves, layout.start, leaves_len)?;
    let framed = layout.base + offsets.len() as u64 - 1;
    let mut size = framed.min(hashes_len / HASH_LEN);
    if size < layout.floor {
        return Err(AuditError::Corrupt {
            path: leaves.path.clone(),
            detail: format!(
                "{} of its {} pruned leaves have a hash record and a frame; restore the trail",
                size, layout.floor
            ),
        });
    }
    while size > layout.floor && !is_sound(leaves, hashes, &offsets, layout.base, size - 1)? {
        size -= 1;
    }
    offsets.truncate((size - layout.base) as usize + 1);
    let leaves_end = offsets[(size - layout.base) as usize];
    let hashes_end = size * HASH_LEN;
    let recovery = Recovery {
        frames_dropped: framed - size,
        leaves_bytes_cut: leaves_len - leaves_end,
        hashes_bytes_cut: hashes_len - hashes_end,
        pruned_bytes_cut: 0,
    };
    if recovery.hashes_bytes_cut > 0 {
        hashes.set_len(hashes_end)?;
        hashes.sync()?;
    }
    if recovery.leaves_bytes_cut > 0 {
        leaves.set_len(leaves_end)?;
        leaves.sync()?;
    }
    Ok((offsets, recovery))
}

/// The offsets of the complete frames of `leaves.log`, which is `len` bytes long, from
/// `start`: frame starts, then the end of the last complete frame. Stops at the first
/// header that does not fit or whose length runs past the end of the file. Reads headers
/// only.
fn scan_frames(leaves: &TrailFile, start: u64, len: u64) -> Result<Vec<u64>, AuditError> {
    let mut offsets = vec![start];
    let mut buf = Vec::new();
    // `buf` holds the file's bytes from `buf_start`.
    let mut buf_start = start;
    let mut pos = start;
    while len.saturating_sub(pos) >= FRAME_HEADER {
        if pos + FRAME_HEADER > buf_start + buf.len() as u64 {
            let want = SCAN_CHUNK.min(len - pos);
            buf.resize(want as usize, 0);
            leaves.read_at(&mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        let mut length = [0u8; 4];
        length.copy_from_slice(&buf[at..at + 4]);
        let body = u64::from(u32::from_le_bytes(length));
        if body > len - pos - FRAME_HEADER {
            break;
        }
        pos += FRAME_HEADER + body;
        offsets.push(pos);
    }
    Ok(offsets)
}

/// Whether the frame of leaf `index` has a correct checksum and `hashes.bin` holds its leaf
/// hash; `offsets` start at leaf `base`.
fn is_sound(
    leaves: &TrailFile,
    hashes: &TrailFile,
    offsets: &[u64],
    base: u64,
    index: u64,
) -> Result<bool, AuditError> {
    let at = (index - base) as usize;
    let (start, end) = (offsets[at], offsets[at + 1]);
    let mut frame = vec![0u8; (end - start) as usize];
    leaves.read_at(&mut frame, start)?;
    let mut stored = [0u8; 32];
    hashes.read_at(&mut stored, index * HASH_LEN)?;
    let (header, bytes) = frame.split_at(FRAME_HEADER as usize);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    Ok(crc32c::crc32c(bytes) == crc && leaf_hash(bytes) == stored)
}
