//! Loki push bodies in each encoding, mapped field by field.

use model::{Event, IngestContext, Level, Limits, Timestamp};
use prost::Message as _;
use serde_json::json;

use super::proto::{Entry, LabelPair, PushRequest, Stream, Timestamp as ProtoTime};
use super::{Encoding, decode};
use crate::{Batch, IngestError};

fn events(body: &[u8], encoding: Encoding) -> Result<Vec<Event>, IngestError> {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits::default();
    let mut batch = Batch::new(&context, &limits, 0);
    decode(body, encoding, 1 << 20, &mut batch)?;
    let batch = batch.finish()?;
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    Ok(batch
        .ndjson
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("an event"))
        .collect())
}

#[test]
fn snappy_protobuf_streams_map_labels_and_metadata() {
    let request = PushRequest {
        streams: vec![Stream {
            labels: r#"{service_name="checkout", level="warning", host="web-1", env="prod"}"#
                .into(),
            entries: vec![Entry {
                timestamp: Some(ProtoTime {
                    seconds: 1_765_000_000,
                    nanos: 5,
                }),
                line: "slow payment".into(),
                structured_metadata: vec![
                    LabelPair {
                        name: "trace_id".into(),
                        value: "abc123".into(),
                    },
                    LabelPair {
                        name: "pod".into(),
                        value: "p-1".into(),
                    },
                ],
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("compresses");
    let events = events(&body, Encoding::SnappyProtobuf).expect("decodes");
    let event = &events[0];
    assert_eq!(
        event.timestamp,
        Timestamp::from_nanos(1_765_000_000_000_000_005)
    );
    assert_eq!(event.message, "slow payment");
    assert_eq!(event.service.as_deref(), Some("checkout"));
    assert_eq!(event.level, Level::Warn);
    assert_eq!(event.host.as_deref(), Some("web-1"));
    assert_eq!(event.trace_id.as_deref(), Some("abc123"));
    assert_eq!(
        serde_json::Value::Object(event.attributes.clone()),
        json!({"labels": {"env": "prod"}, "structured_metadata": {"pod": "p-1"}})
    );
}

#[test]
fn json_and_legacy_json_bodies() {
    let body = json!({"streams": [{
        "stream": {"app": "api", "severity": "bogus"},
        "values": [["1765000000000000000", "one"], ["1765000000000000001", "two", {"user": "u1"}]]
    }]});
    let current = events(body.to_string().as_bytes(), Encoding::Json).expect("decodes");
    assert_eq!(current.len(), 2);
    assert_eq!(current[0].service.as_deref(), Some("api"));
    assert_eq!(
        current[0].level,
        Level::Info,
        "an unknown level label stays a label"
    );
    assert_eq!(
        current[0].attributes.get("labels"),
        Some(&json!({"severity": "bogus"}))
    );
    assert_eq!(
        current[1].timestamp,
        Timestamp::from_nanos(1_765_000_000_000_000_001)
    );
    assert_eq!(
        current[1].attributes.get("structured_metadata"),
        Some(&json!({"user": "u1"}))
    );
    let legacy = json!({"streams": [{
        "labels": "{application=\"shop\", severity=\"error\"}",
        "entries": [{"ts": "2026-12-07T10:00:00.5+00:00", "line": "legacy line"}]
    }]});
    let legacy = events(legacy.to_string().as_bytes(), Encoding::Json).expect("decodes");
    assert_eq!(legacy[0].service.as_deref(), Some("shop"));
    assert_eq!(legacy[0].level, Level::Error);
    assert_eq!(legacy[0].message, "legacy line");
    assert_eq!(legacy[0].timestamp.to_rfc3339(), "2026-12-07T10:00:00.5Z");
}

#[test]
fn only_the_label_used_for_a_field_is_used_up() {
    let body = json!({"streams": [{
        "stream": {"level": "info", "app": "svc", "job": "nightly", "hostname": "h1", "host": "h2"},
        "values": [["1765000000000000000", "line"]]
    }]});
    let stored = events(body.to_string().as_bytes(), Encoding::Json).expect("decodes");
    assert_eq!(stored[0].service.as_deref(), Some("svc"));
    assert_eq!(stored[0].host.as_deref(), Some("h2"));
    assert_eq!(stored[0].level, Level::Info);
    assert_eq!(
        stored[0].attributes.get("labels"),
        Some(&json!({"job": "nightly", "hostname": "h1"}))
    );
}

#[test]
fn broken_bodies_are_malformed_and_bombs_are_refused() {
    assert!(matches!(
        events(b"not snappy", Encoding::SnappyProtobuf),
        Err(IngestError::Malformed(_))
    ));
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0_u8; 2 << 20])
        .expect("compresses");
    assert!(matches!(
        events(&bomb, Encoding::SnappyProtobuf),
        Err(IngestError::TooLarge { .. })
    ));
    assert!(matches!(
        events(
            br#"{"streams":[{"stream":{},"values":[["x","line"]]}]}"#,
            Encoding::Json
        ),
        Err(IngestError::Malformed(_))
    ));
}

#[test]
fn bodies_with_more_entries_than_a_batch_are_refused_before_decoding() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits {
        max_batch_events: 10,
        ..Limits::default()
    };
    let push = PushRequest {
        streams: vec![Stream {
            labels: "{}".into(),
            entries: vec![Entry::default(); 40],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&push.encode_to_vec())
        .expect("compresses");
    let mut batch = Batch::new(&context, &limits, 0);
    let refused = decode(&body, Encoding::SnappyProtobuf, 1 << 20, &mut batch);
    assert!(matches!(
        refused,
        Err(IngestError::Decode(
            model::DecodeError::TooManyEvents { .. }
        ))
    ));
    let values = vec![r#"["1","x"]"#; 40].join(",");
    let json = format!(r#"{{"streams":[{{"stream":{{}},"values":[{values}]}}]}}"#);
    let refused = decode(json.as_bytes(), Encoding::Json, 1 << 20, &mut batch);
    assert!(matches!(
        refused,
        Err(IngestError::Decode(
            model::DecodeError::TooManyEvents { .. }
        ))
    ));
    assert!(batch.is_empty(), "nothing was decoded");
}

#[test]
fn oversized_label_sets_refuse_their_entries_without_copying_them() {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits {
        max_event_bytes: 1_000,
        ..Limits::default()
    };
    let big = "v".repeat(2_000);
    let body = json!({"streams": [
        {"stream": {"app": big}, "values": [["1", "a"], ["2", "b"]]},
        {"stream": {"app": "ok"}, "values": [["3", "c"], ["4", "x".repeat(2_000)]]}
    ]});
    let mut batch = Batch::new(&context, &limits, 0);
    decode(
        body.to_string().as_bytes(),
        Encoding::Json,
        1 << 20,
        &mut batch,
    )
    .expect("decodes");
    let batch = batch.finish().expect("events");
    assert_eq!(batch.ids.len(), 1);
    let refused: Vec<_> = batch.rejected.iter().map(|r| (r.index, r.code)).collect();
    assert_eq!(
        refused,
        [
            (0, "event_too_large"),
            (1, "event_too_large"),
            (3, "event_too_large")
        ]
    );
}
