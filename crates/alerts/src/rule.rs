//! What makes an alert rule valid: turns the JSON a tenant admin sends into a
//! [`AlertRuleSpec`], or says which field is wrong and why.

use std::time::Duration;

use meta::AlertRuleSpec;
use serde_json::{Map, Value};

use crate::target::WebhookUrl;

/// The fields the store counts by (`store::Stats`), so the only ones a rule
/// may group by.
pub const GROUP_FIELDS: [&str; 2] = ["service", "level"];

/// The longest rule name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The interval of a rule that names none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Bounds a rule must keep, from the server's configuration.
#[derive(Debug, Clone)]
pub struct RulePolicy {
    /// The most rules one tenant may have.
    pub max_rules_per_tenant: usize,
    /// The shortest interval and window.
    pub min_interval: Duration,
    /// The longest window and interval.
    pub max_window: Duration,
    /// Whether webhooks may point at loopback, private and other internal addresses.
    pub allow_private_targets: bool,
    /// The same bounds on the query as searches have.
    pub query_limits: query::Limits,
}

impl Default for RulePolicy {
    fn default() -> Self {
        RulePolicy {
            max_rules_per_tenant: 100,
            min_interval: Duration::from_secs(10),
            max_window: Duration::from_secs(24 * 3600),
            allow_private_targets: false,
            query_limits: query::Limits::default(),
        }
    }
}

/// Why a rule is refused: the field at fault, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    /// `invalid_rule`, `invalid_query`, `query_too_complex` or `forbidden_webhook_target`.
    pub code: &'static str,
    pub message: String,
    /// The byte offset in the query, for query errors.
    pub position: Option<usize>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        code: "invalid_rule",
        message: message.into(),
        position: None,
    }
}

/// The fields of a request body, each still to be checked; absent ones are `None`.
#[derive(Debug, Default)]
pub struct RuleInput {
    name: Option<Value>,
    query: Option<Value>,
    threshold: Option<Value>,
    window: Option<Value>,
    interval: Option<Value>,
    /// `Some(Value::Null)` removes the grouping.
    group_by: Option<Value>,
    webhook: Option<Value>,
}

impl RuleInput {
    /// Takes the known fields of a JSON object, refusing any other.
    pub fn from_json(object: Map<String, Value>) -> Result<RuleInput, RuleError> {
        let mut input = RuleInput::default();
        for (key, value) in object {
            let slot = match key.as_str() {
                "name" => &mut input.name,
                "query" => &mut input.query,
                "threshold" => &mut input.threshold,
                "window" => &mut input.window,
                "interval" => &mut input.interval,
                "group_by" => &mut input.group_by,
                "webhook" => &mut input.webhook,
                _ => {
                    return Err(invalid(
                        "body",
                        format!(
                            "unknown field {key:?}; a rule has name, query, threshold, window, interval, group_by and webhook"
                        ),
                    ));
                }
            };
            *slot = Some(value);
        }
        Ok(input)
    }

    /// The rule these fields make, over `base` (the stored rule, for a
    /// partial change) or on their own (a new or replaced rule, which must
    /// name everything but `interval` and `group_by`).
    pub fn resolve(
        self,
        base: Option<&AlertRuleSpec>,
        policy: &RulePolicy,
    ) -> Result<AlertRuleSpec, RuleError> {
        let required = |field: &'static str| invalid(field, format!("{field} is required"));
        let name = match (self.name, base) {
            (Some(value), _) => name(value)?,
            (None, Some(base)) => base.name.clone(),
            (None, None) => return Err(required("name")),
        };
        let query = match (self.query, base) {
            (Some(value), _) => query_text(value, policy)?,
            (None, Some(base)) => base.query.clone(),
            (None, None) => return Err(required("query")),
        };
        let threshold = match (self.threshold, base) {
            (Some(value), _) => threshold(value)?,
            (None, Some(base)) => base.threshold,
            (None, None) => return Err(required("threshold")),
        };
        let window_ms = match (self.window, base) {
            (Some(value), _) => bounded_duration("window", value, policy)?,
            (None, Some(base)) => base.window_ms,
            (None, None) => return Err(required("window")),
        };
        let interval_ms = match (self.interval, base) {
            (Some(value), _) => bounded_duration("interval", value, policy)?,
            (None, Some(base)) => base.interval_ms,
            (None, None) => millis(DEFAULT_INTERVAL.clamp(policy.min_interval, policy.max_window)),
        };
        let group_by = match (self.group_by, base) {
            (Some(value), _) => group_by(value)?,
            (None, Some(base)) => base.group_by.clone(),
            (None, None) => None,
        };
        let webhook_url = match (self.webhook, base) {
            (Some(value), _) => webhook(value, policy)?,
            (None, Some(base)) => base.webhook_url.clone(),
            (None, None) => return Err(required("webhook")),
        };
        Ok(AlertRuleSpec {
            name,
            query,
            threshold,
            window_ms,
            interval_ms,
            group_by,
            webhook_url,
        })
    }
}

fn name(value: Value) -> Result<String, RuleError> {
    match value {
        Value::String(text)
            if !text.trim().is_empty() && text.chars().count() <= MAX_NAME_CHARS =>
        {
            Ok(text)
        }
        _ => Err(invalid(
            "name",
            format!("name must be a non-blank string of at most {MAX_NAME_CHARS} characters"),
        )),
    }
}

/// The query as written, once it parses within the search limits.
fn query_text(value: Value, policy: &RulePolicy) -> Result<String, RuleError> {
    let Value::String(text) = value else {
        return Err(invalid(
            "query",
            "query must be a string in the search language (e.g. \"level:error service:payments\")",
        ));
    };
    query::parse_within(&text, &policy.query_limits).map_err(|error| RuleError {
        field: "query",
        code: match error.kind {
            query::ParseErrorKind::Syntax => "invalid_query",
            query::ParseErrorKind::TooComplex => "query_too_complex",
        },
        message: format!("{} (in query at byte {})", error.message, error.position),
        position: Some(error.position),
    })?;
    Ok(text)
}

fn threshold(value: Value) -> Result<i64, RuleError> {
    value
        .as_u64()
        .and_then(|number| i64::try_from(number).ok())
        .ok_or_else(|| {
            invalid(
                "threshold",
                "threshold must be a whole number, 0 or more: the rule fires when the count is above it",
            )
        })
}

fn bounded_duration(
    field: &'static str,
    value: Value,
    policy: &RulePolicy,
) -> Result<i64, RuleError> {
    let bounds = format!(
        "from {} to {}",
        format_duration(millis(policy.min_interval)),
        format_duration(millis(policy.max_window))
    );
    let duration = value.as_str().and_then(parse_duration).ok_or_else(|| {
        invalid(
            field,
            format!(
                "{field} must be a duration such as 30s, 5m or 1h (units ms, s, m, h, d), {bounds}"
            ),
        )
    })?;
    if duration < policy.min_interval || duration > policy.max_window {
        return Err(invalid(field, format!("{field} must be {bounds}")));
    }
    Ok(millis(duration))
}

fn group_by(value: Value) -> Result<Option<String>, RuleError> {
    match value {
        Value::Null => Ok(None),
        Value::String(field) if GROUP_FIELDS.contains(&field.as_str()) => Ok(Some(field)),
        other => Err(invalid(
            "group_by",
            format!(
                "group_by must be one of {} (the fields the store counts by) or null; got {other}",
                GROUP_FIELDS.join(", ")
            ),
        )),
    }
}

fn webhook(value: Value, policy: &RulePolicy) -> Result<String, RuleError> {
    let url = match value {
        Value::Object(mut object) if object.len() == 1 => match object.remove("url") {
            Some(Value::String(url)) => Some(url),
            _ => None,
        },
        _ => None,
    };
    let Some(url) = url else {
        return Err(invalid(
            "webhook",
            "webhook must be an object with one field, url (e.g. {\"url\": \"https://hooks.example/x\"})",
        ));
    };
    let parsed = WebhookUrl::parse(&url).map_err(|message| invalid("webhook.url", message))?;
    if !policy.allow_private_targets
        && let Some(refusal) = parsed.literal_refusal()
    {
        return Err(RuleError {
            field: "webhook.url",
            code: "forbidden_webhook_target",
            message: format!(
                "{refusal}; webhooks may not point at internal addresses (alerts.allow_private_targets)"
            ),
            position: None,
        });
    }
    Ok(url)
}

/// Reads `500ms`, `30s`, `5m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_millis).map(Duration::from_millis)
}

/// Milliseconds in the largest unit that divides them: `300000` is `5m`.
pub fn format_duration(millis: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis > 0 && millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(body: Value) -> Result<AlertRuleSpec, RuleError> {
        let Value::Object(object) = body else {
            panic!("an object")
        };
        RuleInput::from_json(object)?.resolve(None, &RulePolicy::default())
    }

    fn example() -> Value {
        json!({"name": "payments errors", "query": "level:error service:payments", "threshold": 50,
               "window": "5m", "interval": "30s", "group_by": "service",
               "webhook": {"url": "https://hooks.example/x"}})
    }

    #[test]
    fn the_example_of_the_issue_is_a_valid_rule() {
        let spec = resolve(example()).expect("valid");
        assert_eq!(spec.threshold, 50);
        assert_eq!(spec.window_ms, 300_000);
        assert_eq!(spec.interval_ms, 30_000);
        assert_eq!(spec.group_by.as_deref(), Some("service"));
        assert_eq!(spec.webhook_url, "https://hooks.example/x");
    }

    #[test]
    fn each_bad_field_is_named() {
        for (field, value, named) in [
            ("name", json!(""), "name"),
            ("query", json!("level:error AND ("), "query"),
            ("threshold", json!(-1), "threshold"),
            ("threshold", json!(1.5), "threshold"),
            ("threshold", json!("50"), "threshold"),
            ("window", json!("5 minutes"), "window"),
            ("window", json!("25h"), "window"),
            ("interval", json!("1s"), "interval"),
            ("group_by", json!("host"), "group_by"),
            ("webhook", json!("https://hooks.example/x"), "webhook"),
            (
                "webhook",
                json!({"url": "ftp://hooks.example/x"}),
                "webhook.url",
            ),
            (
                "webhook",
                json!({"url": "http://10.1.2.3/x"}),
                "webhook.url",
            ),
            ("extra", json!(1), "body"),
        ] {
            let mut body = example();
            body[field] = value.clone();
            let error = resolve(body).expect_err(&format!("{field} = {value}"));
            assert_eq!(error.field, named, "{field} = {value}: {error}");
        }
        let error = resolve(json!({"query": "x"})).expect_err("no name");
        assert_eq!(
            (error.field, error.message.as_str()),
            ("name", "name is required")
        );
    }

    #[test]
    fn unsupported_groupings_name_the_supported_ones() {
        let mut body = example();
        body["group_by"] = json!("host");
        let error = resolve(body).expect_err("host");
        assert!(error.message.contains("service, level"), "{error}");
    }

    #[test]
    fn a_partial_change_keeps_the_other_fields() {
        let base = resolve(example()).expect("valid");
        let Value::Object(change) = json!({"threshold": 0, "group_by": null}) else {
            panic!()
        };
        let changed = RuleInput::from_json(change)
            .expect("known fields")
            .resolve(Some(&base), &RulePolicy::default())
            .expect("valid");
        assert_eq!(changed.threshold, 0);
        assert_eq!(changed.group_by, None);
        assert_eq!(changed.query, base.query);
    }

    #[test]
    fn durations_read_and_print_in_units() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in [
            "",
            "5",
            "m",
            "0s",
            "-1s",
            "1.5m",
            "1w",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(300_000), "5m");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(1_500), "1500ms");
    }
}
