//! The worker over RabbitMQ's retry queues: a batch the store refuses goes
//! through the delay queues and is stored once when the store takes it; a
//! poison event that is refused every time ends as a dead letter after the
//! retries, and the rest of its record is stored. Skips when
//! `LOGBOOK_TEST_RABBITMQ_URL` is unset.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use model::{BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch};
use pipeline::{Progress, WorkerConfig};
use queue::{AmqpQueue, AmqpQueueConfig, Queue};
use store::dead_letters::DirectoryDeadLetters;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{
    Bucket, DeadLetters, EventStore, Filter, Footprint, HistogramRequest, SearchPage,
    SearchRequest, Stats, StoreError, StoredEvent,
};
use tokio::sync::watch;

const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(100)];

/// The embedded store, refusing its next `refuse_next` commits and every
/// commit that holds a message with "poison", as a store refuses data
/// (`Rejected`, dropping what was staged).
struct Refusing {
    inner: EmbeddedStore,
    staged: Mutex<Vec<QueuedEvent>>,
    refuse_next: AtomicU32,
    refused: AtomicU32,
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
        self.stage_or_refuse().await?;
        self.inner.commit(position).await
    }
    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError> {
        self.stage_or_refuse().await?;
        self.inner.commit_offsets(topic, next).await
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

impl Refusing {
    /// Refuses the commit about to happen, dropping what was staged, if it
    /// is one of the next `refuse_next` or holds poison; otherwise hands the
    /// staged events to the inner store.
    async fn stage_or_refuse(&self) -> Result<(), StoreError> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap());
        let refuse_this = !staged.is_empty()
            && self
                .refuse_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if refuse_this || staged.iter().any(|e| e.event.message.contains("poison")) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Rejected("refused by the test".into()));
        }
        self.inner.stage(staged).await
    }
}

/// A record of `count` events; event `poison` (if in range) is the poison one.
fn record(count: usize, poison: usize) -> bytes::Bytes {
    let events: Vec<serde_json::Value> = (0..count)
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

async fn total(store: &Refusing) -> u64 {
    let filter = Filter {
        tenant: "default".into(),
        stream: Stream::Logs,
        query: query::Query::All,
        from: None,
        to: None,
    };
    store.stats(filter).await.unwrap().total
}

/// A queue of its own in the broker, and its names for the cleanup.
async fn open_queue(url: &str, test: &str) -> (Arc<AmqpQueue>, String) {
    let prefix = format!("logbook-test-{test}-{}", std::process::id());
    let config = AmqpQueueConfig {
        prefix: prefix.clone(),
        retry_delays: RETRY_DELAYS.to_vec(),
        ..AmqpQueueConfig::new(url)
    };
    (AmqpQueue::open(config).await.unwrap(), prefix)
}

async fn delete_queues(url: &str, prefix: &str) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let retries = (1..=RETRY_DELAYS.len()).map(|n| format!("{prefix}.retry.{n}"));
    for queue in std::iter::once(format!("{prefix}.work")).chain(retries) {
        channel
            .queue_delete(queue.into(), Default::default())
            .await
            .unwrap();
    }
    channel
        .exchange_delete(format!("{prefix}.events").into(), Default::default())
        .await
        .unwrap();
}

struct Running {
    stop: watch::Sender<bool>,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<(), pipeline::PipelineError>>,
}

fn start(
    queue: Arc<AmqpQueue>,
    store: &Arc<Refusing>,
    letters: &Arc<DirectoryDeadLetters>,
) -> Running {
    let (stop, stop_signal) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(Progress::default());
    let task = tokio::spawn(pipeline::run(
        queue as Arc<dyn Queue>,
        Arc::clone(store) as Arc<dyn EventStore>,
        Arc::clone(letters) as Arc<dyn DeadLetters>,
        WorkerConfig {
            commit_interval: Duration::from_millis(20),
            max_attempts: 2,
            ..WorkerConfig::default()
        },
        stop_signal,
        progress_tx,
    ));
    Running {
        stop,
        progress,
        task,
    }
}

fn rabbitmq_url() -> Option<String> {
    let url = std::env::var("LOGBOOK_TEST_RABBITMQ_URL").ok();
    if url.is_none() {
        eprintln!(
            "SKIPPED: LOGBOOK_TEST_RABBITMQ_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2f)"
        );
    }
    url
}

fn refusing_store(dir: &std::path::Path, refuse_next: u32) -> Arc<Refusing> {
    Arc::new(Refusing {
        inner: EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.join("index"))).unwrap(),
        staged: Mutex::new(Vec::new()),
        refuse_next: AtomicU32::new(refuse_next),
        refused: AtomicU32::new(0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_twice_goes_through_the_retry_queues_and_is_stored_once() {
    let Some(url) = rabbitmq_url() else { return };
    let (queue, prefix) = open_queue(&url, "refused-twice").await;
    let dir = tempfile::tempdir().unwrap();
    let store = refusing_store(dir.path(), 2);
    let letters = Arc::new(DirectoryDeadLetters::new(dir.path().join("dead")));
    queue.append(record(100, usize::MAX)).await.unwrap();

    let mut running = start(Arc::clone(&queue), &store, &letters);
    tokio::time::timeout(
        Duration::from_secs(20),
        running.progress.wait_for(|p| p.committed_events >= 100),
    )
    .await
    .expect("stored after the retries")
    .unwrap();
    let progress = *running.progress.borrow();
    assert_eq!(store.refused.load(Ordering::SeqCst), 2);
    assert_eq!(progress.retried_records, 2, "once through each retry queue");
    assert_eq!(progress.dead_letters, 0);
    assert_eq!(total(&store).await, 100, "every event once");
    running.stop.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    delete_queues(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_ends_as_a_dead_letter_after_the_retries_and_the_rest_is_stored() {
    let Some(url) = rabbitmq_url() else { return };
    let (queue, prefix) = open_queue(&url, "poison").await;
    let dir = tempfile::tempdir().unwrap();
    let store = refusing_store(dir.path(), 0);
    let letters = Arc::new(DirectoryDeadLetters::new(dir.path().join("dead")));
    queue.append(record(10, 3)).await.unwrap();

    let mut running = start(Arc::clone(&queue), &store, &letters);
    tokio::time::timeout(
        Duration::from_secs(20),
        running
            .progress
            .wait_for(|p| p.dead_letters >= 1 && p.committed_events >= 9),
    )
    .await
    .expect("isolated after the retries")
    .unwrap();
    let progress = *running.progress.borrow();
    assert_eq!(
        progress.retried_records, 2,
        "through both retry queues first"
    );
    assert_eq!(total(&store).await, 9, "the rest of the record is stored");
    let page = letters.list(None, 10).await.unwrap();
    assert_eq!(page.letters.len(), 1, "{page:?}");
    let letter = letters.get(&page.letters[0].id).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&letter.payload).contains("poison pill 3"),
        "the poison event is the dead letter"
    );
    running.stop.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    delete_queues(&url, &prefix).await;
}
