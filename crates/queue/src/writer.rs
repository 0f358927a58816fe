//! The queue's single writer thread: batches concurrent appends into one write and one `fdatasync` (group commit), and acknowledges them only after that sync.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::error;

use crate::embedded::Shared;
use crate::segment::{self, HEADER_LEN};
use crate::{Position, QueueError, Record};

/// Soft cap on the bytes gathered into one batch (the first request is always taken whole).
const BATCH_BYTES: u64 = 16 << 20;

/// One append waiting for the writer.
pub(crate) struct Request {
    pub(crate) payload: Bytes,
    pub(crate) reply: oneshot::Sender<Result<(Position, Position), QueueError>>,
}

impl Request {
    fn frame_len(&self) -> u64 {
        HEADER_LEN + self.payload.len() as u64
    }
}

/// Owns the active segment file; runs on its own OS thread until every sender is gone.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    file: File,
    path: PathBuf,
    segment_start: u64,
    segment_len: u64,
    segment_bytes: u64,
    buf: Vec<u8>,
}

impl Writer {
    /// A writer appending to `file`, the segment starting at `segment_start` whose valid length is `segment_len`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<Request>,
        file: File,
        segment_start: u64,
        segment_len: u64,
        segment_bytes: u64,
    ) -> Self {
        let path = segment::segment_path(&shared.dir, segment_start);
        Writer {
            shared,
            requests,
            file,
            path,
            segment_start,
            segment_len,
            segment_bytes,
            buf: Vec::new(),
        }
    }

    /// Serves batches until the queue closes (all senders dropped) or an I/O error stops it.
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.requests.recv() {
            let batch = self.gather(first);
            let batch_bytes: u64 = batch.iter().map(Request::frame_len).sum();
            match self.write_and_sync(&batch) {
                Ok(positions) => {
                    // `write_and_sync` returned, so sync_data has completed for every record in
                    // the batch: only now publish the new durable end and acknowledge.
                    self.publish(&batch, &positions, batch_bytes);
                    for (request, position) in batch.into_iter().zip(positions) {
                        // A waiter that gave up is fine: its record is durable anyway.
                        let _ = request.reply.send(Ok(position));
                    }
                    if self.buf.capacity() as u64 > 2 * BATCH_BYTES {
                        self.buf = Vec::new();
                    }
                }
                Err(err) => {
                    self.fail(err, batch);
                    return;
                }
            }
        }
    }

    /// Takes `first` plus whatever else is already queued, up to about [`BATCH_BYTES`], without blocking.
    fn gather(&self, first: Request) -> Vec<Request> {
        let mut bytes = first.frame_len();
        let mut batch = vec![first];
        while bytes < BATCH_BYTES {
            let Ok(request) = self.requests.try_recv() else {
                break;
            };
            bytes += request.frame_len();
            batch.push(request);
        }
        batch
    }

    /// Writes the batch (rolling segments as needed) and syncs it; returns each record's (start, next).
    fn write_and_sync(
        &mut self,
        batch: &[Request],
    ) -> Result<Vec<(Position, Position)>, QueueError> {
        let mut positions = Vec::with_capacity(batch.len());
        self.buf.clear();
        let mut buf_offset = self.segment_len;
        for request in batch {
            let frame = request.frame_len();
            if self.segment_len > 0 && self.segment_len + frame > self.segment_bytes {
                // Everything in the old segment must be durable before the next one exists.
                self.flush(buf_offset)?;
                self.roll()?;
                buf_offset = 0;
            }
            let start = self.segment_start + self.segment_len;
            segment::encode(&mut self.buf, &request.payload);
            self.segment_len += frame;
            positions.push((Position(start), Position(start + frame)));
        }
        self.flush(buf_offset)?;
        Ok(positions)
    }

    /// Writes the buffered frames at `offset` of the active segment and syncs its data.
    fn flush(&mut self, offset: u64) -> Result<(), QueueError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buf, offset).map_err(|e| {
            QueueError::io(
                format!(
                    "writing {} bytes at offset {offset} of {}",
                    self.buf.len(),
                    self.path.display()
                ),
                e,
            )
        })?;
        self.file
            .sync_data()
            .map_err(|e| QueueError::io(format!("syncing {}", self.path.display()), e))?;
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.buf.clear();
        Ok(())
    }

    /// Starts a new segment where the active one ends and makes it the active one.
    fn roll(&mut self) -> Result<(), QueueError> {
        let start = self.segment_start + self.segment_len;
        let (segment, file) = segment::create_segment(&self.shared.dir, start)?;
        self.path = segment.path.clone();
        self.shared.lock().segments.insert(start, segment);
        self.file = file;
        self.segment_start = start;
        self.segment_len = 0;
        Ok(())
    }

    /// Makes the synced batch visible to readers: advances the durable end and wakes waiting reads.
    /// Followers are handed the records under the same lock, so one that
    /// starts at the durable end sees exactly the records after it.
    fn publish(&self, batch: &[Request], positions: &[(Position, Position)], batch_bytes: u64) {
        let Some(&(_, end)) = positions.last() else {
            return;
        };
        {
            let mut state = self.shared.lock();
            state.durable_end = end.0;
            state.queued_bytes -= batch_bytes;
            self.announce(batch, positions);
        }
        self.shared.durable.send_replace(end.0);
    }

    /// Hands each synced record to the queue's followers, before its append is
    /// answered, so a follower sees every record whose `202` was sent after
    /// it started. Never blocks: a follower that lags loses records instead
    /// (and learns which from the positions).
    fn announce(&self, batch: &[Request], positions: &[(Position, Position)]) {
        let followers = &self.shared.followed;
        if followers.receiver_count() == 0 {
            return;
        }
        for (request, &(position, next)) in batch.iter().zip(positions) {
            let _ = followers.send(Record {
                position,
                next,
                payload: request.payload.clone(),
                redelivered: false,
                receipt: None,
                partition: None,
                attempts: 0,
            });
        }
    }

    /// Stops accepting appends after an I/O error and fails every outstanding request.
    ///
    /// After a failed write or fsync the file's state is unknown, so the
    /// writer does not retry; reopening the queue recovers from disk.
    fn fail(self, err: QueueError, batch: Vec<Request>) {
        error!(error = %err, "queue writer stopped");
        {
            let mut state = self.shared.lock();
            state.failure = Some(err.to_string());
            state.sender = None;
            state.queued_bytes = 0;
        }
        for request in batch {
            let _ = request.reply.send(Err(err.duplicate()));
        }
        // The sender is gone, so this ends once the already-queued requests are answered.
        while let Ok(request) = self.requests.recv() {
            let _ = request.reply.send(Err(err.duplicate()));
        }
    }
}
