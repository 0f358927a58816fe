//! The wire protocols `logbook bench ingest --protocol` sends the same events
//! in: Logbook's NDJSON, OTLP/HTTP protobuf, Loki's snappy protobuf and
//! Elasticsearch bulk. Bodies are re-encoded from the NDJSON batches before
//! timing starts.

use anyhow::Context as _;
use bytes::Bytes;
use ingest::loki::proto as loki;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde::Deserialize;

use crate::client::Response;

/// How `logbook bench ingest` sends its events.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `POST /v1/logs`, NDJSON.
    Ndjson,
    /// `POST /otlp/v1/logs`, OTLP protobuf.
    Otlp,
    /// `POST /loki/api/v1/push`, snappy-compressed protobuf.
    Loki,
    /// `POST /es/_bulk`, a `create` action per event.
    Es,
}

impl Protocol {
    /// The path events are posted to (`audit` only for NDJSON).
    pub(crate) fn path(self, audit: bool) -> &'static str {
        match self {
            Protocol::Ndjson if audit => "/v1/audit",
            Protocol::Ndjson => "/v1/logs",
            Protocol::Otlp => "/otlp/v1/logs",
            Protocol::Loki => "/loki/api/v1/push",
            Protocol::Es => "/es/_bulk",
        }
    }

    /// The content type of the bodies.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Protocol::Ndjson | Protocol::Es => "application/x-ndjson",
            Protocol::Otlp | Protocol::Loki => "application/x-protobuf",
        }
    }

    /// An NDJSON batch in this protocol.
    pub(crate) fn encode(self, ndjson: &[u8]) -> anyhow::Result<Bytes> {
        let events = || -> anyhow::Result<Vec<BenchEvent>> {
            ndjson
                .split(|byte| *byte == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| serde_json::from_slice(line).context("a generated event"))
                .collect()
        };
        Ok(match self {
            Protocol::Ndjson => Bytes::copy_from_slice(ndjson),
            Protocol::Otlp => otlp(events()?).encode_to_vec().into(),
            Protocol::Loki => {
                let request = loki_push(events()?).encode_to_vec();
                snap::raw::Encoder::new().compress_vec(&request)?.into()
            }
            Protocol::Es => {
                let mut body = Vec::with_capacity(ndjson.len() * 2);
                for line in ndjson
                    .split(|byte| *byte == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    body.extend_from_slice(b"{\"create\":{}}\n");
                    body.extend_from_slice(line);
                    body.push(b'\n');
                }
                body.into()
            }
        })
    }

    /// How many of `count` events a 2xx answer accepted.
    pub(crate) fn accepted(self, response: &Response, count: usize) -> u64 {
        let count = count as u64;
        match self {
            Protocol::Ndjson => response
                .json()
                .ok()
                .and_then(|answer| answer.get("accepted")?.as_u64())
                .unwrap_or(count),
            Protocol::Otlp => ExportLogsServiceResponse::decode(response.body.as_ref())
                .ok()
                .and_then(|answer| answer.partial_success)
                .map_or(count, |partial| {
                    count.saturating_sub(u64::try_from(partial.rejected_log_records).unwrap_or(0))
                }),
            Protocol::Loki => count,
            // As Fluent Bit does: an answer without errors accepted everything.
            Protocol::Es if response.body.windows(16).any(|w| w == b"\"errors\":false,") => count,
            Protocol::Es => response
                .json()
                .ok()
                .and_then(|answer| {
                    let items = answer.get("items")?.as_array()?;
                    Some(
                        items
                            .iter()
                            .filter(|item| item["create"]["status"] == 201)
                            .count() as u64,
                    )
                })
                .unwrap_or(0),
        }
    }
}

/// The fields of a generated event the other protocols carry.
#[derive(Deserialize)]
struct BenchEvent {
    timestamp: u64,
    service: String,
    level: String,
    host: String,
    message: String,
    metadata: Metadata,
}

#[derive(Deserialize)]
struct Metadata {
    file: String,
    line: u64,
}

fn string(text: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text)),
    })
}

fn key_value(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
        ..KeyValue::default()
    }
}

/// One resource per service and host, as an SDK per process would send.
fn otlp(events: Vec<BenchEvent>) -> ExportLogsServiceRequest {
    let mut resources: Vec<ResourceLogs> = Vec::new();
    for event in events {
        let severity_number = match event.level.as_str() {
            "trace" => 1,
            "debug" => 5,
            "warn" => 13,
            "error" => 17,
            "fatal" => 21,
            _ => 9,
        };
        let record = LogRecord {
            time_unix_nano: event.timestamp.saturating_mul(1_000_000),
            severity_number,
            severity_text: event.level.to_uppercase(),
            body: string(event.message),
            attributes: vec![
                key_value("file", string(event.metadata.file)),
                key_value(
                    "line",
                    Some(AnyValue {
                        value: Some(any_value::Value::IntValue(
                            i64::try_from(event.metadata.line).unwrap_or(i64::MAX),
                        )),
                    }),
                ),
            ],
            ..LogRecord::default()
        };
        let attributes = vec![
            key_value("service.name", string(event.service)),
            key_value("host.name", string(event.host)),
        ];
        let existing = resources.iter_mut().find(|resource| {
            resource.resource.as_ref().map(|r| &r.attributes) == Some(&attributes)
        });
        match existing {
            Some(resource) => resource.scope_logs[0].log_records.push(record),
            None => resources.push(ResourceLogs {
                resource: Some(Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: resources,
    }
}

/// One stream per service, level and host, as a Loki client keeps them.
fn loki_push(events: Vec<BenchEvent>) -> loki::PushRequest {
    let mut streams: Vec<loki::Stream> = Vec::new();
    for event in events {
        let labels = format!(
            "{{service_name=\"{}\", level=\"{}\", host=\"{}\"}}",
            event.service, event.level, event.host
        );
        let millis = i64::try_from(event.timestamp).unwrap_or(i64::MAX);
        let entry = loki::Entry {
            timestamp: Some(loki::Timestamp {
                seconds: millis / 1000,
                nanos: i32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
            }),
            line: event.message,
            structured_metadata: vec![
                loki::LabelPair {
                    name: "file".into(),
                    value: event.metadata.file,
                },
                loki::LabelPair {
                    name: "line".into(),
                    value: event.metadata.line.to_string(),
                },
            ],
        };
        match streams.iter_mut().find(|stream| stream.labels == labels) {
            Some(stream) => stream.entries.push(entry),
            None => streams.push(loki::Stream {
                labels,
                entries: vec![entry],
            }),
        }
    }
    loki::PushRequest { streams }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use model::{Event, IngestContext, Limits, Timestamp};

    use super::Protocol;
    use crate::events::{Shape, Source, build_pool};

    /// Every protocol's body, read by the server's own translator, gives the
    /// events the NDJSON body gives.
    #[test]
    fn every_protocol_carries_the_same_events() {
        let sources = Source::generated(50, 7);
        let pool = build_pool(&sources, 50, 50, usize::MAX, 1_765_000_000_000, Shape::Log).unwrap();
        let ndjson = pool[0].prefix(50);
        let context = IngestContext::new("bench", Timestamp::from_nanos(1), None);
        let limits = Limits::default();
        let read = |protocol: Protocol| -> Vec<Event> {
            let body = protocol.encode(&ndjson).unwrap();
            let mut batch = ingest::Batch::new(&context, &limits, 0);
            match protocol {
                Protocol::Ndjson => {
                    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        batch
                            .add(Ok(serde_json::from_slice(line).unwrap()))
                            .unwrap();
                    }
                }
                Protocol::Otlp => {
                    ingest::otlp::decode(&body, ingest::otlp::Encoding::Protobuf, &mut batch)
                        .unwrap()
                }
                Protocol::Loki => ingest::loki::decode(
                    &body,
                    ingest::loki::Encoding::SnappyProtobuf,
                    1 << 24,
                    &mut batch,
                )
                .unwrap(),
                Protocol::Es => {
                    ingest::elastic::decode(&body, None, &mut batch).unwrap();
                }
            }
            let decoded = batch.finish().unwrap();
            assert!(
                decoded.rejected.is_empty(),
                "{protocol:?}: {:?}",
                decoded.rejected
            );
            let mut events: Vec<Event> = decoded
                .ndjson
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            events.sort_by_key(|event| event.timestamp);
            events
        };
        let native = read(Protocol::Ndjson);
        assert_eq!(native.len(), 50);
        for protocol in [Protocol::Otlp, Protocol::Loki, Protocol::Es] {
            let events = read(protocol);
            assert_eq!(events.len(), native.len(), "{protocol:?}");
            for (event, expected) in events.iter().zip(&native) {
                assert_eq!(event.timestamp, expected.timestamp, "{protocol:?}");
                assert_eq!(event.message, expected.message, "{protocol:?}");
                assert_eq!(event.service, expected.service, "{protocol:?}");
                assert_eq!(event.level, expected.level, "{protocol:?}");
                assert_eq!(event.host, expected.host, "{protocol:?}");
                if protocol == Protocol::Es {
                    assert_eq!(
                        event.attributes, expected.attributes,
                        "bulk keeps every field"
                    );
                }
            }
        }
    }
}
