//! Slow, idle, signed, large and guessing clients cannot hold the server's
//! connections, memory or accounts; HEAD and `/readyz` answer what they should.
//! Most tests speak raw HTTP/1.1 over TCP to control exactly what is sent.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bench::client::Response;
use common::{TEST_ADMIN_PASSWORD, TEST_KEY, TestServer};
use hyper::Request;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

fn addr(server: &TestServer) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to the server from the loopback address `from`.
async fn connect_from(server: &TestServer, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr(server)).await.unwrap()
}

async fn connect(server: &TestServer) -> TcpStream {
    connect_from(server, [127, 0, 0, 1]).await
}

/// Reads until the server closes the connection (or `within` passes); returns
/// what arrived and how long the close took, `None` if it stayed open.
async fn read_until_closed(
    stream: &mut TcpStream,
    within: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (received, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, Some(started.elapsed())),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one response head (up to the blank line) within `within`.
async fn read_head(stream: &mut TcpStream, within: Duration) -> String {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Ok(Ok(1)) => received.push(byte[0]),
            other => panic!(
                "no complete response head within {within:?} ({other:?}): {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    String::from_utf8(received).unwrap()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Sends a whole request with `Connection: close` and returns status and body.
async fn raw(stream: &mut TcpStream, head: &str, body: &[u8]) -> (u16, String) {
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let (received, closed) = read_until_closed(stream, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "the server kept the connection open");
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status_of(head), body.to_owned())
}

async fn get_healthz_keep_alive(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), 200, "{head}");
    let mut body = [0u8; 15];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, br#"{"status":"ok"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_are_cut_off_after_the_header_timeout() {
    let server = TestServer::start_with(|config| config.http.header_timeout_ms = 500).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.expect("a connection with partial headers stayed open");
    assert!(
        closed >= Duration::from_millis(400),
        "closed early: {closed:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(|config| {
        config.http.idle_timeout_ms = 700;
        config.http.header_timeout_ms = 30_000;
    })
    .await;
    let mut stream = connect(&server).await;
    get_healthz_keep_alive(&mut stream).await;
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle keep-alive connection stayed open");
    assert!(
        closed >= Duration::from_millis(600),
        "closed early: {closed:?}"
    );
    // A keep-alive connection in use is not idle: two requests 400 ms apart pass.
    let mut stream = connect(&server).await;
    get_healthz_keep_alive(&mut stream).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    get_healthz_keep_alive(&mut stream).await;
    server.stop().await;
}

/// Starts a login whose body announces 100 bytes and sends 10, then stalls.
async fn stalled_login(server: &TestServer) -> TcpStream {
    let mut stream = connect(server).await;
    stream
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"username",
        )
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_on_any_route_does_not_hold_its_connection() {
    // The body's own deadline: the login is answered (or cut) once it passes.
    let server = TestServer::start_with(|config| config.ingest.body_timeout_ms = 300).await;
    let mut stream = stalled_login(&server).await;
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("a login whose body never came held its connection");
    assert!(
        closed >= Duration::from_millis(1_000),
        "closed early: {closed:?}"
    );
    server.stop().await;

    // A request in flight that moves no byte for the idle timeout is cut, even
    // when its body's deadline is far away.
    let server = TestServer::start_with(|config| {
        config.ingest.body_timeout_ms = 60_000;
        config.http.idle_timeout_ms = 500;
    })
    .await;
    let mut stream = stalled_login(&server).await;
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("a stalled request held its connection");
    assert!(
        closed >= Duration::from_millis(400),
        "closed early: {closed:?}"
    );
    assert!(closed < Duration::from_secs(5), "closed late: {closed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_maximum_are_closed() {
    let server = TestServer::start_with(|config| {
        config.http.max_connections = 2;
        config.http.max_connections_per_address = Some(0);
    })
    .await;
    let mut first = connect(&server).await;
    get_healthz_keep_alive(&mut first).await;
    let mut second = connect(&server).await;
    get_healthz_keep_alive(&mut second).await;

    let mut third = connect(&server).await;
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let (received, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a third connection stayed open");
    assert!(received.is_empty(), "a third connection was served");

    // A freed slot takes a new connection.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&server).await;
        let _ = again
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let (received, _) = read_until_closed(&mut again, Duration::from_secs(5)).await;
        let status = if received.starts_with(b"HTTP/1.1 200") {
            200
        } else {
            0
        };
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
    server.stop().await;
}

/// Whether a new connection from `from` is served (`GET /healthz` answers 200).
async fn served_from(server: &TestServer, from: [u8; 4]) -> bool {
    let mut stream = connect_from(server, from).await;
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a connection stayed open");
    received.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_the_connections() {
    let server = TestServer::start_with(|config| {
        config.http.max_connections = 8;
        config.http.max_connections_per_address = Some(2);
    })
    .await;
    let mut first = connect(&server).await;
    get_healthz_keep_alive(&mut first).await;
    let mut second = connect(&server).await;
    get_healthz_keep_alive(&mut second).await;
    // 127.0.0.1 holds its share: a third connection from it is closed unserved…
    assert!(!served_from(&server, [127, 0, 0, 1]).await);
    // …while another address still gets in, with the same share of its own.
    let mut other = connect_from(&server, [127, 0, 0, 2]).await;
    get_healthz_keep_alive(&mut other).await;
    assert!(served_from(&server, [127, 0, 0, 2]).await);

    // A connection closed gives its address the slot back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served_from(&server, [127, 0, 0, 1]).await {
        assert!(Instant::now() < deadline, "the freed share was not reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((second, other));
    server.stop().await;
}

/// A signing key with `scopes` of the default tenant: `(id, secret)`.
async fn signing_key(server: &TestServer, scopes: &[&str]) -> (String, String) {
    let root = login(server, [127, 0, 0, 1], "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(root.0, 200, "{}", root.1);
    let token = root.1["access_token"].as_str().unwrap().to_owned();
    let mut client = server.client_with(Some(&token)).await;
    let created = client
        .send(
            Request::post("/v1/keys")
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(
                    serde_json::to_vec(
                        &json!({"name": "signer", "scopes": scopes, "signed": true}),
                    )
                    .unwrap()
                    .into(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let created = created.json().unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    )
}

fn now_seconds() -> i64 {
    meta::now_millis() / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_with_bad_headers_are_refused_before_their_body() {
    let server = TestServer::start().await;
    let (key_id, _) = signing_key(&server, &["logs:write"]).await;
    let cases = [
        ("1".to_owned(), "0".repeat(64), "signature_expired"),
        (
            now_seconds().to_string(),
            "not-a-signature".to_owned(),
            "invalid_signature",
        ),
    ];
    for (timestamp, signature, want) in cases {
        let mut stream = connect(&server).await;
        // Announce 1 MB, send none of it: the answer must not wait for it.
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\nx-logbook-key-id: {key_id}\r\nx-logbook-timestamp: {timestamp}\r\nx-logbook-signature: {signature}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let head = read_head(&mut stream, Duration::from_secs(3)).await;
        assert_eq!(status_of(&head), 401, "{head}");
        let (rest, _) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.contains(want), "{want}: {rest}");
    }
    server.stop().await;
}

/// A signed `GET /v1/auth/me` at `timestamp`.
fn signed_me(
    key_id: &str,
    secret: &str,
    timestamp: i64,
) -> Request<http_body_util::Full<bytes::Bytes>> {
    let ts = timestamp.to_string();
    let signature = auth::signing::sign(secret, &ts, "GET", "/v1/auth/me", b"");
    Request::get("/v1/auth/me")
        .header("x-logbook-key-id", key_id)
        .header("x-logbook-timestamp", ts)
        .header("x-logbook-signature", signature)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

fn code(response: &Response) -> String {
    response
        .json()
        .map(|body| body["code"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_refused_before_they_spend_the_keys_rate() {
    let server = TestServer::start_with(|config| {
        config.limits.requests_per_second = 0.5;
        config.limits.request_burst = 2.0;
    })
    .await;
    let (key_id, secret) = signing_key(&server, &["logs:read"]).await;
    let mut client = server.client_with(None).await;
    let now = now_seconds();
    let first = client.send(signed_me(&key_id, &secret, now)).await.unwrap();
    assert_eq!(first.status, 200, "{:?}", first.json());
    // Someone who captured that request replays it again and again…
    for _ in 0..5 {
        let replayed = client.send(signed_me(&key_id, &secret, now)).await.unwrap();
        assert_eq!(
            (replayed.status, code(&replayed).as_str()),
            (401, "replayed_signature")
        );
    }
    // …and the owner still has the rest of its burst.
    let owner = client
        .send(signed_me(&key_id, &secret, now + 1))
        .await
        .unwrap();
    assert_eq!(
        owner.status,
        200,
        "replays spent the owner's rate: {:?}",
        owner.json()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_signed_requests_are_not_remembered_and_keys_have_their_own_share() {
    let server = TestServer::start_with(|config| {
        config.auth.signatures_per_key = 3;
        config.limits.requests_per_second = 1.0;
        config.limits.request_burst = 1.0;
    })
    .await;
    let (limited_id, limited_secret) = signing_key(&server, &["logs:read"]).await;
    let mut client = server.client_with(None).await;
    let now = now_seconds();

    // Rate-limited: refused with 429, and not remembered, so it passes later.
    let first = client
        .send(signed_me(&limited_id, &limited_secret, now))
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{:?}", first.json());
    let limited = client
        .send(signed_me(&limited_id, &limited_secret, now + 1))
        .await
        .unwrap();
    assert_eq!(limited.status, 429, "{:?}", limited.json());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = client
        .send(signed_me(&limited_id, &limited_secret, now + 1))
        .await
        .unwrap();
    assert_eq!(
        later.status,
        200,
        "a rate-limited signature was remembered: {:?}",
        later.json()
    );

    // Revoked: every use says so; the signature never enters the guard.
    let root = login(&server, [127, 0, 0, 1], "admin", TEST_ADMIN_PASSWORD)
        .await
        .1;
    let mut admin = server.client_with(root["access_token"].as_str()).await;
    let revoked = admin
        .send(
            Request::delete(format!("/v1/keys/{limited_id}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(revoked.status < 300, "{:?}", revoked.json());
    for _ in 0..2 {
        let refused = client
            .send(signed_me(&limited_id, &limited_secret, now + 2))
            .await
            .unwrap();
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (401, "key_revoked")
        );
    }
    server.stop().await;

    // One key filling its share leaves another key's share alone.
    let server = TestServer::start_with(|config| {
        config.auth.signatures_per_key = 3;
        config.auth.signatures_total = 4;
    })
    .await;
    let (busy_id, busy_secret) = signing_key(&server, &["logs:read"]).await;
    let (quiet_id, quiet_secret) = signing_key(&server, &["logs:read"]).await;
    let mut client = server.client_with(None).await;
    let now = now_seconds();
    for offset in 0..3 {
        let response = client
            .send(signed_me(&busy_id, &busy_secret, now - offset))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }
    let full = client
        .send(signed_me(&busy_id, &busy_secret, now - 3))
        .await
        .unwrap();
    assert_eq!(
        (full.status, code(&full).as_str()),
        (429, "too_many_signatures")
    );
    assert!(full.headers.contains_key("retry-after"));
    let other = client
        .send(signed_me(&quiet_id, &quiet_secret, now))
        .await
        .unwrap();
    assert_eq!(other.status, 200, "{:?}", other.json());
    // All keys together hold at most the total: with nothing expired, new signatures
    // of every key are refused (fail closed), not let through unremembered.
    let over = client
        .send(signed_me(&quiet_id, &quiet_secret, now - 1))
        .await
        .unwrap();
    assert_eq!(
        (over.status, code(&over).as_str()),
        (503, "server_busy"),
        "{:?}",
        over.json()
    );
    assert!(over.headers.contains_key("retry-after"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_charged_before_reading_and_bounded_in_total() {
    let server = TestServer::start_with(|config| {
        // A tenant may hold a quarter: 1,000 bytes.
        config.ingest.max_buffered_bytes = 4_000;
        config.limits.tenant_byte_burst = 5_000.0;
    })
    .await;
    // Beyond the tenant's byte burst: refused from the announced length alone.
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: 6000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(status_of(&head), 413, "{head}");

    // A slow body holds 800 of the tenant's 1,000 buffered bytes; a second body cannot fit.
    let mut slow = connect(&server).await;
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: 800\r\n\r\n{{\"message\":\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = server.client().await;
    let message = "x".repeat(400);
    let refused = client
        .post(
            "/v1/logs",
            "application/json",
            format!(r#"{{"message":"{message}"}}"#),
        )
        .await
        .unwrap();
    assert_eq!(
        (refused.status, code(&refused).as_str()),
        (503, "server_busy")
    );
    assert!(refused.headers.contains_key("retry-after"));
    // Once the slow body is done, its share is back.
    let rest = format!("{}\"}}", "y".repeat(800 - 12 - 2));
    slow.write_all(rest.as_bytes()).await.unwrap();
    let head = read_head(&mut slow, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), 202, "{head}");
    let accepted = client
        .post(
            "/v1/logs",
            "application/json",
            format!(r#"{{"message":"{message}"}}"#),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{:?}", accepted.json());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_get_without_a_body_or_405() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for (path, want) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/v1/logs", 200),
        ("/v1/auth/login", 405),
        ("/v1/tenants", 403),
    ] {
        let response = client
            .send(
                Request::head(path)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status, want, "HEAD {path}");
        assert!(response.body.is_empty(), "HEAD {path} sent a body");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_only_ready_and_details_are_the_super_admins() {
    let server = TestServer::start().await;
    let mut anonymous = server.client_with(None).await;
    // The worker task reports itself running a moment after the server starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = anonymous.get("/readyz").await.unwrap();
        if ready.status == 200 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json().unwrap(), json!({"status": "ready"}));

    let mut key = server.client().await;
    assert_eq!(key.get("/v1/admin/status").await.unwrap().status, 403);
    assert_eq!(anonymous.get("/v1/admin/status").await.unwrap().status, 401);
    let root = login(&server, [127, 0, 0, 1], "admin", TEST_ADMIN_PASSWORD)
        .await
        .1;
    let mut admin = server.client_with(root["access_token"].as_str()).await;
    let status = admin.get("/v1/admin/status").await.unwrap();
    assert_eq!(status.status, 200);
    let status = status.json().unwrap();
    assert_eq!(status["status"], "ready");
    assert!(status["queue"]["pending_bytes"].is_u64(), "{status}");
    assert!(status["store"]["events"].is_u64(), "{status}");
    server.stop().await;
}

/// `POST /v1/auth/login` from the loopback address `from`: status and body.
async fn login(server: &TestServer, from: [u8; 4], username: &str, password: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"username": username, "password": password})).unwrap();
    let mut stream = connect_from(server, from).await;
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (status, body) = raw(&mut stream, &head, &body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_one_address_do_not_lock_the_owner_out() {
    let server =
        TestServer::start_with(|config| config.limits.login_failures_per_account = 8.0).await;
    let attacker = [127, 0, 0, 2];
    for _ in 0..5 {
        assert_eq!(login(&server, attacker, "admin", "guess").await.0, 401);
    }
    let throttled = login(&server, attacker, "admin", "guess").await;
    assert_eq!(throttled.0, 429, "{}", throttled.1);
    let owner = login(&server, [127, 0, 0, 1], "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(owner.0, 200, "the owner was locked out: {}", owner.1);

    // Guesses from enough addresses still reach the account's ceiling.
    for _ in 0..3 {
        assert_eq!(
            login(&server, [127, 0, 0, 3], "admin", "guess").await.0,
            401
        );
    }
    let ceiling = login(&server, [127, 0, 0, 4], "admin", "guess").await;
    assert_eq!(ceiling.0, 429, "{}", ceiling.1);
    // With the account at its ceiling, the owner still logs in from the
    // address it logged in from before; a new address waits.
    let owner = login(&server, [127, 0, 0, 1], "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(owner.0, 200, "the owner was locked out: {}", owner.1);
    let elsewhere = login(&server, [127, 0, 0, 5], "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(elsewhere.0, 429, "{}", elsewhere.1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_at_once_are_capped() {
    let server =
        TestServer::start_with(|config| config.limits.concurrent_password_checks = 1).await;
    let attempts = (0..8u8).map(|n| {
        let server = &server;
        async move { login(server, [127, 0, 1, n + 1], &format!("nobody{n}"), "guess").await }
    });
    let answers = futures_join_all(attempts).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert!(!busy.is_empty(), "no attempt was refused: {answers:?}");
    for (status, body) in &answers {
        assert!(matches!(status, 401 | 503), "{status} {body}");
    }
    assert!(busy.iter().all(|(_, body)| body["code"] == "server_busy"));
    server.stop().await;
}

/// Runs futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
