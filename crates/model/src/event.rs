//! The event as Logbook stores it, and the rules that turn a client's JSON object into one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decode::{IngestContext, Limits};
use crate::level::Level;
use crate::source::Source;
use crate::stream::Stream;
use crate::timestamp::Timestamp;

/// A normalised log or activity event.
///
/// This is the form that travels through the queue and is returned by the query
/// API. Client fields Logbook does not model are kept in `attributes`, so nothing
/// a service sends is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Unique within a tenant's stream; a ULID unless the client chose one.
    pub id: String,
    pub tenant: String,
    /// Logs (left out of the JSON, so log events read as they always did) or audit.
    #[serde(default, skip_serializing_if = "Stream::is_logs")]
    pub stream: Stream,
    /// Who wrote an audit event (`client` or `logbook`), set by the server,
    /// never taken from the client's JSON; absent on log events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// An audit event's position in its tenant's trail, given by the store when
    /// it appends the event; absent on log events and before storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the event happened, by the client's clock (the receive time if absent).
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// When Logbook accepted it.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The network address the event was received from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Everything else the client sent, e.g. `{"metadata": {"orderId": "ORD-1"}}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// Why a JSON value is not a valid event. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("an event needs a non-empty `message` (or, for activity events, an `action`)")]
    MissingMessage,
    #[error("field `level`: {0}")]
    BadLevel(String),
    #[error("field `timestamp`: {0}")]
    BadTimestamp(String),
    #[error("field `id` must be 1 to {max} characters of letters, digits, `-`, `_`, `.` or `:`")]
    BadId { max: usize },
    #[error("event nests {depth} levels deep; the limit is {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("event is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error(
        "audit events are append-only: the server assigns their `id`, a client cannot choose one"
    )]
    AuditIdChosen,
    #[error("service `{RESERVED_SERVICE}` is reserved for the events Logbook records about itself")]
    ReservedService,
    /// A required audit field is absent; names it (`action`, `actor`, `actor.id`…).
    #[error("`{0}` is missing: {AUDIT_RULE}")]
    MissingAuditField(&'static str),
}

/// What every audit event needs, as the API and the README state it.
const AUDIT_RULE: &str = "an audit event needs `action` and an actor (`actor` with an `id`, or `userId`); a `target` needs `type` and `id`";

/// The service name of the security events Logbook writes to the audit stream;
/// clients cannot send audit events under it.
pub const RESERVED_SERVICE: &str = "logbook";

impl EventError {
    /// A stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotAnObject(_) | EventError::WrongType { .. } => "invalid_type",
            EventError::MissingMessage => "missing_message",
            EventError::BadLevel(_) => "invalid_level",
            EventError::BadTimestamp(_) => "invalid_timestamp",
            EventError::BadId { .. } => "invalid_id",
            EventError::TooDeep { .. } => "too_deep",
            EventError::TooLarge { .. } => "event_too_large",
            EventError::AuditIdChosen => "invalid_id",
            EventError::ReservedService => "reserved_service",
            EventError::MissingAuditField(_) => "missing_field",
        }
    }
}

/// The longest id a client may choose.
pub const MAX_ID_LEN: usize = 128;

/// The client field names each modelled field is read from, first match wins.
const ID_KEYS: &[&str] = &["id"];
const TIMESTAMP_KEYS: &[&str] = &["timestamp", "@timestamp", "time", "ts"];
const SERVICE_KEYS: &[&str] = &["service", "service_name", "serviceName"];
const LEVEL_KEYS: &[&str] = &["level", "severity", "lvl"];
const MESSAGE_KEYS: &[&str] = &["message", "msg"];
const TRACE_KEYS: &[&str] = &["trace_id", "traceId"];
const SPAN_KEYS: &[&str] = &["span_id", "spanId"];
const HOST_KEYS: &[&str] = &["host", "hostname"];
const USER_KEYS: &[&str] = &["user_id", "userId"];

impl Event {
    /// Validates and normalises one client object.
    pub fn from_object(
        mut object: Map<String, Value>,
        context: &IngestContext,
        limits: &Limits,
    ) -> Result<Event, EventError> {
        let depth = object.values().map(depth_of).max().unwrap_or(0) + 1;
        if depth > limits.max_depth {
            return Err(EventError::TooDeep {
                depth,
                max: limits.max_depth,
            });
        }

        let id = match take_string(&mut object, ID_KEYS, "id")? {
            // A chosen id replaces an earlier event with that id: never in the audit trail.
            Some(_) if context.stream == Stream::Audit => return Err(EventError::AuditIdChosen),
            Some(id) if is_valid_id(&id) => id,
            Some(_) => return Err(EventError::BadId { max: MAX_ID_LEN }),
            None => context.new_id(),
        };
        let timestamp = match take(&mut object, TIMESTAMP_KEYS) {
            None | Some(Value::Null) => context.received_at,
            Some(value) => parse_timestamp(&value)?,
        };
        let level = match take(&mut object, LEVEL_KEYS) {
            None | Some(Value::Null) => Level::Info,
            Some(value) => parse_level(&value)?,
        };
        let service = take_string(&mut object, SERVICE_KEYS, "service")?;
        if context.stream == Stream::Audit && service.as_deref() == Some(RESERVED_SERVICE) {
            return Err(EventError::ReservedService);
        }
        let trace_id = take_string(&mut object, TRACE_KEYS, "trace_id")?;
        let span_id = take_string(&mut object, SPAN_KEYS, "span_id")?;
        let host = take_string(&mut object, HOST_KEYS, "host")?;
        let user_id = take_scalar_string(&mut object, USER_KEYS, "user_id")?;
        if context.stream == Stream::Audit {
            // An audit event's rule is `action` and an actor; its message is
            // optional (the action stands in), so `action` is checked first.
            crate::audit_schema::require_action(&object)?;
        }
        let message = match take_string(&mut object, MESSAGE_KEYS, "message")? {
            Some(message) if !message.is_empty() => message,
            _ => match object.get("action") {
                // An activity event: its action is its message, and stays an attribute.
                Some(Value::String(action)) if !action.is_empty() => action.clone(),
                Some(other) if !other.is_null() && !other.is_string() => {
                    return Err(EventError::WrongType {
                        field: "action",
                        expected: "a string",
                        got: type_name(other),
                    });
                }
                _ => return Err(EventError::MissingMessage),
            },
        };

        if context.stream == Stream::Audit {
            crate::audit_schema::normalize(&mut object, user_id.as_deref())?;
        }

        Ok(Event {
            id,
            tenant: context.tenant.clone(),
            stream: context.stream,
            source: (context.stream == Stream::Audit).then_some(Source::Client),
            seq: None,
            timestamp,
            received_at: context.received_at,
            service,
            level,
            message,
            trace_id,
            span_id,
            host,
            user_id,
            source_ip: context.source_ip.clone(),
            attributes: object,
        })
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes and returns the value of the first present key among `keys`.
fn take(object: &mut Map<String, Value>, keys: &[&str]) -> Option<Value> {
    keys.iter().find_map(|key| object.remove(*key))
}

fn take_string(
    object: &mut Map<String, Value>,
    keys: &[&str],
    field: &'static str,
) -> Result<Option<String>, EventError> {
    take_text(object, keys, field, false)
}

/// Like [`take_string`], but also accepts a number (user ids are often numeric).
fn take_scalar_string(
    object: &mut Map<String, Value>,
    keys: &[&str],
    field: &'static str,
) -> Result<Option<String>, EventError> {
    take_text(object, keys, field, true)
}

fn take_text(
    object: &mut Map<String, Value>,
    keys: &[&str],
    field: &'static str,
    numbers_too: bool,
) -> Result<Option<String>, EventError> {
    match take(object, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) if numbers_too => Ok(Some(number.to_string())),
        Some(other) => Err(EventError::WrongType {
            field,
            expected: if numbers_too {
                "a string or number"
            } else {
                "a string"
            },
            got: type_name(&other),
        }),
    }
}

fn parse_timestamp(value: &Value) -> Result<Timestamp, EventError> {
    let parsed = match value {
        Value::String(text) => Timestamp::parse(text),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Timestamp::from_epoch(integer),
            None => match number.as_f64() {
                Some(seconds) => Timestamp::from_epoch_seconds_f64(seconds),
                None => Timestamp::parse(&number.to_string()),
            },
        },
        other => {
            return Err(EventError::WrongType {
                field: "timestamp",
                expected: "an RFC 3339 string or an epoch number",
                got: type_name(other),
            });
        }
    };
    parsed.map_err(|error| EventError::BadTimestamp(error.to_string()))
}

fn parse_level(value: &Value) -> Result<Level, EventError> {
    match value {
        Value::String(text) => text
            .parse::<Level>()
            .map_err(|error| EventError::BadLevel(error.to_string())),
        Value::Number(number) => number.as_u64().and_then(Level::from_syslog).ok_or_else(|| {
            EventError::BadLevel(format!("{number} is not a syslog severity (0 to 7)"))
        }),
        other => Err(EventError::WrongType {
            field: "level",
            expected: "a string or a syslog severity number",
            got: type_name(other),
        }),
    }
}

/// How deeply a value nests: a scalar is 0, `{}` or `[]` is 1.
fn depth_of(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// The JSON type of a value, as error messages name it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> IngestContext {
        IngestContext::new(
            "default",
            Timestamp::from_nanos(42),
            Some("10.0.0.1".into()),
        )
    }

    fn event(value: Value) -> Result<Event, EventError> {
        let Value::Object(object) = value else {
            panic!("test input must be an object")
        };
        Event::from_object(object, &context(), &Limits::default())
    }

    #[test]
    fn the_issue_payload_normalises() {
        let event = event(json!({
            "service": "order-service", "level": "ERROR", "message": "Payment failed",
            "userId": "123", "timestamp": "2026-02-18T12:00:00Z",
            "metadata": {"orderId": "ORD-98765", "retryCount": 1}
        }))
        .expect("valid");
        assert_eq!(event.service.as_deref(), Some("order-service"));
        assert_eq!(event.level, Level::Error);
        assert_eq!(event.user_id.as_deref(), Some("123"));
        assert_eq!(event.timestamp.to_rfc3339(), "2026-02-18T12:00:00Z");
        assert_eq!(event.received_at, Timestamp::from_nanos(42));
        assert_eq!(event.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            Value::Object(event.attributes),
            json!({"metadata": {"orderId": "ORD-98765", "retryCount": 1}})
        );
        assert_eq!(event.id.len(), 26, "a ULID is assigned");
    }

    #[test]
    fn an_activity_event_uses_its_action_as_message() {
        let event = event(
            json!({"userId": 12345, "action": "User_Login", "metadata": {"ip": "192.168.1.1"}}),
        )
        .expect("valid");
        assert_eq!(event.message, "User_Login");
        assert_eq!(event.user_id.as_deref(), Some("12345"));
        assert_eq!(event.level, Level::Info);
        assert_eq!(event.timestamp, event.received_at);
        assert_eq!(event.attributes["action"], json!("User_Login"));
    }

    #[test]
    fn client_ids_and_unknown_fields_are_kept() {
        let event =
            event(json!({"id": "abc-1", "message": "m", "region": "eu", "tenant": "other"}))
                .expect("valid");
        assert_eq!(event.id, "abc-1");
        assert_eq!(event.tenant, "default", "a client cannot choose its tenant");
        assert_eq!(event.attributes["region"], json!("eu"));
        assert_eq!(event.attributes["tenant"], json!("other"));
    }

    #[test]
    fn a_client_cannot_choose_its_stream() {
        let logs = event(json!({"id": "s-1", "message": "m", "stream": "audit"})).expect("valid");
        assert_eq!(
            logs.stream,
            Stream::Logs,
            "a client cannot choose its stream"
        );
        assert_eq!(logs.attributes["stream"], json!("audit"));
        let text = serde_json::to_value(&logs).expect("serialises");
        assert_eq!(text.get("stream"), None, "log events carry no stream field");
        assert_eq!(text["attributes"]["stream"], json!("audit"));

        let Value::Object(object) =
            json!({"message": "m", "action": "a", "userId": "u", "stream": "logs"})
        else {
            unreachable!()
        };
        let audit = Event::from_object(
            object,
            &context().with_stream(Stream::Audit),
            &Limits::default(),
        )
        .expect("valid");
        assert_eq!(audit.stream, Stream::Audit);
        assert_eq!(audit.tenant, "default");
        assert_eq!(audit.attributes["stream"], json!("logs"));
        let text = serde_json::to_value(&audit).expect("serialises");
        assert_eq!(text["stream"], json!("audit"));
        let back: Event = serde_json::from_value(text).expect("deserialises");
        assert_eq!(back, audit);
    }

    #[test]
    fn audit_events_cannot_choose_their_id_or_pose_as_logbook() {
        let audit = |value: Value| {
            let Value::Object(object) = value else {
                unreachable!()
            };
            Event::from_object(
                object,
                &context().with_stream(Stream::Audit),
                &Limits::default(),
            )
        };
        assert_eq!(
            audit(json!({"id": "01ABC", "action": "user.enable", "userId": "u"})),
            Err(EventError::AuditIdChosen)
        );
        assert_eq!(
            audit(json!({"service": "logbook", "action": "user.enable", "userId": "u"})),
            Err(EventError::ReservedService)
        );
        assert!(audit(json!({"service": "billing", "action": "refund", "userId": "u"})).is_ok());
        // Log events keep both freedoms.
        assert!(event(json!({"id": "x-1", "service": "logbook", "message": "m"})).is_ok());
    }

    #[test]
    fn log_events_serialise_as_before_the_stream_existed() {
        let logs = event(json!({"id": "x", "message": "m"})).expect("valid");
        let text = serde_json::to_string(&logs).expect("serialises");
        assert!(
            text.starts_with(r#"{"id":"x","tenant":"default","timestamp":"#),
            "{text}"
        );
        assert!(!text.contains("stream"), "{text}");
        let old = r#"{"id":"x","tenant":"default","timestamp":"2026-02-18T12:00:00Z","received_at":"2026-02-18T12:00:00Z","level":"info","message":"m"}"#;
        let read: Event = serde_json::from_str(old).expect("an event without a stream field");
        assert_eq!(read.stream, Stream::Logs);
    }

    #[test]
    fn invalid_events_say_which_field_is_wrong() {
        let cases = [
            (json!({"level": "info"}), "missing_message"),
            (json!({"message": ""}), "missing_message"),
            (json!({"action": 5}), "invalid_type"),
            (json!({"message": 5}), "invalid_type"),
            (json!({"message": "m", "service": ["a"]}), "invalid_type"),
            (json!({"message": "m", "level": "loud"}), "invalid_level"),
            (json!({"message": "m", "level": 9}), "invalid_level"),
            (
                json!({"message": "m", "timestamp": "soon"}),
                "invalid_timestamp",
            ),
            (json!({"message": "m", "timestamp": true}), "invalid_type"),
            (json!({"message": "m", "id": "has space"}), "invalid_id"),
            (
                json!({"message": "m", "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": {"r": {"s": {"t": {"u": 1}}}}}}}}}}}}}}}}}}}}}),
                "too_deep",
            ),
        ];
        for (input, code) in cases {
            let error = event(input.clone()).expect_err(&input.to_string());
            assert_eq!(error.code(), code, "{input}: {error}");
        }
    }

    #[test]
    fn the_event_round_trips_through_json() {
        let original = event(json!({"message": "m", "service": "s", "metadata": {"k": [1, 2]}}))
            .expect("valid");
        let text = serde_json::to_string(&original).expect("serialises");
        let back: Event = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, original);
    }
}
