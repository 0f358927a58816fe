//! The worker over Kafka: each partition resumes from the offset recorded in
//! the store's commit, never from Kafka's committed offsets, so a worker that
//! dies before its commit loses nothing and stores nothing twice; with
//! PostgreSQL, two workers in one group each commit their own partitions'
//! offsets. Skips without `LOGBOOK_TEST_KAFKA_URL` (and, for the second case,
//! `LOGBOOK_TEST_POSTGRES_URL`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use model::{BatchFormat, IngestContext, Limits, Timestamp, decode_batch, encode_record};
use pipeline::{Progress, WorkerConfig};
use queue::{KafkaQueue, KafkaQueueConfig, Queue, QueueError, StoredOffsets};
use store::dead_letters::DirectoryDeadLetters;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{EventStore, Filter};
use tokio::sync::watch;

/// A record of `count` events with ids the server assigns.
fn record(first: usize, count: usize) -> bytes::Bytes {
    let events: Vec<serde_json::Value> = (first..first + count)
        .map(|i| serde_json::json!({"message": format!("event number {i}")}))
        .collect();
    let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
    let body = serde_json::to_vec(&events).unwrap();
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    encode_record(&batch).into()
}

async fn total(store: &Arc<dyn EventStore>) -> u64 {
    let filter = Filter {
        tenant: "default".into(),
        stream: model::Stream::Logs,
        query: query::Query::All,
        from: None,
        to: None,
    };
    store.stats(filter).await.unwrap().total
}

/// A fresh topic of `partitions` partitions, or `None` (having said so).
fn kafka_config(test: &str, partitions: u32) -> Option<KafkaQueueConfig> {
    let Ok(url) = std::env::var("LOGBOOK_TEST_KAFKA_URL") else {
        eprintln!(
            "SKIPPED {test}: LOGBOOK_TEST_KAFKA_URL is not set (e.g. kafka://127.0.0.1:9092)"
        );
        return None;
    };
    let brokers = url
        .trim_start_matches("kafka://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let topic = format!(
        "logbook-test-pipeline-{partitions}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let url = format!("kafka://{brokers}/{topic}?partitions={partitions}&group={topic}");
    Some(KafkaQueueConfig::from_url(&url, "unused").unwrap())
}

/// Appends `records` records of 100 events each, spread over the partitions by key.
async fn append(queue: &Arc<dyn Queue>, records: std::ops::Range<usize>) {
    for i in records {
        queue
            .append_keyed(&format!("key-{i}"), record(i * 100, 100))
            .await
            .unwrap();
    }
}

/// A running worker: its stop switch, its progress and its task.
struct Running {
    stop: watch::Sender<bool>,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<(), pipeline::PipelineError>>,
}

fn start(queue: &Arc<dyn Queue>, store: &Arc<dyn EventStore>, dead: &std::path::Path) -> Running {
    let (stop, stop_signal) = watch::channel(false);
    let (progress, watched) = watch::channel(Progress::default());
    let task = tokio::spawn(pipeline::run(
        Arc::clone(queue),
        Arc::clone(store),
        Arc::new(DirectoryDeadLetters::new(dead)),
        WorkerConfig {
            commit_interval: Duration::from_millis(20),
            ..WorkerConfig::default()
        },
        stop_signal,
        progress,
    ));
    Running {
        stop,
        progress: watched,
        task,
    }
}

impl Running {
    async fn wait_for(&mut self, events: u64) {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.progress.wait_for(|p| p.committed_events >= events),
        )
        .await
        .expect("the worker stores the events in time")
        .unwrap();
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// The store's offsets, as the pipeline gives them to its consumer.
struct FromStore(Arc<dyn EventStore>);

#[async_trait::async_trait]
impl StoredOffsets for FromStore {
    async fn stored_offsets(&self, topic: &str) -> Result<BTreeMap<u32, u64>, QueueError> {
        self.0
            .committed_offsets(topic)
            .await
            .map_err(|error| QueueError::Unreachable(error.to_string()))
    }
}

/// Deletes the case's topic once its clients are closed: librdkafka (2.12)
/// crashed reading tansu's metadata of a topic deleted under an open client.
async fn delete_topic(config: &KafkaQueueConfig, queues: Vec<Arc<dyn Queue>>) {
    drop(queues);
    tokio::time::sleep(Duration::from_secs(2)).await;
    KafkaQueue::delete_topic(config).await.unwrap();
}

fn open_embedded(dir: &std::path::Path) -> Arc<dyn EventStore> {
    Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.join("index"))).unwrap())
}

/// Opens the store again once every handle of the last one is gone.
async fn reopen_embedded(dir: &std::path::Path) -> Arc<dyn EventStore> {
    let config = EmbeddedStoreConfig::new(dir.join("index"));
    for _ in 0..100 {
        if let Ok(store) = EmbeddedStore::open(&config) {
            return Arc::new(store);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store is still open somewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_before_its_commit_is_replayed_from_the_stores_offsets() {
    let Some(config) = kafka_config("the embedded-store case", 2) else {
        return;
    };
    let queue: Arc<dyn Queue> = KafkaQueue::open(config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    append(&queue, 0..4).await;
    let mut worker = start(&queue, &store, &dir.path().join("dead"));
    worker.wait_for(400).await;
    worker.stop().await;
    let topic = config.topic.as_str();
    let offsets = store.committed_offsets(topic).await.unwrap();
    assert_eq!(offsets.values().sum::<u64>(), 4, "{offsets:?}");

    // A worker reads the next records, stages their events and dies before
    // its commit, after Kafka's own offsets were moved past them.
    append(&queue, 4..8).await;
    let mut doomed = Arc::clone(&queue)
        .partition_consumer(Arc::new(FromStore(Arc::clone(&store))))
        .await
        .unwrap();
    let mut taken = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while taken.len() < 4 && tokio::time::Instant::now() < deadline {
        taken.extend(
            doomed
                .read(8, 1 << 20, Duration::from_millis(100))
                .await
                .unwrap(),
        );
    }
    let read: Vec<_> = taken
        .iter()
        .filter_map(queue::Record::partition_offset)
        .collect();
    assert_eq!(
        taken.len(),
        4,
        "the doomed worker reads the new records: {read:?} after {offsets:?}"
    );
    for record in &taken {
        let events = model::decode_record(&record.payload, record.position.0).unwrap();
        store.stage(events).await.unwrap();
    }
    doomed.ack(&taken).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(doomed);
    // The process dies: what was staged is gone with it. (The consumers'
    // threads let go of the store as they finish leaving the group.)
    drop(store);
    let store = reopen_embedded(dir.path()).await;
    assert_eq!(total(&store).await, 400);

    let mut worker = start(&queue, &store, &dir.path().join("dead"));
    worker.wait_for(400).await;
    // Nothing more arrives: everything is stored, once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    assert_eq!(total(&store).await, 800, "every event once");
    let offsets = store.committed_offsets(topic).await.unwrap();
    assert_eq!(offsets.values().sum::<u64>(), 8, "{offsets:?}");
    delete_topic(&config, vec![queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_over_postgresql_share_the_partitions_and_commit_their_offsets() {
    let Some(config) = kafka_config("the PostgreSQL case", 4) else {
        return;
    };
    let Ok(admin_url) = std::env::var("LOGBOOK_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED the PostgreSQL case: LOGBOOK_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    use sqlx::Connection as _;
    let schema = format!("logbook_pipeline_kafka_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let options = store::postgres::PostgresStoreOptions::new(dir.path().join("audit.key"));

    // Two processes: each its own queue handle, store and worker.
    let mut workers = Vec::new();
    let mut stores = Vec::new();
    let mut queues = Vec::new();
    for name in ["a", "b"] {
        let queue: Arc<dyn Queue> = KafkaQueue::open(config.clone()).await.unwrap();
        queues.push(Arc::clone(&queue));
        let store: Arc<dyn EventStore> = Arc::new(
            store::postgres::PostgresStore::open(&url, &options)
                .await
                .unwrap(),
        );
        workers.push(start(&queue, &store, &dir.path().join(name)));
        stores.push(store);
    }
    // Both join the group before anything is there to read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let producer: Arc<dyn Queue> = KafkaQueue::open(config.clone()).await.unwrap();
    append(&producer, 0..20).await;
    queues.push(producer);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while total(&stores[0]).await < 2000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shares: Vec<u64> = workers
        .iter()
        .map(|worker| worker.progress.borrow().committed_events)
        .collect();
    for worker in workers {
        worker.stop().await;
    }
    assert_eq!(total(&stores[0]).await, 2000, "every event once");
    assert!(
        shares.iter().all(|&share| share > 0),
        "one worker did all the work: {shares:?}"
    );
    let offsets = stores[1].committed_offsets(&config.topic).await.unwrap();
    assert_eq!(offsets.values().sum::<u64>(), 20, "{offsets:?}");

    delete_topic(&config, queues).await;
    drop(stores);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}
