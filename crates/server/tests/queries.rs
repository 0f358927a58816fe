//! The cost of a query is bounded (length, terms, prefixes, time, concurrency),
//! its errors say where, unknown parameters are refused and likely typos are
//! reported: each against a real server.
#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests: tables of cases

mod common;

use common::*;
use serde_json::{Value, json};

/// `count` small log events as NDJSON, one word `bulkN` each and an attribute.
fn ndjson(count: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for n in 0..count {
        let event = json!({
            "service": format!("svc-{}", n % 5),
            "level": if n % 7 == 0 { "error" } else { "info" },
            "message": format!("request {n} served bulk{} in time", n % 50),
            "metadata": {"retryCount": n % 3},
        });
        body.extend_from_slice(event.to_string().as_bytes());
        body.push(b'\n');
    }
    body
}

async fn ingest(server: &TestServer, count: usize) {
    let mut client = server.client().await;
    let response = client
        .post("/v1/logs", "application/x-ndjson", ndjson(count))
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    wait_drained(&mut client).await;
}

/// Asserts a 400 with `code` and `where`, returning the message.
async fn refused(
    client: &mut bench::client::HttpClient,
    path: &str,
    params: &[(&str, &str)],
    code: &str,
    location: Value,
) -> String {
    let response = get(client, path, params).await;
    let answer = response.json().unwrap();
    assert_eq!(
        (response.status, answer["code"].as_str().unwrap_or_default()),
        (400, code),
        "{path} {params:?}: {answer}"
    );
    assert_eq!(answer["where"], location, "{path} {params:?}: {answer}");
    answer["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_a_limit_are_refused_naming_the_limit() {
    let server = TestServer::start_with(|config| {
        config.query.max_bytes = 300;
        config.query.max_terms = 5;
        config.query.min_prefix_chars = 2;
        config.query.max_prefix_terms = 20;
    })
    .await;
    ingest(&server, 200).await;
    let mut client = server.client().await;

    let long = "x".repeat(301);
    let six = "a b c d e f";
    let cases: &[(&str, usize, &str)] = &[
        (&long, 300, "query.max_bytes"),
        (six, 10, "query.max_terms"),
        ("request b*", 8, "query.min_prefix_chars"),
        ("service:s*", 0, "query.min_prefix_chars"),
        // `bulk*` matches bulk0..bulk49: 50 terms.
        ("served bulk*", 7, "query.max_prefix_terms"),
        (
            "metadata.retryCount:1 message:bul*",
            22,
            "query.max_prefix_terms",
        ),
    ];
    for (q, position, limit) in cases {
        for path in ["/v1/logs", "/v1/stats", "/v1/logs/histogram"] {
            let message = refused(
                &mut client,
                path,
                &[("q", q)],
                "query_too_complex",
                json!({"parameter": "q", "position": position}),
            )
            .await;
            assert!(message.contains(limit), "{q:?}: {message}");
        }
    }
    // Within the limits the same kinds of queries run.
    let answer = search(&mut client, &[("q", "served bulk1*"), ("limit", "1000")]).await;
    // bulk1 and bulk10..bulk19: 11 of every 50 events.
    assert_eq!(answer["events"].as_array().unwrap().len(), 44);
    assert_eq!(count(&mut client, "service:svc*").await, 200);
    assert_eq!(count(&mut client, "a b c d e").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_deadline_answers_503_query_timeout() {
    let server = TestServer::start_with(|config| config.query.timeout_ms = 1).await;
    ingest(&server, 30_000).await;
    let mut client = server.client().await;
    // Queries that read events one by one: counts over everything are added
    // up from block summaries and answer within any deadline.
    let every = "request OR served OR time";
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/v1/stats", &[("q", every)]),
        ("/v1/logs", &[("q", every)]),
        ("/v1/logs/histogram", &[("q", every), ("interval", "1ms")]),
    ];
    for (path, params) in cases {
        let response = get(&mut client, path, params).await;
        let answer = response.json().unwrap();
        assert_eq!(response.status, 503, "{path}: {answer}");
        assert_eq!(answer["code"], "query_timeout", "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("query.timeout_ms")
        );
        assert!(response.headers.contains_key("retry-after"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_concurrent_queries_gets_429() {
    let server = TestServer::start_with(|config| {
        config.query.max_concurrent_per_tenant = 1;
        config.query.max_concurrent = 4;
    })
    .await;
    ingest(&server, 30_000).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.client().await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move { get(&mut client, "/v1/stats", &[("q", "*")]).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        if response.status == 429 {
            let answer = response.json().unwrap();
            assert_eq!(answer["code"], "too_many_queries", "{answer}");
            assert!(response.headers.contains_key("retry-after"));
        }
        statuses.push(response.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    // Once they are done, the tenant may query again.
    let mut client = server.client().await;
    assert_eq!(count(&mut client, "*").await, 30_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_errors_point_at_their_term() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let cases: &[(&str, usize)] = &[
        ("level:>=warnn", 0),
        ("boom timestamp:>=yesterday", 5),
        ("é metadata.retryCount:>abc", 3),
        ("a OR (b tenant:default)", 8),
        ("level:loud", 0),
        ("x id:abc*", 2),
    ];
    for (q, position) in cases {
        for path in ["/v1/logs", "/v1/stats"] {
            refused(
                &mut client,
                path,
                &[("q", q)],
                "invalid_query",
                json!({"parameter": "q", "position": position}),
            )
            .await;
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_are_refused_on_every_read() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let response = client
        .post(
            "/v1/audit",
            "application/json",
            r#"{"action":"thing.done","actor":"me","message":"done"}"#,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    let id = response.json().unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = [
        "/v1/logs".to_owned(),
        "/v1/stats".to_owned(),
        "/v1/logs/histogram".to_owned(),
        "/v1/logs/some-id".to_owned(),
        "/v1/audit".to_owned(),
        format!("/v1/audit/{id}"),
        format!("/v1/audit/{id}/proof"),
        "/v1/audit/checkpoint".to_owned(),
        "/v1/audit/consistency".to_owned(),
        "/v1/audit/export".to_owned(),
        "/v1/audit/public-key".to_owned(),
    ];
    for path in &paths {
        let message = refused(
            &mut client,
            path,
            &[("query", "foo")],
            "invalid_parameter",
            json!({"parameter": "query"}),
        )
        .await;
        assert!(message.contains("`query`"), "{path}: {message}");
    }
    // Known parameters still work.
    assert_eq!(
        get(&mut client, "/v1/logs", &[("q", "x"), ("limit", "5")])
            .await
            .status,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_no_event_has_is_reported_as_a_warning() {
    let server = TestServer::start().await;
    ingest(&server, 20).await;
    let mut client = server.client().await;

    let answer = search(&mut client, &[("q", "levl:error")]).await;
    assert_eq!(answer["events"], json!([]));
    assert_eq!(
        answer["warnings"],
        json!([
            "field \"levl\" is not a known field and no stored event has the attribute \"levl\""
        ])
    );
    let response = get(
        &mut client,
        "/v1/stats",
        &[("q", "level:error OR levl:error")],
    )
    .await;
    let answer = response.json().unwrap();
    assert_eq!(answer["total"], 3, "{answer}");
    assert_eq!(answer["warnings"].as_array().unwrap().len(), 1, "{answer}");
    let response = get(
        &mut client,
        "/v1/logs/histogram",
        &[("q", "-metadata.retryCont:1")],
    )
    .await;
    let answer = response.json().unwrap();
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap()
            .contains("\"metadata.retryCont\""),
        "{answer}"
    );

    // Known fields and attributes some event has: no warnings at all.
    for q in [
        "level:error",
        "metadata.retryCount:1",
        "attributes.metadata.retryCount:>0",
        "service:nothing",
        "",
    ] {
        let answer = search(&mut client, &[("q", q)]).await;
        assert!(answer.get("warnings").is_none(), "{q:?}: {answer}");
    }
    // The check is per partition: the audit stream has no such attribute.
    let response = get(&mut client, "/v1/audit", &[("q", "metadata.retryCount:1")]).await;
    let answer = response.json().unwrap();
    assert_eq!(answer["warnings"].as_array().unwrap().len(), 1, "{answer}");
    server.stop().await;
}
