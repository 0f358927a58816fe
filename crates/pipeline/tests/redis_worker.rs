//! The worker over Redis Streams: records a dead worker committed but never
//! acknowledged come back to another worker, which replaces their events
//! instead of storing them twice. Skips when `LOGBOOK_TEST_REDIS_URL` is unset.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use model::{BatchFormat, IngestContext, Limits, Timestamp, decode_batch, encode_record};
use pipeline::{Progress, WorkerConfig};
use queue::{Position, Queue, RedisQueue, RedisQueueConfig};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_dead_worker_are_taken_over_and_stored_once() {
    let Ok(url) = std::env::var("LOGBOOK_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: LOGBOOK_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)");
        return;
    };
    let prefix = format!("logbook-test-pipeline-{}", std::process::id());
    let config = RedisQueueConfig {
        prefix: prefix.clone(),
        visibility_timeout: Duration::from_millis(300),
        ..RedisQueueConfig::new(url.clone())
    };
    let queue: Arc<dyn Queue> = RedisQueue::open(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("index"))).unwrap());
    for i in 0..4 {
        queue.append(record(i * 100, 100)).await.unwrap();
    }

    // A worker stores the first two records, then dies before acknowledging.
    let mut doomed = Arc::clone(&queue).consumer(Position(0)).await.unwrap();
    let taken = doomed
        .read(2, 1 << 20, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    for record in &taken {
        let events = model::decode_record(&record.payload, record.position.0).unwrap();
        store.stage(events).await.unwrap();
    }
    store.commit(None).await.unwrap();
    drop(doomed);
    assert_eq!(total(&store).await, 200);

    // Another worker takes everything over once the visibility timeout passed.
    let (stop, stop_signal) = watch::channel(false);
    let (progress, mut watched) = watch::channel(Progress::default());
    let worker = tokio::spawn(pipeline::run(
        Arc::clone(&queue),
        Arc::clone(&store),
        Arc::new(DirectoryDeadLetters::new(dir.path().join("dead"))),
        WorkerConfig {
            commit_interval: Duration::from_millis(20),
            ..WorkerConfig::default()
        },
        stop_signal,
        progress,
    ));
    tokio::time::timeout(
        Duration::from_secs(10),
        watched.wait_for(|p| p.committed_events >= 400),
    )
    .await
    .expect("the second worker stores everything in time")
    .unwrap();
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();

    assert_eq!(total(&store).await, 400, "every event once");
    assert_eq!(queue.stats().pending_bytes, 0, "everything acknowledged");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:events"))
        .arg(format!("{{{prefix}}}:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
}
