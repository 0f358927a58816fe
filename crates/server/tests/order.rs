//! The order events read back in, and what tells Logbook's own audit events
//! from a client's: batches keep their sent order, security events keep the
//! order their changes committed, and the audit stream's rules are one table.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use bench::client::HttpClient;
use common::*;
use serde_json::{Value, json};

/// Every page of a search, following cursors, as the events' `field` values.
async fn all_pages(
    client: &mut HttpClient,
    path: &str,
    q: &str,
    order: &str,
    limit: usize,
) -> Vec<Value> {
    let limit = limit.to_string();
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", q), ("order", order), ("limit", limit.as_str())];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor));
        }
        let response = get(client, path, &params).await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let page = response.json().unwrap();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

fn messages(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_without_timestamps_reads_back_in_the_order_it_was_sent() {
    let server = TestServer::start().await;
    let mut client = server.client().await;

    // 1,000 events in one NDJSON body: all get the receive time as timestamp.
    let sent: Vec<String> = (0..1_000).map(|i| format!("ordered event {i}")).collect();
    let body: String = sent
        .iter()
        .map(|message| format!("{}\n", json!({"service": "batch", "message": message})))
        .collect();
    let response = client
        .post("/v1/logs", "application/x-ndjson", body)
        .await
        .unwrap();
    assert_eq!(response.status, 202);

    // The README's example: two lines, gzip-compressed NDJSON.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(
        b"{\"service\":\"api\",\"message\":\"GET /health 200\"}\n{\"service\":\"api\",\"level\":\"warn\",\"message\":\"slow request\"}\n",
    )
    .unwrap();
    let request = hyper::Request::post("/v1/logs")
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(http_body_util::Full::new(gzip.finish().unwrap().into()))
        .unwrap();
    assert_eq!(client.send(request).await.unwrap().status, 202);
    wait_drained(&mut client).await;

    let ascending = all_pages(&mut client, "/v1/logs", "service:batch", "asc", 97).await;
    let stamps: std::collections::HashSet<&str> = ascending
        .iter()
        .map(|event| event["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(stamps.len(), 1, "the whole batch shares one timestamp");
    assert_eq!(messages(&ascending), sent, "asc: the order sent");

    let descending = all_pages(&mut client, "/v1/logs", "service:batch", "desc", 89).await;
    let mut reversed = sent.clone();
    reversed.reverse();
    assert_eq!(messages(&descending), reversed, "desc: the reverse");

    let readme = all_pages(&mut client, "/v1/logs", "service:api", "asc", 100).await;
    assert_eq!(messages(&readme), ["GET /health 200", "slow request"]);
    let readme = all_pages(&mut client, "/v1/logs", "service:api", "desc", 1).await;
    assert_eq!(messages(&readme), ["slow request", "GET /health 200"]);
    server.stop().await;
}

/// Waits until the audit stream holds at least `n` events matching `q`.
async fn audit_events(client: &mut HttpClient, q: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_pages(client, "/v1/audit", q, "asc", 1_000).await;
        if events.len() >= n {
            return events;
        }
        assert!(Instant::now() < deadline, "{q}: only {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_records_the_tenant_before_its_user_and_key() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut events = audit_events(&mut client, "source:logbook", 3).await;
    // The trail's order is its sequence numbers.
    events.sort_by_key(|event| event["seq"].as_u64().unwrap());
    let actions: Vec<&str> = events
        .iter()
        .map(|event| event["attributes"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["tenant.create", "user.create", "key.create"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_pass_its_audit_events_off_as_logbooks() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let own = audit_events(&mut client, "source:logbook", 3).await;
    assert!(own.iter().all(|event| event["source"] == "logbook"));

    let forged = json!({"action": "key.create", "userId": "mallory", "source": "logbook"});
    let response = client
        .post(
            "/v1/audit",
            "application/json",
            serde_json::to_vec(&forged).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    let theirs = audit_events(&mut client, "source:client", 1).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["source"], "client", "the server sets the source");
    assert_eq!(
        theirs[0]["attributes"]["source"], "logbook",
        "the client's field is kept as an attribute"
    );
    let own_again = audit_events(&mut client, "source:logbook", 3).await;
    assert_eq!(own_again.len(), 3, "only Logbook's own: {own_again:?}");
    let by_attribute = audit_events(&mut client, "attributes.source:logbook", 1).await;
    assert_eq!(by_attribute.len(), 1);
    assert_eq!(by_attribute[0]["source"], "client");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_are_checked_by_one_documented_rule() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // (event, code, what the message names)
    let cases = [
        (json!({"userId": "1"}), "missing_field", "`action`"),
        (
            json!({"message": "hello", "userId": "1"}),
            "missing_field",
            "`action`",
        ),
        (
            json!({"action": "", "userId": "1"}),
            "missing_field",
            "`action`",
        ),
        (json!({"action": "a"}), "missing_field", "`actor`"),
        (
            json!({"action": "a", "actor": {"name": "x"}}),
            "missing_field",
            "`actor.id`",
        ),
        (
            json!({"action": "a", "userId": "1", "target": {"id": "x"}}),
            "missing_field",
            "`target.type`",
        ),
        (
            json!({"action": 5, "userId": "1"}),
            "invalid_type",
            "`action`",
        ),
        (
            json!({"action": "a", "userId": "1", "outcome": "maybe"}),
            "invalid_type",
            "`outcome`",
        ),
        (
            json!({"action": "a", "userId": "1", "service": "logbook"}),
            "reserved_service",
            "`logbook`",
        ),
        (
            json!({"action": "a", "userId": "1", "id": "mine"}),
            "invalid_id",
            "`id`",
        ),
        (
            json!({"action": "a", "userId": "1", "level": "loud"}),
            "invalid_level",
            "`level`",
        ),
    ];
    for (event, code, named) in cases {
        let response = client
            .post(
                "/v1/audit",
                "application/json",
                serde_json::to_vec(&event).unwrap(),
            )
            .await
            .unwrap();
        let answer = response.json().unwrap();
        assert_eq!(response.status, 400, "{event}: {answer}");
        assert_eq!(answer["code"], "invalid_events", "{event}: {answer}");
        let error = &answer["errors"][0];
        assert_eq!(error["code"], code, "{event}: {answer}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(named), "{event}: {message}");
        if code == "missing_field" {
            assert!(
                message.contains("needs `action` and an actor"),
                "{event}: one message states the rule: {message}"
            );
        }
    }
    // The smallest valid audit event: an action and an actor.
    for event in [
        json!({"action": "a", "userId": "1"}),
        json!({"action": "a", "actor": "alice"}),
    ] {
        let response = client
            .post(
                "/v1/audit",
                "application/json",
                serde_json::to_vec(&event).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status, 202, "{event}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_do_not_show_positions_in_the_shared_queue() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"service": "cursor-test", "message": format!("event {i}"), "timestamp": "2026-02-18T12:00:00Z"}))
        .collect();
    let response = client
        .post(
            "/v1/logs?wait=searchable",
            "application/json",
            serde_json::to_vec(&events).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    // Consecutive events of one record differ by 1 in arrival order; their
    // cursors must not show it (nor the timestamp they share).
    let mut cursors = Vec::new();
    let mut cursor = String::new();
    for _ in 0..2 {
        let page = search(
            &mut client,
            &[
                ("q", "service:cursor-test"),
                ("limit", "1"),
                ("order", "asc"),
                ("cursor", &cursor),
            ],
        )
        .await;
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        cursors.push(cursor.clone());
    }
    let halves = |text: &str| {
        (
            u64::from_str_radix(&text[..16], 16).unwrap(),
            u64::from_str_radix(&text[16..], 16).unwrap(),
        )
    };
    let (first, second) = (halves(&cursors[0]), halves(&cursors[1]));
    assert_ne!(first.0, second.0, "the shared timestamp shows: {cursors:?}");
    assert!(
        first.1.abs_diff(second.1) > 1 << 32,
        "the arrival numbers show: {cursors:?}"
    );
    // They still page exactly: the third event comes next, then nothing.
    let page = search(
        &mut client,
        &[
            ("q", "service:cursor-test"),
            ("limit", "5"),
            ("order", "asc"),
            ("cursor", &cursor),
        ],
    )
    .await;
    let messages: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["event 2"]);
    server.stop().await;
}
