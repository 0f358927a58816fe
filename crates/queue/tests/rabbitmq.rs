//! What only the RabbitMQ queue has to keep: its topology (a quorum work
//! queue, a clear error when an existing queue was declared otherwise) and
//! its way through a lost connection (appends and reads fail at once, stale
//! acknowledgements do nothing, everything comes back by itself). Skips
//! when `LOGBOOK_TEST_RABBITMQ_URL` is unset.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::fault_proxy::FaultProxy;
use bytes::Bytes;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use queue::{AmqpQueue, AmqpQueueConfig, Position, Queue, QueueError, Record};

fn rabbitmq_url() -> Option<String> {
    let url = std::env::var("LOGBOOK_TEST_RABBITMQ_URL").ok();
    if url.is_none() {
        eprintln!(
            "SKIPPED: LOGBOOK_TEST_RABBITMQ_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2f)"
        );
    }
    url
}

fn prefix(test: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("logbook-test-{test}-{}-{millis}", std::process::id())
}

fn config(url: &str, prefix: &str) -> AmqpQueueConfig {
    AmqpQueueConfig {
        prefix: prefix.to_owned(),
        retry_delays: vec![Duration::from_millis(50)],
        ..AmqpQueueConfig::new(url)
    }
}

async fn delete_topology(url: &str, prefix: &str) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [format!("{prefix}.work"), format!("{prefix}.retry.1")] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_queue_is_a_quorum_queue_and_a_conflicting_one_is_named() {
    let Some(url) = rabbitmq_url() else { return };
    let prefix = prefix("topology");
    let queue = AmqpQueue::open(AmqpQueueConfig {
        max_records: 10,
        ..config(&url, &prefix)
    })
    .await
    .unwrap();
    // Declaring it again, the same, is fine: the declaration is idempotent.
    let again = AmqpQueue::open(AmqpQueueConfig {
        max_records: 10,
        ..config(&url, &prefix)
    })
    .await
    .unwrap();
    again.close().await;

    // The broker says it is a quorum queue by refusing to call it classic.
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    // The same arguments but the type, which the broker compares last.
    let mut classic = FieldTable::default();
    classic.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(1 << 30));
    classic.insert("x-max-length".into(), AMQPValue::LongLongInt(10));
    classic.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    classic.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let refusal = channel
        .queue_declare(format!("{prefix}.work").into(), options, classic)
        .await
        .expect_err("not a classic queue");
    assert!(refusal.to_string().contains("quorum"), "{refusal}");

    let conflict = AmqpQueue::open(AmqpQueueConfig {
        max_records: 20,
        ..config(&url, &prefix)
    })
    .await
    .expect_err("another bound than the queue's");
    let QueueError::Config(message) = &conflict else {
        panic!("{conflict:?}");
    };
    assert!(message.contains(&format!("{prefix}.work")), "{message}");
    assert!(message.contains("x-max-length"), "{message}");
    queue.close().await;
    delete_topology(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_classic_work_queue_is_kept_and_reported() {
    let Some(url) = rabbitmq_url() else { return };
    let prefix = prefix("classic");
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let defaults = config(&url, &prefix);
    let mut classic = FieldTable::default();
    let bytes = i64::try_from(defaults.max_bytes).unwrap();
    let records = i64::try_from(defaults.max_records).unwrap();
    classic.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(bytes));
    classic.insert("x-max-length".into(), AMQPValue::LongLongInt(records));
    classic.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(format!("{prefix}.work").into(), options, classic)
        .await
        .unwrap();

    let queue = AmqpQueue::open(defaults).await.unwrap();
    let warnings = queue.stats().warnings;
    assert!(
        warnings.iter().any(|w| w.contains("classic queue")),
        "{warnings:?}"
    );
    queue.append(payload(1)).await.unwrap();
    let mut consumer = Arc::clone(&queue).consumer(Position(0)).await.unwrap();
    let read = read_n(&mut consumer, 1).await;
    assert_eq!(read.len(), 1);
    consumer.ack(&read).await.unwrap();
    queue.close().await;
    delete_topology(&url, &prefix).await;
}

fn payload(i: usize) -> Bytes {
    Bytes::from(format!("{{\"v\":1}}\n{{\"n\":{i}}}\n"))
}

async fn read_n(consumer: &mut Box<dyn queue::Consumer>, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while records.len() < count && tokio::time::Instant::now() < deadline {
        match consumer
            .read(count, 1 << 20, Duration::from_millis(100))
            .await
        {
            Ok(batch) => records.extend(batch),
            Err(QueueError::Unreachable(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("{error:?}"),
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_at_once_and_everything_comes_back_by_itself() {
    let Some(url) = rabbitmq_url() else { return };
    let uri: lapin::uri::AMQPUri = url.parse().unwrap();
    let upstream = tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let proxied = format!(
        "amqp://{}:{}@{}/{}",
        uri.authority.userinfo.username,
        uri.authority.userinfo.password,
        proxy.address(),
        bench::client::percent_encode(&uri.vhost)
    );
    let prefix = prefix("outage");
    let queue = AmqpQueue::open(config(&proxied, &prefix)).await.unwrap();
    for i in 0..2 {
        queue.append(payload(i)).await.unwrap();
    }
    let mut consumer = Arc::clone(&queue).consumer(Position(0)).await.unwrap();
    let taken = read_n(&mut consumer, 2).await;
    assert_eq!(taken.len(), 2);

    proxy.cut();
    let started = Instant::now();
    let refusal = queue.append(payload(2)).await.expect_err("no broker");
    assert!(matches!(refusal, QueueError::Unreachable(_)), "{refusal:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(queue.stats().failed);
    let read = consumer.read(10, 1 << 20, Duration::from_millis(100)).await;
    assert!(matches!(read, Err(QueueError::Unreachable(_))), "{read:?}");
    // Their channel is gone: acknowledging them does nothing, and fails nothing.
    consumer.ack(&taken).await.unwrap();

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match queue.append(payload(2)).await {
            Ok(_) => break,
            Err(QueueError::Unreachable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the connection did not come back: {error:?}"),
        }
    }
    assert!(!queue.stats().failed);
    let mut back = read_n(&mut consumer, 3).await;
    back.sort_by_key(|record| record.position);
    let payloads: Vec<Bytes> = back.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads, [payload(0), payload(1), payload(2)]);
    assert!(back[..2].iter().all(|r| r.redelivered), "handed out before");
    consumer.ack(&back).await.unwrap();
    drop(consumer);

    let mut fresh = Arc::clone(&queue).consumer(Position(0)).await.unwrap();
    let more = fresh
        .read(10, 1 << 20, Duration::from_millis(300))
        .await
        .unwrap();
    // Delivery is at least once: if the link reconnected again between the
    // read and the acknowledgement (seen once in a full CI run under load),
    // the acknowledgement named a dead channel, was skipped, and the
    // broker hands the record out again, marked redelivered. Nothing else
    // may come back, and nothing new.
    assert!(
        more.iter()
            .all(|record| record.redelivered && payloads.contains(&record.payload)),
        "records came back that were not handed out before: {more:?}"
    );
    fresh.ack(&more).await.unwrap();
    queue.close().await;
    delete_topology(&url, &prefix).await;
}
