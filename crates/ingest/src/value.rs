//! Small conversions every translator needs: ids as hex, and keeping a
//! protocol's own attribute names from being read as Logbook's fields.

use serde_json::{Map, Value};

/// The names [`model::Event`] reads its modelled fields from. A protocol
/// attribute with one of these names is kept under [`SHADOWED_PREFIX`]
/// instead, so it cannot become the event's id, time or level by accident.
const MODELLED_KEYS: &[&str] = &[
    "id",
    "timestamp",
    "@timestamp",
    "time",
    "ts",
    "service",
    "service_name",
    "serviceName",
    "level",
    "severity",
    "lvl",
    "message",
    "msg",
    "trace_id",
    "traceId",
    "span_id",
    "spanId",
    "host",
    "hostname",
    "user_id",
    "userId",
    "action",
    "actor",
    "target",
    "outcome",
];

/// Where an attribute whose name Logbook models is kept: `attribute.level`.
pub(crate) const SHADOWED_PREFIX: &str = "attribute.";

/// Inserts a protocol attribute into an event object, renaming it when its
/// name is one Logbook reads as a field of its own.
pub(crate) fn insert_attribute(object: &mut Map<String, Value>, key: String, value: Value) {
    insert_attribute_beside(object, key, value, &[]);
}

/// Like [`insert_attribute`], also renaming the names in `translated`: the
/// attributes the protocol's translator writes itself (`resource`, `scope`…),
/// which a client's attribute must not replace.
pub(crate) fn insert_attribute_beside(
    object: &mut Map<String, Value>,
    key: String,
    value: Value,
    translated: &[&str],
) {
    if MODELLED_KEYS.contains(&key.as_str()) || translated.contains(&key.as_str()) {
        object.insert(format!("{SHADOWED_PREFIX}{key}"), value);
    } else {
        object.insert(key, value);
    }
}

/// Lowercase hex of an id of `expected` bytes; `None` when it is absent,
/// of another length or all zeroes (what OTLP and W3C call invalid).
pub(crate) fn hex_id(bytes: &[u8], expected: usize) -> Option<String> {
    if bytes.len() != expected || bytes.iter().all(|byte| *byte == 0) {
        return None;
    }
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    Some(hex)
}

/// A time in nanoseconds since the epoch as [`model::Event`] reads it: a
/// number (read as ns by its size) for present-day times, RFC 3339 otherwise.
pub(crate) fn epoch_nanos(nanos: i64) -> Value {
    // `Timestamp::from_epoch` reads integers from 10^17 up as nanoseconds.
    if nanos >= 100_000_000_000_000_000 {
        Value::from(nanos)
    } else {
        Value::String(model::Timestamp::from_nanos(nanos).to_rfc3339())
    }
}

/// A float as JSON: a number when finite, else its name (`NaN`, `inf`).
pub(crate) fn float(value: f64) -> Value {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_unless_invalid() {
        assert_eq!(hex_id(&[0xab, 0x01], 2).as_deref(), Some("ab01"));
        assert_eq!(hex_id(&[0, 0], 2), None);
        assert_eq!(hex_id(&[1], 2), None);
        assert_eq!(hex_id(&[], 2), None);
    }

    #[test]
    fn modelled_names_are_kept_aside() {
        let mut object = Map::new();
        insert_attribute(&mut object, "level".into(), Value::from(3));
        insert_attribute(&mut object, "http.method".into(), Value::from("GET"));
        assert_eq!(object.get("attribute.level"), Some(&Value::from(3)));
        assert_eq!(object.get("http.method"), Some(&Value::from("GET")));
        assert!(!object.contains_key("level"));
    }
}
