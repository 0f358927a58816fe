//! A queue write that fails (the disk is full) answers `503 queue_unavailable`
//! with `Retry-After`, for that request and every later one, never `500`; and
//! after a restart every acknowledged event is stored exactly once.
//!
//! The failure is real: the server runs under a file-size limit
//! (`ulimit -f`, with `SIGXFSZ` ignored), so the kernel refuses the queue
//! segment's growth with `EFBIG` exactly as a full disk refuses it with `ENOSPC`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const KEY: &str = "lbk_disk-full-test-key-0123456789abcdefghij";

/// The largest file the limited server may write, in KiB: the queue segment
/// reaches it after a few batches, the index and `meta.db` stay below it.
const FILE_LIMIT_KIB: u64 = 2048;

fn spawn_server(data_dir: &std::path::Path, port: u16, limited: bool) -> Child {
    let mut command = if limited {
        // An ignored signal stays ignored across exec, so the write fails with
        // EFBIG instead of the process being killed by SIGXFSZ.
        let mut shell = std::process::Command::new("bash");
        shell.args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {FILE_LIMIT_KIB}; exec \"$0\" \"$@\""),
        ]);
        shell.arg(env!("CARGO_BIN_EXE_logbook"));
        let reference = common::logbook();
        for (name, value) in reference.get_envs() {
            match value {
                Some(value) => shell.env(name, value),
                None => shell.env_remove(name),
            };
        }
        shell
    } else {
        common::logbook()
    };
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(["--commit-interval-ms", "100"])
        .env("LOGBOOK_BOOTSTRAP_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A batch of 200 events of about 1 KiB each, numbered so none repeat.
fn batch(number: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..200)
        .map(|i| {
            json!({
                "service": "disk-full-test",
                "message": format!("batch {number} event {i} {}", "x".repeat(1000)),
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_queue_unavailable_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn_server(dir.path(), port, true);
    let mut client = common::connect_when_up(&url, KEY).await;

    let mut acknowledged: Vec<String> = Vec::new();
    let mut refusals = 0;
    for number in 0..40 {
        let response = client
            .post("/v1/logs", "application/json", batch(number))
            .await
            .unwrap();
        match response.status {
            202 => {
                assert_eq!(refusals, 0, "nothing is accepted once the queue failed");
                let answer = response.json().unwrap();
                for id in answer["ids"].as_array().unwrap() {
                    acknowledged.push(id.as_str().unwrap().to_owned());
                }
            }
            503 => {
                let answer = response.json().unwrap();
                assert_eq!(answer["code"], "queue_unavailable", "{answer}");
                assert_eq!(
                    response.headers.get("retry-after").unwrap(),
                    "30",
                    "clients are told when to retry"
                );
                refusals += 1;
                if refusals == 3 {
                    break;
                }
            }
            other => panic!("unexpected status {other}: {:?}", response.json()),
        }
    }
    assert_eq!(refusals, 3, "the file-size limit was reached");
    assert!(
        !acknowledged.is_empty(),
        "some batches fit before the limit"
    );
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 503, "a queue that cannot write is not ready");

    child.kill().unwrap();
    child.wait().unwrap();

    // Space freed: a restart recovers the queue, cutting the torn tail.
    let mut child = spawn_server(dir.path(), port, false);
    let mut client = common::connect_when_up(&url, KEY).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = common::stored_ids(&mut client, "service:disk-full-test").await;
        if acknowledged.iter().all(|id| stored.contains_key(id)) {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events stored",
            acknowledged
                .iter()
                .filter(|id| stored.contains_key(*id))
                .count(),
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stored.values().all(|count| *count == 1), "stored once each");
    let after = client
        .post("/v1/logs", "application/json", batch(1000))
        .await
        .unwrap();
    assert_eq!(after.status, 202, "ingest works again after the restart");

    child.kill().unwrap();
    child.wait().unwrap();
}
