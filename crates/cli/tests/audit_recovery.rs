//! The audit trail is the source of truth, through the real binary: losing the
//! index keeps every signed event with its number, a missing checkpoint key
//! stops the server instead of becoming a new identity, and a torn line of
//! `checkpoints.jsonl` is cut rather than built upon.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench::client::HttpClient;
use serde_json::Value;

const KEY: &str = "lbk_audit-recovery-test-key-0123456789abcdef";

const CONFIG: &str = "[pipeline]\ncommit_interval_ms = 100\n[audit]\ncheckpoint_every_events = 10\ncheckpoint_interval_ms = 200\n[store]\nwriter_memory_bytes = 33554432\n";

fn spawn_server(root: &Path, port: u16, stderr: Stdio) -> Child {
    spawn_with(root, port, stderr, CONFIG)
}

fn spawn_with(root: &Path, port: u16, stderr: Stdio, settings: &str) -> Child {
    common::serve_with_settings(root, port, KEY, settings, stderr)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// Every audit event the API returns, as id → seq, once there are `count`
/// (a checkpoint can be served a moment before its events are searchable).
async fn seqs(client: &mut HttpClient, count: usize) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut page = Value::Null;
    while Instant::now() < deadline {
        page = client
            .get("/v1/audit?limit=1000")
            .await
            .unwrap()
            .json()
            .unwrap();
        if page["events"].as_array().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["id"].as_str().unwrap().to_owned(),
                event["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn public_key(data: &Path) -> String {
    let output = common::logbook()
        .args(["verify", "--print-public-key", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn verify(data: &Path, key: &str) -> (bool, String) {
    let output = common::logbook()
        .args(["verify", "--public-key", key, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_index_keeps_every_signed_audit_event_and_its_number() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(root.path(), port, Stdio::null());
    let mut client = common::connect_when_up(&url, KEY).await;
    common::post_actions(&mut client, "before", 12).await;
    // 12 events and the 3 of the first start (tenant, admin, key).
    common::wait_for_checkpoint(&mut client, 15).await;
    let before = seqs(&mut client, 15).await;
    assert_eq!(before.len(), 15);
    server.kill().unwrap();
    server.wait().unwrap();
    let key = public_key(&data);

    std::fs::remove_dir_all(data.join("index")).unwrap();
    let server = spawn_server(root.path(), port, Stdio::null());
    let mut client = common::connect_when_up(&url, KEY).await;
    common::post_actions(&mut client, "after", 1).await;
    common::wait_for_checkpoint(&mut client, 16).await;
    let after = seqs(&mut client, 16).await;
    assert_eq!(after.len(), 16, "search finds every audit event once");
    for (id, seq) in &before {
        assert_eq!(after.get(id), Some(seq), "event {id} keeps its number");
    }
    assert_eq!(
        after.values().max(),
        Some(&15),
        "the new event comes after them"
    );
    stop(server);

    let (ok, text) = verify(&data, &key);
    assert!(ok, "{text}");
    assert!(text.contains("verified: 16 events"), "{text}");
}

/// The error output of a server expected to refuse to start.
async fn refusal(mut server: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            server.kill().unwrap();
            panic!("the server started");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = server.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_index_after_the_queue_released_records_needs_the_operator() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let settings = format!("{CONFIG}[queue]\nsegment_bytes = 4096\n");
    let server = spawn_with(root.path(), port, Stdio::null(), &settings);
    let mut client = common::connect_when_up(&url, KEY).await;
    for batch in 0..12 {
        common::post_actions(&mut client, &format!("batch{batch}"), 10).await;
    }
    common::wait_for_checkpoint(&mut client, 123).await;
    stop(server);
    let key = public_key(&data);

    // The queue released its first segments; the index that held them is gone.
    std::fs::remove_dir_all(data.join("index")).unwrap();
    let server = spawn_with(root.path(), port, Stdio::piped(), &settings);
    let text = refusal(server).await;
    assert!(
        text.contains("the index has no commit") && text.contains("Restore an index backup"),
        "{text}"
    );
    // Nothing signed was cut meanwhile.
    let (ok, text) = verify(&data, &key);
    assert!(ok, "{text}");
    assert!(text.contains("verified: 123 events, 123 covered"), "{text}");

    // The operator accepts the loss of the older log events: every audit event
    // is back, with its number, and the trail goes on from there.
    let settings = settings.replace(
        "[pipeline]\n",
        "[pipeline]\nresume_after_index_loss = true\n",
    );
    let server = spawn_with(root.path(), port, Stdio::null(), &settings);
    let mut client = common::connect_when_up(&url, KEY).await;
    let found = seqs(&mut client, 123).await;
    assert_eq!(found.len(), 123);
    let mut numbers: Vec<u64> = found.into_values().collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..123).collect::<Vec<_>>());
    common::post_actions(&mut client, "after", 10).await;
    common::wait_for_checkpoint(&mut client, 133).await;
    stop(server);
    let (ok, text) = verify(&data, &key);
    assert!(ok, "{text}");
    assert!(text.contains("verified: 133 events, 133 covered"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_checkpoint_key_stops_the_server() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(root.path(), port, Stdio::null());
    let mut client = common::connect_when_up(&url, KEY).await;
    common::wait_for_checkpoint(&mut client, 3).await;
    stop(server);

    let key_file = data.join("audit").join("checkpoint.key");
    std::fs::remove_file(&key_file).unwrap();
    let text = refusal(spawn_server(root.path(), port, Stdio::piped())).await;
    assert!(
        text.contains("checkpoint.key is missing") && text.contains("Restore the key file"),
        "{text}"
    );
    assert!(!key_file.exists(), "no new key was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_checkpoint_line_is_cut_and_the_next_checkpoint_verifies() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(root.path(), port, Stdio::null());
    let mut client = common::connect_when_up(&url, KEY).await;
    common::post_actions(&mut client, "before", 12).await;
    common::wait_for_checkpoint(&mut client, 15).await;
    stop(server);

    // A crash (or a full disk) in the middle of appending the next checkpoint.
    let checkpoints = data.join("audit").join("default").join("checkpoints.jsonl");
    let whole = std::fs::read(&checkpoints).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&checkpoints)
        .unwrap();
    file.write_all(b"{\"note\":\"logbook/default\\n27\\nq0ZXJ")
        .unwrap();
    drop(file);

    let server = spawn_server(root.path(), port, Stdio::null());
    let mut client = common::connect_when_up(&url, KEY).await;
    assert!(
        std::fs::read(&checkpoints).unwrap().starts_with(&whole),
        "the complete lines are kept"
    );
    common::post_actions(&mut client, "after", 12).await;
    common::wait_for_checkpoint(&mut client, 27).await;
    stop(server);

    let (ok, text) = verify(&data, &public_key(&data));
    assert!(ok, "{text}");
    assert!(text.contains("verified: 27 events, 27 covered"), "{text}");
}
