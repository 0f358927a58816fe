//! The shape of an audit event: who (`actor`) did what (`action`) to which
//! resource (`target`), with what `outcome` and why (`reason`).
//!
//! Clients may send `actor` as an object (`id`, `type`, `name` or
//! `display_name`/`displayName`), as a plain id string, or only `userId` (the
//! activity payload `{"userId":"12345","action":"User_Login"}`); every form
//! becomes `actor: {"id", "type", "name"?}` with `type` `user` unless given.
//! `target` is `{"type", "id"}`, `outcome` one of `success` (the default),
//! `failure` or `denied`; `user_agent`/`userAgent` and `metadata` are kept.
//! Logbook's own security events use the same shape.

use serde_json::{Map, Value, json};

use crate::event::EventError;

const OUTCOMES: &[&str] = &["success", "failure", "denied"];

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn invalid(field: &'static str, expected: &'static str, got: &Value) -> EventError {
    EventError::WrongType {
        field,
        expected,
        got: crate::event::type_name(got),
    }
}

/// Checks the `action` every audit event needs: a missing, null or empty one
/// is `missing_field`, one of another type `invalid_type`.
pub(crate) fn require_action(attributes: &Map<String, Value>) -> Result<(), EventError> {
    match attributes.get("action") {
        Some(Value::String(action)) if !action.is_empty() => Ok(()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(EventError::MissingAuditField("action"))
        }
        Some(other) => Err(invalid("action", "a non-empty string", other)),
    }
}

/// Normalises the audit fields among `attributes` in place; `user_id` is the
/// event's `userId`, the actor when no `actor` is given.
pub(crate) fn normalize(
    attributes: &mut Map<String, Value>,
    user_id: Option<&str>,
) -> Result<(), EventError> {
    require_action(attributes)?;
    let actor = match attributes.remove("actor") {
        Some(Value::Object(mut actor)) => {
            let id = actor
                .remove("id")
                .as_ref()
                .and_then(scalar)
                .or_else(|| user_id.map(str::to_owned))
                .ok_or(EventError::MissingAuditField("actor.id"))?;
            let kind = match actor.remove("type") {
                None | Some(Value::Null) => "user".to_owned(),
                Some(Value::String(kind)) if !kind.is_empty() => kind,
                Some(other) => return Err(invalid("actor.type", "a string", &other)),
            };
            let name = ["name", "display_name", "displayName"]
                .iter()
                .find_map(|key| actor.remove(*key))
                .filter(|value| !value.is_null());
            let mut normal = json!({"id": id, "type": kind});
            if let Some(name) = name {
                let name = name
                    .as_str()
                    .ok_or_else(|| invalid("actor.name", "a string", &name))?;
                normal["name"] = json!(name);
            }
            normal
        }
        Some(Value::Null) | None => match user_id {
            Some(id) => json!({"id": id, "type": "user"}),
            None => return Err(EventError::MissingAuditField("actor")),
        },
        Some(other) => match scalar(&other) {
            Some(id) => json!({"id": id, "type": "user"}),
            None => return Err(invalid("actor", "an object or an id", &other)),
        },
    };
    attributes.insert("actor".into(), actor);

    match attributes.remove("target") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mut target)) => {
            let id = target
                .remove("id")
                .as_ref()
                .and_then(scalar)
                .ok_or(EventError::MissingAuditField("target.id"))?;
            let kind = match target.remove("type") {
                Some(Value::String(kind)) if !kind.is_empty() => kind,
                None | Some(Value::Null) => {
                    return Err(EventError::MissingAuditField("target.type"));
                }
                Some(other) => return Err(invalid("target.type", "a string", &other)),
            };
            attributes.insert("target".into(), json!({"type": kind, "id": id}));
        }
        Some(other) => return Err(invalid("target", "an object with type and id", &other)),
    }

    let outcome = match attributes.remove("outcome") {
        None | Some(Value::Null) => "success".to_owned(),
        Some(Value::String(outcome))
            if OUTCOMES.contains(&outcome.to_ascii_lowercase().as_str()) =>
        {
            outcome.to_ascii_lowercase()
        }
        Some(other) => return Err(invalid("outcome", "success, failure or denied", &other)),
    };
    attributes.insert("outcome".into(), json!(outcome));

    if let Some(agent) = attributes.remove("userAgent")
        && !attributes.contains_key("user_agent")
    {
        attributes.insert("user_agent".into(), agent);
    }
    for field in ["reason", "user_agent"] {
        match attributes.get(field) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(invalid(
                    if field == "reason" {
                        "reason"
                    } else {
                        "user_agent"
                    },
                    "a string",
                    other,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::{Event, EventError, IngestContext, Limits, Stream, Timestamp};

    fn audit(value: Value) -> Result<Event, EventError> {
        let Value::Object(object) = value else {
            panic!("test input must be an object")
        };
        let context =
            IngestContext::new("t", Timestamp::from_nanos(1), None).with_stream(Stream::Audit);
        Event::from_object(object, &context, &Limits::default())
    }

    #[test]
    fn the_activity_payload_maps_user_id_to_the_actor() {
        let event = audit(
            json!({"userId": "12345", "action": "User_Login", "metadata": {"ip": "192.168.1.1"}}),
        )
        .expect("valid");
        assert_eq!(
            event.attributes["actor"],
            json!({"id": "12345", "type": "user"})
        );
        assert_eq!(event.attributes["outcome"], json!("success"));
        assert_eq!(event.attributes["metadata"]["ip"], json!("192.168.1.1"));
        assert_eq!(event.message, "User_Login");
        assert_eq!(event.user_id.as_deref(), Some("12345"));
    }

    #[test]
    fn actors_targets_and_outcomes_are_normalised() {
        let event = audit(json!({
            "action": "role.grant",
            "actor": {"id": 7, "type": "service", "displayName": "Billing"},
            "target": {"type": "user", "id": "u-9"},
            "outcome": "DENIED",
            "reason": "not an admin",
            "userAgent": "curl/8",
        }))
        .expect("valid");
        assert_eq!(
            event.attributes["actor"],
            json!({"id": "7", "type": "service", "name": "Billing"})
        );
        assert_eq!(
            event.attributes["target"],
            json!({"type": "user", "id": "u-9"})
        );
        assert_eq!(event.attributes["outcome"], json!("denied"));
        assert_eq!(event.attributes["user_agent"], json!("curl/8"));
        assert_eq!(
            audit(json!({"action": "a", "actor": "alice"}))
                .expect("valid")
                .attributes["actor"]["id"],
            "alice"
        );
    }

    #[test]
    fn incomplete_audit_events_are_refused_by_name() {
        // (input, code, the missing or wrong field the message names)
        let cases = [
            // `action` is checked first, whether or not a message or actor is there.
            (json!({"userId": "1"}), "missing_field", "`action`"),
            (
                json!({"message": "hello", "userId": "1"}),
                "missing_field",
                "`action`",
            ),
            (json!({"message": "hello"}), "missing_field", "`action`"),
            (json!({}), "missing_field", "`action`"),
            (
                json!({"action": "", "userId": "1"}),
                "missing_field",
                "`action`",
            ),
            (
                json!({"action": null, "userId": "1"}),
                "missing_field",
                "`action`",
            ),
            (json!({"action": "a"}), "missing_field", "`actor`"),
            (
                json!({"action": "a", "message": "m"}),
                "missing_field",
                "`actor`",
            ),
            (
                json!({"action": "a", "actor": {"type": "user"}}),
                "missing_field",
                "`actor.id`",
            ),
            (
                json!({"action": "a", "userId": "1", "target": {"id": "x"}}),
                "missing_field",
                "`target.type`",
            ),
            (
                json!({"action": "a", "userId": "1", "target": "x"}),
                "invalid_type",
                "`target`",
            ),
            (
                json!({"action": "a", "userId": "1", "outcome": "maybe"}),
                "invalid_type",
                "`outcome`",
            ),
            (
                json!({"action": 5, "userId": "1"}),
                "invalid_type",
                "`action`",
            ),
            (
                json!({"action": "a", "userId": "1", "reason": {}}),
                "invalid_type",
                "`reason`",
            ),
            (
                json!({"action": "a", "userId": "1", "service": "logbook"}),
                "reserved_service",
                "`logbook`",
            ),
            (
                json!({"action": "a", "userId": "1", "id": "mine"}),
                "invalid_id",
                "`id`",
            ),
        ];
        for (input, code, named) in cases {
            let error = audit(input.clone()).expect_err("refused");
            assert_eq!(error.code(), code, "{input}: {error}");
            assert!(error.to_string().contains(named), "{input}: {error}");
        }
        // Every missing field gets the same message, stating the whole rule.
        let missing = audit(json!({"userId": "1"}))
            .expect_err("refused")
            .to_string();
        assert!(missing.contains("`action` and an actor"), "{missing}");
    }

    #[test]
    fn the_source_is_the_servers_and_a_clients_source_is_an_attribute() {
        let event =
            audit(json!({"action": "a", "userId": "1", "source": "logbook"})).expect("valid");
        assert_eq!(event.source, Some(crate::Source::Client));
        assert_eq!(event.attributes["source"], json!("logbook"));
        let text = serde_json::to_value(&event).expect("serialises");
        assert_eq!(text["source"], json!("client"));
    }
}
