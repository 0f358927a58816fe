//! What the tests of the `logbook` binary share: a free port, the binary with a
//! clean environment, a client that waits for the server to come up, and the
//! audit-trail steps several tests take (post actions, wait for a checkpoint,
//! read the public key).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench::client::HttpClient;
use serde_json::{Value, json};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary, without inherited settings that would change what a test means.
/// It logs warnings, or what `LOGBOOK_E2E_LOG` asks (`info,librdkafka=debug`
/// to see a failing case's processes at work).
pub fn logbook() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logbook"));
    command
        .env(
            "LOGBOOK_LOG",
            std::env::var("LOGBOOK_E2E_LOG").unwrap_or("warn".into()),
        )
        .env_remove("LOGBOOK_DATABASE_URL")
        .env_remove("LOGBOOK_ADMIN_PASSWORD")
        .env_remove("LOGBOOK_BOOTSTRAP_KEY")
        .env_remove("LOGBOOK_CONFIG")
        .env_remove("LOGBOOK_ROLE")
        .env_remove("LOGBOOK_QUEUE_URL")
        .env_remove("LOGBOOK_STORE_URL")
        .env_remove("LOGBOOK_KEY");
    command
}

/// A client sending `token`, once the server at `url` answers `/healthz`.
pub async fn connect_when_up(url: &str, token: &str) -> HttpClient {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A server still opening its stores accepts connections it does not
        // answer yet: each attempt gets a deadline of its own.
        let attempt = async {
            let mut client = HttpClient::connect(url)
                .await
                .ok()?
                .with_token(Some(token))
                .ok()?;
            let up = client.get("/healthz").await.is_ok_and(|r| r.status == 200);
            up.then_some(client)
        };
        if let Ok(Some(client)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return client;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every log event matching `q` (already URL-safe), read page by page with
/// cursors.
pub async fn all_logs(client: &mut HttpClient, q: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut page: Value = client
            .get(&format!("/v1/logs?q={q}&limit=1000&cursor={cursor}"))
            .await
            .unwrap()
            .json()
            .unwrap();
        if let Some(Value::Array(more)) = page.get_mut("events").map(Value::take) {
            events.extend(more);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return events,
        }
    }
}

/// How many times each id is stored among the log events matching `q`.
pub async fn stored_ids(
    client: &mut HttpClient,
    q: &str,
) -> std::collections::HashMap<String, usize> {
    let mut stored = std::collections::HashMap::new();
    for event in all_logs(client, q).await {
        *stored
            .entry(event["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    stored
}

/// `logbook serve` on `port` with `settings` as its TOML file and the data
/// directory under `root`, its first key chosen as `key`.
pub fn serve_with_settings(
    root: &Path,
    port: u16,
    key: &str,
    settings: &str,
    stderr: Stdio,
) -> Child {
    let config = root.join("logbook.toml");
    std::fs::write(&config, settings).unwrap();
    logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(root.join("data"))
        .env("LOGBOOK_BOOTSTRAP_KEY", key)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Posts `n` audit events of user `u1`, actions `{prefix}.0` to `{prefix}.{n-1}`.
pub async fn post_actions(client: &mut HttpClient, prefix: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"userId": "u1", "action": format!("{prefix}.{i}")}))
        .collect();
    let response = client
        .post(
            "/v1/audit",
            "application/json",
            serde_json::to_vec(&events).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
}

/// Waits up to 30 s for a signed checkpoint of at least `size` events.
pub async fn wait_for_checkpoint(client: &mut HttpClient, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.get("/v1/audit/checkpoint").await.unwrap();
        if response.status == 200 && response.json().unwrap()["size"].as_u64() >= Some(size) {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checkpoint signing key the server publishes, as text.
pub async fn public_key(client: &mut HttpClient) -> String {
    client
        .get("/v1/audit/public-key")
        .await
        .unwrap()
        .json()
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned()
}
