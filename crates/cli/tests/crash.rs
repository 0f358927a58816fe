//! Kill -9 while clients ingest: after a restart every acknowledged event is
//! stored exactly once. Runs the real `logbook` binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::client::HttpClient;
use serde_json::{Value, json};

/// The first key, chosen through the environment.
const KEY: &str = "lbk_crash-test-key-0123456789abcdefghijkl";
/// The bootstrap super-admin's password: the queue's state is theirs to read.
const ADMIN_PASSWORD: &str = "crash-test-owner-secret-42";

fn spawn_server(data_dir: &std::path::Path, port: u16) -> Child {
    common::logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args([
            "--commit-interval-ms",
            "100",
            "--store-writer-memory-bytes",
            "33554432",
        ])
        .env("LOGBOOK_BOOTSTRAP_KEY", KEY)
        .env("LOGBOOK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn_server(dir.path(), port);
    common::connect_when_up(&url, KEY).await;

    // Four clients send batches back to back; each keeps the ids the server acknowledged.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for client_number in 0..4 {
        let url = url.clone();
        let acknowledged = Arc::clone(&acknowledged);
        clients.push(tokio::spawn(async move {
            let Ok(client) = HttpClient::connect(&url).await else { return };
            let Ok(mut client) = client.with_token(Some(KEY)) else { return };
            for batch in 0.. {
                let events: Vec<Value> = (0..50)
                    .map(|i| json!({"service": "crash-test", "message": format!("client {client_number} batch {batch} event {i}")}))
                    .collect();
                let Ok(response) = client.post("/v1/logs", "application/json", serde_json::to_vec(&events).unwrap()).await else {
                    return; // the server died mid-request: this batch was never acknowledged
                };
                assert_eq!(response.status, 202);
                let answer = response.json().unwrap();
                let ids = answer["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned());
                acknowledged.lock().unwrap().extend(ids);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 500,
        "the load ran: {} acknowledged",
        acknowledged.len()
    );

    let mut child = spawn_server(dir.path(), port);
    let mut client = common::connect_when_up(&url, KEY).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let login = serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD});
    let token = client
        .post(
            "/v1/auth/login",
            "application/json",
            serde_json::to_vec(&login).unwrap(),
        )
        .await
        .unwrap()
        .json()
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admin = common::connect_when_up(&url, &token).await;
    loop {
        let ready = admin.get("/v1/admin/status").await.unwrap().json().unwrap();
        if ready["queue"]["pending_bytes"] == 0 && ready["worker"]["running"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "queue did not drain: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Read every stored event back, page by page.
    let stored = common::stored_ids(&mut client, "service:crash-test").await;
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // Requests cut off by the kill may have been stored without an answer; never fewer.
    assert!(stored.len() >= acknowledged.len());

    child.kill().unwrap();
    child.wait().unwrap();
}
