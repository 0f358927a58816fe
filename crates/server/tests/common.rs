//! A real server on 127.0.0.1 with a temporary data directory, and helpers to talk to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bench::client::{HttpClient, Response, percent_encode};
use serde_json::Value;
use server::{Config, RunningServer};

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub url: String,
    pub dir: tempfile::TempDir,
}

/// The bootstrap key of every test server: it holds every scope of the default tenant.
pub const TEST_KEY: &str = "lbk_test-bootstrap-key-0123456789abcdefghij";
/// The bootstrap admin's password.
pub const TEST_ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// A configuration for tests: commits every 50 ms, known bootstrap
/// credentials, everything else default.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    config.bootstrap.key = Some(TEST_KEY.to_owned());
    config.bootstrap.admin_password = Some(TEST_ADMIN_PASSWORD.to_owned());
    config.pipeline.commit_interval_ms = 50;
    config.store.writer_memory_bytes = 32 * 1024 * 1024;
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = server::start_on(config, listener).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        TestServer {
            server: Some(server),
            url,
            dir,
        }
    }

    /// A client sending the bootstrap key.
    pub async fn client(&self) -> HttpClient {
        self.client_with(Some(TEST_KEY)).await
    }

    /// A client sending `token` as its bearer credential, or nothing.
    pub async fn client_with(&self, token: Option<&str>) -> HttpClient {
        HttpClient::connect(&self.url)
            .await
            .unwrap()
            .with_token(token)
            .unwrap()
    }

    /// Stops the server gracefully and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

pub async fn post_json(client: &mut HttpClient, body: &Value) -> Response {
    client
        .post(
            "/v1/logs",
            "application/json",
            serde_json::to_vec(body).unwrap(),
        )
        .await
        .unwrap()
}

pub async fn search(client: &mut HttpClient, params: &[(&str, &str)]) -> Value {
    let response = get(client, "/v1/logs", params).await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json().unwrap()
}

pub async fn get(client: &mut HttpClient, path: &str, params: &[(&str, &str)]) -> Response {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    client.get(&target).await.unwrap()
}

pub async fn count(client: &mut HttpClient, q: &str) -> u64 {
    let response = get(client, "/v1/stats", &[("q", q)]).await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json().unwrap()["total"].as_u64().unwrap()
}

/// Waits until the worker has committed everything the queue holds, as the
/// super-admin's `/v1/admin/status` tells.
pub async fn wait_drained(client: &mut HttpClient) {
    let token = admin_token(client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin_status(client, &token).await;
        if status["queue"]["pending_bytes"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue not drained: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An access token of the bootstrap super-admin.
pub async fn admin_token(client: &mut HttpClient) -> String {
    let body = serde_json::json!({"username": "admin", "password": TEST_ADMIN_PASSWORD});
    let response = client
        .post(
            "/v1/auth/login",
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.json());
    response.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /v1/admin/status` with the super-admin's `token`.
pub async fn admin_status(client: &mut HttpClient, token: &str) -> Value {
    let request = hyper::Request::get("/v1/admin/status")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status, 200, "{:?}", response.json());
    response.json().unwrap()
}

/// The Loghub sample files shipped beside the repository.
pub fn loghub(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/loghub")
        .join(name);
    path.exists().then_some(path)
}

/// `postgres://user@host:port/db?…` with its host and port replaced by
/// `address` (a proxy the test controls).
pub fn through(url: &str, address: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"));
    format!("{scheme}://{}{address}/{path}", user.unwrap_or_default())
}

/// The address a `postgres://` URL points at.
pub async fn upstream(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.contains(':') {
        true => host.to_owned(),
        false => format!("{host}:5432"),
    };
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

/// The URL of a shared service the tests read from `var`, or `None` after
/// saying on standard error that `test` skips (`example` shows the form).
pub fn service_url(var: &str, example: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set (e.g. {example})");
            None
        }
    }
}

/// A prefix for a test's keys or queues in a shared service that no other
/// test or run uses.
pub fn unique_prefix(test: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("logbook-test-{test}-{}-{millis}", std::process::id())
}
