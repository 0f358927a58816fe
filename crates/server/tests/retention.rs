//! Retention through the server: an admin sets it with `PUT /v1/settings`
//! (validated, audited, reset with `null`), and the server's enforcer applies
//! it on its check interval. The clock-driven rules are tested in the
//! `retention` crate with injected time; here the enforcer runs every second
//! and the test waits for its effect.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::client::{HttpClient, Response};
use common::{TestServer, admin_token, count, post_json, wait_drained};
use hyper::Request;
use serde_json::{Value, json};

async fn put_settings(client: &mut HttpClient, body: Value) -> Response {
    let request = Request::builder()
        .method("PUT")
        .uri("/v1/settings")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(
            serde_json::to_vec(&body).unwrap().into(),
        ))
        .unwrap();
    client.send(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_retention_and_the_server_applies_it() {
    let server = TestServer::start_with(|config| {
        config.retention.check_interval = "1s".into();
    })
    .await;
    let mut writer = server.client().await;
    let token = admin_token(&mut writer).await;
    let mut admin = server.client_with(Some(&token)).await;

    // Refused values say which field and why; nothing changes.
    for (body, field) in [
        (json!({"logs_retention": "30"}), "logs_retention"),
        (json!({"logs_retention": 30}), "logs_retention"),
        (json!({"audit_retention": "10s"}), "audit_retention"),
        (json!({"audit_retention": "29d"}), "audit_retention"),
        (json!({"logs_max_bytes": 1000}), "logs_max_bytes"),
        (json!({"logs_max_bytes": "1GB"}), "logs_max_bytes"),
    ] {
        let refused = put_settings(&mut admin, body.clone()).await;
        let answer = refused.json().unwrap();
        assert_eq!(refused.status, 422, "{body}: {answer}");
        assert_eq!(answer["code"], "invalid_setting", "{body}");
        assert_eq!(answer["where"]["field"], field, "{body}");
    }
    let unknown = put_settings(&mut admin, json!({"logs_retention_days": 3})).await;
    assert_eq!(unknown.status, 422);
    let mixed = put_settings(
        &mut admin,
        json!({"self_registration": true, "logs_retention": "forever"}),
    )
    .await;
    assert_eq!(mixed.status, 422);
    let unchanged = common::get(&mut admin, "/v1/settings", &[]).await;
    assert_eq!(
        unchanged.json().unwrap(),
        json!({"self_registration": false, "logs_retention": null, "logs_max_bytes": null, "audit_retention": null})
    );

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day_ms = 86_400_000;
    let events: Vec<Value> = [(40, "old"), (10, "recent"), (0, "fresh")]
        .iter()
        .map(|(days, word)| json!({"timestamp": now_ms - days * day_ms, "message": format!("{word} event")}))
        .collect();
    assert_eq!(post_json(&mut writer, &json!(events)).await.status, 202);
    wait_drained(&mut writer).await;
    assert_eq!(count(&mut writer, "").await, 3);

    let set = put_settings(
        &mut admin,
        json!({"logs_retention": "720h", "logs_max_bytes": 1_073_741_824, "audit_retention": null}),
    )
    .await;
    let settings = set.json().unwrap();
    assert_eq!(set.status, 200, "{settings}");
    assert_eq!(settings["logs_retention"], "30d");
    assert_eq!(settings["logs_max_bytes"], 1_073_741_824u64);
    assert_eq!(settings["audit_retention"], Value::Null);

    // The enforcer runs every second: the 40-day-old event goes, the others stay.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut writer, "").await != 2 {
        assert!(
            Instant::now() < deadline,
            "retention was not applied within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&mut writer, "old").await, 0);
    assert_eq!(count(&mut writer, "recent OR fresh").await, 2);

    // `null` gives the setting back to the server's default (keep everything).
    let reset = put_settings(&mut admin, json!({"logs_retention": null})).await;
    let settings = reset.json().unwrap();
    assert_eq!(settings["logs_retention"], Value::Null, "{settings}");
    assert_eq!(settings["logs_max_bytes"], 1_073_741_824u64);

    // Each change is an audit event naming what was set (the outbox moves
    // them into the trail in the background).
    let deadline = Instant::now() + Duration::from_secs(30);
    let details = loop {
        let audit = common::get(&mut admin, "/v1/audit", &[("q", "action:settings.change")]).await;
        let audit = audit.json().unwrap();
        let details: Vec<Value> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["attributes"]["details"].clone())
            .collect();
        if details.len() >= 2 || Instant::now() > deadline {
            break details;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Two changes were made; the refused requests changed nothing and
    // left no audit event.
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details.iter().any(|d| d["logs_retention"] == "30d"
            && d["logs_max_bytes"] == 1_073_741_824u64
            && d["audit_retention"].is_null())
            && details
                .iter()
                .any(|d| d["logs_retention"].is_null() && d.get("logs_max_bytes").is_none()),
        "{details:?}"
    );
    server.stop().await;
}
