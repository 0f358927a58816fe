//! Decoding a request body (one JSON object, a JSON array, or NDJSON) into
//! validated events, serialised as the NDJSON lines the queue carries.

use serde::Deserializer as _;
use serde::de::{SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{Event, EventError, type_name};
use crate::stream::Stream;
use crate::timestamp::Timestamp;

/// How the events in a body are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// One JSON object, or a JSON array of objects.
    Json,
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
    /// Plain text: each non-blank line is the message of one event.
    Text,
}

/// Per-event limits, all configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest normalised event, in bytes of JSON.
    pub max_event_bytes: usize,
    /// How deeply an event's JSON may nest (`{"a": {"b": 1}}` is 2).
    pub max_depth: usize,
    /// The most events one request may carry.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 256 * 1024,
            max_depth: 16,
            max_batch_events: 100_000,
        }
    }
}

/// What the receiving side knows about a request, stamped on each of its events.
#[derive(Debug, Clone)]
pub struct IngestContext {
    pub tenant: String,
    /// The stream the events go to; the ingest path decides, never the client.
    pub stream: Stream,
    pub received_at: Timestamp,
    pub source_ip: Option<String>,
}

impl IngestContext {
    /// A context for log events of `tenant` received now-ish from `source_ip`.
    pub fn new(tenant: &str, received_at: Timestamp, source_ip: Option<String>) -> Self {
        IngestContext {
            tenant: tenant.to_owned(),
            stream: Stream::Logs,
            received_at,
            source_ip,
        }
    }

    /// The same context for events of `stream`.
    pub fn with_stream(self, stream: Stream) -> Self {
        IngestContext { stream, ..self }
    }

    /// A fresh, time-sortable event id.
    pub(crate) fn new_id(&self) -> String {
        ulid::Ulid::new().to_string()
    }
}

/// A body that could not be read as events at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("body must be a JSON object or an array of objects, got {0}")]
    NotObjectOrArray(&'static str),
    #[error("body holds no events")]
    Empty,
    #[error("body holds more than {max} events")]
    TooManyEvents { max: usize },
    #[error("JSON nests too deeply at line {line}, column {column}")]
    TooDeep { line: usize, column: usize },
}

impl DecodeError {
    /// A stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::MalformedJson { .. } => "malformed_json",
            DecodeError::NotObjectOrArray(_) => "invalid_type",
            DecodeError::Empty => "empty_body",
            DecodeError::TooManyEvents { .. } => "too_many_events",
            DecodeError::TooDeep { .. } => "too_deep",
        }
    }
}

/// One event of a batch that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position of the event in the batch, from 0 (NDJSON: among non-blank lines).
    pub index: usize,
    /// The 1-based line of the body, for NDJSON.
    pub line: Option<usize>,
    pub code: &'static str,
    pub message: String,
}

/// The outcome of decoding a body whose framing was readable.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    /// Ids of the accepted events, in body order.
    pub ids: Vec<String>,
    /// The accepted events as NDJSON, one normalised [`Event`] per line.
    pub ndjson: Vec<u8>,
    /// Indexes (among accepted events) of those whose id the client chose:
    /// storing one replaces an earlier event with the same id in the same stream.
    pub client_ids: Vec<u32>,
    pub rejected: Vec<Rejection>,
}

/// Decodes and validates every event of a body. Invalid events are listed in
/// `rejected` while the valid ones are accepted; only an unreadable body is an error.
pub fn decode_batch(
    body: &[u8],
    format: BatchFormat,
    context: &IngestContext,
    limits: &Limits,
) -> Result<DecodedBatch, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|error| DecodeError::InvalidUtf8 {
        offset: error.valid_up_to(),
    })?;
    // Some editors and shells start files with a byte-order mark; it is not JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut batch = DecodedBatch::with_capacity(body.len() + body.len() / 4);
    match format {
        BatchFormat::Json => decode_json(text, context, limits, &mut batch)?,
        BatchFormat::Ndjson => decode_ndjson(text, context, limits, &mut batch)?,
        BatchFormat::Text => decode_text(text, context, limits, &mut batch)?,
    }
    if batch.ids.is_empty() && batch.rejected.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(batch)
}

fn decode_json(
    text: &str,
    context: &IngestContext,
    limits: &Limits,
    batch: &mut DecodedBatch,
) -> Result<(), DecodeError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(DecodeError::Empty);
    }
    // Memory stays proportional to one event at a time: an array is first cut
    // into raw elements (counted as they come), and each element is parsed on its
    // own, only if its raw size is within the per-event limit.
    let items: Vec<&RawValue> = if trimmed.starts_with('[') {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let items = deserializer
            .deserialize_seq(BoundedItems {
                max: limits.max_batch_events,
            })
            .map_err(
                |error| match error.to_string().starts_with(TOO_MANY_EVENTS) {
                    true => DecodeError::TooManyEvents {
                        max: limits.max_batch_events,
                    },
                    false => malformed(error),
                },
            )?;
        deserializer.end().map_err(malformed)?;
        items
    } else {
        vec![serde_json::from_str::<&RawValue>(text).map_err(malformed)?]
    };
    let single = !trimmed.starts_with('[');
    for (index, item) in items.into_iter().enumerate() {
        let raw = item.get();
        let object = if raw.len() > limits.max_event_bytes {
            Err(EventError::TooLarge {
                size: raw.len(),
                max: limits.max_event_bytes,
            })
        } else {
            match serde_json::from_str::<Value>(raw).map_err(malformed)? {
                Value::Object(object) => Ok(object),
                other if single => return Err(DecodeError::NotObjectOrArray(type_name(&other))),
                other => Err(EventError::NotAnObject(type_name(&other))),
            }
        };
        batch.push(index, None, object, context, limits);
    }
    Ok(())
}

/// The start of the error message that stops an array with too many elements.
const TOO_MANY_EVENTS: &str = "too many events";

/// Reads a JSON array as raw elements, failing as soon as there are more than `max`.
struct BoundedItems {
    max: usize,
}

impl<'de> Visitor<'de> for BoundedItems {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY_EVENTS));
            }
            items.push(item);
        }
        Ok(items)
    }
}

fn decode_ndjson(
    text: &str,
    context: &IngestContext,
    limits: &Limits,
    batch: &mut DecodedBatch,
) -> Result<(), DecodeError> {
    decode_lines(
        text,
        limits,
        batch,
        |batch, index, line_number, line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => {
                batch.push(index, Some(line_number), Ok(object), context, limits)
            }
            Ok(other) => batch.reject(
                index,
                Some(line_number),
                &EventError::NotAnObject(type_name(&other)),
            ),
            Err(error) => batch.rejected.push(Rejection {
                index,
                line: Some(line_number),
                code: "malformed_json",
                message: format!(
                    "malformed JSON at line {line_number}, column {}: {}",
                    error.column(),
                    describe(&error)
                ),
            }),
        },
    )
}

/// Plain text, one event per line: what `curl --data-binary @app.log` or a
/// shell pipe sends. The line (without its line ending) is the message.
fn decode_text(
    text: &str,
    context: &IngestContext,
    limits: &Limits,
    batch: &mut DecodedBatch,
) -> Result<(), DecodeError> {
    decode_lines(text, limits, batch, |batch, index, line_number, line| {
        let mut object = Map::new();
        object.insert("message".to_owned(), Value::String(line.to_owned()));
        batch.push(index, Some(line_number), Ok(object), context, limits);
    })
}

/// One event per non-blank line: counts them against the batch limit, refuses
/// a line over the event size limit, and hands the others to `event` with
/// their index among the events and their 1-based line number.
fn decode_lines(
    text: &str,
    limits: &Limits,
    batch: &mut DecodedBatch,
    mut event: impl FnMut(&mut DecodedBatch, usize, usize, &str),
) -> Result<(), DecodeError> {
    let mut index = 0;
    for (line_number, line) in text.lines().enumerate().map(|(n, line)| (n + 1, line)) {
        if line.trim().is_empty() {
            continue;
        }
        if index == limits.max_batch_events {
            return Err(DecodeError::TooManyEvents {
                max: limits.max_batch_events,
            });
        }
        if line.len() > limits.max_event_bytes {
            let error = EventError::TooLarge {
                size: line.len(),
                max: limits.max_event_bytes,
            };
            batch.reject(index, Some(line_number), &error);
        } else {
            event(batch, index, line_number, line);
        }
        index += 1;
    }
    Ok(())
}

impl DecodedBatch {
    /// An empty batch with room for about `bytes` of queue lines.
    pub fn with_capacity(bytes: usize) -> DecodedBatch {
        DecodedBatch {
            ndjson: Vec::with_capacity(bytes),
            ..DecodedBatch::default()
        }
    }

    /// Validates one client object (or takes the reason it could not be one)
    /// as the event at `index` of its request, `line` of its body if it has
    /// lines: accepted, it is appended to the queue lines; refused, the
    /// reason joins `rejected`. Every ingest protocol ends here.
    pub fn push(
        &mut self,
        index: usize,
        line: Option<usize>,
        object: Result<Map<String, Value>, EventError>,
        context: &IngestContext,
        limits: &Limits,
    ) {
        let client_id = object
            .as_ref()
            .is_ok_and(|object| object.contains_key("id"));
        let event = object.and_then(|object| Event::from_object(object, context, limits));
        let event = match event {
            Ok(event) => event,
            Err(error) => return self.reject(index, line, &error),
        };
        let start = self.ndjson.len();
        if let Err(error) = serde_json::to_writer(&mut self.ndjson, &event) {
            // Serialising a validated event cannot fail; refuse it rather than panic.
            self.ndjson.truncate(start);
            self.rejected.push(Rejection {
                index,
                line,
                code: "invalid_event",
                message: error.to_string(),
            });
            return;
        }
        let size = self.ndjson.len() - start;
        if size > limits.max_event_bytes {
            self.ndjson.truncate(start);
            return self.reject(
                index,
                line,
                &EventError::TooLarge {
                    size,
                    max: limits.max_event_bytes,
                },
            );
        }
        self.ndjson.push(b'\n');
        if client_id {
            self.client_ids.push(self.ids.len() as u32);
        }
        self.ids.push(event.id);
    }

    /// Refuses the event at `index` (at `line`) for `error`.
    pub fn reject(&mut self, index: usize, line: Option<usize>, error: &EventError) {
        self.rejected.push(Rejection {
            index,
            line,
            code: error.code(),
            message: error.to_string(),
        });
    }
}

fn malformed(error: serde_json::Error) -> DecodeError {
    // The parser's own recursion limit (128) is deeper than any allowed event.
    if describe(&error) == "recursion limit exceeded" {
        return DecodeError::TooDeep {
            line: error.line(),
            column: error.column(),
        };
    }
    DecodeError::MalformedJson {
        line: error.line(),
        column: error.column(),
        message: describe(&error),
    }
}

/// serde_json's message without its trailing " at line L column C".
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str, format: BatchFormat) -> Result<DecodedBatch, DecodeError> {
        let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
        decode_batch(body.as_bytes(), format, &context, &Limits::default())
    }

    fn lines(batch: &DecodedBatch) -> Vec<Event> {
        batch
            .ndjson
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("queue lines are events"))
            .collect()
    }

    #[test]
    fn single_object_array_and_ndjson_decode() {
        let one = decode(r#"{"message":"a"}"#, BatchFormat::Json).expect("ok");
        assert_eq!(one.ids.len(), 1);
        let many = decode(r#"[{"message":"a"},{"message":"b"}]"#, BatchFormat::Json).expect("ok");
        assert_eq!(
            lines(&many)
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let nd = decode(
            "{\"message\":\"a\"}\n\n{\"message\":\"b\"}\r\n",
            BatchFormat::Ndjson,
        )
        .expect("ok");
        assert_eq!(nd.ids.len(), 2);
        assert_eq!(lines(&nd).len(), 2);
    }

    #[test]
    fn plain_text_is_one_event_per_line() {
        let batch = decode(
            "081109 203615 INFO dfs.DataNode: Receiving block\r\n\n  {\"not\": \"json\"}\n",
            BatchFormat::Text,
        )
        .expect("ok");
        let messages: Vec<String> = lines(&batch).into_iter().map(|e| e.message).collect();
        assert_eq!(
            messages,
            [
                "081109 203615 INFO dfs.DataNode: Receiving block",
                "  {\"not\": \"json\"}"
            ]
        );
        let limits = Limits {
            max_event_bytes: 300,
            ..Limits::default()
        };
        let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
        let body = format!("short\n{}\n", "long ".repeat(100));
        let batch = decode_batch(body.as_bytes(), BatchFormat::Text, &context, &limits)
            .expect("framing is fine");
        assert_eq!(batch.ids.len(), 1);
        assert_eq!(batch.rejected[0].code, "event_too_large");
        assert_eq!(batch.rejected[0].line, Some(2));
        assert!(matches!(
            decode("\n \n", BatchFormat::Text),
            Err(DecodeError::Empty)
        ));
    }

    #[test]
    fn invalid_events_are_reported_by_index_while_valid_ones_pass() {
        let batch = decode(
            r#"[{"message":"ok"}, 7, {"level":"info"}, {"message":"also ok"}]"#,
            BatchFormat::Json,
        )
        .expect("framing is fine");
        assert_eq!(batch.ids.len(), 2);
        let rejected: Vec<(usize, &str)> =
            batch.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(rejected, [(1, "invalid_type"), (2, "missing_message")]);
    }

    #[test]
    fn a_broken_ndjson_line_is_rejected_alone() {
        let batch = decode(
            "{\"message\":\"a\"}\n{\"message\":\n{\"message\":\"c\"}",
            BatchFormat::Ndjson,
        )
        .expect("framing is fine");
        assert_eq!(batch.ids.len(), 2);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].line, Some(2));
        assert_eq!(batch.rejected[0].code, "malformed_json");
    }

    #[test]
    fn unreadable_bodies_are_errors_with_a_location() {
        match decode("{\"message\": \"a\",\n  oops}", BatchFormat::Json) {
            Err(DecodeError::MalformedJson { line, column, .. }) => {
                assert_eq!((line, column), (2, 3))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            decode("", BatchFormat::Json).err(),
            Some(DecodeError::Empty)
        );
        assert_eq!(
            decode("\n\n", BatchFormat::Ndjson).err(),
            Some(DecodeError::Empty)
        );
        assert_eq!(
            decode("\"text\"", BatchFormat::Json).err(),
            Some(DecodeError::NotObjectOrArray("a string"))
        );
        let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
        let invalid = decode_batch(
            b"{\"message\":\"a\xff\"}",
            BatchFormat::Json,
            &context,
            &Limits::default(),
        );
        assert_eq!(invalid.err(), Some(DecodeError::InvalidUtf8 { offset: 13 }));
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_extreme_nesting_is_too_deep() {
        let batch = decode("\u{feff}{\"message\":\"a\"}", BatchFormat::Json).expect("ok");
        assert_eq!(batch.ids.len(), 1);
        let deep = format!(
            "{{\"message\":\"m\",\"a\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        let error = decode(&deep, BatchFormat::Json).expect_err("too deep");
        assert_eq!(error.code(), "too_deep");
    }

    #[test]
    fn limits_apply_per_event_and_per_batch() {
        let limits = Limits {
            max_event_bytes: 200,
            max_depth: 3,
            max_batch_events: 2,
        };
        let context = IngestContext::new("default", Timestamp::from_nanos(1), None);
        let big = format!(
            r#"[{{"message":"{}"}}, {{"message":"x","a":{{"b":{{"c":{{}}}}}}}}]"#,
            "y".repeat(300)
        );
        let batch =
            decode_batch(big.as_bytes(), BatchFormat::Json, &context, &limits).expect("framing");
        let codes: Vec<&str> = batch.rejected.iter().map(|r| r.code).collect();
        assert_eq!(codes, ["event_too_large", "too_deep"]);
        let three = r#"[{"message":"a"},{"message":"b"},{"message":"c"}]"#;
        assert_eq!(
            decode_batch(three.as_bytes(), BatchFormat::Json, &context, &limits).err(),
            Some(DecodeError::TooManyEvents { max: 2 })
        );
    }
}
