//! `logbook admin dead-letters list|show|replay|purge` against a running
//! `logbook serve`, through the real binary: the super-admin logs in with
//! the password (or passes a token), and errors are the server's, stated.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use model::{Stream, Timestamp};
use store::dead_letters::DirectoryDeadLetters;
use store::{DeadLetter, DeadLetterInfo, DeadLetters};

const KEY: &str = "lbk_dead-letter-test-key-0123456789abcdefg";
const ADMIN_PASSWORD: &str = "dead-letter-owner-secret-42";

/// A letter as the worker writes it for a refused event with this id and message.
fn event_letter(id: &str, event_id: &str, message: &str) -> DeadLetter {
    let event = serde_json::json!({
        "id": event_id, "tenant": "default", "timestamp": "2026-02-18T12:00:00Z",
        "received_at": "2026-02-18T12:00:00Z", "level": "info", "message": message,
    });
    let payload = format!("{{\"v\":1,\"replace\":[0]}}\n{event}\n").into_bytes();
    let now = Timestamp::parse("2026-02-18T12:00:01Z").unwrap();
    DeadLetter {
        info: DeadLetterInfo {
            id: id.to_owned(),
            tenant: Some("default".to_owned()),
            stream: Some(Stream::Logs),
            position: 100,
            error: "the store refused the data: value too long".to_owned(),
            attempts: 5,
            first_failed_at: now,
            last_failed_at: now,
            payload_bytes: payload.len() as u64,
        },
        payload,
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `logbook admin dead-letters <args…> --url <url>`, with the admin password
/// in the environment when given.
fn dead_letters(url: &str, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = common::logbook();
    command
        .args(["admin", "dead-letters"])
        .args(args)
        .args(["--url", url]);
    if let Some(password) = password {
        command.env("LOGBOOK_ADMIN_PASSWORD", password);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let letters = DirectoryDeadLetters::new(dir.path().join("dead-letter"));
    letters
        .put(event_letter(
            "00000000000000000100",
            "cli-replayed",
            "replayed from the command line",
        ))
        .await
        .unwrap();
    letters
        .put(DeadLetter::for_record(
            5,
            b"not a record".to_vec(),
            "record has no header line".into(),
        ))
        .await
        .unwrap();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Server(
        common::logbook()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .args(["--commit-interval-ms", "50"])
            .env("LOGBOOK_BOOTSTRAP_KEY", KEY)
            .env("LOGBOOK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut client = common::connect_when_up(&url, KEY).await;

    let listed = stdout(&dead_letters(&url, Some(ADMIN_PASSWORD), &["list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].starts_with("id\ttenant"), "{listed}");
    assert!(
        lines[1].starts_with("00000000000000000005\t-\t-\t1\t"),
        "{listed}"
    );
    assert!(
        lines[2].starts_with("00000000000000000100\tdefault\tlogs\t5\t"),
        "{listed}"
    );
    let json = stdout(&dead_letters(
        &url,
        Some(ADMIN_PASSWORD),
        &["list", "--json", "--limit", "1"],
    ));
    let page: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(page["next"], "00000000000000000005");

    let shown = stdout(&dead_letters(
        &url,
        Some(ADMIN_PASSWORD),
        &["show", "00000000000000000100"],
    ));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["events"][0]["message"],
        "replayed from the command line"
    );

    // Replay: the position goes to stdout, and the event is stored.
    let replay = dead_letters(
        &url,
        Some(ADMIN_PASSWORD),
        &["replay", "00000000000000000100"],
    );
    let position = stdout(&replay);
    assert!(position.trim().parse::<u64>().is_ok(), "{position:?}");
    assert!(String::from_utf8_lossy(&replay.stderr).contains("replayed dead letter"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get("/v1/logs/cli-replayed").await.unwrap().status != 200 {
        assert!(
            Instant::now() < deadline,
            "the replayed event is never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Purge, with an access token instead of the password.
    let login = client
        .post(
            "/v1/auth/login",
            "application/json",
            serde_json::to_vec(
                &serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    stdout(&dead_letters(
        &url,
        None,
        &["purge", "00000000000000000005", "--token", token],
    ));
    let listed = stdout(&dead_letters(&url, Some(ADMIN_PASSWORD), &["list"]));
    assert_eq!(
        listed.lines().count(),
        1,
        "only the header is left: {listed}"
    );

    // Errors say what the server said, or what is missing.
    let missing = dead_letters(
        &url,
        Some(ADMIN_PASSWORD),
        &["show", "00000000000000000100"],
    );
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("404 not_found"), "{message}");
    let anonymous = dead_letters(&url, None, &["list"]);
    assert!(!anonymous.status.success());
    let message = String::from_utf8_lossy(&anonymous.stderr);
    assert!(message.contains("--admin-password"), "{message}");
    let wrong = dead_letters(&url, Some("not the password at all"), &["list"]);
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(message.contains("cannot log in"), "{message}");
}
