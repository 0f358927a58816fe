//! The Rust SDK (`logbook-tracing`) against the real `logbook serve`: events
//! logged through `tracing` are stored with their level, message, service,
//! host, trace context and fields, sent with an API key or signed.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{connect_when_up, free_port, logbook, serve_with_settings};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;

const KEY: &str = "lbk_tracing-sdk-e2e-key-0123456789abcdefghij";

/// Kills the server when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_nanos() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_nanos()).unwrap()
}

fn nanos_of(stored: &Value, field: &str) -> i64 {
    model::Timestamp::parse(stored[field].as_str().unwrap())
        .unwrap()
        .nanos()
}

/// Runs `body` with `layer` as this thread's only subscriber.
fn with_layer(layer: logbook_tracing::LogbookLayer, body: impl FnOnce()) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
}

/// A signing key made with `logbook admin create-key --signed`: (id, key).
fn create_signing_key(data: &std::path::Path) -> (String, String) {
    let output = logbook()
        .args([
            "admin",
            "create-key",
            "--name",
            "sdk",
            "--scopes",
            "logs:write",
            "--signed",
        ])
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // "created key key_… in tenant "default""
    let id = stderr
        .split_whitespace()
        .find(|word| word.starts_with("key_"))
        .unwrap_or_else(|| panic!("no key id in {stderr:?}"))
        .to_owned();
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    (id, key)
}

/// The stored log events of `service`, oldest first.
async fn stored(client: &mut bench::client::HttpClient, service: &str) -> Vec<Value> {
    let page = client
        .get(&format!("/v1/logs?q=service:{service}&order=asc&limit=100"))
        .await
        .unwrap()
        .json()
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_logged_through_tracing_are_stored_field_by_field() {
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

    // With the API key.
    let (layer, guard) = logbook_tracing::Builder::new(&url, "sdk-e2e")
        .api_key(KEY)
        .host("e2e-host")
        .build()
        .unwrap();
    let before = now_nanos();
    with_layer(layer, || {
        let request = tracing::info_span!(
            "request",
            trace_id = "trace-e2e-1",
            user = "ann",
            attempt = 1
        );
        let _request = request.enter();
        let charge = tracing::info_span!("charge", span_id = "span-e2e-1", attempt = 2);
        let _charge = charge.enter();
        tracing::error!(amount = 12.5, retries = 3, declined = true, card = %"visa", id = 7, "card declined");
        drop(_charge);
        drop(_request);
        tracing::info!(user_id = 42, "user logged in");
        tracing::warn!(items = 2);
    });
    let after = now_nanos();
    let stats = guard.shutdown();
    assert_eq!(
        (
            stats.sent(),
            stats.dropped(),
            stats.rejected(),
            stats.failed()
        ),
        (3, 0, 0, 0)
    );

    // Signed with a signing key: the server checks the HMAC over the gzip body.
    let (key_id, signing_key) = create_signing_key(&root.path().join("data"));
    let (layer, guard) = logbook_tracing::Builder::new(&url, "sdk-e2e-signed")
        .signing_key(&key_id, &signing_key)
        .build()
        .unwrap();
    with_layer(layer, || tracing::info!(order = "ORD-7", "signed hello"));
    let stats = guard.shutdown();
    assert_eq!((stats.sent(), stats.rejected(), stats.failed()), (1, 0, 0));

    // The queue is indexed in order: once a later event is searchable, so are these.
    let barrier = client
        .post(
            "/v1/logs?wait=searchable",
            "application/json",
            r#"{"service":"barrier","message":"after the SDK's events"}"#,
        )
        .await
        .unwrap();
    assert_eq!(barrier.json().unwrap()["searchable"], json!(true));

    let events = stored(&mut client, "sdk-e2e").await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let declined = &events[0];
    assert_eq!(declined["tenant"], json!("default"));
    assert_eq!(declined["service"], json!("sdk-e2e"));
    assert_eq!(declined["level"], json!("error"));
    assert_eq!(declined["message"], json!("card declined"));
    assert_eq!(declined["host"], json!("e2e-host"));
    assert_eq!(declined["trace_id"], json!("trace-e2e-1"));
    assert_eq!(declined["span_id"], json!("span-e2e-1"));
    // The event field `id` does not choose the stored event's id.
    assert_ne!(declined["id"], json!("7"));
    let timestamp = nanos_of(declined, "timestamp");
    assert!(before <= timestamp && timestamp <= after, "{declined}");
    assert!(timestamp <= nanos_of(declined, "received_at"), "{declined}");
    let attributes = declined["attributes"].as_object().unwrap();
    assert_eq!(attributes["amount"], json!(12.5));
    assert_eq!(attributes["retries"], json!(3));
    assert_eq!(attributes["declined"], json!(true));
    assert_eq!(attributes["card"], json!("visa"));
    assert_eq!(attributes["fields"], json!({"id": 7}));
    assert_eq!(attributes["target"], json!("tracing_sdk"));
    assert_eq!(attributes["location"]["module"], json!("tracing_sdk"));
    assert_eq!(attributes["location"]["file"], json!(file!()));
    assert!(attributes["location"]["line"].as_u64().unwrap() > 0);
    assert_eq!(
        attributes["span"],
        json!({"name": "charge", "fields": {"user": "ann", "attempt": 2}})
    );
    let mut keys: Vec<&str> = attributes.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount", "card", "declined", "fields", "location", "retries", "span", "target"
        ]
    );

    let login = &events[1];
    assert_eq!(login["level"], json!("info"));
    assert_eq!(login["message"], json!("user logged in"));
    assert_eq!(login["user_id"], json!("42"));
    assert!(login.get("trace_id").is_none(), "{login}");
    assert!(login["attributes"].get("span").is_none(), "{login}");

    let bare = &events[2];
    assert_eq!(bare["level"], json!("warn"));
    assert_eq!(bare["message"], json!("items=2"));
    assert_eq!(bare["attributes"]["items"], json!(2));

    let signed = stored(&mut client, "sdk-e2e-signed").await;
    assert_eq!(signed.len(), 1, "{signed:#?}");
    assert_eq!(signed[0]["message"], json!("signed hello"));
    assert_eq!(signed[0]["attributes"]["order"], json!("ORD-7"));
}
