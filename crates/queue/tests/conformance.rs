//! The queue conformance suite: every case runs against the embedded log and,
//! when `LOGBOOK_TEST_REDIS_URL` is set, against Redis Streams, so both keep
//! the promises the pipeline relies on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use queue::{
    EmbeddedQueue, EmbeddedQueueConfig, Followed, Position, Queue, QueueError, Record, Resume,
};

/// Bounds a case asks of the queue it opens.
#[derive(Clone, Copy)]
struct Bounds {
    max_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { max_bytes: 1 << 30 }
    }
}

/// A place where queues of one backend live for one case; opening it twice
/// gives two handles on the same queue (a restart, or a second process).
enum Place {
    Embedded(tempfile::TempDir),
    Redis { url: String, prefix: String },
}

impl Place {
    fn embedded() -> Place {
        Place::Embedded(tempfile::tempdir().expect("temporary directory"))
    }

    fn redis(test: &str) -> Option<Place> {
        let Ok(url) = std::env::var("LOGBOOK_TEST_REDIS_URL") else {
            eprintln!(
                "SKIPPED the Redis half of {test}: LOGBOOK_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)"
            );
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let prefix = format!(
            "logbook-test-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis()
        );
        Some(Place::Redis { url, prefix })
    }

    async fn open(&self, bounds: Bounds) -> Arc<dyn Queue> {
        match self {
            Place::Embedded(dir) => {
                let config = EmbeddedQueueConfig {
                    max_bytes: bounds.max_bytes,
                    ..EmbeddedQueueConfig::new(dir.path().join("queue"))
                };
                Arc::new(EmbeddedQueue::open(config).expect("embedded queue opens"))
            }
            Place::Redis { url, prefix } => {
                let config = queue::RedisQueueConfig {
                    prefix: prefix.clone(),
                    max_bytes: bounds.max_bytes,
                    visibility_timeout: Duration::from_millis(300),
                    ..queue::RedisQueueConfig::new(url.clone())
                };
                queue::RedisQueue::open(config)
                    .await
                    .expect("redis queue opens")
            }
        }
    }

    /// Removes what the case left in a shared service.
    async fn clean(self) {
        if let Place::Redis { url, prefix } = self {
            let client = redis::Client::open(url.as_str()).expect("redis URL");
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection");
            let _: () = redis::cmd("DEL")
                .arg(format!("{{{prefix}}}:events"))
                .arg(format!("{{{prefix}}}:meta"))
                .query_async(&mut connection)
                .await
                .expect("cleanup");
        }
    }
}

/// Runs `case` on every backend available here.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let place = super::Place::embedded();
                    super::$case(&place).await;
                    place.clean().await;
                }
            )*
        }
        mod redis_streams {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(place) = super::Place::redis(stringify!($case)) else { return };
                    super::$case(&place).await;
                    place.clean().await;
                }
            )*
        }
    };
}

conformance!(
    records_come_back_in_order_and_acknowledged_ones_never_again,
    unacknowledged_records_are_delivered_again,
    appends_beyond_the_bound_are_refused_until_records_are_acknowledged,
    oversized_records_are_refused,
    concurrent_appends_get_distinct_positions_and_are_all_delivered,
    records_survive_reopening,
    followers_see_appends_made_after_they_start_in_order_and_take_nothing,
    followers_that_fall_behind_account_for_every_position,
);

fn payload(i: usize) -> Bytes {
    Bytes::from(format!("{{\"v\":1}}\n{{\"n\":{i}}}\n"))
}

/// Reads until `count` records arrived or a few seconds passed.
async fn read_n(consumer: &mut Box<dyn queue::Consumer>, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while records.len() < count && tokio::time::Instant::now() < deadline {
        let batch = consumer
            .read(count - records.len(), 1 << 20, Duration::from_millis(100))
            .await
            .expect("read");
        records.extend(batch);
    }
    records
}

/// Where a fresh consumer of a queue starts after `acknowledged` was acknowledged.
fn start_after(queue: &dyn Queue, acknowledged: Position) -> Position {
    match queue.resume() {
        Resume::FromStore => acknowledged,
        Resume::Group => Position(0),
    }
}

async fn records_come_back_in_order_and_acknowledged_ones_never_again(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(queue.append(payload(i)).await.expect("append"));
    }
    let sent: u64 = (0..5).map(|i| payload(i).len() as u64).sum();
    assert!(queue.stats().pending_bytes >= sent, "{:?}", queue.stats());
    for pair in appended.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "positions grow: {appended:?}");
    }
    for (i, (start, next)) in appended.iter().enumerate() {
        assert!(next.0 - start.0 >= payload(i).len() as u64);
    }
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let records = read_n(&mut consumer, 5).await;
    let got: Vec<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, (0..5).map(payload).collect::<Vec<_>>());
    let positions: Vec<(Position, Position)> =
        records.iter().map(|r| (r.position, r.next)).collect();
    assert_eq!(positions, appended);
    assert!(records.iter().all(|r| !r.redelivered));
    consumer.ack(&records).await.expect("ack");
    drop(consumer);

    let start = start_after(queue.as_ref(), appended[4].1);
    let mut again = Arc::clone(&queue).consumer(start).await.expect("consumer");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = again
        .read(10, 1 << 20, Duration::from_millis(200))
        .await
        .expect("read");
    assert!(more.is_empty(), "acknowledged records came back: {more:?}");
    assert_eq!(queue.stats().pending_bytes, 0);
}

async fn unacknowledged_records_are_delivered_again(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    for i in 0..3 {
        queue.append(payload(i)).await.expect("append");
    }
    let mut first = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let records = read_n(&mut first, 3).await;
    assert_eq!(records.len(), 3);
    // The first consumer acknowledges one record, then dies.
    first.ack(&records[..1]).await.expect("ack");
    drop(first);

    let start = start_after(queue.as_ref(), records[0].next);
    let mut second = Arc::clone(&queue).consumer(start).await.expect("consumer");
    let again = read_n(&mut second, 2).await;
    let got: Vec<Bytes> = again.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, [payload(1), payload(2)]);
    if queue.resume() == Resume::Group {
        assert!(
            again.iter().all(|r| r.redelivered),
            "records taken over from a dead consumer are marked"
        );
    }
    second.ack(&again).await.expect("ack");
    assert_eq!(queue.stats().pending_bytes, 0);
}

async fn appends_beyond_the_bound_are_refused_until_records_are_acknowledged(place: &Place) {
    let queue = place.open(Bounds { max_bytes: 200 }).await;
    let record = Bytes::from(vec![b'x'; 60]);
    let mut accepted = 0;
    let refusal = loop {
        match queue.append(record.clone()).await {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 10, "the bound was never reached");
    };
    assert!(matches!(refusal, QueueError::Full { .. }), "{refusal:?}");
    assert!(accepted >= 1);
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let records = read_n(&mut consumer, accepted).await;
    consumer.ack(&records).await.expect("ack");
    // Figures of a broker refresh in the background; the bound itself is exact.
    queue
        .append(record)
        .await
        .expect("room again after acknowledging");
}

async fn oversized_records_are_refused(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let huge = Bytes::from(vec![b'x'; 65 << 20]);
    let refusal = queue.append(huge).await.expect_err("too large");
    assert!(
        matches!(refusal, QueueError::RecordTooLarge { .. }),
        "{refusal:?}"
    );
}

async fn concurrent_appends_get_distinct_positions_and_are_all_delivered(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let queue = Arc::clone(&queue);
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..25 {
                positions.push(queue.append(payload(task * 100 + i)).await.expect("append"));
            }
            positions
        }));
    }
    let mut positions = Vec::new();
    for task in tasks {
        positions.extend(task.await.expect("task"));
    }
    positions.sort();
    for pair in positions.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "ranges overlap: {pair:?}");
    }
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let records = read_n(&mut consumer, 200).await;
    let mut delivered: Vec<(Position, Position)> =
        records.iter().map(|r| (r.position, r.next)).collect();
    delivered.sort();
    assert_eq!(delivered, positions);
    consumer.ack(&records).await.expect("ack");
}

async fn records_survive_reopening(place: &Place) {
    {
        let queue = place.open(Bounds::default()).await;
        for i in 0..3 {
            queue.append(payload(i)).await.expect("append");
        }
        queue.close().await;
    }
    let queue = place.open(Bounds::default()).await;
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let records = read_n(&mut consumer, 3).await;
    let got: Vec<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, (0..3).map(payload).collect::<Vec<_>>());
    consumer.ack(&records).await.expect("ack");
}

/// What a follower sees until it has seen a record ending at `end` (or a few seconds passed).
async fn follow_until(follower: &mut Box<dyn queue::Follower>, end: Position) -> Vec<Followed> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match follower
            .next(Duration::from_millis(100))
            .await
            .expect("follow")
        {
            Some(Followed::Record(record)) if record.next >= end => {
                seen.push(Followed::Record(record));
                break;
            }
            Some(item) => seen.push(item),
            None => {}
        }
    }
    seen
}

async fn followers_see_appends_made_after_they_start_in_order_and_take_nothing(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    for i in 0..2 {
        queue.append(payload(i)).await.expect("append");
    }
    let mut follower = queue.follow().await.expect("follow");
    let mut appended = Vec::new();
    for i in 2..7 {
        appended.push(queue.append(payload(i)).await.expect("append"));
    }
    let seen = follow_until(&mut follower, appended[4].1).await;
    let records: Vec<(Position, Position, Bytes)> = seen
        .iter()
        .map(|item| match item {
            Followed::Record(record) => {
                assert!(!record.redelivered && record.receipt.is_none());
                (record.position, record.next, record.payload.clone())
            }
            Followed::Missed { from, to } => panic!("missed {from:?}..{to:?} while keeping up"),
        })
        .collect();
    let expected: Vec<(Position, Position, Bytes)> = appended
        .iter()
        .zip(2..7)
        .map(|(&(start, next), i)| (start, next, payload(i)))
        .collect();
    assert_eq!(records, expected);

    // The consumer still gets every record, the followed ones included.
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let read = read_n(&mut consumer, 7).await;
    let got: Vec<Bytes> = read.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, (0..7).map(payload).collect::<Vec<_>>());
}

async fn followers_that_fall_behind_account_for_every_position(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let mut follower = queue.follow().await.expect("follow");
    // More records than the embedded broadcast keeps, all acknowledged (and so,
    // in a broker, deleted) before the follower reads anything.
    let count = 5_000;
    let appends = (0..count).map(|i| {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move { queue.append(payload(i)).await.expect("append") })
    });
    let mut appended = Vec::new();
    for append in appends.collect::<Vec<_>>() {
        appended.push(append.await.expect("append task"));
    }
    appended.sort();
    let mut consumer = Arc::clone(&queue)
        .consumer(Position(0))
        .await
        .expect("consumer");
    let read = read_n(&mut consumer, count).await;
    assert_eq!(read.len(), count);
    consumer.ack(&read).await.expect("ack");
    let last = queue.append(payload(count)).await.expect("append");

    let seen = follow_until(&mut follower, last.1).await;
    assert!(
        seen.iter()
            .any(|item| matches!(item, Followed::Missed { .. })),
        "a follower this far behind was not told it missed records"
    );
    // Records and gaps tile the positions from the first append to the last.
    let mut at = appended[0].0;
    for item in &seen {
        let (from, to) = match item {
            Followed::Record(record) => (record.position, record.next),
            Followed::Missed { from, to } => (*from, *to),
        };
        assert_eq!(from, at, "a hole or an overlap in what the follower saw");
        at = to;
    }
    assert_eq!(at, last.1);
}
