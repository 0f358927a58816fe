//! A backup's view of the embedded queue: its segments hard-linked into a
//! staging directory with the durable length of each, taken at one instant.
//!
//! Segments are append-only, so a link to the live file is a stable copy of
//! every byte below the durable end recorded with it; the active segment keeps
//! growing under the link and only its recorded prefix is copied. A segment
//! released (deleted) while the links are made is one wholly before the
//! store's last commit, which a restored server never reads.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::EmbeddedQueue;
use crate::QueueError;

/// One segment linked for a backup.
#[derive(Debug, Clone)]
pub struct LinkedSegment {
    /// The segment's file name (its start position, zero-padded, `.seg`).
    pub name: String,
    /// The link in the staging directory.
    pub path: PathBuf,
    /// How many of its first bytes are durable records of the snapshot.
    pub bytes: u64,
}

impl EmbeddedQueue {
    /// Hard-links every retained segment into `staging` (on the same file
    /// system) and returns each with its durable length at the instant the
    /// segment list was read. Records acknowledged before the call are all in
    /// it. Segments deleted by a release while linking are left out (they can
    /// only be the oldest); the rest must be there.
    pub fn link_snapshot(&self, staging: &Path) -> Result<Vec<LinkedSegment>, QueueError> {
        let (segments, durable_end) = {
            let state = self.shared.lock();
            let segments: Vec<(u64, PathBuf)> = state
                .segments
                .values()
                .filter(|segment| segment.start <= state.durable_end)
                .map(|segment| (segment.start, segment.path.clone()))
                .collect();
            (segments, state.durable_end)
        };
        std::fs::create_dir_all(staging)
            .map_err(|e| QueueError::io(format!("creating {}", staging.display()), e))?;
        let mut linked: Vec<LinkedSegment> = Vec::with_capacity(segments.len());
        for (index, (start, path)) in segments.iter().enumerate() {
            let end = segments
                .get(index + 1)
                .map_or(durable_end, |(next, _)| (*next).min(durable_end));
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    QueueError::Corrupt(format!("segment {} has no name", path.display()))
                })?;
            let link = staging.join(&name);
            match std::fs::hard_link(path, &link) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::NotFound && linked.is_empty() => continue,
                Err(error) => {
                    return Err(QueueError::io(
                        format!("linking {} to {}", path.display(), link.display()),
                        error,
                    ));
                }
            }
            linked.push(LinkedSegment {
                name,
                path: link,
                bytes: end.saturating_sub(*start),
            });
        }
        Ok(linked)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::{EmbeddedQueue, EmbeddedQueueConfig, Position, Queue as _};

    /// Records appended after the snapshot are not in it, and a queue opened
    /// on the copied prefixes reads exactly the records acknowledged before.
    #[tokio::test]
    async fn a_snapshot_holds_the_acknowledged_records_and_reopens() {
        let temp = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::open(EmbeddedQueueConfig {
            segment_bytes: 256,
            ..EmbeddedQueueConfig::new(temp.path().join("queue"))
        })
        .unwrap();
        let mut acknowledged = Vec::new();
        for i in 0..20 {
            let payload = Bytes::from(format!("record {i:03} {}", "x".repeat(40)));
            queue.append(payload.clone()).await.unwrap();
            acknowledged.push(payload);
        }
        // The oldest segments are released, as after a store commit.
        queue.release(Position(300)).await.unwrap();
        let first = queue.stats().first;
        let staging = temp.path().join("staging");
        let linked = queue.link_snapshot(&staging).unwrap();
        for i in 0..5 {
            queue
                .append(Bytes::from(format!("later {i}")))
                .await
                .unwrap();
        }
        assert!(linked.len() > 1, "{linked:?}");

        let copy = temp.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        for segment in &linked {
            let bytes = std::fs::read(&segment.path).unwrap();
            std::fs::write(copy.join(&segment.name), &bytes[..segment.bytes as usize]).unwrap();
        }
        drop(queue);
        let reopened = EmbeddedQueue::open(EmbeddedQueueConfig::new(&copy)).unwrap();
        let records = reopened
            .read(first, 1000, usize::MAX, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(records.first().unwrap().position, first);
        let read: Vec<Bytes> = records.into_iter().map(|record| record.payload).collect();
        // Every acknowledged record from the oldest retained one on, and
        // nothing appended after the snapshot.
        assert!(first.0 > 0 && read.len() < acknowledged.len());
        assert_eq!(read, acknowledged[acknowledged.len() - read.len()..]);
    }
}
