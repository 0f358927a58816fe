//! Loki streams → Logbook events: each entry's line is the message, its
//! stream's labels say the service, level and host where they mean that
//! and are kept under `labels` otherwise; structured metadata is kept.

use model::{EventError, Level};
use prost::Message as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Encoding, labels, proto};
use crate::value::epoch_nanos;
use crate::{Batch, IngestError, bounds};

/// Labels read as the service, first present wins (Loki's own service
/// detection looks at these names too).
const SERVICE_LABELS: &[&str] = &["service_name", "service", "app", "application", "job"];
/// Labels read as the level when their value is a level Logbook knows.
const LEVEL_LABELS: &[&str] = &["level", "severity", "detected_level", "lvl"];
/// Labels read as the host.
const HOST_LABELS: &[&str] = &["host", "hostname"];
/// Structured metadata read as the trace context.
const TRACE_METADATA: &[(&str, &str)] = &[("trace_id", "trace_id"), ("span_id", "span_id")];

/// Reads a push body and adds each entry to `batch`, stream by stream.
/// `max_decompressed` bounds the snappy-decompressed size.
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    max_decompressed: usize,
    batch: &mut Batch,
) -> Result<(), IngestError> {
    match encoding {
        Encoding::SnappyProtobuf => decode_protobuf(body, max_decompressed, batch),
        Encoding::Json => decode_json(body, batch),
    }
}

fn decode_protobuf(
    body: &[u8],
    max_decompressed: usize,
    batch: &mut Batch,
) -> Result<(), IngestError> {
    let length = snap::raw::decompress_len(body).map_err(|error| {
        IngestError::malformed(format!(
            "the body is not snappy-compressed (block format): {error}"
        ))
    })?;
    if length > max_decompressed {
        return Err(IngestError::TooLarge {
            size: length,
            max: max_decompressed,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| IngestError::malformed(format!("the snappy block is invalid: {error}")))?;
    // streams (1) → entries (2).
    bounds::protobuf(&raw, &[1, 2], batch.max_messages())?;
    let limit = batch.max_event_bytes();
    // PushRequest.streams = 1; each stream decoded on its own: its labels,
    // then each entry only if its size is within the event limit.
    let mut streams = Vec::new();
    bounds::for_each_field(&raw, |tag, bytes| {
        if tag == 1 {
            streams.push(bytes);
        }
    })?;
    for stream in streams {
        let mut labels_text: &[u8] = &[];
        let mut entries = Vec::new();
        // Stream.labels = 1, .entries = 2.
        bounds::for_each_field(stream, |tag, bytes| match tag {
            1 => labels_text = bytes,
            2 => entries.push(bytes),
            _ => {}
        })?;
        let labels_size = labels_text.len();
        let stream_fields = match labels_size <= limit {
            true => {
                let text = std::str::from_utf8(labels_text)
                    .map_err(|_| IngestError::malformed("a stream's labels are not UTF-8"))?;
                Some(StreamFields::new(
                    labels::parse(text).map_err(IngestError::malformed)?,
                ))
            }
            false => None,
        };
        for entry in entries {
            let size = labels_size + entry.len();
            let Some(fields) = stream_fields.as_ref().filter(|_| size <= limit) else {
                batch.add(Err(EventError::TooLarge { size, max: limit }))?;
                continue;
            };
            let entry = proto::Entry::decode(entry).map_err(|error| {
                IngestError::malformed(format!("the body is not a Loki PushRequest: {error}"))
            })?;
            let nanos = entry.timestamp.map(|time| {
                time.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i64::from(time.nanos))
            });
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|pair| (pair.name, pair.value));
            batch.add(Ok(fields.event(nanos, entry.line, metadata)))?;
        }
    }
    Ok(())
}

/// A push in JSON: the current form, or the legacy one. Labels and entries
/// are kept as raw JSON until their size is known to be within the event
/// limit.
#[derive(Deserialize)]
struct JsonPush<'a> {
    #[serde(borrow)]
    streams: Vec<JsonStream<'a>>,
}

#[derive(Deserialize)]
struct JsonStream<'a> {
    /// Current form: the labels as an object.
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    /// Current form: `[ns-string, line]` or `[ns-string, line, {metadata}]`.
    #[serde(borrow, default)]
    values: Vec<&'a RawValue>,
    /// Legacy form: the labels as a `{…}` string.
    #[serde(borrow, default)]
    labels: Option<&'a RawValue>,
    /// Legacy form: `{"ts": RFC 3339, "line": …}`.
    #[serde(borrow, default)]
    entries: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(alias = "timestamp")]
    ts: String,
    line: String,
}

fn decode_json(body: &[u8], batch: &mut Batch) -> Result<(), IngestError> {
    bounds::json(
        body,
        &["streams", "values"],
        &["entries"],
        batch.max_messages(),
    )?;
    let text = std::str::from_utf8(body)
        .map_err(|error| IngestError::malformed(format!("the body is not UTF-8: {error}")))?;
    let malformed = |error: serde_json::Error| {
        IngestError::malformed(format!(
            "the body is not a Loki push request in JSON: {error}"
        ))
    };
    let push: JsonPush = serde_json::from_str(text).map_err(malformed)?;
    let limit = batch.max_event_bytes();
    for stream in push.streams {
        let raw_labels = stream.stream.or(stream.labels);
        let labels_size = raw_labels.map_or(0, |raw| raw.get().len());
        let fields = match (labels_size <= limit, stream.stream, stream.labels) {
            (false, _, _) => None,
            (true, Some(object), _) => {
                let object: Map<String, Value> =
                    serde_json::from_str(object.get()).map_err(malformed)?;
                let pairs = object
                    .into_iter()
                    .map(|(name, value)| match value {
                        Value::String(text) => (name, text),
                        other => (name, other.to_string()),
                    })
                    .collect();
                Some(StreamFields::new(pairs))
            }
            (true, None, Some(text)) => {
                let text: String = serde_json::from_str(text.get()).map_err(malformed)?;
                Some(StreamFields::new(
                    labels::parse(&text).map_err(IngestError::malformed)?,
                ))
            }
            (true, None, None) => Some(StreamFields::new(Vec::new())),
        };
        for value in stream.values {
            let size = labels_size + value.get().len();
            let Some(fields) = fields.as_ref().filter(|_| size <= limit) else {
                batch.add(Err(EventError::TooLarge { size, max: limit }))?;
                continue;
            };
            let value: Vec<Value> = serde_json::from_str(value.get()).map_err(malformed)?;
            let (nanos, line, metadata) = json_value(value)?;
            batch.add(Ok(fields.event(Some(nanos), line, metadata.into_iter())))?;
        }
        for entry in stream.entries {
            let size = labels_size + entry.get().len();
            let Some(fields) = fields.as_ref().filter(|_| size <= limit) else {
                batch.add(Err(EventError::TooLarge { size, max: limit }))?;
                continue;
            };
            let entry: LegacyEntry = serde_json::from_str(entry.get()).map_err(malformed)?;
            let mut object = fields.event(None, entry.line, std::iter::empty());
            object.insert("timestamp".into(), Value::String(entry.ts));
            batch.add(Ok(object))?;
        }
    }
    Ok(())
}

/// Structured metadata: name and value pairs, in order.
type Metadata = Vec<(String, String)>;

/// One `[ns-string, line, {metadata}?]` of the current JSON form.
fn json_value(value: Vec<Value>) -> Result<(i64, String, Metadata), IngestError> {
    let shape = || {
        IngestError::malformed(
            "each of a stream's `values` must be [\"<ns since the epoch>\", \"<line>\"] \
             with an optional object of structured metadata",
        )
    };
    let mut items = value.into_iter();
    let (Some(time), Some(Value::String(line))) = (items.next(), items.next()) else {
        return Err(shape());
    };
    let nanos = match time {
        Value::String(text) => text.parse::<i64>().map_err(|_| shape())?,
        Value::Number(number) => number.as_i64().ok_or_else(shape)?,
        _ => return Err(shape()),
    };
    let metadata = match items.next() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(object)) => object
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect(),
        Some(_) => return Err(shape()),
    };
    if items.next().is_some() {
        return Err(shape());
    }
    Ok((nanos, line, metadata))
}

/// What a stream's labels give each of its entries.
struct StreamFields {
    service: Option<String>,
    level: Option<Level>,
    host: Option<String>,
    /// The labels not read as one of the above.
    labels: Map<String, Value>,
}

impl StreamFields {
    fn new(pairs: Vec<(String, String)>) -> StreamFields {
        // The first label of each group that means the field; only that one
        // label is used up, every other stays a label.
        let find = |names: &[&str], usable: &dyn Fn(&str) -> bool| {
            names.iter().find_map(|name| {
                pairs
                    .iter()
                    .position(|(label, value)| label == name && usable(value))
            })
        };
        let service = find(SERVICE_LABELS, &|_| true);
        let host = find(HOST_LABELS, &|_| true);
        let level = find(LEVEL_LABELS, &|value| Level::parse(value).is_some());
        let mut fields = StreamFields {
            service: None,
            level: None,
            host: None,
            labels: Map::new(),
        };
        for (position, (name, value)) in pairs.into_iter().enumerate() {
            let at = Some(position);
            if at == service {
                fields.service = Some(value);
            } else if at == host {
                fields.host = Some(value);
            } else if at == level {
                fields.level = Level::parse(&value);
            } else {
                fields.labels.insert(name, Value::String(value));
            }
        }
        fields
    }

    /// The event of one entry.
    fn event(
        &self,
        nanos: Option<i64>,
        line: String,
        metadata: impl Iterator<Item = (String, String)>,
    ) -> Map<String, Value> {
        let mut object = Map::new();
        if let Some(nanos) = nanos {
            object.insert("timestamp".into(), epoch_nanos(nanos));
        }
        object.insert("message".into(), Value::String(line));
        if let Some(service) = &self.service {
            object.insert("service".into(), Value::String(service.clone()));
        }
        if let Some(level) = self.level {
            object.insert("level".into(), Value::from(level.as_str()));
        }
        if let Some(host) = &self.host {
            object.insert("host".into(), Value::String(host.clone()));
        }
        if !self.labels.is_empty() {
            object.insert("labels".into(), Value::Object(self.labels.clone()));
        }
        let mut kept = Map::new();
        for (name, value) in metadata {
            match TRACE_METADATA.iter().find(|(key, _)| *key == name) {
                Some((_, field)) if !object.contains_key(*field) => {
                    object.insert((*field).into(), Value::String(value));
                }
                _ => {
                    kept.insert(name, Value::String(value));
                }
            }
        }
        if !kept.is_empty() {
            object.insert("structured_metadata".into(), Value::Object(kept));
        }
        object
    }
}
