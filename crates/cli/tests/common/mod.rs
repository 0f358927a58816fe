//! What the tests of the `logbook` binary share: a free port, the binary with a
//! clean environment, and a client that waits for the server to come up.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench::client::HttpClient;

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

/// How many times each id is stored among the log events matching `q`, read
/// page by page with cursors.
pub async fn stored_ids(
    client: &mut HttpClient,
    q: &str,
) -> std::collections::HashMap<String, usize> {
    let mut stored = std::collections::HashMap::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .get(&format!("/v1/logs?q={q}&limit=1000&cursor={cursor}"))
            .await
            .unwrap()
            .json()
            .unwrap();
        for event in page["events"].as_array().unwrap() {
            *stored
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return stored,
        }
    }
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
