//! Poison isolation: a store that refuses one event of a batch gets the rest of
//! the batch stored, the event alone tried `max_attempts` times and then kept
//! as a dead letter, which is stored once when replayed after the cause is gone.
//!
//! The embedded store never refuses data, so the store here is a test double:
//! the embedded store behind a wrapper that refuses any commit whose staged
//! events hold the word "poison" while told to, keeping the `Rejected`
//! contract (a refused commit drops everything staged).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use model::{BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch};
use pipeline::{Progress, WorkerConfig};
use queue::{EmbeddedQueue, EmbeddedQueueConfig, Position, Queue};
use store::dead_letters::DirectoryDeadLetters;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{
    Bucket, DeadLetters, EventStore, Filter, Footprint, HistogramRequest, SearchPage,
    SearchRequest, Stats, StoreError, StoredEvent,
};
use tokio::sync::watch;

/// The embedded store, refusing commits that hold a poison event while
/// `refusing` is set. Staged events wait here until the commit, so dropping
/// them on a refusal is forgetting them.
struct Refusing {
    inner: EmbeddedStore,
    staged: Mutex<Vec<QueuedEvent>>,
    refusing: AtomicBool,
    /// Commits still to fail as if the database were unreachable (dropping
    /// what was staged, as a failed commit does).
    unreachable_commits: AtomicU32,
}

fn is_poison(event: &QueuedEvent) -> bool {
    event
        .event
        .message
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("poison"))
}

#[async_trait]
impl EventStore for Refusing {
    async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
        self.inner.committed_position().await
    }
    async fn stage(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        self.staged.lock().unwrap().extend(events);
        Ok(())
    }
    async fn commit(&self, position: Option<u64>) -> Result<(), StoreError> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap());
        if self
            .unreachable_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        if self.refusing.load(Ordering::SeqCst) && staged.iter().any(is_poison) {
            return Err(StoreError::Rejected(
                "a message holds the word poison".into(),
            ));
        }
        self.inner.stage(staged).await?;
        self.inner.commit(position).await
    }
    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError> {
        // The poison cases run over the embedded queue, which has no partitions.
        let _ = (topic, next);
        unreachable!("the embedded queue commits positions, not offsets")
    }
    async fn committed_offsets(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        self.inner.committed_offsets(topic).await
    }
    async fn search(&self, request: SearchRequest) -> Result<SearchPage, StoreError> {
        self.inner.search(request).await
    }
    async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.get(tenant, stream, id).await
    }
    async fn stats(&self, filter: Filter) -> Result<Stats, StoreError> {
        self.inner.stats(filter).await
    }
    async fn histogram(&self, request: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
        self.inner.histogram(request).await
    }
    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
    async fn expire_logs(&self, tenant: &str, before: Timestamp) -> Result<(), StoreError> {
        self.inner.expire_logs(tenant, before).await
    }
    async fn footprint(&self) -> Result<Footprint, StoreError> {
        self.inner.footprint().await
    }
}

/// A record of events `first..first + count` with server-chosen ids; event
/// `poison` (if in range) is the poison one.
fn record(first: usize, count: usize, poison: usize) -> bytes::Bytes {
    let events: Vec<serde_json::Value> = (first..first + count)
        .map(|i| match i == poison {
            true => serde_json::json!({"message": format!("poison pill {i}")}),
            false => serde_json::json!({"message": format!("event number {i}")}),
        })
        .collect();
    let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
    let body = serde_json::to_vec(&events).unwrap();
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    model::encode_record(&batch).into()
}

async fn count(store: &Arc<Refusing>, q: &str) -> u64 {
    let filter = Filter {
        tenant: "default".into(),
        stream: Stream::Logs,
        query: query::parse(q).unwrap(),
        from: None,
        to: None,
    };
    store.stats(filter).await.unwrap().total
}

struct Running {
    shutdown: watch::Sender<bool>,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<(), pipeline::PipelineError>>,
}

fn start(
    queue: &Arc<dyn Queue>,
    store: &Arc<Refusing>,
    letters: &Arc<DirectoryDeadLetters>,
) -> Running {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(Progress::default());
    let config = WorkerConfig {
        commit_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let task = tokio::spawn(pipeline::run(
        Arc::clone(queue),
        Arc::clone(store) as Arc<dyn EventStore>,
        Arc::clone(letters) as Arc<dyn DeadLetters>,
        config,
        shutdown_rx,
        progress_tx,
    ));
    Running {
        shutdown,
        progress,
        task,
    }
}

async fn wait_for_commit(running: &mut Running, position: Position) {
    tokio::time::timeout(
        Duration::from_secs(20),
        running.progress.wait_for(|p| p.committed >= position),
    )
    .await
    .expect("the worker commits in time")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_isolated_kept_and_replayed_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let open_queue = || -> Arc<dyn Queue> {
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("queue"))).unwrap())
    };
    let store = Arc::new(Refusing {
        inner: EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("index"))).unwrap(),
        staged: Mutex::new(Vec::new()),
        refusing: AtomicBool::new(true),
        unreachable_commits: AtomicU32::new(0),
    });
    let letters = Arc::new(DirectoryDeadLetters::new(dir.path().join("dead-letter")));
    let max_attempts = WorkerConfig::default().max_attempts;

    // A batch of 100 events, one of them poison.
    let queue = open_queue();
    let (at, end) = queue.append(record(0, 100, 37)).await.unwrap();
    let mut running = start(&queue, &store, &letters);
    wait_for_commit(&mut running, end).await;
    assert_eq!(
        count(&store, "*").await,
        99,
        "the rest of the batch is stored"
    );
    assert_eq!(count(&store, "poison").await, 0);
    assert_eq!(running.progress.borrow().committed_events, 99);
    assert_eq!(running.progress.borrow().dead_letters, 1);
    assert_eq!(queue.stats().pending_bytes, 0, "the record is acknowledged");

    let page = letters.list(None, 100).await.unwrap();
    assert_eq!(page.letters.len(), 1, "{page:?}");
    let info = &page.letters[0];
    assert_eq!(info.attempts, max_attempts);
    assert_eq!(info.id, format!("{:020}", at.0 + 37), "its arrival number");
    assert_eq!(info.position, at.0);
    assert_eq!(info.tenant.as_deref(), Some("default"));
    assert_eq!(info.stream, Some(Stream::Logs));
    assert!(info.error.contains("poison"), "{}", info.error);
    assert!(info.first_failed_at <= info.last_failed_at);

    // A restart replays nothing: the position after the batch was committed.
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    queue.close().await;
    drop(queue);
    let queue = open_queue();
    let mut running = start(&queue, &store, &letters);
    running.progress.wait_for(|p| p.running).await.unwrap();
    assert_eq!(count(&store, "*").await, 99);

    // The cause is fixed; the letter is replayed (twice, as if a first replay
    // had not removed it) and the event is stored once.
    store.refusing.store(false, Ordering::SeqCst);
    let letter = letters.get(&info.id).await.unwrap().unwrap();
    queue.append(letter.payload.clone().into()).await.unwrap();
    let (_, end) = queue.append(letter.payload.into()).await.unwrap();
    assert!(letters.remove(&info.id).await.unwrap());
    wait_for_commit(&mut running, end).await;
    assert_eq!(count(&store, "*").await, 100);
    assert_eq!(count(&store, "poison").await, 1);
    assert_eq!(running.progress.borrow().dead_letters, 0);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_one_record_of_many_leaves_the_others_and_their_order_alone() {
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("q"))).unwrap());
    let store = Arc::new(Refusing {
        inner: EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("i"))).unwrap(),
        staged: Mutex::new(Vec::new()),
        refusing: AtomicBool::new(true),
        unreachable_commits: AtomicU32::new(0),
    });
    let letters = Arc::new(DirectoryDeadLetters::new(dir.path().join("dead")));
    // Records read in one round: one clean, two with a poison event each,
    // and one that is a single poison event.
    queue.append(record(0, 10, usize::MAX)).await.unwrap();
    queue.append(record(10, 10, 12)).await.unwrap();
    queue.append(record(20, 10, 25)).await.unwrap();
    let (_, end) = queue.append(record(30, 1, 30)).await.unwrap();
    let mut running = start(&queue, &store, &letters);
    wait_for_commit(&mut running, end).await;
    assert_eq!(count(&store, "*").await, 28);
    let page = letters.list(None, 100).await.unwrap();
    assert_eq!(page.letters.len(), 3, "{page:?}");
    let stored = store
        .search(SearchRequest {
            filter: Filter {
                tenant: "default".into(),
                stream: Stream::Logs,
                query: query::Query::All,
                from: None,
                to: None,
            },
            limit: 100,
            cursor: None,
            order: store::Order::Ascending,
        })
        .await
        .unwrap();
    let messages: Vec<String> = stored
        .events
        .iter()
        .map(|event| {
            let event: serde_json::Value = serde_json::from_str(event.get()).unwrap();
            event["message"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..30)
        .filter(|i| ![12, 25].contains(i))
        .map(|i| format!("event number {i}"))
        .collect();
    assert_eq!(messages, expected, "stored once each, in arrival order");
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_that_fail_while_the_store_is_unreachable_are_retried_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("queue"))).unwrap());
    let store = Arc::new(Refusing {
        inner: EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("index"))).unwrap(),
        staged: Mutex::new(Vec::new()),
        refusing: AtomicBool::new(false),
        unreachable_commits: AtomicU32::new(3),
    });
    let letters = Arc::new(DirectoryDeadLetters::new(dir.path().join("dead-letter")));
    queue.append(record(0, 60, usize::MAX)).await.unwrap();
    let (_, end) = queue.append(record(60, 40, usize::MAX)).await.unwrap();
    let mut running = start(&queue, &store, &letters);
    wait_for_commit(&mut running, end).await;
    assert_eq!(store.unreachable_commits.load(Ordering::SeqCst), 0);
    assert_eq!(
        count(&store, "*").await,
        100,
        "nothing dropped, nothing twice"
    );
    assert!(!running.progress.borrow().store_failing);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}
