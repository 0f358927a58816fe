//! OTLP log records → Logbook events.

use model::{EventError, Level};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

use super::Encoding;
use super::split::{self, Raw};
use crate::value::{epoch_nanos, float, hex_id, insert_attribute_beside};

/// The attributes this translator writes; a record attribute of the same
/// name is kept as `attribute.<name>`.
const TRANSLATED: &[&str] = &[
    "resource",
    "scope",
    "body",
    "severity_text",
    "severity_number",
    "event_name",
    "trace_flags",
];
use crate::{Batch, IngestError, bounds};

/// Reads an `ExportLogsServiceRequest` and adds each of its log records to
/// `batch`, in order (resource by resource, scope by scope). Each resource,
/// scope and record is decoded on its own, and only if its size as sent is
/// within the event limit; otherwise its records are refused as too large
/// without being decoded.
pub fn decode(body: &[u8], encoding: Encoding, batch: &mut Batch) -> Result<(), IngestError> {
    // resource_logs (1) → scope_logs (2) → log_records (2).
    let max = batch.max_messages();
    let resources = match encoding {
        Encoding::Protobuf => {
            bounds::protobuf(body, &[1, 2, 2], max)?;
            split::protobuf(body)?
        }
        Encoding::Json => {
            bounds::json(body, &["resourceLogs", "scopeLogs", "logRecords"], &[], max)?;
            split::json(body)?
        }
    };
    let limit = batch.max_event_bytes();
    for raw in resources {
        let resource_size = raw.resource.map_or(0, Raw::len);
        let resource = match raw.resource {
            Some(part) if resource_size <= limit => {
                let resource: Resource = part
                    .decode()
                    .map_err(|error| malformed("resource", &error))?;
                ResourceFields::new(resource.attributes)
            }
            _ => ResourceFields::new(Vec::new()),
        };
        for scope_part in raw.scopes {
            let scope_size = scope_part.scope.map_or(0, Raw::len);
            let scope = match scope_part.scope {
                Some(part) if resource_size + scope_size <= limit => {
                    let scope: InstrumentationScope =
                        part.decode().map_err(|error| malformed("scope", &error))?;
                    scope_value(scope)
                }
                _ => None,
            };
            for record in scope_part.records {
                let size = resource_size + scope_size + record.len();
                if size > limit {
                    batch.add(Err(EventError::TooLarge { size, max: limit }))?;
                    continue;
                }
                let record: LogRecord = record
                    .decode()
                    .map_err(|error| malformed("log record", &error))?;
                batch.add(Ok(event(&resource, scope.as_ref(), record)))?;
            }
        }
    }
    Ok(())
}

fn malformed(part: &str, error: &str) -> IngestError {
    IngestError::malformed(format!("an OTLP {part} could not be read: {error}"))
}

/// What a resource gives each of its records.
struct ResourceFields {
    /// `service.name`.
    service: Option<String>,
    /// `host.name`.
    host: Option<String>,
    /// Every other resource attribute, kept under `resource`.
    others: Map<String, Value>,
}

impl ResourceFields {
    fn new(attributes: Vec<KeyValue>) -> ResourceFields {
        let mut fields = ResourceFields {
            service: None,
            host: None,
            others: Map::new(),
        };
        for KeyValue { key, value, .. } in attributes {
            let value = any_value(value);
            match (key.as_str(), value) {
                ("service.name", Value::String(service)) => fields.service = Some(service),
                ("host.name", Value::String(host)) => fields.host = Some(host),
                (_, value) => {
                    fields.others.insert(key, value);
                }
            }
        }
        fields
    }
}

/// The scope as an attribute: `{"name", "version", "attributes"}`, leaving
/// out what is empty; none for an empty scope.
fn scope_value(scope: InstrumentationScope) -> Option<Value> {
    let mut object = Map::new();
    if !scope.name.is_empty() {
        object.insert("name".into(), Value::String(scope.name));
    }
    if !scope.version.is_empty() {
        object.insert("version".into(), Value::String(scope.version));
    }
    if !scope.attributes.is_empty() {
        object.insert(
            "attributes".into(),
            Value::Object(key_values(scope.attributes)),
        );
    }
    (!object.is_empty()).then_some(Value::Object(object))
}

/// One log record as the object [`model::Event::from_object`] reads.
fn event(
    resource: &ResourceFields,
    scope: Option<&Value>,
    record: LogRecord,
) -> Map<String, Value> {
    let mut object = Map::new();
    let time = match record.time_unix_nano {
        0 => record.observed_time_unix_nano,
        time => time,
    };
    if time != 0 {
        let nanos = i64::try_from(time).unwrap_or(i64::MAX);
        object.insert("timestamp".into(), epoch_nanos(nanos));
    }
    object.insert("level".into(), Value::from(level(&record).as_str()));
    if !record.severity_text.is_empty() {
        object.insert("severity_text".into(), Value::String(record.severity_text));
    }
    if record.severity_number != 0 {
        object.insert(
            "severity_number".into(),
            Value::from(record.severity_number),
        );
    }
    match record.body.and_then(|body| body.value) {
        Some(any_value::Value::StringValue(text)) => {
            object.insert("message".into(), Value::String(text));
        }
        Some(other) => {
            let body = json_value(other);
            object.insert("message".into(), Value::String(body.to_string()));
            object.insert("body".into(), body);
        }
        None => {}
    }
    if !record.event_name.is_empty() {
        if !object.contains_key("message") {
            object.insert("message".into(), Value::String(record.event_name.clone()));
        }
        object.insert("event_name".into(), Value::String(record.event_name));
    }
    if let Some(service) = &resource.service {
        object.insert("service".into(), Value::String(service.clone()));
    }
    if let Some(host) = &resource.host {
        object.insert("host".into(), Value::String(host.clone()));
    }
    if let Some(trace_id) = hex_id(&record.trace_id, 16) {
        object.insert("trace_id".into(), Value::String(trace_id));
    }
    if let Some(span_id) = hex_id(&record.span_id, 8) {
        object.insert("span_id".into(), Value::String(span_id));
    }
    if record.flags & 0xff != 0 {
        object.insert("trace_flags".into(), Value::from(record.flags & 0xff));
    }
    if !resource.others.is_empty() {
        object.insert("resource".into(), Value::Object(resource.others.clone()));
    }
    if let Some(scope) = scope {
        object.insert("scope".into(), scope.clone());
    }
    for KeyValue { key, value, .. } in record.attributes {
        let value = any_value(value);
        match key.as_str() {
            // The semantic conventions' user id is Logbook's.
            "user.id" | "enduser.id" if !object.contains_key("user_id") && is_scalar(&value) => {
                object.insert("user_id".into(), value);
            }
            _ => insert_attribute_beside(&mut object, key, value, TRANSLATED),
        }
    }
    object
}

/// The level of a record: its severity number's range, or, without one, its
/// severity text if Logbook knows the name; info otherwise.
fn level(record: &LogRecord) -> Level {
    match record.severity_number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => Level::parse(&record.severity_text).unwrap_or(Level::Info),
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_))
}

/// Attributes as a JSON object, in their order; a repeated key keeps its last value.
fn key_values(attributes: Vec<KeyValue>) -> Map<String, Value> {
    attributes
        .into_iter()
        .map(|KeyValue { key, value, .. }| (key, any_value(value)))
        .collect()
}

/// An `AnyValue` as JSON; an empty one is null.
fn any_value(value: Option<AnyValue>) -> Value {
    value
        .and_then(|value| value.value)
        .map(json_value)
        .unwrap_or(Value::Null)
}

/// JSON for each kind of value: strings, booleans and numbers as themselves,
/// arrays and key-value lists nested, bytes in base64.
fn json_value(value: any_value::Value) -> Value {
    use base64::Engine as _;
    match value {
        any_value::Value::StringValue(text) => Value::String(text),
        any_value::Value::BoolValue(flag) => Value::Bool(flag),
        any_value::Value::IntValue(number) => Value::from(number),
        any_value::Value::DoubleValue(number) => float(number),
        any_value::Value::ArrayValue(array) => Value::Array(
            array
                .values
                .into_iter()
                .map(|item| any_value(Some(item)))
                .collect(),
        ),
        any_value::Value::KvlistValue(list) => Value::Object(key_values(list.values)),
        any_value::Value::BytesValue(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        // An index into a profile's string table: logs carry no such table.
        any_value::Value::StringValueStrindex(index) => Value::from(index),
    }
}
