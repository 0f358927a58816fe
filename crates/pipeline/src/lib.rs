//! The worker that drains the queue into the store.
//!
//! Exactly-once from queue to store: the worker resumes from the queue position
//! recorded in the store's last commit, stages what it reads, and commits the
//! events together with the position after them. A crash between two commits
//! replays exactly the uncommitted records; nothing is lost or stored twice.
//! Only after a commit does the worker release the queue up to that position.
//!
//! Over a queue with consumer groups (Redis Streams) several workers share the
//! work; a record is acknowledged only after the commit that holds its events,
//! and a record handed out again (its worker died) replaces its events'
//! earlier copies instead of adding new ones.
//!
//! Over a partitioned queue (Kafka) the worker's consumer starts each
//! partition assigned to it at the offset the store's commits recorded, and
//! each commit records, with its events, the next offset of every partition it
//! covers: exactly-once across crashes and rebalances, without Kafka's own
//! committed offsets (a worker that lost a partition and commits late cannot
//! move its offset back, and its events are stored once by id).
//!
//! Nothing is skipped silently: a record that cannot be decoded, and an event
//! the store refuses on its own (see `isolate.rs`), become dead letters
//! ([`store::DeadLetters`]) before their records are acknowledged. Over a
//! queue with a retry topology (RabbitMQ), a refused batch's records first go
//! through its delay queues (see `retry.rs`).

mod isolate;
mod retry;
mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue::{Consumer, Position, Queue, QueueError, Record, Resume, StoredOffsets};
use store::{DeadLetter, DeadLetters, EventStore, StoreError};
use tokio::sync::watch;

use crate::telemetry::DeadLetterReason;

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
    /// How many times an event the store refuses on its own is tried before
    /// it becomes a dead letter.
    pub max_attempts: u32,
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
            max_attempts: 5,
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
    #[error("cannot keep a dead letter of the queue record at {position:?}: {source}")]
    DeadLetter {
        position: Position,
        #[source]
        source: StoreError,
    },
}

/// What the worker has done, for readiness checks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The queue position covered by the last commit.
    pub committed: Position,
    pub committed_events: u64,
    /// Records that could not be decoded and became dead letters.
    pub skipped_records: u64,
    /// Dead letters written: unreadable records and events the store refused.
    pub dead_letters: u64,
    /// Records of refused batches sent through the queue's retry topology.
    pub retried_records: u64,
    pub running: bool,
    /// The last commit failed because the store was unavailable; the worker
    /// is retrying it.
    pub store_failing: bool,
    /// When the oldest event read and not yet committed was received: the
    /// age of the oldest event waiting to be stored, while there is one.
    pub oldest_pending: Option<model::Timestamp>,
}

/// Drains `queue` into `store` until `shutdown` turns true, then commits what
/// is staged and returns. What cannot be stored goes to `dead_letters`.
/// Progress is published on `progress`.
pub async fn run(
    queue: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    dead_letters: Arc<dyn DeadLetters>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
    progress: watch::Sender<Progress>,
) -> Result<(), PipelineError> {
    let resume = queue.resume();
    let start = match resume {
        Resume::FromStore => resume_from_store(queue.as_ref(), store.as_ref(), &config).await?,
        Resume::Group | Resume::Partitions => Position(0),
    };
    let topic = queue.topic().map(str::to_owned);
    let consumer = match (resume, &topic) {
        (Resume::Partitions, Some(topic)) => {
            tracing::info!(
                topic,
                "worker resumes each partition from the store's offsets"
            );
            let offsets = Arc::new(StoreOffsets(Arc::clone(&store)));
            Arc::clone(&queue).partition_consumer(offsets).await?
        }
        (Resume::Partitions, None) => {
            return Err(QueueError::Config("a partitioned queue names no topic".into()).into());
        }
        _ => Arc::clone(&queue).consumer(start).await?,
    };
    telemetry::register_worker_series();
    progress.send_modify(|p| {
        p.committed = start;
        p.running = true;
    });

    let mut worker = Worker {
        consumer,
        store,
        dead_letters,
        progress,
        resume,
        topic,
        offsets: BTreeMap::new(),
        max_attempts: config.max_attempts.max(1),
        next: start,
        committed: start,
        unacked: Vec::new(),
        readable: Vec::new(),
        staged: 0,
        last_commit: Instant::now(),
        batch_started: None,
        queue_backoff: Backoff::default(),
    };
    let result = worker.drain(&config, &mut shutdown).await;
    // Whatever stopped the loop, keep what is already staged if the store still can.
    let result = match result {
        Ok(()) => worker.commit(&mut shutdown).await,
        Err(error) => Err(error),
    };
    worker.progress.send_modify(|p| p.running = false);
    result
}

/// Where a [`Resume::FromStore`] queue's consumer starts: the position the
/// store's last commit covers, after checking that the queue still holds
/// everything after it.
async fn resume_from_store(
    queue: &dyn Queue,
    store: &dyn EventStore,
    config: &WorkerConfig,
) -> Result<Position, PipelineError> {
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
    tracing::info!(
        position = committed.0,
        "worker resumes from the store's last commit"
    );
    Ok(committed)
}

/// The store's offsets, for a partitioned queue's consumer.
struct StoreOffsets(Arc<dyn EventStore>);

#[async_trait::async_trait]
impl StoredOffsets for StoreOffsets {
    async fn stored_offsets(&self, topic: &str) -> Result<BTreeMap<u32, u64>, QueueError> {
        self.0
            .committed_offsets(topic)
            .await
            .map_err(|error| QueueError::Unreachable(format!("store: {error}")))
    }
}

/// What a commit records of the queue with its events.
#[derive(Debug, Clone)]
pub(crate) enum Mark {
    /// Nothing: the store's record stays as it is (queues with consumer
    /// groups, and the parts of an isolated batch).
    Nothing,
    /// The position after the records (the embedded queue).
    Position(u64),
    /// The next offset of each partition the records came from (Kafka).
    Offsets(Vec<(u32, u64)>),
}

struct Worker {
    consumer: Box<dyn Consumer>,
    store: Arc<dyn EventStore>,
    dead_letters: Arc<dyn DeadLetters>,
    progress: watch::Sender<Progress>,
    resume: Resume,
    /// The topic of a partitioned queue.
    topic: Option<String>,
    /// Per partition, the offset after the records read since the last commit.
    offsets: BTreeMap<u32, u64>,
    /// Tries of an event the store refuses alone before it becomes a dead letter.
    max_attempts: u32,
    /// Where the next unread record starts.
    next: Position,
    /// The position the last commit covers.
    committed: Position,
    /// Records read since the last commit (their payloads dropped), to
    /// acknowledge once it succeeds.
    unacked: Vec<Record>,
    /// The decodable records among them, with their payloads: if the store
    /// refuses the commit (and drops what was staged), their events are
    /// staged again, in parts, from these.
    readable: Vec<Record>,
    /// Events staged since the last commit.
    staged: u64,
    last_commit: Instant,
    /// When the first record since the last commit was read.
    batch_started: Option<Instant>,
    /// Pauses between reads while the queue is unavailable.
    queue_backoff: Backoff,
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
                .consumer
                .read(config.read_records, config.read_bytes, wait);
            let records = tokio::select! {
                records = read => records,
                changed = shutdown.changed() => match changed {
                    Ok(()) => continue,
                    // The sender is gone: nobody can ask for a stop any more, so stop now.
                    Err(_) => return Ok(()),
                },
            };
            let records = match records {
                Ok(records) => {
                    self.queue_backoff = Backoff::default();
                    records
                }
                // A broker that cannot be reached is waited for, not given up on.
                Err(QueueError::Unreachable(reason)) => {
                    telemetry::retried(telemetry::Retried::Read);
                    let pause = self.queue_backoff.next_pause();
                    tracing::warn!(
                        %reason,
                        retry_in_ms = pause.as_millis() as u64,
                        "the queue is unavailable; reading again later"
                    );
                    pause_unless_stopped(pause, shutdown).await;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            for mut record in records {
                self.batch_started.get_or_insert_with(Instant::now);
                match model::decode_record(&record.payload, record.position.0) {
                    Ok(mut events) => {
                        if let Some(first) = events.first()
                            && self.progress.borrow().oldest_pending.is_none()
                        {
                            let received = first.event.received_at;
                            self.progress
                                .send_modify(|p| p.oldest_pending = Some(received));
                        }
                        if record.redelivered {
                            // Its events may be stored already: each replaces
                            // its earlier copy instead of adding a second one.
                            for event in &mut events {
                                event.replace_existing = true;
                            }
                        }
                        self.staged += events.len() as u64;
                        self.store.stage(events).await?;
                        self.readable.push(record.clone());
                    }
                    Err(error) => {
                        let letter = DeadLetter::for_record(
                            record.position.0,
                            record.payload.to_vec(),
                            error.to_string(),
                        );
                        let id = letter.info.id.clone();
                        self.keep(letter, DeadLetterReason::Unreadable, shutdown)
                            .await?;
                        tracing::error!(
                            position = record.position.0,
                            %error,
                            dead_letter = id,
                            "an unreadable queue record became a dead letter"
                        );
                        self.progress.send_modify(|p| p.skipped_records += 1);
                    }
                }
                self.next = self.next.max(record.next);
                if let Some((partition, offset)) = record.partition_offset() {
                    let next = self.offsets.entry(partition).or_default();
                    *next = (*next).max(offset + 1);
                }
                record.payload = bytes::Bytes::new();
                self.unacked.push(record);
            }
            let due = self.staged >= config.commit_events as u64
                || self.last_commit.elapsed() >= config.commit_interval;
            if due {
                self.commit(shutdown).await?;
            }
        }
    }

    /// Commits staged events (with the position after them, for queues that
    /// resume from the store), then acknowledges their records. Does nothing
    /// if nothing was read since the last commit. A store that is unavailable
    /// is retried with growing pauses until it answers or a stop is asked; a
    /// batch the store refuses goes through the queue's retry topology while
    /// its records have retries left (`retry.rs`), else is stored in parts,
    /// and what the store refuses alone becomes dead letters (`isolate.rs`).
    async fn commit(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), PipelineError> {
        self.last_commit = Instant::now();
        if self.unacked.is_empty() {
            return Ok(());
        }
        let mark = self.mark();
        if let Committed::Refused(reason) = self
            .commit_staged(&mark, Staged::Readable, shutdown)
            .await?
        {
            self.retry_refused(&reason).await;
            let refused = match self.readable.is_empty() {
                true => 0,
                false => self.isolate(reason, shutdown).await?,
            };
            self.staged = self.staged.saturating_sub(refused);
            // Every part is stored; this records what they cover of the queue.
            if !matches!(mark, Mark::Nothing)
                && let Committed::Refused(reason) = self
                    .commit_staged(&mark, Staged::These(Vec::new()), shutdown)
                    .await?
            {
                return Err(StoreError::Rejected(reason).into());
            }
        }
        // The events are stored; an acknowledgement that cannot reach the
        // broker is retried, and if it never arrives the records come back and
        // replace their stored copies.
        let mut ack_backoff = Backoff::default();
        loop {
            match self.consumer.ack(&self.unacked).await {
                Ok(()) => break,
                Err(QueueError::Unreachable(reason)) if !*shutdown.borrow() => {
                    telemetry::retried(telemetry::Retried::Ack);
                    let pause = ack_backoff.next_pause();
                    tracing::warn!(
                        %reason,
                        retry_in_ms = pause.as_millis() as u64,
                        "cannot acknowledge stored records; retrying"
                    );
                    pause_unless_stopped(pause, shutdown).await;
                }
                Err(QueueError::Unreachable(_)) => break,
                Err(error) => return Err(error.into()),
            }
        }
        let (next, staged) = (self.next, self.staged);
        self.progress.send_modify(|p| {
            p.committed = next;
            p.committed_events += staged;
            p.store_failing = false;
            p.oldest_pending = None;
        });
        telemetry::batch_committed(staged, self.batch_started.take());
        self.committed = next;
        self.offsets.clear();
        self.unacked.clear();
        self.readable.clear();
        self.staged = 0;
        Ok(())
    }

    /// What a commit of everything read records: the position after it, the
    /// next offset of each partition it came from, or nothing for queues
    /// that track their consumers themselves.
    fn mark(&self) -> Mark {
        match self.resume {
            Resume::FromStore => Mark::Position(self.next.0),
            Resume::Group => Mark::Nothing,
            Resume::Partitions => Mark::Offsets(
                self.offsets
                    .iter()
                    .map(|(&partition, &next)| (partition, next))
                    .collect(),
            ),
        }
    }

    /// What the commits of parts of a batch record: what the last complete
    /// commit covers, so that a crash meanwhile replays the whole batch.
    fn hold(&self) -> Mark {
        match self.resume {
            Resume::FromStore => Mark::Position(self.committed.0),
            Resume::Group | Resume::Partitions => Mark::Nothing,
        }
    }

    /// Commits what is staged, with `mark`. A store that is unavailable is
    /// retried with growing pauses until it answers; a stop asked meanwhile
    /// ends the worker with the records unacknowledged (they are read again
    /// after a restart).
    ///
    /// A failed commit drops what was staged (see [`EventStore::commit`]), so
    /// before each retry `staged` is staged again, every event marked to
    /// replace a copy the failed commit may have stored after all.
    async fn commit_staged(
        &mut self,
        mark: &Mark,
        staged: Staged,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Committed, PipelineError> {
        let mut backoff = Backoff::default();
        let mut attempt = 0;
        loop {
            if attempt > 0 {
                telemetry::retried(telemetry::Retried::Commit);
                let again = match &staged {
                    Staged::Readable => self
                        .events_again()
                        .into_iter()
                        .map(|pending| pending.event)
                        .collect(),
                    Staged::These(events) => events
                        .iter()
                        .cloned()
                        .map(|mut event| {
                            event.replace_existing = true;
                            event
                        })
                        .collect(),
                };
                self.store.stage(again).await?;
            }
            attempt += 1;
            let started = Instant::now();
            match store_commit(self.store.as_ref(), self.topic.as_deref(), mark).await {
                Ok(()) => {
                    telemetry::commit_took(started.elapsed());
                    return Ok(Committed::Stored);
                }
                Err(StoreError::Rejected(reason)) => return Ok(Committed::Refused(reason)),
                Err(StoreError::Unavailable(reason)) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(
                        %reason,
                        retry_in_ms = pause.as_millis() as u64,
                        "the store is unavailable; the commit will be retried"
                    );
                    self.progress.send_modify(|p| p.store_failing = true);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => if *shutdown.borrow() {
                            return Err(StoreError::Unavailable(reason).into());
                        },
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes a dead letter durably, before the queue may forget its record.
    /// A dead-letter store that is unavailable is waited for like the store.
    async fn keep(
        &mut self,
        letter: DeadLetter,
        reason: DeadLetterReason,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        let position = Position(letter.info.position);
        let mut backoff = Backoff::default();
        loop {
            match self.dead_letters.put(letter.clone()).await {
                Ok(()) => break,
                Err(StoreError::Unavailable(reason)) if !*shutdown.borrow() => {
                    telemetry::retried(telemetry::Retried::DeadLetter);
                    let pause = backoff.next_pause();
                    tracing::warn!(
                        %reason,
                        retry_in_ms = pause.as_millis() as u64,
                        "the dead-letter store is unavailable; retrying"
                    );
                    pause_unless_stopped(pause, shutdown).await;
                }
                Err(source) => return Err(PipelineError::DeadLetter { position, source }),
            }
        }
        self.progress.send_modify(|p| p.dead_letters += 1);
        telemetry::dead_letter(reason);
        Ok(())
    }
}

/// One commit of `store`, recording `mark` (offsets of `topic`).
async fn store_commit(
    store: &dyn EventStore,
    topic: Option<&str>,
    mark: &Mark,
) -> Result<(), StoreError> {
    match (mark, topic) {
        (Mark::Nothing, _) => store.commit(None).await,
        (Mark::Position(position), _) => store.commit(Some(*position)).await,
        (Mark::Offsets(next), Some(topic)) => store.commit_offsets(topic, next).await,
        (Mark::Offsets(_), None) => Err(StoreError::Corrupt(
            "offsets to record without a topic".into(),
        )),
    }
}

/// How a commit ended, short of an error.
enum Committed {
    Stored,
    /// The store refused what was staged, and dropped it.
    Refused(String),
}

/// Sleeps for `pause`, or less if a stop is asked meanwhile.
async fn pause_unless_stopped(pause: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        _ = shutdown.changed() => {}
    }
}

/// What a commit covers, to stage again if the commit must be retried.
pub(crate) enum Staged {
    /// The events of every readable record read since the last commit.
    Readable,
    /// Exactly these events.
    These(Vec<model::QueuedEvent>),
}

/// Exponential pauses with full jitter between retries of a failing store:
/// from 100 ms, doubling up to 30 s, each drawn uniformly below its ceiling so
/// that many workers do not retry in step.
#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn next_pause(&mut self) -> Duration {
        let ceiling = Self::FIRST
            .saturating_mul(1 << self.attempts.min(16))
            .min(Self::MAX);
        self.attempts = self.attempts.saturating_add(1);
        // Jitter needs no cryptographic quality: the clock's nanoseconds do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |now| now.subsec_nanos());
        let fraction = f64::from(nanos % 1_000_000) / 1_000_000.0;
        ceiling.mul_f64(fraction).max(Self::FIRST / 2)
    }
}
