//! The live tail through real clients: a WebSocket client (tokio-tungstenite)
//! and an SSE client receive exactly the matching events of their tenant and
//! stream, authentication works before the upgrade (header, subprotocol,
//! single-use tickets), a stalled client is told what it lost while ingest
//! keeps answering, and over Redis a query node tails what another node
//! acknowledged while the worker still stores everything.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::client::{HttpClient, percent_encode};
use bench::sse::SseStream;
use common::{TEST_KEY, TestServer, admin_token};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `ws://…/path?q=…` of a server.
fn ws_url(server: &TestServer, path: &str, q: &str) -> String {
    format!(
        "{}{path}?q={}",
        server.url.replacen("http://", "ws://", 1),
        percent_encode(q)
    )
}

/// Opens a WebSocket tail with `headers`; the server's refusal as (status, JSON body).
async fn open_ws(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Socket, tungstenite::handshake::client::Response), (u16, Value)> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(opened) => Ok(opened),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Err((response.status().as_u16(), json))
        }
        Err(other) => panic!("the WebSocket handshake failed: {other}"),
    }
}

async fn open_ws_with_key(url: &str, key: &str) -> Socket {
    open_ws(url, &[("authorization", &format!("Bearer {key}"))])
        .await
        .unwrap()
        .0
}

/// The next text frame of a tail as JSON (pings skipped); panics after `wait`.
async fn next_json(socket: &mut Socket, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("a message in time")
            .expect("the tail is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("the tail was closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Messages of a WebSocket tail until one whose message is `last`.
async fn ws_until(socket: &mut Socket, last: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let item = next_json(socket, Duration::from_secs(10)).await;
        let done = item["message"] == last;
        seen.push(item);
        if done {
            return seen;
        }
    }
}

/// Events of an SSE tail until one whose message is `last`.
async fn sse_until(stream: &mut SseStream, last: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream is open");
        assert_eq!(event.event, "message", "{event:?}");
        let item: Value = serde_json::from_str(&event.data).unwrap();
        let done = item["message"] == last;
        seen.push(item);
        if done {
            return seen;
        }
    }
}

async fn sse(server: &TestServer, key: &str, path: &str, q: &str) -> anyhow::Result<SseStream> {
    let client = server.client_with(Some(key)).await;
    SseStream::open(client, &format!("{path}?q={}", percent_encode(q))).await
}

async fn post(client: &mut HttpClient, path: &str, events: &[Value]) {
    let body: Vec<u8> = events
        .iter()
        .flat_map(|event| {
            let mut line = serde_json::to_vec(event).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let response = client
        .post(path, "application/x-ndjson", body)
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
}

async fn send_json(client: &mut HttpClient, path: &str, body: Value) -> Value {
    let response = client
        .post(path, "application/json", serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert!(
        response.status == 200 || response.status == 201,
        "{path}: {:?}",
        response.json()
    );
    response.json().unwrap()
}

/// A key of a new tenant `tenant` with `scopes`, made through its admin.
async fn other_tenant_key(server: &TestServer, tenant: &str, scopes: &[&str]) -> String {
    let mut client = server.client().await;
    let root = admin_token(&mut client).await;
    let mut root_client = server.client_with(Some(&root)).await;
    send_json(
        &mut root_client,
        "/v1/tenants",
        json!({"id": tenant, "name": tenant}),
    )
    .await;
    let username = format!("{tenant}-admin");
    let password = "swordfish-and-chips-42";
    send_json(
        &mut root_client,
        "/v1/users",
        json!({"username": username, "password": password, "role": "admin", "tenant": tenant}),
    )
    .await;
    let login = send_json(
        &mut root_client,
        "/v1/auth/login",
        json!({"username": username, "password": password}),
    )
    .await;
    let mut admin = server.client_with(login["access_token"].as_str()).await;
    key_with(&mut admin, scopes).await
}

/// A key of the caller's tenant with `scopes`.
async fn key_with(client: &mut HttpClient, scopes: &[&str]) -> String {
    let created = send_json(
        client,
        "/v1/keys",
        json!({"name": "tail test", "scopes": scopes}),
    )
    .await;
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_sse_tails_get_exactly_the_matching_events_of_their_tenant_and_stream() {
    let server = TestServer::start().await;
    let other_key = other_tenant_key(
        &server,
        "globex",
        &["logs:write", "logs:read", "audit:write"],
    )
    .await;
    let q = "level:>=warn service:payments";
    let mut socket = open_ws_with_key(&ws_url(&server, "/v1/tail", q), TEST_KEY).await;
    let mut events = sse(&server, TEST_KEY, "/v1/tail", q).await.unwrap();
    let mut audit = open_ws_with_key(&ws_url(&server, "/v1/audit/tail", "ledger"), TEST_KEY).await;
    let mut other = open_ws_with_key(&ws_url(&server, "/v1/tail", q), &other_key).await;

    let mut client = server.client().await;
    let mut other_client = server.client_with(Some(&other_key)).await;
    let log = |message: &str, service: &str, level: &str| json!({"message": message, "service": service, "level": level});
    post(
        &mut client,
        "/v1/logs",
        &[
            log("card declined ledger", "payments", "warn"),
            log("charge ok ledger", "payments", "info"),
            log("login failed", "auth", "error"),
            log("refund stuck", "payments", "error"),
        ],
    )
    .await;
    // Matching, but another tenant's or the audit trail's.
    post(
        &mut other_client,
        "/v1/logs",
        &[log("globex payment", "payments", "fatal")],
    )
    .await;
    post(
        &mut client,
        "/v1/audit",
        &[json!({
            "message": "ledger closed", "service": "payments", "level": "warn",
            "actor": {"type": "user", "id": "u1"}, "action": "ledger.close", "outcome": "success",
        })],
    )
    .await;
    post(
        &mut other_client,
        "/v1/audit",
        &[json!({
            "message": "globex ledger", "service": "payments", "level": "warn",
            "actor": {"type": "user", "id": "u2"}, "action": "ledger.close", "outcome": "success",
        })],
    )
    .await;
    post(
        &mut client,
        "/v1/logs",
        &[log("last one", "payments", "fatal")],
    )
    .await;
    post(
        &mut other_client,
        "/v1/logs",
        &[log("globex last", "payments", "fatal")],
    )
    .await;

    let messages = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|item| item["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = ["card declined ledger", "refund stuck", "last one"];
    let over_ws = ws_until(&mut socket, "last one").await;
    assert_eq!(messages(&over_ws), expected);
    let over_sse = sse_until(&mut events, "last one").await;
    assert_eq!(messages(&over_sse), expected);
    // The same objects as search results: the stored JSON with id, tenant and times.
    for item in over_ws.iter().chain(&over_sse) {
        assert_eq!(item["tenant"], "default");
        assert!(
            item["id"].is_string() && item["received_at"].is_string(),
            "{item}"
        );
        assert!(item.get("stream").is_none(), "{item}");
    }
    assert_eq!(
        messages(&ws_until(&mut other, "globex last").await),
        ["globex payment", "globex last"]
    );

    // The audit tail: the tenant's audit event, never its logs with the same word.
    let item = next_json(&mut audit, Duration::from_secs(10)).await;
    assert_eq!(item["message"], "ledger closed");
    assert_eq!(item["stream"], "audit");
    assert_eq!(item["tenant"], "default");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_refuses_before_the_upgrade_and_accepts_subprotocol_tokens_and_tickets_once() {
    let server = TestServer::start_with(|config| {
        config.tail.max_subscribers_per_tenant = 3;
    })
    .await;
    let url = ws_url(&server, "/v1/tail", "");

    // No credentials: a JSON 401 instead of an upgrade, over WebSocket and SSE.
    let (status, body) = open_ws(&url, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_credentials")),
        "{body}"
    );
    let refused = sse(
        &server,
        "lbk_not-a-real-key-0123456789abcdefghij",
        "/v1/tail",
        "",
    )
    .await;
    assert!(refused.unwrap_err().to_string().contains("401"));

    // A key without audit:read cannot tail the audit trail.
    let mut client = server.client().await;
    let root = admin_token(&mut client).await;
    let reader = key_with(&mut server.client_with(Some(&root)).await, &["logs:read"]).await;
    let audit_url = ws_url(&server, "/v1/audit/tail", "");
    let (status, body) = open_ws(
        &audit_url,
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    // The query is checked as search checks it.
    let (status, body) = open_ws(
        &ws_url(&server, "/v1/tail", "level:loud"),
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    assert_eq!(body["where"]["parameter"], "q");

    // The token as a subprotocol: the server selects `logbook` and nothing else.
    let protocols = format!("logbook, logbook.bearer.{reader}");
    let (mut socket, response) = open_ws(&url, &[("sec-websocket-protocol", &protocols)])
        .await
        .unwrap();
    let selected: Vec<_> = response
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .collect();
    assert_eq!(selected, ["logbook"]);
    post(
        &mut client,
        "/v1/logs",
        &[json!({"message": "through the subprotocol"})],
    )
    .await;
    assert_eq!(
        next_json(&mut socket, Duration::from_secs(10)).await["message"],
        "through the subprotocol"
    );

    // A ticket works once; the ticket carries the reader's permissions, not more.
    let mut reader_client = server.client_with(Some(&reader)).await;
    let ticket = send_json(&mut reader_client, "/v1/tail/ticket", json!({})).await;
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let with_ticket = format!("{url}&ticket={ticket}");
    let (mut by_ticket, _) = open_ws(&with_ticket, &[]).await.unwrap();
    let (status, body) = open_ws(&with_ticket, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{body}"
    );
    let audit_ticket = send_json(&mut reader_client, "/v1/tail/ticket", json!({})).await;
    let (status, _) = open_ws(
        &format!(
            "{audit_url}&ticket={}",
            audit_ticket["ticket"].as_str().unwrap()
        ),
        &[],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(status, 403);
    post(
        &mut client,
        "/v1/logs",
        &[json!({"message": "through a ticket"})],
    )
    .await;
    // It tails from when it opened: the earlier event is not replayed.
    assert_eq!(
        next_json(&mut by_ticket, Duration::from_secs(10)).await["message"],
        "through a ticket"
    );

    // Two tails are open; the tenant may have three.
    let third = sse(&server, TEST_KEY, "/v1/tail", "").await.unwrap();
    let fourth = sse(&server, TEST_KEY, "/v1/tail", "").await;
    let refusal = fourth.unwrap_err().to_string();
    assert!(
        refusal.contains("429") && refusal.contains("too_many_tails"),
        "{refusal}"
    );
    // Closing one makes room.
    drop(third);
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sse(&server, TEST_KEY, "/v1/tail", "").await.is_err() {
        assert!(Instant::now() < deadline, "a closed tail still counts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_ticket_is_refused() {
    let server = TestServer::start_with(|config| {
        config.tail.ticket_ttl_seconds = 1;
    })
    .await;
    let mut client = server.client().await;
    let ticket = send_json(&mut client, "/v1/tail/ticket", json!({})).await;
    assert_eq!(ticket["expires_in_seconds"], 1);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let url = format!(
        "{}&ticket={}",
        ws_url(&server, "/v1/tail", ""),
        ticket["ticket"].as_str().unwrap()
    );
    let (status, body) = open_ws(&url, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_told_what_it_lost_while_ingest_keeps_answering() {
    let server = TestServer::start_with(|config| {
        config.tail.buffer_events = 8;
        config.tail.max_lag_seconds = 120;
    })
    .await;
    // This client reads nothing until ingest is done.
    let mut stalled = open_ws_with_key(&ws_url(&server, "/v1/tail", ""), TEST_KEY).await;
    let mut client = server.client().await;
    let padding = "x".repeat(2_000);
    let batch: Vec<Value> = (0..200)
        .map(|i| json!({"message": format!("event {i} {padding}")}))
        .collect();
    let mut slowest = Duration::ZERO;
    // Some 16 MB of events: more than the socket buffers and the tail's buffer hold.
    for _ in 0..40 {
        let started = Instant::now();
        post(&mut client, "/v1/logs", &batch).await;
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(3),
        "an ingest request took {slowest:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no dropped notice after {received} events"
        );
        let item = next_json(&mut stalled, Duration::from_secs(20)).await;
        if let Some(dropped) = item.get("dropped") {
            let dropped = dropped.as_u64().unwrap();
            assert!(dropped > 0);
            assert!(received + dropped <= 8_000, "{received} + {dropped}");
            break;
        }
        received += 1;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_node_tails_what_an_ingest_node_acknowledged_through_redis() {
    let (Ok(redis), Some(postgres)) = (
        std::env::var("LOGBOOK_TEST_REDIS_URL"),
        meta::testing::postgres_url("tail_through_redis"),
    ) else {
        eprintln!(
            "SKIPPED a_query_node_tails_what_an_ingest_node_acknowledged_through_redis: needs LOGBOOK_TEST_REDIS_URL and LOGBOOK_TEST_POSTGRES_URL"
        );
        return;
    };
    let store = meta::testing::fresh_postgres_schema(&postgres)
        .await
        .unwrap();
    let prefix = format!(
        "logbook-test-tail-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let shared = tempfile::tempdir().unwrap();
    let node = |role: api::Role| {
        let (redis, prefix, store) = (redis.clone(), prefix.clone(), store.clone());
        let key_file = shared.path().join("checkpoint.key");
        move |config: &mut server::Config| {
            config.role = role;
            config.queue.url = Some(redis);
            config.queue.prefix = prefix;
            config.store.url = Some(store);
            config.audit.key_file = Some(key_file);
        }
    };
    let query = TestServer::start_with(node(api::Role::Query)).await;
    let ingest = TestServer::start_with(node(api::Role::Ingest)).await;
    let worker = TestServer::start_with(node(api::Role::Worker)).await;

    let mut tail =
        open_ws_with_key(&ws_url(&query, "/v1/tail", "service:checkout"), TEST_KEY).await;
    let mut writer = ingest.client().await;
    let mut sent = 0;
    for batch in 0..20 {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"message": format!("order {batch}-{i}"), "service": if i % 2 == 0 { "checkout" } else { "search" }}))
            .collect();
        post(&mut writer, "/v1/logs", &events).await;
        sent += 50;
    }
    let mut tailed = 0;
    while tailed < sent / 2 {
        let item = next_json(&mut tail, Duration::from_secs(10)).await;
        assert_eq!(item["service"], "checkout", "{item}");
        tailed += 1;
    }

    // Tailing took nothing from the worker: every event is stored.
    let mut reader = query.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let total = common::count(&mut reader, "").await;
        if total == sent {
            break;
        }
        assert!(Instant::now() < deadline, "{total} of {sent} events stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(tail);
    worker.stop().await;
    ingest.stop().await;
    query.stop().await;
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:events"))
        .arg(format!("{{{prefix}}}:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
}
