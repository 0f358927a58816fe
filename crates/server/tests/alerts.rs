//! Alerts end to end: rules through the API (validation, access, other
//! tenants, the audit trail), notifications into a real webhook receiver
//! (signature, firing once, resolving, no repeat after a restart), webhook
//! targets inside the network refused, and one evaluator among processes
//! sharing a PostgreSQL metadata store.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::client::{HttpClient, Response};
use bytes::Bytes;
use common::{TEST_ADMIN_PASSWORD, TestServer, admin_token};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use serde_json::{Value, json};

/// A webhook receiver: a small HTTP server that keeps what it is sent.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(hyper::HeaderMap, Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::answering_after(Duration::ZERO).await
    }

    /// A receiver that keeps each request at once and answers it after `delay`.
    async fn answering_after(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<(hyper::HeaderMap, Bytes)>>> = Arc::default();
        let kept = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let kept = Arc::clone(&kept);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body.collect().await?.to_bytes();
                                kept.lock().unwrap().push((parts.headers, body));
                                tokio::time::sleep(delay).await;
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            task,
        }
    }

    /// The notifications received so far, parsed.
    fn notifications(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }

    /// Waits until `n` notifications arrived, and returns them.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let notifications = self.notifications();
            if notifications.len() >= n {
                return notifications;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} notifications arrived: {notifications:?}",
                notifications.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a receiver does to check a notification: recompute the HMAC of
/// `"<t>.<body>"` with the rule's secret and compare it with `v1`.
fn signature_is_valid(secret: &str, headers: &hyper::HeaderMap, body: &[u8]) -> bool {
    use hmac::{KeyInit as _, Mac as _};
    let Some(header) = headers
        .get("logbook-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .abs_diff(t.parse::<u64>().unwrap());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    age < 300 && expected == v1
}

async fn send(client: &mut HttpClient, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            serde_json::to_vec(&body).unwrap()
        }
        None => Vec::new(),
    };
    client
        .send(request.body(Full::new(bytes.into())).unwrap())
        .await
        .unwrap()
}

fn code(response: &Response) -> String {
    response.json().map_or(String::new(), |body| {
        body["code"].as_str().unwrap_or("").to_owned()
    })
}

async fn login(server: &TestServer, username: &str, password: &str) -> HttpClient {
    let mut anonymous = server.client_with(None).await;
    let response = send(
        &mut anonymous,
        "POST",
        "/v1/auth/login",
        Some(json!({"username": username, "password": password})),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.json());
    let token = response.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.client_with(Some(&token)).await
}

async fn admin(server: &TestServer) -> HttpClient {
    login(server, "admin", TEST_ADMIN_PASSWORD).await
}

/// The example rule, aimed at `url`.
fn example_rule(url: &str) -> Value {
    json!({"name": "payments errors", "query": "level:error service:payments", "threshold": 50,
           "window": "5m", "interval": "30s", "group_by": "service", "webhook": {"url": url}})
}

async fn create_rule(client: &mut HttpClient, rule: Value) -> Value {
    let response = send(client, "POST", "/v1/alerts/rules", Some(rule)).await;
    assert_eq!(response.status, 201, "{:?}", response.json());
    response.json().unwrap()
}

/// Sends `n` events and waits until a search finds them.
async fn ingest(client: &mut HttpClient, n: usize, level: &str, service: &str) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({"message": format!("event {i}"), "level": level, "service": service}).to_string()
        })
        .collect();
    let response = client
        .post(
            "/v1/logs?wait=searchable",
            "application/x-ndjson",
            lines.join("\n"),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    assert_eq!(response.json().unwrap()["searchable"], true);
}

/// Waits until `GET /v1/alerts` satisfies `done`, and returns its alerts.
async fn alerts_until(client: &mut HttpClient, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = client.get("/v1/alerts").await.unwrap();
        assert_eq!(response.status, 200, "{:?}", response.json());
        let alerts = response.json().unwrap()["alerts"]
            .as_array()
            .unwrap()
            .clone();
        if done(&alerts) {
            return alerts;
        }
        assert!(
            Instant::now() < deadline,
            "alerts never got there: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `q` finds at least `n` audit events, and returns them.
async fn audit_events(client: &mut HttpClient, q: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let path = format!("/v1/audit?limit=100&q={}", bench::client::percent_encode(q));
        let response = client.get(&path).await.unwrap();
        assert_eq!(response.status, 200, "{:?}", response.json());
        let events = response.json().unwrap()["events"]
            .as_array()
            .unwrap()
            .clone();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: found {} of {n}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Quick evaluation for tests: intervals and windows down to 100 ms.
fn quick(config: &mut server::Config) {
    config.alerts.min_interval_ms = 100;
    config.alerts.delivery_retry_ms = 50;
    config.alerts.delivery_timeout_ms = 2_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_validated_kept_to_their_tenant_and_audited() {
    let server = TestServer::start_with(|config| config.alerts.max_rules_per_tenant = 3).await;
    let mut admin = admin(&server).await;

    let created = create_rule(&mut admin, example_rule("https://hooks.example/x")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["secret"].as_str().unwrap().starts_with("whsec_"),
        "{created}"
    );
    assert_eq!(
        (
            &created["window"],
            &created["interval"],
            &created["group_by"],
            &created["threshold"]
        ),
        (&json!("5m"), &json!("30s"), &json!("service"), &json!(50))
    );
    // The secret is shown once.
    let listed = admin.get("/v1/alerts/rules").await.unwrap().json().unwrap();
    assert_eq!(listed["rules"][0]["id"], id.as_str());
    assert!(listed["rules"][0].get("secret").is_none(), "{listed}");
    let shown = admin.get(&format!("/v1/alerts/rules/{id}")).await.unwrap();
    assert_eq!(shown.status, 200);
    assert!(shown.json().unwrap().get("secret").is_none());

    // PATCH changes what it names; PUT replaces the whole rule.
    let path = format!("/v1/alerts/rules/{id}");
    let patched = send(&mut admin, "PATCH", &path, Some(json!({"threshold": 10}))).await;
    assert_eq!(patched.status, 200, "{:?}", patched.json());
    let patched = patched.json().unwrap();
    assert_eq!(
        (&patched["threshold"], &patched["group_by"]),
        (&json!(10), &json!("service"))
    );
    let mut replacement = example_rule("https://hooks.example/y");
    replacement.as_object_mut().unwrap().remove("group_by");
    let replaced = send(&mut admin, "PUT", &path, Some(replacement)).await;
    assert_eq!(replaced.status, 200, "{:?}", replaced.json());
    let replaced = replaced.json().unwrap();
    assert_eq!(
        (&replaced["group_by"], &replaced["threshold"]),
        (&Value::Null, &json!(50))
    );
    assert_eq!(replaced["webhook"]["url"], "https://hooks.example/y");
    let incomplete = send(&mut admin, "PUT", &path, Some(json!({"threshold": 1}))).await;
    assert_eq!(
        (incomplete.status, code(&incomplete)),
        (400, "invalid_rule".to_owned())
    );

    // Each mistake is a 400 naming its field.
    for (field, value, want_code, want_field) in [
        (
            "query",
            json!("level:error AND ("),
            "invalid_query",
            "query",
        ),
        (
            "query",
            json!("a".repeat(5000)),
            "query_too_complex",
            "query",
        ),
        ("threshold", json!(-1), "invalid_rule", "threshold"),
        ("threshold", json!(2.5), "invalid_rule", "threshold"),
        ("window", json!("2d"), "invalid_rule", "window"),
        ("interval", json!("5s"), "invalid_rule", "interval"),
        ("interval", json!("soon"), "invalid_rule", "interval"),
        ("group_by", json!("host"), "invalid_rule", "group_by"),
        (
            "webhook",
            json!({"url": "file:///etc/passwd"}),
            "invalid_rule",
            "webhook.url",
        ),
        (
            "webhook",
            json!({"url": "http://127.0.0.1:9/x"}),
            "forbidden_webhook_target",
            "webhook.url",
        ),
        (
            "webhook",
            json!({"url": "http://10.1.2.3/x"}),
            "forbidden_webhook_target",
            "webhook.url",
        ),
        (
            "webhook",
            json!({"url": "http://169.254.169.254/latest"}),
            "forbidden_webhook_target",
            "webhook.url",
        ),
        (
            "webhook",
            json!({"url": "http://[::1]:8080/x"}),
            "forbidden_webhook_target",
            "webhook.url",
        ),
        (
            "webhook",
            json!({"url": "http://100.64.0.1/x"}),
            "forbidden_webhook_target",
            "webhook.url",
        ),
        ("surprise", json!(true), "invalid_rule", "body"),
    ] {
        let mut body = example_rule("https://hooks.example/x");
        body[field] = value.clone();
        let response = send(&mut admin, "POST", "/v1/alerts/rules", Some(body)).await;
        let answer = response.json().unwrap();
        assert_eq!(
            (
                response.status,
                answer["code"].as_str().unwrap(),
                answer["where"]["field"].as_str()
            ),
            (400, want_code, Some(want_field)),
            "{field} = {value}: {answer}"
        );
    }
    let group = send(
        &mut admin,
        "POST",
        "/v1/alerts/rules",
        Some({
            let mut body = example_rule("https://hooks.example/x");
            body["group_by"] = json!("host");
            body
        }),
    )
    .await;
    assert!(
        group.json().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("service, level")
    );

    // The per-tenant cap.
    create_rule(&mut admin, example_rule("https://hooks.example/2")).await;
    create_rule(&mut admin, example_rule("https://hooks.example/3")).await;
    let over = send(
        &mut admin,
        "POST",
        "/v1/alerts/rules",
        Some(example_rule("https://hooks.example/4")),
    )
    .await;
    assert_eq!(
        (over.status, code(&over)),
        (409, "limit_reached".to_owned()),
        "{:?}",
        over.json()
    );

    // Only tenant admins manage rules; readers of logs see what fires.
    for (username, role) in [("dev", "developer"), ("aud", "auditor")] {
        let made = send(
            &mut admin,
            "POST",
            "/v1/users",
            Some(json!({"username": username, "password": "swordfish-and-chips-42", "role": role})),
        )
        .await;
        assert_eq!(made.status, 201, "{:?}", made.json());
        let mut user = login(&server, username, "swordfish-and-chips-42").await;
        for (method, path) in [
            ("GET", "/v1/alerts/rules".to_owned()),
            ("GET", path.clone()),
            ("DELETE", path.clone()),
        ] {
            let response = send(&mut user, method, &path, None).await;
            assert_eq!(
                (response.status, code(&response)),
                (403, "forbidden".to_owned()),
                "{role} {method} {path}"
            );
        }
        let refused = send(
            &mut user,
            "POST",
            "/v1/alerts/rules",
            Some(example_rule("https://hooks.example/x")),
        )
        .await;
        assert_eq!(refused.status, 403, "{role}");
        assert_eq!(user.get("/v1/alerts").await.unwrap().status, 200, "{role}");
    }
    let mut key = server.client().await;
    let refused = send(
        &mut key,
        "POST",
        "/v1/alerts/rules",
        Some(example_rule("https://hooks.example/x")),
    )
    .await;
    assert_eq!(
        refused.status, 403,
        "a key with every scope still cannot manage rules"
    );
    assert_eq!(key.get("/v1/alerts").await.unwrap().status, 200);

    // Another tenant's admin finds nothing under our rule's id.
    let tenant = send(
        &mut admin,
        "POST",
        "/v1/tenants",
        Some(json!({"id": "globex"})),
    )
    .await;
    assert_eq!(tenant.status, 201);
    let made = send(
        &mut admin,
        "POST",
        "/v1/users",
        Some(json!({"username": "globex-admin", "password": "swordfish-and-chips-42", "role": "admin", "tenant": "globex"})),
    )
    .await;
    assert_eq!(made.status, 201);
    let mut other = login(&server, "globex-admin", "swordfish-and-chips-42").await;
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"threshold": 1}))),
        ("PUT", Some(example_rule("https://hooks.example/x"))),
        ("DELETE", None),
    ] {
        let response = send(&mut other, method, &path, body).await;
        assert_eq!(
            (response.status, code(&response)),
            (404, "not_found".to_owned()),
            "{method}"
        );
    }
    let theirs = other.get("/v1/alerts/rules").await.unwrap().json().unwrap();
    assert_eq!(theirs["rules"], json!([]));
    // Their cap is their own.
    create_rule(&mut other, example_rule("https://hooks.example/globex")).await;

    let deleted = send(&mut admin, "DELETE", &path, None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(admin.get(&path).await.unwrap().status, 404);

    // Every change is in the audit trail, with the webhook's host but not its path.
    for (action, n) in [
        ("alert_rule.create", 3),
        ("alert_rule.update", 2),
        ("alert_rule.delete", 1),
    ] {
        let events = audit_events(&mut admin, &format!("action:{action}"), n).await;
        assert_eq!(events.len(), n, "{action}: {events:?}");
        for event in &events {
            assert_eq!(
                event["attributes"]["target"]["type"], "alert_rule",
                "{event}"
            );
            assert_eq!(event["attributes"]["actor"]["name"], "admin", "{event}");
        }
        if action != "alert_rule.delete" {
            assert_eq!(
                events[0]["attributes"]["details"]["webhook_host"], "hooks.example",
                "{:?}",
                events[0]
            );
            assert!(
                !events[0].to_string().contains("hooks.example/"),
                "{:?}",
                events[0]
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fires_once_resolves_and_is_not_repeated_after_a_restart() {
    let receiver = Receiver::start().await;
    let configure = |config: &mut server::Config| {
        quick(config);
        config.alerts.allow_private_targets = true;
    };
    let server = TestServer::start_with(configure).await;
    let mut admin = admin(&server).await;
    // A: the total over a short window, so it resolves as its matches age out.
    let short = create_rule(
        &mut admin,
        json!({"name": "short", "query": "level:error service:payments",
        "threshold": 2, "window": "2s", "interval": "100ms", "webhook": {"url": receiver.url}}),
    )
    .await;
    // B: per service over an hour, so it still fires across the restart.
    let long = create_rule(&mut admin, json!({"name": "long", "query": "level:error", "threshold": 2,
        "window": "1h", "interval": "100ms", "group_by": "service", "webhook": {"url": receiver.url}})).await;
    let secrets = [
        (
            short["id"].as_str().unwrap().to_owned(),
            short["secret"].as_str().unwrap().to_owned(),
        ),
        (
            long["id"].as_str().unwrap().to_owned(),
            long["secret"].as_str().unwrap().to_owned(),
        ),
    ];

    let mut writer = server.client().await;
    ingest(&mut writer, 2, "error", "payments").await;
    ingest(&mut writer, 2, "info", "payments").await;
    ingest(&mut writer, 1, "error", "search").await;
    // At the threshold, not above it: nothing fires.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.notifications(), Vec::<Value>::new());
    ingest(&mut writer, 1, "error", "payments").await;

    let fired = receiver.wait_for(2).await;
    let by_rule = |notifications: &[Value], rule: &Value, state: &str| {
        notifications
            .iter()
            .filter(|n| n["rule"]["id"] == rule["id"] && n["state"] == state)
            .cloned()
            .collect::<Vec<_>>()
    };
    let short_fired = by_rule(&fired, &short, "firing");
    assert_eq!(short_fired.len(), 1, "{fired:?}");
    let notification = &short_fired[0];
    assert_eq!(notification["count"], 3);
    assert_eq!(notification["threshold"], 2);
    assert_eq!(notification["window"], "2s");
    assert_eq!(notification["group"], Value::Null);
    assert_eq!(notification["tenant"], "default");
    assert_eq!(notification["rule"]["name"], "short");
    assert_eq!(
        notification["rule"]["query"],
        "level:error service:payments"
    );
    let long_fired = by_rule(&fired, &long, "firing");
    assert_eq!(
        long_fired.len(),
        1,
        "only payments is over the threshold: {fired:?}"
    );
    assert_eq!(
        long_fired[0]["group"],
        json!({"field": "service", "value": "payments"})
    );
    assert_eq!(long_fired[0]["count"], 3);

    // Every notification is signed with its rule's secret, and a wrong secret fails.
    for (headers, body) in receiver.received.lock().unwrap().iter() {
        let notification: Value = serde_json::from_slice(body).unwrap();
        let (_, secret) = secrets
            .iter()
            .find(|(id, _)| notification["rule"]["id"] == id.as_str())
            .unwrap();
        assert!(signature_is_valid(secret, headers, body), "{notification}");
        assert!(!signature_is_valid("whsec_wrong", headers, body));
        assert_eq!(headers["content-type"], "application/json");
    }

    // The short window's matches age out: it resolves, once.
    let resolved = receiver.wait_for(3).await;
    let short_resolved = by_rule(&resolved, &short, "resolved");
    assert_eq!(short_resolved.len(), 1, "{resolved:?}");
    assert!(
        short_resolved[0]["count"].as_i64().unwrap() <= 2,
        "{short_resolved:?}"
    );
    let alerts = alerts_until(&mut admin, |alerts| {
        alerts.len() == 2 && alerts.iter().all(|a| a["notification"]["pending"] == false)
    })
    .await;
    let state_of = |alerts: &[Value], rule: &Value| {
        alerts
            .iter()
            .find(|a| a["rule"]["id"] == rule["id"])
            .map(|a| a["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(&alerts, &short).as_deref(), Some("resolved"));
    assert_eq!(state_of(&alerts, &long).as_deref(), Some("firing"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.notifications().len(),
        3,
        "{:?}",
        receiver.notifications()
    );

    // A restart on the same data directory evaluates again and sends nothing
    // new. A rule created after the restart shows that the evaluator ran: it
    // evaluates the older rules first in each round.
    let dir = server.stop().await;
    let mut config = common::test_config(dir.path());
    configure(&mut config);
    let restarted = TestServer::start_in(dir, config).await;
    let mut admin = login(&restarted, "admin", TEST_ADMIN_PASSWORD).await;
    let witness = create_rule(
        &mut admin,
        json!({"name": "witness", "query": "level:error", "threshold": 0,
        "window": "1h", "interval": "100ms", "webhook": {"url": receiver.url}}),
    )
    .await;
    let after = receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_restart = &receiver.notifications()[3..];
    assert_eq!(after_restart.len(), 1, "a restart sent again: {after:?}");
    assert_eq!(after_restart[0]["rule"]["id"], witness["id"]);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_name_resolving_to_loopback_is_refused_at_send_time() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(quick).await;
    let mut admin = admin(&server).await;
    // A name passes when the rule is saved; its address is checked at send time.
    let url = receiver.url.replace("127.0.0.1", "localhost");
    create_rule(
        &mut admin,
        json!({"name": "internal", "query": "level:error", "threshold": 0,
        "window": "1h", "interval": "100ms", "webhook": {"url": url}}),
    )
    .await;
    ingest(&mut server.client().await, 1, "error", "payments").await;
    let alerts = alerts_until(&mut admin, |alerts| {
        alerts
            .iter()
            .any(|a| a["notification"]["error"].is_string())
    })
    .await;
    let error = alerts[0]["notification"]["error"].as_str().unwrap();
    assert!(
        error.contains("localhost resolves to") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(alerts[0]["notification"]["pending"], true);
    // Readers of logs see the alert, not why its delivery failed.
    let mut key = server.client().await;
    let seen = key.get("/v1/alerts").await.unwrap().json().unwrap();
    assert_eq!(seen["alerts"][0]["state"], "firing");
    assert!(
        seen["alerts"][0]["notification"].get("error").is_none(),
        "{seen}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.notifications().is_empty(),
        "the receiver was reached"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_postgres_notify_once() {
    let Some(url) = meta::testing::postgres_url("processes_sharing_postgres_notify_once") else {
        return;
    };
    let schema = meta::testing::fresh_postgres_schema(&url).await.unwrap();
    // Slow answers keep each notification pending for a while, so a second
    // evaluator would find it pending too and send it again.
    let receiver = Receiver::answering_after(Duration::from_millis(700)).await;
    let start = || {
        let schema = schema.clone();
        TestServer::start_with(move |config| {
            quick(config);
            config.alerts.allow_private_targets = true;
            config.database_url = Some(schema);
        })
    };
    let first = start().await;
    let second = start().await;
    let mut admin = admin(&first).await;
    // Several rules, so that two evaluators would be caught at least once.
    const RULES: usize = 5;
    for i in 0..RULES {
        create_rule(
            &mut admin,
            json!({"name": format!("rule {i}"), "query": "level:error", "threshold": 0,
            "window": "1h", "interval": "100ms", "webhook": {"url": receiver.url}}),
        )
        .await;
    }
    // Each process has its own event store here; both hold the matches, so
    // whichever evaluates sees them.
    ingest(&mut first.client().await, 1, "error", "payments").await;
    ingest(&mut second.client().await, 1, "error", "payments").await;
    receiver.wait_for(RULES).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.notifications().len(),
        RULES,
        "{:?}",
        receiver.notifications()
    );

    // The evaluator goes away (whichever it was, the other evaluates now),
    // and the next one resumes from the shared state: the only new
    // notification is the new rule's.
    first.stop().await;
    let mut admin = admin_token_client(&second).await;
    let witness = create_rule(
        &mut admin,
        json!({"name": "witness", "query": "level:error", "threshold": 0,
        "window": "1h", "interval": "100ms", "webhook": {"url": receiver.url}}),
    )
    .await;
    receiver.wait_for(RULES + 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notifications = receiver.notifications();
    assert_eq!(notifications.len(), RULES + 1, "{notifications:?}");
    assert_eq!(notifications[RULES]["rule"]["id"], witness["id"]);
    second.stop().await;
}

async fn admin_token_client(server: &TestServer) -> HttpClient {
    let token = admin_token(&mut server.client().await).await;
    server.client_with(Some(&token)).await
}
