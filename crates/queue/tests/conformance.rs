//! The queue conformance suite: every case runs against the embedded log and,
//! when `LOGBOOK_TEST_REDIS_URL` / `LOGBOOK_TEST_RABBITMQ_URL` /
//! `LOGBOOK_TEST_KAFKA_URL` are set, against Redis Streams, RabbitMQ and
//! Kafka, so all keep the promises the pipeline relies on.
//!
//! Kafka's cases run on a topic of one partition, where its positions are in
//! append order like everyone's; a Kafka consumer resumes from the offsets
//! the store's commits hold, played here by [`Offsets`], which every
//! acknowledgement advances as the pipeline's commit would. The sharing of
//! partitions in a group has a case of its own at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use queue::{
    EmbeddedQueue, EmbeddedQueueConfig, Followed, KafkaQueueConfig, Position, Queue, QueueError,
    Record, Resume, StoredOffsets,
};

/// The store's record of a partitioned queue's offsets, as the pipeline keeps
/// it with each commit: the next offset of each partition, never moving back.
#[derive(Default)]
struct Offsets(Mutex<BTreeMap<u32, u64>>);

#[async_trait::async_trait]
impl StoredOffsets for Offsets {
    async fn stored_offsets(&self, _topic: &str) -> Result<BTreeMap<u32, u64>, QueueError> {
        Ok(self.0.lock().expect("offsets lock").clone())
    }
}

impl Offsets {
    /// Records `records` as committed.
    fn commit(&self, records: &[Record]) {
        let mut offsets = self.0.lock().expect("offsets lock");
        for (partition, offset) in records.iter().filter_map(Record::partition_offset) {
            let next = offsets.entry(partition).or_default();
            *next = (*next).max(offset + 1);
        }
    }
}

/// Bounds a case asks of the queue it opens.
#[derive(Clone, Copy)]
struct Bounds {
    max_bytes: u64,
    /// Brokers only: the embedded log bounds bytes alone.
    max_records: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_bytes: 1 << 30,
            max_records: 1_000_000,
        }
    }
}

/// The delays of the RabbitMQ retry queues in these cases.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(100)];

/// A place where queues of one backend live for one case; opening it twice
/// gives two handles on the same queue (a restart, or a second process).
enum Place {
    Embedded(tempfile::TempDir),
    Redis {
        url: String,
        prefix: String,
    },
    RabbitMq {
        url: String,
        prefix: String,
    },
    Kafka {
        config: KafkaQueueConfig,
        offsets: Arc<Offsets>,
    },
}

/// A name no other case of any run uses.
fn unique(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "logbook-test-{what}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
    )
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
        Some(Place::Redis {
            url,
            prefix: unique("redis"),
        })
    }

    fn rabbitmq(test: &str) -> Option<Place> {
        let Ok(url) = std::env::var("LOGBOOK_TEST_RABBITMQ_URL") else {
            eprintln!(
                "SKIPPED the RabbitMQ half of {test}: LOGBOOK_TEST_RABBITMQ_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2f)"
            );
            return None;
        };
        Some(Place::RabbitMq {
            url,
            prefix: unique("rabbitmq"),
        })
    }

    /// A fresh topic of `partitions` partitions at `LOGBOOK_TEST_KAFKA_URL`.
    fn kafka(test: &str, partitions: u32) -> Option<Place> {
        let Ok(url) = std::env::var("LOGBOOK_TEST_KAFKA_URL") else {
            eprintln!(
                "SKIPPED the Kafka half of {test}: LOGBOOK_TEST_KAFKA_URL is not set (e.g. kafka://127.0.0.1:9092)"
            );
            return None;
        };
        let topic = unique("kafka");
        let brokers = url
            .trim_start_matches("kafka://")
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let url =
            format!("kafka://{brokers}/{topic}?partitions={partitions}&group={topic}-workers");
        let config = KafkaQueueConfig::from_url(&url, "unused").expect("kafka URL");
        Some(Place::Kafka {
            config,
            offsets: Arc::default(),
        })
    }

    /// A consumer of `queue` starting at `start`, or, over Kafka, at the
    /// offsets the store (here [`Offsets`]) holds.
    async fn consumer(&self, queue: &Arc<dyn Queue>, start: Position) -> Box<dyn queue::Consumer> {
        match self {
            Place::Kafka { offsets, .. } => Arc::clone(queue)
                .partition_consumer(Arc::clone(offsets) as Arc<dyn StoredOffsets>)
                .await
                .expect("consumer"),
            _ => Arc::clone(queue).consumer(start).await.expect("consumer"),
        }
    }

    /// Acknowledges records the store committed: over Kafka, the commit
    /// records their offsets first.
    async fn ack(&self, consumer: &mut Box<dyn queue::Consumer>, records: &[Record]) {
        if let Place::Kafka { offsets, .. } = self {
            offsets.commit(records);
        }
        consumer.ack(records).await.expect("ack");
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
                    max_records: bounds.max_records,
                    visibility_timeout: Duration::from_millis(300),
                    ..queue::RedisQueueConfig::new(url.clone())
                };
                queue::RedisQueue::open(config)
                    .await
                    .expect("redis queue opens")
            }
            Place::RabbitMq { url, prefix } => {
                let config = queue::AmqpQueueConfig {
                    prefix: prefix.clone(),
                    max_bytes: bounds.max_bytes,
                    max_records: bounds.max_records,
                    retry_delays: RETRY_DELAYS.to_vec(),
                    // Some cases read thousands of records before they
                    // acknowledge any; a worker acknowledges after each commit.
                    prefetch: 8192,
                    ..queue::AmqpQueueConfig::new(url.clone())
                };
                queue::AmqpQueue::open(config)
                    .await
                    .expect("rabbitmq queue opens")
            }
            Place::Kafka { config, .. } => {
                let small = bounds.max_bytes < Bounds::default().max_bytes;
                let config = KafkaQueueConfig {
                    max_buffered_bytes: bounds.max_bytes,
                    // Kafka bounds only the records its producer holds for the
                    // brokers: a small bound is reached by holding them longer.
                    linger: match small {
                        true => Duration::from_millis(500),
                        false => config.linger,
                    },
                    ..config.clone()
                };
                queue::KafkaQueue::open(config)
                    .await
                    .expect("kafka queue opens")
            }
        }
    }

    /// Whether the queue bounds its records, not only its bytes.
    fn bounds_records(&self) -> bool {
        !matches!(self, Place::Embedded(_) | Place::Kafka { .. })
    }

    /// Whether positions are offsets within partitions (Kafka).
    fn partitioned(&self) -> bool {
        matches!(self, Place::Kafka { .. })
    }

    /// Removes what the case left in a shared service.
    async fn clean(self) {
        if let Place::RabbitMq { url, prefix } = &self {
            let connection =
                lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                    .await
                    .expect("rabbitmq connection");
            let channel = connection.create_channel().await.expect("channel");
            let retries = (1..=RETRY_DELAYS.len()).map(|n| format!("{prefix}.retry.{n}"));
            for queue in std::iter::once(format!("{prefix}.work")).chain(retries) {
                channel
                    .queue_delete(queue.into(), Default::default())
                    .await
                    .expect("cleanup");
            }
            channel
                .exchange_delete(format!("{prefix}.events").into(), Default::default())
                .await
                .expect("cleanup");
        }
        if let Place::Kafka { config, .. } = &self {
            // The case's clients close in the background first: librdkafka
            // (2.12) crashed reading tansu's metadata of a topic deleted under
            // a client still open.
            tokio::time::sleep(Duration::from_secs(2)).await;
            queue::KafkaQueue::delete_topic(config)
                .await
                .expect("kafka cleanup");
        }
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
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(place) = super::Place::rabbitmq(stringify!($case)) else { return };
                    super::$case(&place).await;
                    place.clean().await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(place) = super::Place::kafka(stringify!($case), 1) else { return };
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
    appends_beyond_the_record_bound_are_refused_until_records_are_acknowledged,
    refused_records_go_through_the_retry_stages_with_their_attempts_counted,
);

/// Whether the queue's figures include the pending bytes: RabbitMQ tells
/// over AMQP how many records wait, never how many bytes.
fn counts_bytes(queue: &dyn Queue) -> bool {
    queue.stats().backend != "rabbitmq"
}

/// Appends once there is room: RabbitMQ settles acknowledgements
/// asynchronously, and a quorum queue that reached its bound lets publishers
/// in again only once it notices it is below it, so room comes back within
/// moments of the acknowledgement rather than with it.
async fn append_once_there_is_room(queue: &dyn Queue, record: Bytes) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match queue.append(record.clone()).await {
            Ok(_) => return,
            Err(QueueError::Full { .. })
                if queue.stats().backend == "rabbitmq"
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("no room again after acknowledging: {error:?}"),
        }
    }
}

fn payload(i: usize) -> Bytes {
    Bytes::from(format!("{{\"v\":1}}\n{{\"n\":{i}}}\n"))
}

/// Reads until `count` records arrived or some seconds passed (a consumer
/// group may take a few to assign partitions).
async fn read_n(consumer: &mut Box<dyn queue::Consumer>, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.len() < count && tokio::time::Instant::now() < deadline {
        let batch = consumer
            .read(count - records.len(), 1 << 20, Duration::from_millis(100))
            .await
            .expect("read");
        records.extend(batch);
    }
    records
}

/// Where a fresh consumer of a queue starts after `acknowledged` was
/// acknowledged (Kafka's start at the offsets of [`Offsets`] instead).
fn start_after(queue: &dyn Queue, acknowledged: Position) -> Position {
    match queue.resume() {
        Resume::FromStore => acknowledged,
        Resume::Group | Resume::Partitions => Position(0),
    }
}

async fn records_come_back_in_order_and_acknowledged_ones_never_again(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(queue.append(payload(i)).await.expect("append"));
    }
    let sent: u64 = (0..5).map(|i| payload(i).len() as u64).sum();
    // Kafka counts records, not bytes, and measures them in the background;
    // RabbitMQ does not report bytes.
    if !place.partitioned() && counts_bytes(queue.as_ref()) {
        assert!(queue.stats().pending_bytes >= sent, "{:?}", queue.stats());
    }
    for pair in appended.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "positions grow: {appended:?}");
    }
    for (i, (start, next)) in appended.iter().enumerate() {
        assert!(next.0 - start.0 >= payload(i).len() as u64);
    }
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut consumer, 5).await;
    let got: Vec<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, (0..5).map(payload).collect::<Vec<_>>());
    let positions: Vec<(Position, Position)> =
        records.iter().map(|r| (r.position, r.next)).collect();
    assert_eq!(positions, appended);
    assert!(records.iter().all(|r| !r.redelivered));
    place.ack(&mut consumer, &records).await;
    drop(consumer);

    let start = start_after(queue.as_ref(), appended[4].1);
    let mut again = place.consumer(&queue, start).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = again
        .read(10, 1 << 20, Duration::from_millis(200))
        .await
        .expect("read");
    assert!(more.is_empty(), "acknowledged records came back: {more:?}");
    if counts_bytes(queue.as_ref()) {
        assert_eq!(queue.stats().pending_bytes, 0);
    }
}

async fn unacknowledged_records_are_delivered_again(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    for i in 0..3 {
        queue.append(payload(i)).await.expect("append");
    }
    let mut first = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut first, 3).await;
    assert_eq!(records.len(), 3);
    // The first consumer acknowledges one record, then dies.
    place.ack(&mut first, &records[..1]).await;
    drop(first);

    let start = start_after(queue.as_ref(), records[0].next);
    let mut second = place.consumer(&queue, start).await;
    let again = read_n(&mut second, 2).await;
    let got: Vec<Bytes> = again.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, [payload(1), payload(2)]);
    if queue.resume() == Resume::Group {
        assert!(
            again.iter().all(|r| r.redelivered),
            "records taken over from a dead consumer are marked"
        );
    }
    place.ack(&mut second, &again).await;
    if counts_bytes(queue.as_ref()) {
        assert_eq!(queue.stats().pending_bytes, 0);
    }
}

async fn appends_beyond_the_bound_are_refused_until_records_are_acknowledged(place: &Place) {
    if place.partitioned() {
        return producer_buffer_bound(place).await;
    }
    let queue = place
        .open(Bounds {
            max_bytes: 200,
            ..Bounds::default()
        })
        .await;
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
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut consumer, accepted).await;
    place.ack(&mut consumer, &records).await;
    // Figures of a broker refresh in the background; the bound itself is exact.
    append_once_there_is_room(queue.as_ref(), record).await;
}

async fn appends_beyond_the_record_bound_are_refused_until_records_are_acknowledged(place: &Place) {
    if !place.bounds_records() {
        return;
    }
    let queue = place
        .open(Bounds {
            max_records: 3,
            ..Bounds::default()
        })
        .await;
    let mut accepted = 0;
    let refusal = loop {
        match queue.append(payload(accepted)).await {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 10, "the bound was never reached");
    };
    assert!(matches!(refusal, QueueError::Full { .. }), "{refusal:?}");
    // A quorum queue checks its bound before it takes a record, so it may
    // take one past it; it never takes two.
    assert!((3..=4).contains(&accepted), "{accepted} records accepted");
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut consumer, accepted).await;
    assert_eq!(records.len(), accepted);
    place.ack(&mut consumer, &records).await;
    append_once_there_is_room(queue.as_ref(), payload(99)).await;
}

async fn refused_records_go_through_the_retry_stages_with_their_attempts_counted(place: &Place) {
    let queue = place.open(Bounds::default()).await;
    let appended = queue.append(payload(7)).await.expect("append");
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let mut read = read_n(&mut consumer, 1).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].attempts, 0, "a first delivery");
    if consumer.retry_stages() == 0 {
        let refusal = consumer.retry(&read).await.expect_err("no retry topology");
        assert!(matches!(refusal, QueueError::Unsupported(_)), "{refusal:?}");
        place.ack(&mut consumer, &read).await;
        return;
    }
    assert_eq!(consumer.retry_stages() as usize, RETRY_DELAYS.len());
    let mut record = read.remove(0);
    for (attempt, delay) in (1..).zip(RETRY_DELAYS) {
        let sent = tokio::time::Instant::now();
        consumer
            .retry(std::slice::from_ref(&record))
            .await
            .expect("retry");
        let mut back = read_n(&mut consumer, 1).await;
        assert_eq!(back.len(), 1, "retry {attempt} came back");
        assert!(sent.elapsed() >= delay, "back after {:?}", sent.elapsed());
        record = back.remove(0);
        assert_eq!(record.attempts, attempt);
        assert_eq!(record.payload, payload(7));
        assert_eq!((record.position, record.next), appended);
        assert!(
            record.redelivered,
            "its events may be stored in part already"
        );
    }
    let refusal = consumer
        .retry(std::slice::from_ref(&record))
        .await
        .expect_err("every retry used");
    assert!(matches!(refusal, QueueError::Unsupported(_)), "{refusal:?}");
    consumer.ack(&[record]).await.expect("ack");
    let more = consumer
        .read(10, 1 << 20, Duration::from_millis(300))
        .await
        .expect("read");
    assert!(
        more.is_empty(),
        "an acknowledged record came back: {more:?}"
    );
}

/// Kafka's bound: a topic grows as its retention allows, and an append is
/// refused when the producer already holds as many bytes as it may for
/// brokers that have not acknowledged them; it takes appends again once they
/// did.
async fn producer_buffer_bound(place: &Place) {
    let queue = place
        .open(Bounds {
            max_bytes: 2048,
            ..Bounds::default()
        })
        .await;
    let appends: Vec<_> = (0..64)
        .map(|_| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.append(Bytes::from(vec![b'x'; 200])).await })
        })
        .collect();
    let (mut accepted, mut full) = (0, 0);
    for append in appends {
        match append.await.expect("append task") {
            Ok(_) => accepted += 1,
            Err(QueueError::Full { .. }) => full += 1,
            Err(error) => panic!("{error:?}"),
        }
    }
    assert!(
        accepted >= 1 && full >= 1,
        "{accepted} accepted, {full} full"
    );
    queue
        .append(Bytes::from(vec![b'x'; 200]))
        .await
        .expect("room again once the brokers acknowledged");
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
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut consumer, 200).await;
    let mut delivered: Vec<(Position, Position)> =
        records.iter().map(|r| (r.position, r.next)).collect();
    delivered.sort();
    assert_eq!(delivered, positions);
    place.ack(&mut consumer, &records).await;
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
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let records = read_n(&mut consumer, 3).await;
    let got: Vec<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, (0..3).map(payload).collect::<Vec<_>>());
    place.ack(&mut consumer, &records).await;
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
    let mut consumer = place.consumer(&queue, Position(0)).await;
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
    let mut consumer = place.consumer(&queue, Position(0)).await;
    let read = read_n(&mut consumer, count).await;
    assert_eq!(read.len(), count);
    place.ack(&mut consumer, &read).await;
    let last = queue.append(payload(count)).await.expect("append");

    let seen = follow_until(&mut follower, last.1).await;
    let missed = seen
        .iter()
        .any(|item| matches!(item, Followed::Missed { .. }));
    // Kafka keeps records its consumers stored until retention deletes them:
    // a follower behind loses nothing, it only lags.
    assert_eq!(
        missed,
        !place.partitioned(),
        "a follower this far behind was not told it missed records, or Kafka lost some"
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

/// Keyed records spread over the partitions of a Kafka topic.
async fn append_keyed(queue: &Arc<dyn Queue>, range: std::ops::Range<usize>) -> Vec<Bytes> {
    let mut sent = Vec::new();
    for i in range {
        let record = payload(i);
        queue
            .append_keyed(&format!("tenant-{}", i % 7), record.clone())
            .await
            .expect("append");
        sent.push(record);
    }
    sent
}

/// Reads with both consumers until `count` records arrived in all or some
/// seconds passed; each consumer's records are committed as they arrive.
async fn read_both(
    place: &Place,
    consumers: &mut [&mut Box<dyn queue::Consumer>],
    count: usize,
) -> Vec<Vec<Record>> {
    let mut read = vec![Vec::new(); consumers.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while read.iter().map(Vec::len).sum::<usize>() < count && tokio::time::Instant::now() < deadline
    {
        for (consumer, read) in consumers.iter_mut().zip(&mut read) {
            let batch = consumer
                .read(64, 1 << 20, Duration::from_millis(50))
                .await
                .expect("read");
            place.ack(consumer, &batch).await;
            read.extend(batch);
        }
    }
    read
}

/// Two workers' consumers in one group share the partitions and together read
/// every record once; when one leaves, the other takes its partitions over
/// from the offsets the store holds, and reads nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumers_in_a_group_share_the_partitions_and_take_over_from_the_store() {
    let Some(place) = Place::kafka("the group case", 4) else {
        return;
    };
    let queue = place.open(Bounds::default()).await;
    let mut first = place.consumer(&queue, Position(0)).await;
    let mut second = place.consumer(&queue, Position(0)).await;
    // Both join before anything is there to read, so no record is read by one
    // member before the group's assignment moves its partition to the other.
    read_both(&place, &mut [&mut first, &mut second], 1).await;

    let mut sent = append_keyed(&queue, 0..60).await;
    let read = read_both(&place, &mut [&mut first, &mut second], 60).await;
    assert!(
        read.iter().all(|records| !records.is_empty()),
        "one consumer got every partition: {} and {}",
        read[0].len(),
        read[1].len()
    );
    let mut got: Vec<Bytes> = read.iter().flatten().map(|r| r.payload.clone()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every record once");
    let partitions = |records: &[Record]| -> std::collections::BTreeSet<u32> {
        records.iter().filter_map(|r| r.partition).collect()
    };
    assert!(
        partitions(&read[0]).is_disjoint(&partitions(&read[1])),
        "a partition went to both consumers"
    );

    // The second consumer leaves; the first takes every partition over.
    drop(second);
    let mut later = append_keyed(&queue, 60..100).await;
    let read = read_both(&place, &mut [&mut first], 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let extra = first
        .read(64, 1 << 20, Duration::from_millis(300))
        .await
        .expect("read");
    let mut got: Vec<Bytes> = read[0]
        .iter()
        .chain(&extra)
        .map(|r| r.payload.clone())
        .collect();
    got.sort();
    later.sort();
    assert_eq!(got, later, "the records after the hand-over, each once");
    // Kafka's committed offsets follow the store's, for lag figures only.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.stats().pending_records != Some(0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = queue.stats();
    assert_eq!(stats.pending_records, Some(0), "{stats:?}");
    assert!(!stats.failed, "{stats:?}");
    drop((first, queue));
    place.clean().await;
}
