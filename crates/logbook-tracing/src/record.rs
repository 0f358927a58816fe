//! Turning one tracing event, with the fields of its spans, into the JSON
//! object Logbook ingests.
//!
//! Layout (also in the crate docs): the modelled fields `timestamp`, `level`,
//! `message`, `service`, `host`, `trace_id` and `span_id` at the top; the
//! event's own fields flat beside them (they become attributes); `target` and
//! `location {module, file, line}`; the spans' fields merged under
//! `span {name, fields}`. An event field whose name the server or this crate
//! reads itself goes under `fields` instead, so it can never replace the
//! event's id, time or level.

use serde_json::{Map, Number, Value};
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};

/// Names of the object this crate writes itself.
const OWN_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "message",
    "service",
    "host",
    "trace_id",
    "span_id",
    "target",
    "location",
    "span",
    "fields",
];

/// Other names the server reads as modelled fields (its aliases): an event
/// field with one of these names would change the event's id, time, level,
/// message, service, host or trace context.
const SERVER_ALIASES: &[&str] = &[
    "id",
    "@timestamp",
    "time",
    "ts",
    "severity",
    "lvl",
    "msg",
    "service_name",
    "serviceName",
    "hostname",
    "traceId",
    "spanId",
];

/// The names of the trace context fields, read from the event or its spans.
pub(crate) const TRACE_ID: &str = "trace_id";
pub(crate) const SPAN_ID: &str = "span_id";

/// Records tracing field values as typed JSON values.
pub(crate) struct JsonFields<'a>(pub &'a mut Map<String, Value>);

impl JsonFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are kept as text.
        let json =
            Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, json);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let json =
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, json);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let json =
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, json);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// What the enclosing spans contribute: their fields merged outermost first
/// (an inner span's field replaces an outer one of the same name), the
/// innermost span's name, and the trace context found among them.
#[derive(Debug, Default)]
pub(crate) struct SpanContext {
    pub name: Option<&'static str>,
    pub fields: Map<String, Value>,
    pub trace_id: Option<Value>,
    pub span_id: Option<Value>,
}

impl SpanContext {
    /// Adds one span's fields; called from the outermost span inwards.
    pub fn enter(&mut self, name: &'static str, fields: &Map<String, Value>) {
        self.name = Some(name);
        for (key, value) in fields {
            match key.as_str() {
                TRACE_ID => self.trace_id = Some(value.clone()),
                SPAN_ID => self.span_id = Some(value.clone()),
                _ => {
                    self.fields.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// Who sends: the same for every event of the layer.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub service: String,
    pub host: Option<String>,
}

/// The Logbook event for one tracing event.
pub(crate) fn event_object(
    timestamp: String,
    metadata: &Metadata<'_>,
    mut fields: Map<String, Value>,
    spans: SpanContext,
    origin: &Origin,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("timestamp".into(), Value::String(timestamp));
    object.insert("level".into(), Value::from(level_name(*metadata.level())));
    let message = match fields.remove("message") {
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => fallback_message(metadata, &fields),
    };
    object.insert("message".into(), Value::String(message));
    object.insert("service".into(), Value::String(origin.service.clone()));
    if let Some(host) = &origin.host {
        object.insert("host".into(), Value::String(host.clone()));
    }
    // The event's own trace context wins over its spans'.
    let trace_id = fields.remove(TRACE_ID).or(spans.trace_id);
    let span_id = fields.remove(SPAN_ID).or(spans.span_id);
    for (key, value) in [(TRACE_ID, trace_id), (SPAN_ID, span_id)] {
        if let Some(value) = value {
            object.insert(key.into(), Value::String(as_text(value)));
        }
    }
    object.insert("target".into(), Value::from(metadata.target()));
    object.insert("location".into(), location(metadata));
    if let Some(name) = spans.name {
        let mut span = Map::new();
        span.insert("name".into(), Value::from(name));
        span.insert("fields".into(), Value::Object(spans.fields));
        object.insert("span".into(), Value::Object(span));
    }

    let mut clashing = Map::new();
    for (key, value) in fields {
        if is_reserved(&key, &value) {
            clashing.insert(key, value);
        } else {
            object.insert(key, value);
        }
    }
    if !clashing.is_empty() {
        object.insert("fields".into(), Value::Object(clashing));
    }
    object
}

/// Whether an event field must go under `fields` rather than beside the
/// modelled fields. `user_id` (`userId`) passes through to the server's
/// `user_id` when it is a string or a number, the types the server takes.
fn is_reserved(key: &str, value: &Value) -> bool {
    match key {
        "user_id" | "userId" => !(value.is_string() || value.is_number()),
        _ => OWN_KEYS.contains(&key) || SERVER_ALIASES.contains(&key),
    }
}

/// Logbook's name for a tracing level.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `{module, file, line}`, each present when the callsite knows it.
fn location(metadata: &Metadata<'_>) -> Value {
    let mut location = Map::new();
    if let Some(module) = metadata.module_path() {
        location.insert("module".into(), Value::from(module));
    }
    if let Some(file) = metadata.file() {
        location.insert("file".into(), Value::from(file));
    }
    if let Some(line) = metadata.line() {
        location.insert("line".into(), Value::from(line));
    }
    Value::Object(location)
}

/// An event without a message (`info!(retries = 3)`) still needs one, since
/// the server requires it: its fields as `name=value`, or the callsite's name.
fn fallback_message(metadata: &Metadata<'_>, fields: &Map<String, Value>) -> String {
    if fields.is_empty() {
        return metadata.name().to_owned();
    }
    let pairs: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{key}={}", as_text(value.clone())))
        .collect();
    pairs.join(" ")
}

/// A value as the plain string the server expects for ids.
fn as_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}
