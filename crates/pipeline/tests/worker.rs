//! The worker against the real embedded queue and store: everything appended
//! ends up stored once, across restarts that lose uncommitted work.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use model::{BatchFormat, IngestContext, Limits, Timestamp, decode_batch, encode_record};
use pipeline::{Progress, WorkerConfig};
use queue::{EmbeddedQueue, EmbeddedQueueConfig, Queue};
use store::dead_letters::DirectoryDeadLetters;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{DeadLetters, EventStore, Filter};
use tokio::sync::watch;

fn record(first: usize, count: usize) -> bytes::Bytes {
    let events: Vec<serde_json::Value> = (first..first + count)
        .map(|i| serde_json::json!({"id": format!("ev-{i}"), "message": format!("event number {i}")}))
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

struct Running {
    shutdown: watch::Sender<bool>,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<(), pipeline::PipelineError>>,
}

fn start(
    queue: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    dead_letter_dir: &std::path::Path,
) -> Running {
    start_with(queue, store, dead_letter_dir, false)
}

fn start_with(
    queue: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    dead_letter_dir: &std::path::Path,
    resume_after_index_loss: bool,
) -> Running {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(Progress::default());
    let config = WorkerConfig {
        commit_interval: Duration::from_millis(20),
        resume_after_index_loss,
        ..WorkerConfig::default()
    };
    let task = tokio::spawn(pipeline::run(
        queue,
        store,
        Arc::new(DirectoryDeadLetters::new(dead_letter_dir)),
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

async fn wait_for_commit(running: &mut Running, position: queue::Position) {
    tokio::time::timeout(
        Duration::from_secs(10),
        running.progress.wait_for(|p| p.committed >= position),
    )
    .await
    .expect("worker commits in time")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_stored_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let open_queue = || -> Arc<dyn Queue> {
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("queue"))).unwrap())
    };
    let open_store = || -> Arc<dyn EventStore> {
        Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("index"))).unwrap())
    };

    // First run: two records drained and committed, then a clean stop.
    let queue = open_queue();
    let store = open_store();
    queue.append(record(0, 100)).await.unwrap();
    let (_, end) = queue.append(record(100, 50)).await.unwrap();
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    assert_eq!(total(&store).await, 150);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    assert_eq!(
        queue.stats().pending_bytes,
        0,
        "committed records are released"
    );

    // Events staged but not committed are lost with the process; the queue still has them.
    let (at, end) = queue.append(record(150, 25)).await.unwrap();
    let events = model::decode_record(&record(150, 25), at.0).unwrap();
    store.stage(events).await.unwrap();
    drop(store);
    queue.close().await;
    drop(queue);

    // Second run replays from the last commit: 25 new events, no duplicates.
    let queue = open_queue();
    let store = open_store();
    assert_eq!(total(&store).await, 150);
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    assert_eq!(total(&store).await, 175);
    // A client re-sending ids it already sent replaces rather than duplicates.
    let (_, end) = queue.append(record(0, 10)).await.unwrap();
    wait_for_commit(&mut running, end).await;
    assert_eq!(total(&store).await, 175);
    assert_eq!(running.progress.borrow().committed_events, 35);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    queue.close().await;
    drop((queue, store));

    // A restart with nothing new to read still releases what the store holds.
    let queue = open_queue();
    let store = open_store();
    assert!(
        queue.stats().pending_bytes > 0,
        "the queue alone does not know what was consumed"
    );
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    running.progress.wait_for(|p| p.running).await.unwrap();
    assert_eq!(queue.stats().pending_bytes, 0);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn unreadable_records_become_dead_letters_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("q"))).unwrap());
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("i"))).unwrap());
    queue
        .append(bytes::Bytes::from_static(b"not a record"))
        .await
        .unwrap();
    let (_, end) = queue.append(record(0, 3)).await.unwrap();
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    assert_eq!(running.progress.borrow().skipped_records, 1);
    assert_eq!(running.progress.borrow().dead_letters, 1);
    let letters = DirectoryDeadLetters::new(dir.path().join("dead"));
    let page = letters.list(None, 10).await.unwrap();
    assert_eq!(
        page.letters.len(),
        1,
        "the unreadable record is a dead letter"
    );
    let letter = letters.get(&page.letters[0].id).await.unwrap().unwrap();
    assert_eq!(letter.payload, b"not a record", "kept byte for byte");
    assert_eq!(letter.info.position, 0);
    assert!(
        letter.info.error.contains("header"),
        "{}",
        letter.info.error
    );
    assert_eq!(total(&store).await, 3);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

/// A queue under `dir` whose segments are small, so commits release some.
fn small_segment_queue(dir: &std::path::Path) -> Arc<dyn Queue> {
    let config = EmbeddedQueueConfig {
        segment_bytes: 4096,
        ..EmbeddedQueueConfig::new(dir.join("queue"))
    };
    Arc::new(EmbeddedQueue::open(config).unwrap())
}

/// A store under `dir` whose audit trails live outside `index/`, as in a
/// data directory, so the index can be lost without them.
fn store_beside_its_trails(dir: &std::path::Path) -> Arc<dyn EventStore> {
    let mut config = EmbeddedStoreConfig::new(dir.join("index"));
    config.audit_dir = dir.join("audit");
    Arc::new(EmbeddedStore::open(&config).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_not_refilled_from_a_queue_that_released_records() {
    let dir = tempfile::tempdir().unwrap();
    let open_queue = || small_segment_queue(dir.path());
    let open_store = || store_beside_its_trails(dir.path());
    let queue = open_queue();
    let store = open_store();
    let mut end = queue::Position(0);
    for first in (0..200).step_by(10) {
        end = queue.append(record(first, 10)).await.unwrap().1;
    }
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    queue.close().await;
    drop((queue, store));

    // The index is lost; the queue only holds its newest segment.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let queue = open_queue();
    assert!(
        queue.stats().first > queue::Position(0),
        "segments were released"
    );
    let store = open_store();
    let running = start(Arc::clone(&queue), store, &dir.path().join("dead"));
    let error = running.task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, pipeline::PipelineError::IndexLost { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("Restore an index backup"),
        "{error}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_older_than_the_queue_needs_the_operator_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let open_queue = || small_segment_queue(dir.path());
    let open_store = || store_beside_its_trails(dir.path());
    let dead = dir.path().join("dead");
    // An index backup after the first 50 events…
    let queue = open_queue();
    let store = open_store();
    let mut end = queue::Position(0);
    for first in (0..50).step_by(10) {
        end = queue.append(record(first, 10)).await.unwrap().1;
    }
    let mut running = start(Arc::clone(&queue), Arc::clone(&store), &dead);
    wait_for_commit(&mut running, end).await;
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    copy_dir(&dir.path().join("index"), &dir.path().join("backup"));
    // …then 150 more, and the queue releases the segments the index holds.
    let mut running = start(Arc::clone(&queue), Arc::clone(&store), &dead);
    for first in (50..200).step_by(10) {
        end = queue.append(record(first, 10)).await.unwrap().1;
    }
    wait_for_commit(&mut running, end).await;
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
    queue.close().await;
    drop((queue, store));

    // The index is restored from the older backup.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    copy_dir(&dir.path().join("backup"), &dir.path().join("index"));
    let queue = open_queue();
    let first = queue.stats().first;
    let store = open_store();
    assert!(store.committed_position().await.unwrap() < Some(first.0));
    let running = start(Arc::clone(&queue), Arc::clone(&store), &dead);
    let error = running.task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, pipeline::PipelineError::Gap { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("resume_after_index_loss"),
        "the refusal says what to do: {error}"
    );
    assert_eq!(total(&store).await, 50, "the refusal changed nothing");

    // The operator accepts the loss: the worker goes on from where the queue starts.
    let mut running = start_with(Arc::clone(&queue), Arc::clone(&store), &dead, true);
    wait_for_commit(&mut running, end).await;
    let stored = total(&store).await;
    assert!(stored > 50 && stored < 200, "{stored} events stored");
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

/// Ids of every matching event from `after` on, oldest first, `limit` per page;
/// also the cursor after the first page.
async fn ids_from(
    store: &Arc<dyn EventStore>,
    after: Option<store::Cursor>,
    limit: usize,
) -> (Vec<String>, Option<store::Cursor>) {
    let mut ids = Vec::new();
    let mut cursor = after;
    let mut first_cursor = None;
    loop {
        let page = store
            .search(store::SearchRequest {
                filter: Filter {
                    tenant: "default".into(),
                    stream: model::Stream::Logs,
                    query: query::Query::All,
                    from: None,
                    to: None,
                },
                limit,
                cursor,
                order: store::Order::Ascending,
            })
            .await
            .unwrap();
        for event in page.events {
            let event: serde_json::Value = serde_json::from_str(event.get()).unwrap();
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        first_cursor = first_cursor.or(page.next_cursor);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (ids, first_cursor),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_timestamp_keep_queue_order_across_a_crash_replay() {
    let dir = tempfile::tempdir().unwrap();
    let open_queue = || -> Arc<dyn Queue> {
        Arc::new(EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path().join("queue"))).unwrap())
    };
    let open_store = || -> Arc<dyn EventStore> {
        Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path().join("index"))).unwrap())
    };
    let expected = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("ev-{i}")).collect()
    };

    // Every event of `record` has the same timestamp: only arrival orders them.
    let queue = open_queue();
    let store = open_store();
    queue.append(record(0, 100)).await.unwrap();
    let (_, end) = queue.append(record(100, 50)).await.unwrap();
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    // `cursor` is where the first page of 60 ends.
    let (all, cursor) = ids_from(&store, None, 60).await;
    assert_eq!(all, expected(0..150));
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();

    // Two more records are staged, then the process dies before the commit.
    let (start_a, _) = queue.append(record(150, 25)).await.unwrap();
    let (start_b, end) = queue.append(record(175, 25)).await.unwrap();
    store
        .stage(model::decode_record(&record(175, 25), start_b.0).unwrap())
        .await
        .unwrap();
    store
        .stage(model::decode_record(&record(150, 25), start_a.0).unwrap())
        .await
        .unwrap();
    drop(store);
    queue.close().await;
    drop(queue);

    // The replay gives every event the number it had, so the order is the
    // queue's and a cursor from before the crash goes on exactly.
    let queue = open_queue();
    let store = open_store();
    let mut running = start(
        Arc::clone(&queue),
        Arc::clone(&store),
        &dir.path().join("dead"),
    );
    wait_for_commit(&mut running, end).await;
    assert_eq!(ids_from(&store, None, 33).await.0, expected(0..200));
    assert_eq!(ids_from(&store, cursor, 41).await.0, expected(60..200));
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}
