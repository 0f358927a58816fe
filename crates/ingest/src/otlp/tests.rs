//! The OTLP mapping, field by field, in both encodings.

use model::{Event, IngestContext, Limits, Timestamp};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::json;

use super::{Encoding, decode, respond};
use crate::Batch;

fn string(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..KeyValue::default()
    }
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("checkout")),
                    kv("host.name", string("web-1")),
                    kv("deployment.environment", string("prod")),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.payments".into(),
                    version: "1.2".into(),
                    ..InstrumentationScope::default()
                }),
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn events(body: &[u8], encoding: Encoding) -> (Vec<Event>, Vec<model::Rejection>) {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits::default();
    let mut batch = Batch::new(&context, &limits, 0);
    decode(body, encoding, &mut batch).expect("decodes");
    let batch = batch.finish().expect("has events");
    let events = batch
        .ndjson
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("an event"))
        .collect();
    (events, batch.rejected)
}

fn full_record() -> LogRecord {
    LogRecord {
        time_unix_nano: 1_765_000_000_123_456_789,
        observed_time_unix_nano: 1_765_000_001_000_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: string("card declined"),
        attributes: vec![
            kv("http.method", string("POST")),
            kv(
                "retry",
                Some(AnyValue {
                    value: Some(any_value::Value::IntValue(3)),
                }),
            ),
            kv(
                "tags",
                Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![string("a"), string("b")]
                            .into_iter()
                            .flatten()
                            .collect(),
                    })),
                }),
            ),
            kv(
                "order",
                Some(AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("id", string("ORD-1"))],
                    })),
                }),
            ),
            kv(
                "raw",
                Some(AnyValue {
                    value: Some(any_value::Value::BytesValue(vec![1, 2, 255])),
                }),
            ),
            kv("level", string("shadowed")),
            kv("user.id", string("u-42")),
        ],
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        flags: 1,
        event_name: "payment.failed".into(),
        ..LogRecord::default()
    }
}

#[test]
fn protobuf_records_map_field_by_field() {
    let body = request(vec![full_record()]).encode_to_vec();
    let (events, rejected) = events(&body, Encoding::Protobuf);
    assert!(rejected.is_empty(), "{rejected:?}");
    let event = &events[0];
    assert_eq!(
        event.timestamp,
        Timestamp::from_nanos(1_765_000_000_123_456_789)
    );
    assert_eq!(event.level, model::Level::Error);
    assert_eq!(event.message, "card declined");
    assert_eq!(event.service.as_deref(), Some("checkout"));
    assert_eq!(event.host.as_deref(), Some("web-1"));
    assert_eq!(event.user_id.as_deref(), Some("u-42"));
    assert_eq!(
        event.trace_id.as_deref(),
        Some("0102030405060708090a0b0c0d0e0f10")
    );
    assert_eq!(event.span_id.as_deref(), Some("0102030405060708"));
    let attributes = serde_json::Value::Object(event.attributes.clone());
    assert_eq!(
        attributes,
        json!({
            "severity_text": "ERROR",
            "severity_number": 17,
            "event_name": "payment.failed",
            "trace_flags": 1,
            "resource": {"deployment.environment": "prod"},
            "scope": {"name": "app.payments", "version": "1.2"},
            "http.method": "POST",
            "retry": 3,
            "tags": ["a", "b"],
            "order": {"id": "ORD-1"},
            "raw": "AQL/",
            "attribute.level": "shadowed",
        })
    );
}

#[test]
fn json_follows_the_otlp_json_mapping() {
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1765000000000000001", "severityNumber": 13,
             "body": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "7"}}]}},
             "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
             "attributes": [{"key": "big", "value": {"intValue": 9007199254740993_i64}}]},
            {"observedTimeUnixNano": 1765000000000000000_u64, "body": {"stringValue": "observed"},
             "traceId": "00000000000000000000000000000000", "severityText": "warning"},
            {"severityNumber": 9}
        ]}]
    }]});
    let (events, rejected) = events(body.to_string().as_bytes(), Encoding::Json);
    assert_eq!(events.len(), 2);
    let first = &events[0];
    assert_eq!(
        first.timestamp,
        Timestamp::from_nanos(1_765_000_000_000_000_001)
    );
    assert_eq!(first.level, model::Level::Warn);
    assert_eq!(first.message, r#"{"k":7}"#);
    assert_eq!(first.attributes.get("body"), Some(&json!({"k": 7})));
    assert_eq!(
        first.attributes.get("big"),
        Some(&json!(9007199254740993_i64))
    );
    assert_eq!(
        first.trace_id.as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(first.service.as_deref(), Some("api"));
    let second = &events[1];
    assert_eq!(
        second.timestamp,
        Timestamp::from_nanos(1_765_000_000_000_000_000)
    );
    assert_eq!(second.trace_id, None, "all-zero ids are absent");
    assert_eq!(
        second.level,
        model::Level::Warn,
        "severity text when no number"
    );
    // The third has no body: refused on its own, and the answer says so.
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 2);
    let answer: serde_json::Value =
        serde_json::from_slice(&respond(Encoding::Json, &rejected)).expect("json");
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], json!(1));
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("record 2: missing_message"),
        "{message}"
    );
}

#[test]
fn a_full_answer_has_no_partial_success() {
    assert!(respond(Encoding::Protobuf, &[]).is_empty());
    assert_eq!(respond(Encoding::Json, &[]), b"{}");
}

#[test]
fn bodies_that_are_not_otlp_are_malformed() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits::default();
    let mut batch = Batch::new(&context, &limits, 0);
    assert!(decode(b"\xff\xff\xff", Encoding::Protobuf, &mut batch).is_err());
    assert!(decode(br#"{"resourceLogs": 5}"#, Encoding::Json, &mut batch).is_err());
}

#[test]
fn bodies_with_more_records_than_a_batch_are_refused_before_decoding() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits {
        max_batch_events: 10,
        ..Limits::default()
    };
    let many = request((0..40).map(|_| LogRecord::default()).collect());
    let mut batch = Batch::new(&context, &limits, 0);
    let refused = decode(&many.encode_to_vec(), Encoding::Protobuf, &mut batch);
    assert!(matches!(
        refused,
        Err(crate::IngestError::Decode(
            model::DecodeError::TooManyEvents { .. }
        ))
    ));
    assert!(batch.is_empty(), "nothing was decoded");
    let records = vec!["{}"; 40].join(",");
    let json = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#);
    let refused = decode(json.as_bytes(), Encoding::Json, &mut batch);
    assert!(matches!(
        refused,
        Err(crate::IngestError::Decode(
            model::DecodeError::TooManyEvents { .. }
        ))
    ));
    assert!(batch.is_empty(), "nothing was decoded");
}

#[test]
fn oversized_parts_are_refused_without_being_decoded_or_copied() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits {
        max_event_bytes: 1_000,
        ..Limits::default()
    };
    let small = LogRecord {
        body: string("small"),
        attributes: vec![kv("resource", string("mine"))],
        ..LogRecord::default()
    };
    let big = LogRecord {
        body: string(&"x".repeat(2_000)),
        ..LogRecord::default()
    };
    let mut request = request(vec![small.clone(), big]);
    // A second resource whose attributes alone are over the limit.
    request.resource_logs.push(ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv("blob", string(&"y".repeat(2_000)))],
            ..Resource::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![small.clone(), small],
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    });
    for body in [
        request.encode_to_vec(),
        serde_json::to_vec(&request).expect("json"),
    ] {
        let encoding = match body.first() {
            Some(b'{') => Encoding::Json,
            _ => Encoding::Protobuf,
        };
        let mut batch = Batch::new(&context, &limits, 0);
        decode(&body, encoding, &mut batch).expect("decodes");
        let batch = batch.finish().expect("events");
        assert_eq!(batch.ids.len(), 1, "{encoding:?}");
        let refused: Vec<_> = batch.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            refused,
            [
                (1, "event_too_large"),
                (2, "event_too_large"),
                (3, "event_too_large")
            ],
            "{encoding:?}"
        );
        let stored: Event =
            serde_json::from_slice(batch.ndjson.split(|b| *b == b'\n').next().expect("a line"))
                .expect("an event");
        assert_eq!(
            stored.attributes.get("attribute.resource"),
            Some(&json!("mine"))
        );
        assert_eq!(
            stored.attributes.get("resource"),
            Some(&json!({"deployment.environment": "prod"}))
        );
    }
}

#[test]
fn a_batch_stops_growing_at_the_record_limit() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits::default();
    let line = "z".repeat(200_000);
    let records = (0..400).map(|_| LogRecord {
        body: string(&line),
        ..LogRecord::default()
    });
    let body = request(records.collect()).encode_to_vec();
    let mut batch = Batch::new(&context, &limits, 0);
    assert!(matches!(
        decode(&body, Encoding::Protobuf, &mut batch),
        Err(crate::IngestError::BatchTooLarge { .. })
    ));
}
