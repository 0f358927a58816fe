//! `logbook tail` as a user runs it: against a running `logbook serve`, with
//! the server and key from the environment, printing NDJSON when piped —
//! exactly the events matching its query.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{connect_when_up, free_port, logbook, serve_with_settings};
use serde_json::{Value, json};

const KEY: &str = "lbk_tail-cli-test-key-0123456789abcdefghij";

/// Kills the processes of the test when it ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn post(client: &mut bench::client::HttpClient, events: &[Value]) {
    let body: String = events.iter().map(|event| format!("{event}\n")).collect();
    let response = client
        .post("/v1/logs", "application/x-ndjson", body)
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logbook_tail_prints_the_matching_events_as_ndjson_when_piped() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Killed(serve_with_settings(
        root.path(),
        port,
        KEY,
        "",
        Stdio::inherit(),
    ));
    let mut client = connect_when_up(&url, KEY).await;

    let mut tail = Killed(
        logbook()
            .args(["tail", "-q", "level:>=warn service:payments"])
            .env("LOGBOOK_URL", &url)
            .env("LOGBOOK_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (lines, received) = std::sync::mpsc::channel::<String>();
    let stdout = tail.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });

    // The tail prints only what is acknowledged once it is connected: send
    // matching warm-ups until the first one shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "logbook tail printed nothing");
        post(
            &mut client,
            &[json!({"message": "warmup", "service": "payments", "level": "error"})],
        )
        .await;
        if received.recv_timeout(Duration::from_millis(300)).is_ok() {
            break;
        }
    }
    post(
        &mut client,
        &[
            json!({"message": "login failed", "service": "auth", "level": "error"}),
            json!({"message": "charge ok", "service": "payments", "level": "info"}),
            json!({"message": "card declined", "service": "payments", "level": "warn"}),
            json!({"message": "done", "service": "payments", "level": "fatal"}),
        ],
    )
    .await;
    let mut printed = Vec::new();
    loop {
        let line = received.recv_timeout(Duration::from_secs(10)).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        let message = event["message"].as_str().unwrap().to_owned();
        if message == "warmup" {
            continue;
        }
        assert_eq!(event["service"], "payments", "{line}");
        printed.push(message.clone());
        if message == "done" {
            break;
        }
    }
    assert_eq!(printed, ["card declined", "done"]);
}
