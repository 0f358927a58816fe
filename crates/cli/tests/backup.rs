//! `logbook backup` of a server under live ingest, `logbook restore` into a
//! new data directory, and a server started on it: every event acknowledged
//! before the backup began is found there exactly once, nothing it holds was
//! never sent, and its audit trail verifies with the original key.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const KEY: &str = "lbk_backup-restore-test-key-0123456789abcdef";
const ADMIN_PASSWORD: &str = "backup-operator-secret-42";

/// Small queue segments, so releases and segment deletions happen while the
/// backup is taken, and commits far enough apart that the last events
/// acknowledged before it are only in the queue's copy.
const CONFIG: &str = "[pipeline]\ncommit_interval_ms = 500\n[audit]\ncheckpoint_every_events = 10\ncheckpoint_interval_ms = 200\n[store]\nwriter_memory_bytes = 33554432\n[queue]\nsegment_bytes = 131072\n";

/// A server process, killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(root: &Path, data: &Path, port: u16) -> Server {
    let config = root.join("logbook.toml");
    std::fs::write(&config, CONFIG).unwrap();
    common::logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .env("LOGBOOK_BOOTSTRAP_KEY", KEY)
        .env("LOGBOOK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Server)
        .unwrap()
}

/// Stops a server the way an operator would (SIGTERM), and waits for it.
fn stop(mut server: Server) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status();
    let _ = server.0.wait();
}

fn run(args: &[&str], paths: &[&Path], envs: &[(&str, &str)]) -> Output {
    let mut command = common::logbook();
    command.args(args);
    for path in paths {
        command.arg(path);
    }
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The ids of each acknowledged batch, with the moment its 202 arrived.
type Acked = Arc<Mutex<Vec<(Instant, Vec<String>)>>>;

/// Sends batches of log events until told to stop; notes each batch's ids
/// with the moment its 202 arrived.
async fn ingest(url: String, stop: Arc<AtomicBool>, acked: Acked) {
    let mut client = common::connect_when_up(&url, KEY).await;
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"service": "backup-test", "message": format!("batch {batch} event {i} {}", "x".repeat(200))}))
            .collect();
        let answer = client
            .post(
                "/v1/logs",
                "application/json",
                serde_json::to_vec(&events).unwrap(),
            )
            .await
            .unwrap();
        if answer.status == 202 {
            let ids = answer.json().unwrap()["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect();
            acked.lock().unwrap().push((Instant::now(), ids));
        }
        batch += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_live_ingest_restores_every_acknowledged_event_and_a_verifiable_trail() {
    let root = tempfile::tempdir().unwrap();
    let (data, saved, restored) = (
        root.path().join("data"),
        root.path().join("backup"),
        root.path().join("restored"),
    );
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = serve(root.path(), &data, port);
    let mut client = common::connect_when_up(&url, KEY).await;

    // Audit events before the backup, so the trail and its checkpoints are not empty.
    let audit: Vec<Value> = (0..25)
        .map(|i| json!({"userId": "u1", "action": format!("backup.test.{i}")}))
        .collect();
    let answer = client
        .post(
            "/v1/audit?wait=searchable",
            "application/json",
            serde_json::to_vec(&audit).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let public_key = common::public_key(&mut client).await;

    let stop_ingest = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let ingesting = tokio::spawn(ingest(
        url.clone(),
        Arc::clone(&stop_ingest),
        Arc::clone(&acked),
    ));
    // Let the queue roll a few segments and the worker commit and release some.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "ingest is too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let began = Instant::now();
    let backup = {
        let (url, saved) = (url.clone(), saved.clone());
        tokio::task::spawn_blocking(move || {
            run(
                &["backup", "--url", &url, "--to"],
                &[&saved],
                &[("LOGBOOK_ADMIN_PASSWORD", ADMIN_PASSWORD)],
            )
        })
    };
    let backed_up = backup.await.unwrap();
    assert!(backed_up.status.success(), "{}", text(&backed_up));
    // Ingest went on while the backup was taken.
    let during = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at > began)
        .count();
    stop_ingest.store(true, Ordering::Relaxed);
    ingesting.await.unwrap();
    assert!(during > 0, "no event was acknowledged during the backup");

    let acked = acked.lock().unwrap().clone();
    let before: BTreeSet<String> = acked
        .iter()
        .filter(|(at, _)| *at < began)
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    let sent: BTreeSet<String> = acked
        .iter()
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    let staging_gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !data.join("backup-staging").exists()
    });
    assert!(
        staging_gone,
        "the backup's staging directory was left behind"
    );
    stop(server);
    // The queue's copy goes on past the position the index copy covers, so
    // the restored worker has records to index.
    let meta: Value =
        serde_json::from_slice(&std::fs::read(saved.join("index/meta.json")).unwrap()).unwrap();
    let payload: Value = serde_json::from_str(meta["payload"].as_str().unwrap()).unwrap();
    let covered = payload["queue_position"].as_u64().unwrap();
    let queue_end = std::fs::read_dir(saved.join("queue"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let start: u64 = name.trim_end_matches(".seg").parse().unwrap();
            start + entry.metadata().unwrap().len()
        })
        .max()
        .unwrap();
    assert!(queue_end > covered, "{queue_end} {covered}");

    let restoring = run(&["restore", "--from"], &[&saved], &[]);
    assert!(!restoring.status.success(), "restore needs --data-dir");
    let restoring = run(
        &["restore", "--from"],
        &[&saved, Path::new("--data-dir"), &restored],
        &[],
    );
    assert!(restoring.status.success(), "{}", text(&restoring));

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = serve(root.path(), &restored, port);
    let mut client = common::connect_when_up(&url, KEY).await;
    // The worker indexes what the queue copy holds beyond the copied commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored: HashMap<String, usize> = loop {
        let stored = common::stored_ids(&mut client, "service:backup-test").await;
        if before.iter().all(|id| stored.contains_key(id)) {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events acknowledged before the backup are missing",
            before.iter().filter(|id| !stored.contains_key(*id)).count(),
            before.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let repeated: Vec<_> = stored.iter().filter(|(_, count)| **count > 1).collect();
    assert!(repeated.is_empty(), "stored more than once: {repeated:?}");
    let unknown: Vec<_> = stored.keys().filter(|id| !sent.contains(*id)).collect();
    assert!(unknown.is_empty(), "never acknowledged: {unknown:?}");
    let stats = client
        .get("/v1/stats?q=service:backup-test")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        stats["total"].as_u64(),
        Some(stored.len() as u64),
        "{stats}"
    );
    let audit = client
        .get("/v1/audit?q=action:backup.test.*&limit=100")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(audit["events"].as_array().unwrap().len(), 25, "{audit}");
    stop(server);

    let verified = run(
        &["verify", "--public-key", &public_key, "--data-dir"],
        &[&restored],
        &[],
    );
    assert!(verified.status.success(), "{}", text(&verified));
}
