//! The embedded [`Queue`] implementation: a segmented append-only log in a local directory, recovered on open and written by one group-committing writer thread.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use crate::follow::EmbeddedFollower;
use crate::segment::{self, HEADER_LEN, Segment, Span};
use crate::writer::{Request, Writer};
use crate::{Consumer, Follower, Position, Queue, QueueError, QueueStats, Record, Resume};

mod snapshot;
pub use snapshot::LinkedSegment;

const LOCK_FILE: &str = "lock";

/// Settings for [`EmbeddedQueue::open`].
#[derive(Debug, Clone)]
pub struct EmbeddedQueueConfig {
    /// Directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// A segment is rolled over before it would grow beyond this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Bound on pending (appended but unreleased) bytes, framing included (default 1 GiB).
    pub max_bytes: u64,
    /// Largest accepted payload (default 64 MiB).
    pub max_record_bytes: usize,
}

impl EmbeddedQueueConfig {
    /// Configuration with default sizes for a queue in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedQueueConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            max_record_bytes: 64 << 20,
        }
    }
}

/// State shared by the queue handle and its writer thread.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<State>,
    /// Mirrors `State::durable_end` so readers can wait for it to advance.
    pub(crate) durable: watch::Sender<u64>,
    pub(crate) syncs: AtomicU64,
    /// Each record once it is durable, for followers (the live tail); the
    /// writer sends nothing while no one follows.
    pub(crate) followed: tokio::sync::broadcast::Sender<Record>,
}

/// Mutable bookkeeping, guarded by `Shared::state`.
pub(crate) struct State {
    /// Retained segments by start position; the last one is the writer's active segment.
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
    /// Everything before this is fsynced; only the writer advances it, after `sync_data` returns.
    pub(crate) durable_end: u64,
    pub(crate) released: u64,
    /// Framed bytes submitted to the writer but not yet durable.
    pub(crate) queued_bytes: u64,
    /// Channel to the writer; `None` once closed or after the writer failed.
    pub(crate) sender: Option<mpsc::Sender<Request>>,
    /// Why the writer stopped, if it hit an I/O error.
    pub(crate) failure: Option<String>,
}

impl Shared {
    /// Locks the state. A panic while holding the lock cannot leave it inconsistent (every update is a plain field store), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn first(&self) -> u64 {
        self.segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.durable_end)
    }
}

/// The built-in [`Queue`]: an append-only segmented log in a local directory.
///
/// Appends are handed to a dedicated OS thread that writes every pending
/// append with one write and one `fdatasync`, and replies only after that
/// sync. One process at a time may use a directory (enforced with a lock on
/// the `lock` file inside it). Dropping the queue stops and joins the writer,
/// like [`Queue::close`] but blocking. A `release` beyond the durable end is
/// treated as a release up to the durable end.
pub struct EmbeddedQueue {
    shared: Arc<Shared>,
    max_bytes: u64,
    max_record: usize,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Holds the directory lock for the queue's lifetime.
    _lock: File,
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the queue in `config.dir`, recovering from a crash, and starts the writer thread.
    ///
    /// Recovery validates every record of every segment. A torn or corrupt
    /// tail of the last segment (the only place a crash can leave one) is
    /// truncated with a warning; damage anywhere else is
    /// [`QueueError::Corrupt`]. This does blocking file I/O and does not need
    /// a tokio runtime; from async code, call it at startup or inside
    /// `spawn_blocking`. The [`Queue`] methods need a tokio runtime.
    pub fn open(config: EmbeddedQueueConfig) -> Result<Self, QueueError> {
        let dir = config.dir;
        std::fs::create_dir_all(&dir)
            .map_err(|e| QueueError::io(format!("creating directory {}", dir.display()), e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| QueueError::io(format!("opening {}", lock_path.display()), e))?;
        lock.try_lock().map_err(|error| match error {
            std::fs::TryLockError::WouldBlock => QueueError::Locked {
                dir: dir.display().to_string(),
            },
            std::fs::TryLockError::Error(error) => {
                QueueError::io(format!("locking {}", lock_path.display()), error)
            }
        })?;

        let recovered = recover(&dir)?;
        let end = recovered.active_start + recovered.active_len;
        let first = recovered.segments.first().map_or(end, |s| s.start);
        info!(
            dir = %dir.display(),
            first,
            end,
            segments = recovered.segments.len(),
            "opened queue"
        );

        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            dir,
            state: Mutex::new(State {
                segments: recovered
                    .segments
                    .into_iter()
                    .map(|s| (s.start, s))
                    .collect(),
                durable_end: end,
                released: first,
                queued_bytes: 0,
                sender: Some(sender),
                failure: None,
            }),
            durable: watch::Sender::new(end),
            syncs: AtomicU64::new(0),
            followed: tokio::sync::broadcast::Sender::new(crate::follow::FOLLOW_CAPACITY),
        });
        let writer = Writer::new(
            Arc::clone(&shared),
            receiver,
            recovered.active,
            recovered.active_start,
            recovered.active_len,
            config.segment_bytes,
        );
        let handle = std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| QueueError::io("starting the queue writer thread", e))?;

        let max_record = config.max_record_bytes.min(u32::MAX as usize).min(
            usize::try_from(config.max_bytes.saturating_sub(HEADER_LEN)).unwrap_or(usize::MAX),
        );
        Ok(EmbeddedQueue {
            shared,
            max_bytes: config.max_bytes,
            max_record,
            writer: tokio::sync::Mutex::new(Some(handle)),
            _lock: lock,
        })
    }

    /// The durable part of the log from `from` on, or `None` if nothing is durable there yet.
    fn spans_from(&self, from: Position) -> Result<Option<Vec<Span>>, QueueError> {
        let state = self.shared.lock();
        let end = state.durable_end;
        let first = state.first();
        if from.0 < first {
            return Err(QueueError::Released {
                requested: from,
                first: Position(first),
            });
        }
        if from.0 > end {
            return Err(QueueError::Corrupt(format!(
                "position {} is past the durable end {end}; the consumer's position does not belong to this queue",
                from.0
            )));
        }
        if from.0 == end {
            return Ok(None);
        }
        let containing = state
            .segments
            .range(..=from.0)
            .next_back()
            .map_or(first, |(start, _)| *start);
        let mut spans: Vec<Span> = Vec::new();
        for (start, segment) in state.segments.range(containing..end) {
            if let Some(previous) = spans.last_mut() {
                previous.end = *start;
            }
            spans.push(Span {
                segment: Arc::clone(segment),
                end,
            });
        }
        Ok(Some(spans))
    }
}

/// What recovery found: the retained segments and where the writer continues.
struct Recovered {
    segments: Vec<Arc<Segment>>,
    active: File,
    active_start: u64,
    active_len: u64,
}

/// Validates the segments in `dir`, truncates a torn tail, and creates the first segment of a new queue.
fn recover(dir: &Path) -> Result<Recovered, QueueError> {
    let mut listed = segment::list_segments(dir)?;
    let Some((last_start, last_path)) = listed.pop() else {
        let (segment, active) = segment::create_segment(dir, 0)?;
        return Ok(Recovered {
            segments: vec![segment],
            active,
            active_start: 0,
            active_len: 0,
        });
    };
    let mut segments = Vec::with_capacity(listed.len() + 1);
    let mut expected_start = None;
    for (start, path) in listed {
        let (file, scan) = open_and_scan(start, &path, expected_start, false)?;
        if let Some(defect) = scan.defect {
            return Err(QueueError::Corrupt(format!(
                "segment {} has a bad record at byte offset {} (position {}): {defect}",
                path.display(),
                scan.valid_len,
                start + scan.valid_len
            )));
        }
        expected_start = Some(start + scan.valid_len);
        segments.push(Arc::new(Segment { start, path, file }));
    }

    let (file, scan) = open_and_scan(last_start, &last_path, expected_start, true)?;
    if let Some(defect) = scan.defect {
        file.set_len(scan.valid_len)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                QueueError::io(
                    format!("truncating torn tail of {}", last_path.display()),
                    e,
                )
            })?;
        let cut = scan.file_len - scan.valid_len;
        warn!(
            segment = %last_path.display(),
            offset = scan.valid_len,
            cut_bytes = cut,
            "truncated {cut} bytes of torn or corrupt tail from the last queue segment: {defect}"
        );
    }
    let active = file
        .try_clone()
        .map_err(|e| QueueError::io(format!("duplicating handle of {}", last_path.display()), e))?;
    segments.push(Arc::new(Segment {
        start: last_start,
        path: last_path,
        file,
    }));
    Ok(Recovered {
        segments,
        active,
        active_start: last_start,
        active_len: scan.valid_len,
    })
}

/// Opens a segment (writable if it is the active one), checks it continues where the previous one ended, and scans it.
fn open_and_scan(
    start: u64,
    path: &Path,
    expected_start: Option<u64>,
    writable: bool,
) -> Result<(File, segment::Scan), QueueError> {
    if let Some(expected) = expected_start
        && expected != start
    {
        return Err(QueueError::Corrupt(format!(
            "segment {} starts at position {start}, but the previous segment ends at {expected}",
            path.display()
        )));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| QueueError::io(format!("opening segment {}", path.display()), e))?;
    let scan = segment::scan(path, &file)?;
    Ok((file, scan))
}

impl EmbeddedQueue {
    /// Reads durable records starting exactly at `from`.
    ///
    /// `from` must be a record boundary returned earlier, or
    /// `stats().first`/`released`. Returns at most `max_records` records and
    /// roughly `max_bytes` payload bytes (always at least one record if
    /// available). If none is available yet, waits up to `wait` for one to
    /// become durable, then returns what there is (possibly empty).
    pub async fn read(
        &self,
        from: Position,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError> {
        if max_records == 0 {
            return Ok(Vec::new());
        }
        // Subscribe before looking, so an append landing in between still wakes us.
        let mut durable = self.shared.durable.subscribe();
        let spans = match self.spans_from(from)? {
            Some(spans) => spans,
            None => {
                let arrived =
                    tokio::time::timeout(wait, durable.wait_for(|end| *end > from.0)).await;
                if !matches!(arrived, Ok(Ok(_))) {
                    return Ok(Vec::new());
                }
                match self.spans_from(from)? {
                    Some(spans) => spans,
                    None => return Ok(Vec::new()),
                }
            }
        };
        tokio::task::spawn_blocking(move || {
            segment::read_records(&spans, from.0, max_records, max_bytes)
        })
        .await
        .map_err(|e| QueueError::io("reading queue segments", std::io::Error::other(e)))?
    }

    /// Tells the queue that everything before `upto` is processed; whole
    /// segments entirely before it are deleted.
    pub async fn release(&self, upto: Position) -> Result<(), QueueError> {
        let doomed: Vec<Arc<Segment>> = {
            let mut state = self.shared.lock();
            // Releasing past the durable end would pre-release records not yet written.
            let upto = upto.0.min(state.durable_end);
            state.released = state.released.max(upto);
            let released = state.released;
            let starts: Vec<u64> = state.segments.keys().copied().collect();
            // A segment ends where the next one starts; the last (active) one has no successor and is never deleted.
            let deletable = starts
                .windows(2)
                .take_while(|pair| pair[1] <= released)
                .count();
            starts[..deletable]
                .iter()
                .filter_map(|start| state.segments.remove(start))
                .collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        let dir = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || {
            for segment in &doomed {
                std::fs::remove_file(&segment.path).map_err(|e| {
                    QueueError::io(format!("deleting segment {}", segment.path.display()), e)
                })?;
            }
            segment::sync_dir(&dir)
        })
        .await
        .map_err(|e| QueueError::io("deleting released segments", std::io::Error::other(e)))?
    }
}

/// The embedded queue's only consumer: it reads on from where the store's
/// last commit left off, and an acknowledgement releases everything before it.
struct EmbeddedConsumer {
    queue: Arc<EmbeddedQueue>,
    next: Position,
}

#[async_trait::async_trait]
impl Consumer for EmbeddedConsumer {
    async fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError> {
        let records = self
            .queue
            .read(self.next, max_records, max_bytes, wait)
            .await?;
        if let Some(last) = records.last() {
            self.next = last.next;
        }
        Ok(records)
    }

    async fn ack(&mut self, records: &[Record]) -> Result<(), QueueError> {
        match records.iter().map(|record| record.next).max() {
            Some(upto) => self.queue.release(upto).await,
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Queue for EmbeddedQueue {
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError> {
        if payload.len() > self.max_record {
            return Err(QueueError::RecordTooLarge {
                size: payload.len(),
                max: self.max_record,
            });
        }
        let frame = HEADER_LEN + payload.len() as u64;
        let (reply, acknowledged) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            let Some(sender) = &state.sender else {
                return Err(match &state.failure {
                    Some(failure) => QueueError::Unavailable(failure.clone()),
                    None => QueueError::Closed,
                });
            };
            let pending = state.durable_end - state.released + state.queued_bytes;
            if pending + frame > self.max_bytes {
                return Err(QueueError::Full {
                    pending_bytes: pending,
                    max_bytes: self.max_bytes,
                });
            }
            sender
                .send(Request { payload, reply })
                .map_err(|_| QueueError::Closed)?;
            state.queued_bytes += frame;
        }
        // The writer replies only after the record is fsynced; a dropped reply means it died.
        acknowledged.await.map_err(|_| QueueError::Closed)?
    }

    fn resume(&self) -> Resume {
        Resume::FromStore
    }

    async fn consumer(self: Arc<Self>, start: Position) -> Result<Box<dyn Consumer>, QueueError> {
        // The queue forgets releases across restarts; what the store holds is released.
        self.release(start).await?;
        Ok(Box::new(EmbeddedConsumer {
            queue: self,
            next: start,
        }))
    }

    async fn follow(&self) -> Result<Box<dyn Follower>, QueueError> {
        // Under the lock the writer publishes with: the follower starts exactly at the durable end.
        let state = self.shared.lock();
        let receiver = self.shared.followed.subscribe();
        Ok(Box::new(EmbeddedFollower::new(
            receiver,
            Position(state.durable_end),
        )))
    }

    fn stats(&self) -> QueueStats {
        let state = self.shared.lock();
        QueueStats {
            backend: "embedded",
            first: Position(state.first()),
            durable_end: Position(state.durable_end),
            released: Position(state.released),
            pending_bytes: state.durable_end - state.released,
            segments: state.segments.len(),
            max_bytes: self.max_bytes,
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            failed: state.failure.is_some(),
            ..QueueStats::default()
        }
    }

    async fn close(&self) {
        let mut writer = self.writer.lock().await;
        // Dropping the only sender lets the writer drain what was submitted, sync it, reply, and exit.
        self.shared.lock().sender = None;
        if let Some(handle) = writer.take() {
            match tokio::task::spawn_blocking(move || handle.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => error!("queue writer thread panicked"),
                Err(e) => error!(error = %e, "could not wait for the queue writer thread"),
            }
        }
    }
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("dir", &self.shared.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedQueue {
    fn drop(&mut self) {
        self.shared.lock().sender = None;
        if let Some(handle) = self.writer.get_mut().take()
            && handle.join().is_err()
        {
            error!("queue writer thread panicked");
        }
    }
}
