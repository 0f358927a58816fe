//! The JSON a webhook receives about one transition of one rule and group.

use meta::{AlertRule, AlertState};
use serde_json::{Value, json};

use crate::rule::format_duration;

/// The group of a state key (`field=value`), as `{"field", "value"}`.
pub fn group_json(group_key: &str) -> Value {
    match group_key.split_once('=') {
        Some((field, value)) => json!({"field": field, "value": value}),
        None => Value::Null,
    }
}

/// The key of a group's state: `""` without grouping, else `field=value`.
pub fn group_key(field: Option<&str>, value: &str) -> String {
    match field {
        None => String::new(),
        Some(field) => format!("{field}={value}"),
    }
}

/// Unix milliseconds as RFC 3339.
pub fn rfc3339(millis: i64) -> String {
    model::Timestamp::from_nanos(millis.saturating_mul(1_000_000)).to_rfc3339()
}

/// The notification of `state`'s current transition. Its `id` names the
/// transition, the same on every delivery of it, so a receiver can drop a
/// repeat (deliveries are at least once).
pub fn notification(rule: &AlertRule, state: &AlertState) -> Value {
    let spec = &rule.spec;
    json!({
        "id": format!("{}/{}/{}/{}", rule.id, state.group_key, state.state.name(), state.since),
        "rule": {
            "id": rule.id,
            "name": spec.name,
            "query": spec.query,
            "threshold": spec.threshold,
            "window": format_duration(spec.window_ms),
            "interval": format_duration(spec.interval_ms),
            "group_by": spec.group_by,
        },
        "tenant": rule.tenant,
        "state": state.state.name(),
        "count": state.last_count,
        "threshold": spec.threshold,
        "window": format_duration(spec.window_ms),
        "group": group_json(&state.group_key),
        "at": rfc3339(state.since),
    })
}
