//! The other ingest protocols against a real server, with bodies built from
//! their published message types: what each stores, and what each answers —
//! partial successes, refusals, credentials and the headers shippers check.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;

use base64::Engine as _;
use bench::client::{HttpClient, Response};
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::{Method, Request};
use ingest::loki::proto as loki;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::{Value, json};

async fn send(
    client: &mut HttpClient,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client
        .send(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap()
}

/// The one stored event whose message matches `query`, once searchable.
async fn stored(client: &mut HttpClient, query: &str) -> Value {
    for _ in 0..200 {
        let page = search(client, &[("q", query)]).await;
        if let [event] = page["events"].as_array().unwrap().as_slice() {
            return event.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no single event for {query}");
}

fn string(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    })
}

fn otlp_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string("otlp-svc"),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_protobuf_and_json_with_partial_success() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let good = LogRecord {
        time_unix_nano: 1_796_637_600_123_456_789,
        severity_number: 13,
        body: string("otlp protobuf record"),
        trace_id: vec![0xab; 16],
        ..LogRecord::default()
    };
    let empty = LogRecord::default();
    let body = otlp_request(vec![good, empty]).encode_to_vec();
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(&body).unwrap();
    let response = send(
        &mut client,
        Method::POST,
        "/otlp/v1/logs",
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        gzipped.finish().unwrap(),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/x-protobuf");
    let answer = ExportLogsServiceResponse::decode(response.body.as_ref()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial.error_message.contains("record 1: missing_message"));
    let event = stored(&mut client, "\"otlp protobuf record\"").await;
    assert_eq!(event["service"], "otlp-svc");
    assert_eq!(event["level"], "warn");
    assert_eq!(event["timestamp"], "2026-12-07T10:00:00.123456789Z");
    assert_eq!(event["trace_id"], "ab".repeat(16));
    assert_eq!(event["source_ip"], "127.0.0.1");

    let json_body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "otlp json record"}, "severityNumber": 17,
         "attributes": [{"key": "n", "value": {"intValue": "5"}}]}]}]}]});
    let response = send(
        &mut client,
        Method::POST,
        "/otlp/v1/logs",
        &[("content-type", "application/json")],
        json_body.to_string(),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.json().unwrap(), json!({}));
    let event = stored(&mut client, "\"otlp json record\"").await;
    assert_eq!(event["level"], "error");
    assert_eq!(event["attributes"]["n"], 5);

    for (content_type, body, status) in [
        ("application/x-protobuf", &b"\xff\xff\xff\xff"[..], 400),
        ("application/json", &b"[1,2]"[..], 400),
        ("text/plain", &b"hello"[..], 415),
    ] {
        let response = send(
            &mut client,
            Method::POST,
            "/otlp/v1/logs",
            &[("content-type", content_type)],
            body.to_vec(),
        )
        .await;
        assert_eq!(response.status, status, "{content_type}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_snappy_protobuf_json_basic_auth_and_refusals() {
    let server = TestServer::start().await;
    let mut anonymous = server.client_with(None).await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("whoever:{TEST_KEY}"))
    );
    let push = loki::PushRequest {
        streams: vec![loki::Stream {
            labels: r#"{app="loki-svc", level="error", env="prod"}"#.into(),
            entries: vec![loki::Entry {
                timestamp: Some(loki::Timestamp {
                    seconds: 1_796_637_600,
                    nanos: 0,
                }),
                line: "loki protobuf line".into(),
                structured_metadata: vec![loki::LabelPair {
                    name: "trace_id".into(),
                    value: "t-1".into(),
                }],
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&push.encode_to_vec())
        .unwrap();
    let response = send(
        &mut anonymous,
        Method::POST,
        "/loki/api/v1/push",
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", &basic),
            ("x-scope-orgid", "someone-else"),
        ],
        body,
    )
    .await;
    assert_eq!(response.status, 204, "{:?}", response.body);
    assert!(response.body.is_empty());
    let mut client = server.client().await;
    let event = stored(&mut client, "\"loki protobuf line\"").await;
    assert_eq!(event["tenant"], "default", "X-Scope-OrgID is ignored");
    assert_eq!(event["service"], "loki-svc");
    assert_eq!(event["level"], "error");
    assert_eq!(event["trace_id"], "t-1");
    assert_eq!(event["attributes"]["labels"], json!({"env": "prod"}));
    assert_eq!(event["timestamp"], "2026-12-07T10:00:00Z");

    // One valid entry and one too large: the valid one is kept, the answer is a 400.
    let long = "x".repeat(300 * 1024);
    let mixed = json!({"streams": [{"stream": {"app": "loki-svc"},
        "values": [["1796637600000000000", "loki json line"], ["1796637600000000001", long]]}]});
    let response = client
        .post("/loki/api/v1/push", "application/json", mixed.to_string())
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    let answer = response.json().unwrap();
    assert_eq!(answer["code"], "invalid_events");
    assert_eq!(answer["errors"][0]["index"], 1);
    assert_eq!(answer["errors"][0]["code"], "event_too_large");
    stored(&mut client, "\"loki json line\"").await;

    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:lbk_not-a-key-at-all-0123456789abc")
    );
    let response = send(
        &mut anonymous,
        Method::POST,
        "/loki/api/v1/push",
        &[
            ("content-type", "application/json"),
            ("authorization", &wrong),
        ],
        mixed.to_string(),
    )
    .await;
    assert_eq!(response.status, 401);
    let response = client
        .post(
            "/loki/api/v1/push",
            "application/x-protobuf",
            &b"not snappy"[..],
        )
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json().unwrap()["code"], "malformed_body");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_bulk_probes_and_headers() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for path in [
        "/es/",
        "/es/_license",
        "/es/_index_template/logs",
        "/es/_ilm/policy/logs",
    ] {
        let response = client.get(path).await.unwrap();
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.headers["x-elastic-product"], "Elasticsearch",
            "{path}"
        );
    }
    let info = client.get("/es/").await.unwrap().json().unwrap();
    assert_eq!(info["version"]["number"], "8.17.0");
    let response = send(
        &mut client,
        Method::PUT,
        "/es/_ingest/pipeline/p",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(response.status, 200);
    let response = client.get("/es/_search").await.unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.json().unwrap()["status"], 404);

    let body = concat!(
        "{\"create\":{}}\n",
        "{\"@timestamp\":\"2026-12-07T10:00:00Z\",\"message\":\"bulk one\",\"log\":{\"level\":\"error\"}}\n",
        "{\"index\":{\"_index\":\"other\",\"_id\":\"bulk-2\"}}\n",
        "{\"message\":\"bulk two\"}\n",
        "{\"create\":{}}\n",
        "[1]\n",
    );
    let response = send(
        &mut client,
        Method::PUT,
        "/es/app-logs/_bulk",
        &[(
            "content-type",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
        )],
        body,
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-elastic-product"], "Elasticsearch");
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    assert!(text.contains(r#""errors":true,"items":["#), "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let statuses: Vec<_> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_object().unwrap().values().next().unwrap()["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(201), json!(201), json!(400)]);
    let one = stored(&mut client, "\"bulk one\"").await;
    assert_eq!(one["level"], "error");
    assert_eq!(one["attributes"]["index"], "app-logs");
    assert_eq!(one["id"], answer["items"][0]["create"]["_id"]);
    let two = stored(&mut client, "\"bulk two\"").await;
    assert_eq!(two["id"], "bulk-2");
    assert_eq!(two["attributes"]["index"], "other");

    // Refusals keep the header shippers check, and broken action lines fail the request.
    let response = client
        .post("/es/_bulk", "application/x-ndjson", "{oops\n{}\n")
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json().unwrap()["error"]["type"],
        "illegal_argument_exception"
    );
    let mut anonymous = server.client_with(None).await;
    let response = anonymous.get("/es/").await.unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.headers["x-elastic-product"], "Elasticsearch");
    server.stop().await;
}
