//! Tests of the Kafka queue against librdkafka's mock cluster, which speaks
//! the protocol inside the test process: appends and their positions, a
//! consumer starting where the store's offsets say, a follower, and a broker
//! that goes down. (The conformance suite runs against a real broker.)
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::mocking::MockCluster;

use crate::{
    Followed, KafkaQueue, KafkaQueueConfig, Queue, QueueError, Record, StoredOffsets, partition_of,
};

/// Offsets as a store would hold them.
#[derive(Default)]
struct Offsets(Mutex<BTreeMap<u32, u64>>);

#[async_trait::async_trait]
impl StoredOffsets for Offsets {
    async fn stored_offsets(&self, _topic: &str) -> Result<BTreeMap<u32, u64>, QueueError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// A mock cluster of one broker with the queue's topic (the mock has no
/// CreateTopics).
fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster
}

fn config(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
) -> KafkaQueueConfig {
    KafkaQueueConfig {
        brokers: cluster.bootstrap_servers(),
        topic: "events".to_owned(),
        partitions: 2,
        group: "workers".to_owned(),
        delivery_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        ..KafkaQueueConfig::default()
    }
}

async fn read_n(consumer: &mut Box<dyn crate::Consumer>, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.len() < count && tokio::time::Instant::now() < deadline {
        records.extend(
            consumer
                .read(count, 1 << 20, Duration::from_millis(100))
                .await
                .unwrap(),
        );
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keyed_alike_share_a_partition_and_consumers_start_at_the_stores_offsets() {
    let cluster = cluster();
    let queue = KafkaQueue::open(config(&cluster)).await.unwrap();
    assert_eq!(queue.partitions(), 2);
    let stats = queue.stats();
    assert_eq!(stats.backend, "kafka");
    assert!(
        !stats.failed && stats.pending_bytes < stats.max_bytes,
        "{stats:?}"
    );
    let mut appended = Vec::new();
    for i in 0..6 {
        let key = if i % 2 == 0 { "tenant-a" } else { "tenant-b" };
        appended.push((
            key,
            queue
                .append_keyed(key, Bytes::from(format!("r{i}")))
                .await
                .unwrap(),
        ));
    }
    for key in ["tenant-a", "tenant-b"] {
        let positions: Vec<_> = appended
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, p)| *p)
            .collect();
        assert!(
            positions
                .iter()
                .all(|(start, _)| partition_of(*start) == partition_of(positions[0].0))
        );
        assert!(
            positions.windows(2).all(|pair| pair[0].1 <= pair[1].0),
            "{positions:?}"
        );
    }

    // The store covered the first record of each partition: the consumer
    // starts after it, whatever Kafka's committed offsets say.
    let offsets = Arc::new(Offsets::default());
    for partition in 0..2 {
        offsets.0.lock().unwrap().insert(partition, 1);
    }
    let mut consumer = Arc::clone(&queue)
        .partition_consumer(Arc::clone(&offsets) as Arc<dyn StoredOffsets>)
        .await
        .unwrap();
    let expected: Vec<String> = appended
        .iter()
        .enumerate()
        .filter(|(_, (_, (start, _)))| crate::offset_of(*start) >= 1)
        .map(|(i, _)| format!("r{i}"))
        .collect();
    let records = read_n(&mut consumer, expected.len()).await;
    let mut got: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    assert!(
        records
            .iter()
            .all(|r| r.partition_offset().is_some_and(|(_, offset)| offset >= 1))
    );
    consumer.ack(&records).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_what_is_appended_after_they_start() {
    let cluster = cluster();
    let queue = KafkaQueue::open(config(&cluster)).await.unwrap();
    queue.append(Bytes::from_static(b"before")).await.unwrap();
    let mut follower = queue.follow().await.unwrap();
    for i in 0..3 {
        queue
            .append_keyed("t", Bytes::from(format!("after {i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 && tokio::time::Instant::now() < deadline {
        match follower.next(Duration::from_millis(100)).await.unwrap() {
            Some(Followed::Record(record)) => seen.push(record.payload),
            Some(Followed::Missed { from, to }) => panic!("missed {from:?}..{to:?}"),
            None => {}
        }
    }
    assert_eq!(
        seen,
        [b"after 0", b"after 1", b"after 2"].map(|b| Bytes::from_static(b))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_as_unreachable_when_the_broker_is_down() {
    let cluster = cluster();
    let queue = KafkaQueue::open(config(&cluster)).await.unwrap();
    queue.append(Bytes::from_static(b"up")).await.unwrap();
    cluster.broker_down(1).unwrap();
    let started = std::time::Instant::now();
    let refusal = queue.append(Bytes::from_static(b"down")).await.unwrap_err();
    assert!(matches!(refusal, QueueError::Unreachable(_)), "{refusal:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !queue.stats().failed && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(queue.stats().failed, "{:?}", queue.stats());

    cluster.broker_up(1).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match queue.append(Bytes::from_static(b"up again")).await {
            Ok(_) => break,
            Err(error) if tokio::time::Instant::now() < deadline => {
                assert!(matches!(error, QueueError::Unreachable(_)), "{error:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the broker came back, appends did not: {error:?}"),
        }
    }
}
