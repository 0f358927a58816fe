//! What a newcomer pastes from the README works: plain-text logs, `curl -d`
//! with JSON, and `?wait=searchable` so a search right after an ingest finds it.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, count, loghub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_is_one_event_per_line() {
    let Some(path) = loghub("HDFS/HDFS_2k.log") else {
        eprintln!("SKIPPED: the Loghub samples are not beside the repository");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let response = client
        .post(
            "/v1/logs?wait=searchable",
            "text/plain; charset=utf-8",
            text.clone().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    let answer = response.json().unwrap();
    assert_eq!(answer["accepted"], lines.len());
    assert_eq!(answer["searchable"], true);
    // Each line is one message, in the order sent.
    let first = common::search(&mut client, &[("order", "asc"), ("limit", "3")]).await;
    let messages: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["message"].as_str().unwrap())
        .collect();
    assert!(messages.iter().all(|message| lines.contains(message)));
    let with_block_word = lines
        .iter()
        .filter(|line| {
            line.split(|c: char| !c.is_alphanumeric())
                .any(|word| word.eq_ignore_ascii_case("PacketResponder"))
        })
        .count();
    assert!(with_block_word > 0);
    assert_eq!(
        count(&mut client, "PacketResponder").await,
        with_block_word as u64
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_dash_d_with_json_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let response = client
        .post(
            "/v1/logs?wait=searchable",
            "application/x-www-form-urlencoded",
            br#"{"service":"order-service","message":"Payment failed"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    assert_eq!(count(&mut client, "service:order-service").await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_searchable_answers_once_a_search_finds_the_events() {
    // Commits are rare, so only waiting makes the events visible this soon.
    let server = TestServer::start_with(|config| config.pipeline.commit_interval_ms = 1_500).await;
    let mut client = server.client().await;
    let event = br#"{"service":"durable-only","message":"not yet searchable"}"#;
    let response = client
        .post("/v1/logs", "application/json", event.to_vec())
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    assert!(response.json().unwrap().get("searchable").is_none());
    assert_eq!(
        count(&mut client, "service:durable-only").await,
        0,
        "without waiting the event is durable but not searchable yet"
    );

    for path in ["/v1/logs?wait=searchable", "/v1/audit?wait=searchable"] {
        let event =
            br#"{"service":"waited","action":"role.grant","actor":"u1","message":"waited for"}"#;
        let response = client
            .post(path, "application/json", event.to_vec())
            .await
            .unwrap();
        assert_eq!(response.status, 202, "{path}: {:?}", response.json());
        assert_eq!(response.json().unwrap()["searchable"], true);
    }
    assert_eq!(count(&mut client, "service:waited").await, 1);
    let audit = common::get(&mut client, "/v1/audit", &[("q", "action:role.grant")]).await;
    assert_eq!(audit.json().unwrap()["events"].as_array().unwrap().len(), 1);

    for (path, parameter) in [
        ("/v1/logs?wait=later", "wait"),
        ("/v1/logs?refresh=wait_for", "refresh"),
    ] {
        let response = client
            .post(path, "application/json", event.to_vec())
            .await
            .unwrap();
        assert_eq!(response.status, 400, "{path}");
        let answer = response.json().unwrap();
        assert_eq!(answer["code"], "invalid_parameter", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(parameter),
            "{answer}"
        );
    }
    server.stop().await;
}
