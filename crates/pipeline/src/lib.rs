//! The worker that drains the queue into the store.
//!
//! Exactly-once from queue to store: the worker resumes from the queue position
//! recorded in the store's last commit, stages what it reads, and commits the
//! events together with the position after them. A crash between two commits
//! replays exactly the uncommitted records; nothing is lost or stored twice.
//! Only after a commit does the worker release the queue up to that position.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue::{Position, Queue, QueueError};
use store::{EventStore, StoreError};
use tokio::sync::watch;

/// When the worker commits and how much it reads at a time.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Commit at least this often while events are staged, so they become
    /// searchable quickly.
    pub commit_interval: Duration,
    /// Commit as soon as this many events are staged.
    pub commit_events: usize,
    /// Records read from the queue per round.
    pub read_records: usize,
    /// Payload bytes read from the queue per round.
    pub read_bytes: usize,
    /// Where records that cannot be decoded are kept, one file each.
    pub dead_letter_dir: PathBuf,
    /// Start from the queue's oldest record even though the index has no
    /// commit and the queue released records before it: the operator accepts
    /// that the log events of a lost index are no longer searchable.
    pub resume_after_index_loss: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            commit_interval: Duration::from_millis(500),
            commit_events: 500_000,
            read_records: 64,
            read_bytes: 8 * 1024 * 1024,
            dead_letter_dir: PathBuf::from("dead-letter"),
            resume_after_index_loss: false,
        }
    }
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the index covers the queue up to {committed:?}, but the queue now starts at {first:?}: the index is older than the queue (restored from an older backup?) and the records between were released. Restore a newer index, or start once with pipeline.resume_after_index_loss = true to go on from where the queue starts and accept that the log events between are not searchable; the audit trails are kept and re-indexed either way"
    )]
    Gap {
        committed: Position,
        first: Position,
    },
    #[error(
        "the store's last commit covers the queue up to {committed:?}, but the queue ends at {durable_end:?}: the queue lost acknowledged records (see its recovery warnings)"
    )]
    QueueBehind {
        committed: Position,
        durable_end: Position,
    },
    #[error(
        "the index has no commit, but the queue starts at {first:?}: the records before it were stored in an index that is gone (removed, or restored from before its first commit) and cannot be replayed. Restore an index backup taken after the queue's oldest record (the queue replays what came after it), or start once with pipeline.resume_after_index_loss = true to index what the queue still holds and accept that older log events are no longer searchable; the audit trails are kept and re-indexed either way"
    )]
    IndexLost { first: Position },
    #[error("cannot set aside an unreadable queue record at {position:?} in {dir}: {source}")]
    DeadLetter {
        position: Position,
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the worker has done, for readiness checks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The queue position covered by the last commit.
    pub committed: Position,
    pub committed_events: u64,
    /// Records that could not be decoded and were set aside in the dead-letter directory.
    pub skipped_records: u64,
    pub running: bool,
}

/// Drains `queue` into `store` until `shutdown` turns true, then commits what
/// is staged and returns. Progress is published on `progress`.
pub async fn run(
    queue: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
    progress: watch::Sender<Progress>,
) -> Result<(), PipelineError> {
    let first = queue.stats().first;
    let committed = match store.committed_position().await? {
        Some(position) => Position(position),
        // A queue that never released anything starts at 0; one that starts later
        // released records into an index that no longer has them.
        None if first == Position(0) || config.resume_after_index_loss => first,
        None => return Err(PipelineError::IndexLost { first }),
    };
    // An index older than the queue's oldest record (restored from an older
    // backup): the records between were released and are gone.
    let committed = match committed < first {
        true if config.resume_after_index_loss => {
            tracing::warn!(
                index = committed.0,
                queue = first.0,
                "the index is older than the queue; resuming where the queue starts, as \
                 pipeline.resume_after_index_loss asks: log events in between are not searchable"
            );
            first
        }
        true => return Err(PipelineError::Gap { committed, first }),
        false => committed,
    };
    let durable_end = queue.stats().durable_end;
    if committed > durable_end {
        return Err(PipelineError::QueueBehind {
            committed,
            durable_end,
        });
    }
    // The queue forgets releases across restarts; what the store holds is released.
    queue.release(committed).await?;
    tracing::info!(
        position = committed.0,
        "worker resumes from the store's last commit"
    );
    progress.send_modify(|p| {
        p.committed = committed;
        p.running = true;
    });

    let mut worker = Worker {
        queue,
        store,
        progress,
        next: committed,
        staged: 0,
        last_commit: Instant::now(),
    };
    let result = worker.drain(&config, &mut shutdown).await;
    // Whatever stopped the loop, keep what is already staged if the store still can.
    let result = match result {
        Ok(()) => worker.commit().await,
        Err(error) => Err(error),
    };
    worker.progress.send_modify(|p| p.running = false);
    result
}

/// Writes a record the worker cannot read to the dead-letter directory, synced,
/// before the queue is allowed to forget it.
fn set_aside(dir: &Path, record: &queue::Record) -> Result<PathBuf, PipelineError> {
    let failed = |source| PipelineError::DeadLetter {
        position: record.position,
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let path = dir.join(format!("{:020}.record", record.position.0));
    let mut file = std::fs::File::create(&path).map_err(failed)?;
    file.write_all(&record.payload).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    // The file's directory entry must be durable too, or a crash could lose
    // the file after the queue has released the record.
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(failed)?;
    Ok(path)
}

struct Worker {
    queue: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    progress: watch::Sender<Progress>,
    /// Where the next unread record starts.
    next: Position,
    /// Events staged since the last commit.
    staged: u64,
    last_commit: Instant,
}

impl Worker {
    async fn drain(
        &mut self,
        config: &WorkerConfig,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let wait = config.commit_interval.min(Duration::from_millis(100));
            let read = self
                .queue
                .read(self.next, config.read_records, config.read_bytes, wait);
            let records = tokio::select! {
                records = read => records?,
                changed = shutdown.changed() => match changed {
                    Ok(()) => continue,
                    // The sender is gone: nobody can ask for a stop any more, so stop now.
                    Err(_) => return Ok(()),
                },
            };
            for record in records {
                match model::decode_record(&record.payload, record.position.0) {
                    Ok(events) => {
                        self.staged += events.len() as u64;
                        self.store.stage(events).await?;
                    }
                    Err(error) => {
                        let path = set_aside(&config.dead_letter_dir, &record)?;
                        tracing::error!(
                            position = record.position.0,
                            %error,
                            path = %path.display(),
                            "set aside an unreadable queue record"
                        );
                        self.progress.send_modify(|p| p.skipped_records += 1);
                    }
                }
                self.next = record.next;
            }
            let due = self.staged >= config.commit_events as u64
                || self.last_commit.elapsed() >= config.commit_interval;
            if due {
                self.commit().await?;
            }
        }
    }

    /// Commits staged events with the position after them, then releases the
    /// queue up to it. Does nothing if nothing was read since the last commit.
    async fn commit(&mut self) -> Result<(), PipelineError> {
        self.last_commit = Instant::now();
        if self.next == self.progress.borrow().committed {
            return Ok(());
        }
        self.store.commit(Some(self.next.0)).await?;
        self.queue.release(self.next).await?;
        let (next, staged) = (self.next, self.staged);
        self.progress.send_modify(|p| {
            p.committed = next;
            p.committed_events += staged;
        });
        self.staged = 0;
        Ok(())
    }
}
