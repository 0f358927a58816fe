//! The first start and `logbook admin`, through the real binary: credentials
//! printed once, keys created and revoked from the command line while the
//! server runs, and bad bootstrap values refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bench::client::HttpClient;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `logbook serve` and collects what it prints at start: up to the
/// end of the first-start block, or 2 s of silence after the data directory line.
fn start(dir: &std::path::Path, port: u16) -> (Server, Vec<String>) {
    let mut child = common::logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = lines
            .iter()
            .any(|l: &String| l.starts_with("data directory"));
        let wait = if started {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        };
        match receiver.recv_timeout(wait) {
            Ok(line) => {
                let last = line.starts_with("Try:");
                lines.push(line);
                if last {
                    break;
                }
            }
            Err(_) if started => break,
            Err(_) => assert!(Instant::now() < deadline, "server did not start: {lines:?}"),
        }
    }
    (Server(child), lines)
}

fn admin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::logbook()
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_credentials_once_and_admin_manages_keys_while_serving() {
    let root = tempfile::tempdir().unwrap();
    // A directory the server creates itself, to check the permissions it gives.
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (server, lines) = start(data.as_path(), port);
    let key_line = lines
        .iter()
        .find(|line| line.contains("API key ("))
        .unwrap();
    let key = key_line.rsplit(' ').next().unwrap().to_owned();
    assert!(key.starts_with("lbk_"), "{lines:?}");
    let password_line = lines
        .iter()
        .find(|line| line.contains("admin password:"))
        .unwrap();
    let password = password_line.rsplit(' ').next().unwrap();
    assert!(password.len() >= 20, "{lines:?}");

    let mut bootstrap = common::connect_when_up(&url, &key).await;
    assert_eq!(bootstrap.get("/v1/logs").await.unwrap().status, 200);

    // A key made from the command line while the server runs: printed alone on stdout.
    let output = admin(
        data.as_path(),
        &["create-key", "--name", "reader", "--scopes", "logs:read"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let reader_key = stdout.trim();
    let mut reader = common::connect_when_up(&url, reader_key).await;
    assert_eq!(reader.get("/v1/logs").await.unwrap().status, 200);
    let write = reader
        .post("/v1/logs", "application/json", r#"{"message":"x"}"#)
        .await
        .unwrap();
    assert_eq!(write.status, 403);

    // Revoked from the command line: refused at once.
    let me = reader.get("/v1/auth/me").await.unwrap().json().unwrap();
    let id = me["id"].as_str().unwrap().to_owned();
    let output = admin(data.as_path(), &["revoke-key", &id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refused = reader.get("/v1/logs").await.unwrap();
    assert_eq!(
        (refused.status, refused.json().unwrap()["code"].clone()),
        (401, "key_revoked".into())
    );

    // Users and tenants from the command line.
    let output = common::logbook()
        .args(["admin", "create-tenant", "acme", "--data-dir"])
        .arg(data.as_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = common::logbook()
        .args([
            "admin",
            "create-user",
            "--tenant",
            "acme",
            "--username",
            "ops",
            "--role",
            "auditor",
            "--data-dir",
        ])
        .arg(data.as_path())
        .env("LOGBOOK_NEW_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut anonymous = HttpClient::connect(&url).await.unwrap();
    let login = anonymous
        .post(
            "/v1/auth/login",
            "application/json",
            r#"{"username":"ops","password":"a-long-enough-password"}"#,
        )
        .await
        .unwrap();
    assert_eq!(login.status, 200);
    // Account recovery from the command line.
    let output = common::logbook()
        .args(["admin", "reset-password", "--username", "ops", "--data-dir"])
        .arg(data.as_path())
        .env("LOGBOOK_NEW_PASSWORD", "another-long-password")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let login = anonymous
        .post(
            "/v1/auth/login",
            "application/json",
            r#"{"username":"ops","password":"another-long-password"}"#,
        )
        .await
        .unwrap();
    assert_eq!(login.status, 200);

    // The secrets of the data directory are its owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.as_path()), 0o700);
    assert_eq!(mode(&data.as_path().join("meta.db")), 0o600);

    // Pointed at the wrong place, admin commands refuse instead of creating an empty store.
    let elsewhere = tempfile::tempdir().unwrap();
    let lost = admin(
        elsewhere.path(),
        &["create-key", "--name", "x", "--scopes", "logs:read"],
    );
    assert!(!lost.status.success());
    assert!(String::from_utf8_lossy(&lost.stderr).contains("no Logbook metadata"));
    assert!(!elsewhere.path().join("meta.db").exists());

    let bad_scope = admin(
        data.as_path(),
        &["create-key", "--name", "x", "--scopes", "logs:delete"],
    );
    assert!(!bad_scope.status.success());
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("unknown scope"));
    drop(server);

    // A second start creates and prints nothing new.
    let port = common::free_port();
    let (_server, lines) = start(data.as_path(), port);
    assert!(
        !lines.iter().any(|line| line.contains("First start")),
        "{lines:?}"
    );
}

#[test]
fn a_bootstrap_key_too_short_to_be_safe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("LOGBOOK_BOOTSTRAP_KEY", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LOGBOOK_BOOTSTRAP_KEY"), "{stderr}");
    let output = common::logbook()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("LOGBOOK_ADMIN_PASSWORD", "password")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOGBOOK_ADMIN_PASSWORD"));
}
