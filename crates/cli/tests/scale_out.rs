//! The scale-out deployment with real processes: one query node, two ingest
//! nodes and two workers over Redis Streams (or RabbitMQ) and PostgreSQL.
//! Clients send the Loghub samples through both ingest nodes while one worker
//! is SIGKILLed; every acknowledged id ends up stored exactly once. Each half
//! skips unless `LOGBOOK_TEST_POSTGRES_URL` and its queue's URL
//! (`LOGBOOK_TEST_REDIS_URL`, `LOGBOOK_TEST_RABBITMQ_URL`) are set.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{connect_when_up, free_port, serve_with_settings, stored_ids};

const KEY: &str = "lbk_scale-out-test-key-0123456789abcdefghij";

/// A process of the deployment; killed when dropped.
struct Node {
    child: Child,
    url: String,
    _root: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a node; every node shares `key` (the checkpoint signing key file).
fn start(role: &str, queue: &str, prefix: &str, store: &str, key: &Path) -> Node {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = format!(
        "role = \"{role}\"\n\
         [queue]\nurl = \"{queue}\"\nprefix = \"{prefix}\"\nvisibility_timeout_ms = 2000\n\
         [store]\nurl = \"{store}\"\n\
         [pipeline]\ncommit_interval_ms = 100\n\
         [audit]\nkey_file = \"{}\"\n",
        key.display()
    );
    let child = serve_with_settings(root.path(), port, KEY, &settings, Stdio::inherit());
    Node {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _root: root,
    }
}

/// NDJSON batches of the Loghub samples, 250 lines each, with their service;
/// where the samples are not beside the repository, as many generated lines
/// (said on standard error), so the deployment is still tested.
fn batches() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    if !root.is_dir() {
        eprintln!("the Loghub samples are not beside the repository: sending generated lines");
        return (0..32)
            .map(|batch| {
                let mut body = Vec::new();
                for line in 0..250 {
                    let event = serde_json::json!({
                        "message": format!("generated line {line} of batch {batch}"),
                        "service": "generated",
                    });
                    serde_json::to_writer(&mut body, &event).unwrap();
                    body.push(b'\n');
                }
                body
            })
            .collect();
    }
    let mut batches = Vec::new();
    for (service, file) in [
        ("hdfs", "HDFS/HDFS_2k.log"),
        ("apache", "Apache/Apache_2k.log"),
        ("openssh", "OpenSSH/OpenSSH_2k.log"),
        ("zookeeper", "Zookeeper/Zookeeper_2k.log"),
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        for chunk in lines.chunks(250) {
            let mut body = Vec::new();
            for line in chunk {
                let event = serde_json::json!({"message": line, "service": service});
                serde_json::to_writer(&mut body, &event).unwrap();
                body.push(b'\n');
            }
            batches.push(body);
        }
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_nodes_two_workers_one_killed_every_event_stored_once() {
    let (Ok(redis), Some(postgres)) = (
        std::env::var("LOGBOOK_TEST_REDIS_URL"),
        meta::testing::postgres_url("two_ingest_nodes_two_workers"),
    ) else {
        eprintln!(
            "SKIPPED two_ingest_nodes_two_workers: needs LOGBOOK_TEST_REDIS_URL and LOGBOOK_TEST_POSTGRES_URL"
        );
        return;
    };
    let prefix = format!("logbook-e2e-{}", std::process::id());
    deployment(&redis, &postgres, &prefix).await;
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:events"))
        .arg(format!("{{{prefix}}}:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rabbitmq_two_ingest_nodes_two_workers_one_killed_every_event_stored_once() {
    let (Ok(rabbitmq), Some(postgres)) = (
        std::env::var("LOGBOOK_TEST_RABBITMQ_URL"),
        meta::testing::postgres_url("over_rabbitmq_two_ingest_nodes_two_workers"),
    ) else {
        eprintln!(
            "SKIPPED over_rabbitmq_two_ingest_nodes_two_workers: needs LOGBOOK_TEST_RABBITMQ_URL and LOGBOOK_TEST_POSTGRES_URL"
        );
        return;
    };
    let prefix = format!("logbook-e2e-amqp-{}", std::process::id());
    deployment(&rabbitmq, &postgres, &prefix).await;
    let connection = lapin::Connection::connect(&rabbitmq, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let stages = server::Config::default().queue.retry_delays_ms.len();
    let retries = (1..=stages).map(|n| format!("{prefix}.retry.{n}"));
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

/// Runs the deployment over the queue at `queue` and a fresh schema of the
/// database at `postgres`, and checks what it stored.
async fn deployment(queue: &str, postgres: &str, prefix: &str) {
    let store = meta::testing::fresh_postgres_schema(postgres)
        .await
        .unwrap();
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("checkpoint.key");

    // The query node starts first and creates the tenant and key.
    let query = start("query", queue, prefix, &store, &key);
    let mut reader = connect_when_up(&query.url, KEY).await;
    let ingest = [
        start("ingest", queue, prefix, &store, &key),
        start("ingest", queue, prefix, &store, &key),
    ];
    let mut workers = vec![
        start("worker", queue, prefix, &store, &key),
        start("worker", queue, prefix, &store, &key),
    ];
    let mut writers = Vec::new();
    for node in &ingest {
        writers.push(connect_when_up(&node.url, KEY).await);
    }
    for worker in &workers {
        connect_when_up(&worker.url, KEY).await;
    }

    let batches = batches();
    assert!(
        batches.len() >= 16,
        "the Loghub samples are beside the repository"
    );
    let mut acknowledged = HashSet::new();
    let mut killed = false;
    for (i, body) in batches.into_iter().enumerate() {
        if !killed && i >= 10 {
            // SIGKILL in the middle of the stream: whatever it read and had not
            // acknowledged goes to the other worker (after the visibility
            // timeout in Redis, once its connection is gone in RabbitMQ).
            let mut doomed = workers.remove(0);
            doomed.child.kill().unwrap();
            doomed.child.wait().unwrap();
            killed = true;
        }
        let writer = &mut writers[i % 2];
        let response = writer
            .post("/v1/logs", "application/x-ndjson", body)
            .await
            .unwrap();
        assert_eq!(response.status, 202, "{:?}", response.json());
        for id in response.json().unwrap()["ids"].as_array().unwrap() {
            acknowledged.insert(id.as_str().unwrap().to_owned());
        }
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    let stored = loop {
        let stored = stored_ids(&mut reader, "*").await;
        if stored.len() >= acknowledged.len() || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged ids missing",
        missing.len()
    );
    let twice: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let unknown = stored
        .keys()
        .filter(|id| !acknowledged.contains(*id))
        .count();
    assert_eq!(unknown, 0, "nothing stored that was not acknowledged");

    // The audit trail (Logbook's own security events) verifies straight from
    // the database, against the public key the query node serves.
    let public_key = reader
        .get("/v1/audit/public-key")
        .await
        .unwrap()
        .json()
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let verified = common::logbook()
        .args(["verify", "--store-url", &store, "--public-key", &public_key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && stdout.contains("verified"),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let wrong = common::logbook()
        .args(["verify", "--store-url", &store, "--public-key"])
        .arg(public_key.replace("logbook+", "other+"))
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "another key does not verify");

    drop(workers);
    drop(ingest);
    drop(query);
}
