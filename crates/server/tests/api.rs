//! End-to-end behaviour of the HTTP API against a real server: ingest, search,
//! pagination, stats and every documented error.
#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests: tables of cases

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ORDER_EVENT: &str = r#"{"service":"order-service","level":"ERROR","message":"Payment failed","userId":"123","timestamp":"2026-02-18T12:00:00Z","metadata":{"orderId":"ORD-98765","retryCount":1}}"#;
const LOGIN_EVENT: &str =
    r#"{"userId":"12345","action":"User_Login","metadata":{"ip":"192.168.1.1"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_examples_are_accepted_and_found_within_a_second() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for body in [ORDER_EVENT, LOGIN_EVENT] {
        let response = client
            .post("/v1/logs", "application/json", body)
            .await
            .unwrap();
        assert_eq!(
            response.status,
            202,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let answer = response.json().unwrap();
        assert_eq!(answer["accepted"], 1);
        assert_eq!(answer["ids"].as_array().unwrap().len(), 1);
    }
    let accepted_at = Instant::now();
    loop {
        let page = search(&mut client, &[("q", "metadata.orderId:ORD-98765")]).await;
        if page["events"].as_array().unwrap().len() == 1 {
            let event = &page["events"][0];
            assert_eq!(event["service"], "order-service");
            assert_eq!(event["level"], "error");
            assert_eq!(event["message"], "Payment failed");
            assert_eq!(event["user_id"], "123");
            assert_eq!(event["timestamp"], "2026-02-18T12:00:00Z");
            assert_eq!(event["attributes"]["metadata"]["retryCount"], 1);
            assert_eq!(event["source_ip"], "127.0.0.1");
            break;
        }
        assert!(
            accepted_at.elapsed() < Duration::from_secs(1),
            "not searchable within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(&mut client).await;

    let cases: &[(&[(&str, &str)], usize)] = &[
        (&[("q", "payment")], 1),
        (&[("q", "\"payment failed\"")], 1),
        (&[("q", "service:order-service")], 1),
        (&[("q", "level:>=warn")], 1),
        (&[("q", "level:error")], 1),
        (&[("q", "metadata.retryCount:>0")], 1),
        (&[("q", "metadata.retryCount:>1")], 0),
        (&[("q", "action:User_Login")], 1),
        (&[("q", "user_id:12345")], 1),
        (&[("q", "service:order*")], 1),
        (&[("q", "User_Login OR payment")], 2),
        (&[("q", "NOT payment")], 1),
        (
            &[
                ("from", "2026-02-18T11:00:00Z"),
                ("to", "2026-02-18T13:00:00Z"),
            ],
            1,
        ),
        (
            &[
                ("from", "2026-02-18T12:00:01Z"),
                ("to", "2026-02-18T13:00:00Z"),
            ],
            0,
        ),
        (&[("q", ""), ("limit", "1")], 1),
    ];
    for (params, expected) in cases {
        let page = search(&mut client, params).await;
        assert_eq!(
            page["events"].as_array().unwrap().len(),
            *expected,
            "{params:?}: {page}"
        );
        assert!(page["took_ms"].is_number());
    }

    let stats = get(&mut client, "/v1/stats", &[]).await.json().unwrap();
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["by_service"]["order-service"], 1);
    assert_eq!(stats["by_level"]["error"], 1);
    assert_eq!(stats["by_level"]["info"], 1);

    let histogram = get(
        &mut client,
        "/v1/logs/histogram",
        &[("q", "payment"), ("interval", "1h")],
    )
    .await
    .json()
    .unwrap();
    assert_eq!(
        histogram["buckets"],
        json!([{"start": "2026-02-18T12:00:00Z", "count": 1}])
    );

    let id = search(&mut client, &[("q", "payment")]).await["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = client.get(&format!("/v1/logs/{id}")).await.unwrap();
    assert_eq!(event.status, 200);
    assert_eq!(event.json().unwrap()["message"], "Payment failed");
    let missing = client.get("/v1/logs/no-such-id").await.unwrap();
    assert_eq!(
        (missing.status, missing.json().unwrap()["code"].clone()),
        (404, json!("not_found"))
    );

    assert_eq!(client.get("/healthz").await.unwrap().status, 200);
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 200);
    // The store also holds the audit events of the first start.
    let token = common::admin_token(&mut client).await;
    let status = common::admin_status(&mut client, &token).await;
    assert!(status["store"]["events"].as_u64().unwrap() >= 2);
    server.stop().await;
}

/// One line of a Loghub file as an event, with the level the line itself names.
fn loghub_event(service: &str, number: usize, line: &str) -> Value {
    let level = if line.contains("[error]") {
        "error"
    } else {
        "info"
    };
    json!({"service": service, "level": level, "message": line, "host": "node-1", "metadata": {"line": number}})
}

fn has_token(line: &str, word: &str) -> bool {
    line.split(|c: char| !c.is_alphanumeric())
        .any(|token| token.eq_ignore_ascii_case(word))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loghub_samples_are_counted_exactly() {
    let Some(path) = loghub("Apache/Apache_2k.log") else {
        eprintln!("skipped: the Loghub samples are not beside this checkout");
        return;
    };
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for (chunk_index, chunk) in lines.chunks(300).enumerate() {
        let mut body = Vec::new();
        for (offset, line) in chunk.iter().enumerate() {
            let number = chunk_index * 300 + offset + 1;
            serde_json::to_writer(&mut body, &loghub_event("apache", number, line)).unwrap();
            body.push(b'\n');
        }
        let response = client
            .post("/v1/logs", "application/x-ndjson", body)
            .await
            .unwrap();
        assert_eq!(response.status, 202);
        let answer = response.json().unwrap();
        assert_eq!(answer["accepted"].as_u64().unwrap() as usize, chunk.len());
        ids.extend(
            answer["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned()),
        );
    }
    wait_drained(&mut client).await;

    assert_eq!(count(&mut client, "").await as usize, lines.len());
    assert_eq!(
        count(&mut client, "service:apache").await as usize,
        lines.len()
    );
    let errors = lines.iter().filter(|line| line.contains("[error]")).count();
    assert_eq!(count(&mut client, "level:error").await as usize, errors);
    assert_eq!(count(&mut client, "level:>=warn").await as usize, errors);
    for word in ["scoreboard", "workerEnv", "mod_jk", "directory", "denied"] {
        let expected = lines
            .iter()
            .filter(|line| {
                // A query word that cuts into several tokens is a phrase of them.
                let tokens: Vec<String> = word
                    .split(|c: char| !c.is_alphanumeric())
                    .map(str::to_lowercase)
                    .collect();
                let line_tokens: Vec<String> = line
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                if tokens.len() == 1 {
                    has_token(line, word)
                } else {
                    line_tokens
                        .windows(tokens.len())
                        .any(|w| w == tokens.as_slice())
                }
            })
            .count();
        assert_eq!(
            count(&mut client, word).await as usize,
            expected,
            "word {word}"
        );
    }
    assert_eq!(count(&mut client, "metadata.line:[100 TO 199]").await, 100);
    assert_eq!(
        count(&mut client, "metadata.line:>1990").await as usize,
        lines.len() - 1990
    );

    // Every id the server acknowledged can be fetched, with its line.
    for (index, id) in ids.iter().enumerate().step_by(97) {
        let event = client
            .get(&format!("/v1/logs/{id}"))
            .await
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(event["message"], lines[index]);
        assert_eq!(event["attributes"]["metadata"]["line"], index + 1);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_json_error() {
    let server = TestServer::start_with(|config| {
        config.ingest.max_body_bytes = 64 * 1024;
        config.ingest.max_decompressed_bytes = 256 * 1024;
        config.ingest.max_event_bytes = 4096;
        config.ingest.max_depth = 4;
    })
    .await;
    let mut client = server.client().await;
    let deep = json!({"message": "m", "a": {"b": {"c": {"d": {"e": 1}}}}}).to_string();
    let large = json!({"message": "x".repeat(5000)}).to_string();
    let oversized = format!("[{}]", vec![ORDER_EVENT; 400].join(","));
    let mut gzip_bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip_bomb.write_all(&vec![b' '; 1024 * 1024]).unwrap();
    let gzip_bomb = gzip_bomb.finish().unwrap();

    // (content type, encoding, body, status, code, where)
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16, &str, Option<Value>)> = vec![
        (
            "application/json",
            None,
            b"{\"message\": \"a\",\n  oops}".to_vec(),
            400,
            "malformed_json",
            Some(json!({"line": 2, "column": 3})),
        ),
        (
            "application/json",
            None,
            b"[{\"message\": 1}]".to_vec(),
            400,
            "invalid_events",
            None,
        ),
        (
            "application/json",
            None,
            b"{\"level\": \"info\"}".to_vec(),
            400,
            "invalid_events",
            None,
        ),
        (
            "application/json",
            None,
            b"\"just a string\"".to_vec(),
            400,
            "invalid_type",
            None,
        ),
        (
            "application/json",
            None,
            b"".to_vec(),
            400,
            "empty_body",
            None,
        ),
        (
            "application/json",
            None,
            b"{\"message\": \"caf\xe9\"}".to_vec(),
            400,
            "invalid_utf8",
            Some(json!({"byte": 16})),
        ),
        (
            "application/json",
            None,
            deep.into_bytes(),
            400,
            "invalid_events",
            None,
        ),
        (
            "application/json",
            None,
            large.into_bytes(),
            400,
            "invalid_events",
            None,
        ),
        (
            "application/json",
            None,
            oversized.into_bytes(),
            413,
            "body_too_large",
            None,
        ),
        (
            "application/json",
            Some("gzip"),
            gzip_bomb,
            413,
            "body_too_large",
            None,
        ),
        (
            "application/json",
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
            "invalid_compression",
            None,
        ),
        (
            "application/json",
            Some("br"),
            b"{}".to_vec(),
            415,
            "unsupported_encoding",
            None,
        ),
        (
            "text/html",
            None,
            ORDER_EVENT.as_bytes().to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "application/x-www-form-urlencoded",
            None,
            b"service=api&message=hello".to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
    ];
    for (content_type, encoding, body, status, code, location) in cases {
        let mut request = hyper::Request::post("/v1/logs").header("content-type", content_type);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = client
            .send(
                request
                    .body(http_body_util::Full::new(body.into()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let answer = response.json().unwrap();
        assert_eq!(
            (response.status, answer["code"].as_str().unwrap()),
            (status, code),
            "{answer}"
        );
        assert_eq!(answer["status"], status);
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(location) = location {
            assert_eq!(answer["where"], location, "{answer}");
        }
    }

    // The per-event reasons of a refused single event are listed.
    let answer = post_json(&mut client, &json!({"level": "info"}))
        .await
        .json()
        .unwrap();
    assert_eq!(answer["errors"][0]["code"], "missing_message");
    let answer = post_json(
        &mut client,
        &json!({"message": "m", "a": {"b": {"c": {"d": {"e": 1}}}}}),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(answer["errors"][0]["code"], "too_deep");

    // A mixed batch: valid events are accepted, the others reported by index.
    let response = post_json(
        &mut client,
        &json!([{"message": "ok"}, {"level": "loud", "message": "x"}, 3, {"message": "ok too"}]),
    )
    .await;
    assert_eq!(response.status, 202);
    let answer = response.json().unwrap();
    assert_eq!(
        (answer["accepted"].clone(), answer["rejected"].clone()),
        (json!(2), json!(2))
    );
    let reported: Vec<(u64, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(reported, [(1, "invalid_level"), (2, "invalid_type")]);

    // NDJSON reports the broken line.
    let response = client
        .post(
            "/v1/logs",
            "application/x-ndjson",
            "{\"message\":\"a\"}\n{\"message\":\n",
        )
        .await
        .unwrap();
    let answer = response.json().unwrap();
    assert_eq!(answer["errors"][0]["line"], 2);

    // Compressed bodies are accepted.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(ORDER_EVENT.as_bytes()).unwrap();
    let zstd_body = zstd::encode_all(ORDER_EVENT.as_bytes(), 3).unwrap();
    for (encoding, body) in [("gzip", gzip.finish().unwrap()), ("zstd", zstd_body)] {
        let request = hyper::Request::post("/v1/logs")
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(http_body_util::Full::new(body.into()))
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(
            response.status,
            202,
            "{encoding}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }

    // Query errors point at the parameter, and for q at the position.
    let cases: &[(&str, &[(&str, &str)], &str, Value)] = &[
        (
            "/v1/logs",
            &[("q", "service:(a")],
            "invalid_query",
            json!({"parameter": "q", "position": 7}),
        ),
        (
            "/v1/logs",
            &[("q", "a AND")],
            "invalid_query",
            json!({"parameter": "q", "position": 2}),
        ),
        (
            "/v1/logs",
            &[("q", "level:loud")],
            "invalid_query",
            json!({"parameter": "q", "position": 0}),
        ),
        (
            "/v1/logs",
            &[("limit", "0")],
            "invalid_parameter",
            json!({"parameter": "limit"}),
        ),
        (
            "/v1/logs",
            &[("limit", "many")],
            "invalid_parameter",
            json!({"parameter": "limit"}),
        ),
        (
            "/v1/logs",
            &[("cursor", "garbage")],
            "invalid_parameter",
            json!({"parameter": "cursor"}),
        ),
        (
            "/v1/logs",
            &[("from", "yesterday")],
            "invalid_parameter",
            json!({"parameter": "from"}),
        ),
        (
            "/v1/logs",
            &[("order", "sideways")],
            "invalid_parameter",
            json!({"parameter": "order"}),
        ),
        (
            "/v1/logs/histogram",
            &[("interval", "1w")],
            "invalid_parameter",
            json!({"parameter": "interval"}),
        ),
        (
            "/v1/stats",
            &[("q", "\"open")],
            "invalid_query",
            json!({"parameter": "q", "position": 0}),
        ),
    ];
    for (path, params, code, location) in cases {
        let response = get(&mut client, path, params).await;
        let answer = response.json().unwrap();
        assert_eq!(
            (response.status, answer["code"].as_str().unwrap()),
            (400, *code),
            "{path} {params:?}: {answer}"
        );
        assert_eq!(answer["where"], *location, "{path} {params:?}");
    }

    let response = client.get("/v1/logs/%FF").await.unwrap();
    assert_eq!(
        (response.status, response.json().unwrap()["code"].clone()),
        (400, json!("invalid_parameter"))
    );
    let response = get(
        &mut client,
        "/v1/logs/histogram",
        &[("interval", "1ms"), ("from", "2000-01-01T00:00:00Z")],
    )
    .await;
    assert_eq!(response.status, 200, "few events, few buckets");
    let request = hyper::Request::post("/v1/logs")
        .header(
            "content-type",
            hyper::header::HeaderValue::from_bytes(b"application/json; x=\xe9").unwrap(),
        )
        .body(http_body_util::Full::new(
            ORDER_EVENT.as_bytes().to_vec().into(),
        ))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(
        (response.status, response.json().unwrap()["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    let response = client.get("/v2/nothing").await.unwrap();
    assert_eq!(
        (response.status, response.json().unwrap()["code"].clone()),
        (404, json!("not_found"))
    );
    let response = client
        .post("/healthz", "application/json", "{}")
        .await
        .unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(response.json().unwrap()["code"], "method_not_allowed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let server = TestServer::start_with(|config| {
        config.queue.max_bytes = 8 * 1024;
        // The worker never commits on its own, so nothing is released.
        config.pipeline.commit_interval_ms = 3_600_000;
        config.pipeline.commit_events = usize::MAX;
    })
    .await;
    let mut client = server.client().await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let response = client
            .post("/v1/logs", "application/json", ORDER_EVENT)
            .await
            .unwrap();
        statuses.push(response.status);
        if response.status == 503 {
            assert_eq!(response.headers.get("retry-after").unwrap(), "1");
            assert_eq!(response.json().unwrap()["code"], "queue_full");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 202));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_misses_and_repeats_nothing_while_events_arrive() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // 600 events over one minute, many sharing a millisecond.
    let base = 1_771_416_000_000i64;
    let existing: Vec<Value> = (0..600)
        .map(|i| json!({"id": format!("old-{i}"), "timestamp": base + (i / 3) * 100, "message": "paged"}))
        .collect();
    assert_eq!(post_json(&mut client, &json!(existing)).await.status, 202);
    wait_drained(&mut client).await;

    // Meanwhile, new events keep landing, some of them inside the range being paged.
    let url = server.url.clone();
    let writer = tokio::spawn(async move {
        let mut client = bench::client::HttpClient::connect(&url)
            .await
            .unwrap()
            .with_token(Some(common::TEST_KEY))
            .unwrap();
        for round in 0..40i64 {
            let batch: Vec<Value> = (0..10)
                .map(|i| json!({"id": format!("new-{round}-{i}"), "timestamp": base + (round * 10 + i) * 50, "message": "paged"}))
                .collect();
            assert_eq!(post_json(&mut client, &json!(batch)).await.status, 202);
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "paged"), ("limit", "25")];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor));
        }
        let page = search(&mut client, &params).await;
        for event in page["events"].as_array().unwrap() {
            seen.push((
                event["timestamp"].as_str().unwrap().to_owned(),
                event["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.await.unwrap();

    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: HashSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was repeated");
    for i in 0..600 {
        assert!(unique.contains(&format!("old-{i}")), "old-{i} was skipped");
    }
    let times: Vec<model::Timestamp> = seen
        .iter()
        .map(|(t, _)| model::Timestamp::parse(t).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "pages are newest first"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_graceful_restart() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"message": format!("restart {i}")}))
        .collect();
    assert_eq!(post_json(&mut client, &json!(events)).await.status, 202);
    // Stop without waiting for the worker: shutdown commits what it staged,
    // and whatever it had not read yet stays in the queue.
    let dir = server.stop().await;
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    let mut client = server.client().await;
    wait_drained(&mut client).await;
    assert_eq!(count(&mut client, "restart").await, 50);
    server.stop().await;
}
