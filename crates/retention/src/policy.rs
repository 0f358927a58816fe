//! What a tenant keeps: the server's defaults, overridden by the tenant's own
//! settings, and the validation of those settings when an admin changes them.

use std::time::Duration;

use serde_json::Value;

use crate::{Age, RetentionError};

/// The setting holding the age past which a tenant's log events are deleted.
pub const LOGS_RETENTION: &str = "logs_retention";
/// The setting holding the most bytes a tenant's log events may take.
pub const LOGS_MAX_BYTES: &str = "logs_max_bytes";
/// The setting holding the age past which a tenant's audit events lose their
/// bodies (their leaf hashes stay, so the trail still verifies).
pub const AUDIT_RETENTION: &str = "audit_retention";

/// The smallest size limit a tenant may set: 1 MiB.
pub const MIN_BYTES: u64 = 1 << 20;

/// The shortest audit retention: 30 days. A tenant admin is among those the
/// trail records; a shorter floor would let one erase the bodies of their own
/// recent actions (the setting's change included) within one check.
pub const MIN_AUDIT_AGE: Duration = Duration::from_secs(30 * 86_400);

/// An audit retention as written, at least [`MIN_AUDIT_AGE`].
pub fn parse_audit_age(text: &str) -> Result<Age, RetentionError> {
    let age: Age = text.parse()?;
    if age.duration() < MIN_AUDIT_AGE {
        return Err(RetentionError::InvalidAge(format!(
            "{text:?} is shorter than the shortest audit retention, 30d"
        )));
    }
    Ok(age)
}

/// How long and how much of its events a tenant keeps; `None` keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub logs_max_age: Option<Age>,
    pub logs_max_bytes: Option<u64>,
    pub audit_max_age: Option<Age>,
}

impl Policy {
    /// The policy of a tenant whose stored settings are `settings` (name,
    /// value), over the server's `defaults`. A stored value that no longer
    /// validates is ignored with a warning: the default applies to it.
    pub fn resolve(defaults: &Policy, tenant: &str, settings: &[(String, String)]) -> Policy {
        let mut policy = *defaults;
        for (name, value) in settings {
            let applied = match name.as_str() {
                LOGS_RETENTION => value.parse().map(|age| policy.logs_max_age = Some(age)),
                AUDIT_RETENTION => {
                    parse_audit_age(value).map(|age| policy.audit_max_age = Some(age))
                }
                LOGS_MAX_BYTES => {
                    parse_bytes(value).map(|bytes| policy.logs_max_bytes = Some(bytes))
                }
                _ => Ok(()),
            };
            if let Err(error) = applied {
                tracing::warn!(tenant, setting = name, %error, "ignoring a stored retention setting");
            }
        }
        policy
    }
}

impl Policy {
    /// The policy with its log limits held within `ceiling`'s, the longest
    /// and largest the operator lets any tenant keep: a tenant that keeps
    /// more, or everything, keeps the ceiling's. Audit retention has no
    /// ceiling (keeping audit events is never the problem to cap).
    pub fn capped(self, ceiling: &Policy) -> Policy {
        fn lower<T: Ord>(own: Option<T>, cap: Option<T>) -> Option<T> {
            match (own, cap) {
                (Some(own), Some(cap)) => Some(own.min(cap)),
                (own, cap) => own.or(cap),
            }
        }
        Policy {
            logs_max_age: lower(self.logs_max_age, ceiling.logs_max_age),
            logs_max_bytes: lower(self.logs_max_bytes, ceiling.logs_max_bytes),
            audit_max_age: self.audit_max_age,
        }
    }
}

/// A byte count as settings store it (decimal), within bounds.
fn parse_bytes(text: &str) -> Result<u64, RetentionError> {
    let bytes: u64 = text
        .parse()
        .map_err(|_| RetentionError::InvalidBytes(format!("{text:?} is not a number of bytes")))?;
    check_bytes(bytes)
}

fn check_bytes(bytes: u64) -> Result<u64, RetentionError> {
    if bytes < MIN_BYTES {
        return Err(RetentionError::InvalidBytes(format!(
            "{bytes} bytes is below the smallest limit, {MIN_BYTES} (1 MiB)"
        )));
    }
    Ok(bytes)
}

/// Validates a retention setting as an admin sends it (`"30d"` for the ages,
/// a whole number of bytes for the size, `null` to fall back to the server's
/// default) and returns what the settings store keeps: `Some(text)`, or `None`
/// to remove the tenant's own value.
pub fn setting_value(name: &str, value: &Value) -> Result<Option<String>, RetentionError> {
    match (name, value) {
        (_, Value::Null) => Ok(None),
        (LOGS_RETENTION, Value::String(text)) => Ok(Some(text.parse::<Age>()?.to_string())),
        (AUDIT_RETENTION, Value::String(text)) => Ok(Some(parse_audit_age(text)?.to_string())),
        (LOGS_RETENTION | AUDIT_RETENTION, _) => Err(RetentionError::InvalidAge(
            "an age is a string such as \"30d\", or null".into(),
        )),
        (LOGS_MAX_BYTES, Value::Number(number)) => {
            let bytes = number.as_u64().ok_or_else(|| {
                RetentionError::InvalidBytes(format!("{number} is not a whole number of bytes"))
            })?;
            Ok(Some(check_bytes(bytes)?.to_string()))
        }
        (LOGS_MAX_BYTES, _) => Err(RetentionError::InvalidBytes(
            "a size is a whole number of bytes, or null".into(),
        )),
        _ => Err(RetentionError::UnknownSetting(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn age(text: &str) -> Option<Age> {
        Some(text.parse().unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn a_tenants_settings_override_the_defaults_one_by_one() {
        let defaults = Policy {
            logs_max_age: age("30d"),
            logs_max_bytes: None,
            audit_max_age: None,
        };
        assert_eq!(Policy::resolve(&defaults, "acme", &[]), defaults);
        let settings = [
            (LOGS_MAX_BYTES.to_owned(), "5000000".to_owned()),
            (AUDIT_RETENTION.to_owned(), "52w".to_owned()),
            ("self_registration".to_owned(), "true".to_owned()),
        ];
        assert_eq!(
            Policy::resolve(&defaults, "acme", &settings),
            Policy {
                logs_max_age: age("30d"),
                logs_max_bytes: Some(5_000_000),
                audit_max_age: age("52w"),
            }
        );
        let broken = [(LOGS_RETENTION.to_owned(), "soon".to_owned())];
        assert_eq!(Policy::resolve(&defaults, "acme", &broken), defaults);
    }

    #[test]
    fn the_ceiling_caps_what_a_tenant_keeps_and_nothing_else() {
        let ceiling = Policy {
            logs_max_age: age("90d"),
            logs_max_bytes: Some(10 << 30),
            audit_max_age: None,
        };
        let forever = Policy::default();
        assert_eq!(forever.capped(&ceiling), ceiling);
        let modest = Policy {
            logs_max_age: age("7d"),
            logs_max_bytes: Some(1 << 30),
            audit_max_age: age("365d"),
        };
        assert_eq!(modest.capped(&ceiling), modest);
        let greedy = Policy {
            logs_max_age: age("36500d"),
            logs_max_bytes: Some(u64::MAX),
            audit_max_age: age("365d"),
        };
        assert_eq!(
            greedy.capped(&ceiling),
            Policy {
                audit_max_age: age("365d"),
                ..ceiling
            }
        );
        assert_eq!(greedy.capped(&Policy::default()), greedy);
    }

    #[test]
    fn settings_are_validated_and_normalised_as_sent() {
        assert_eq!(
            setting_value(LOGS_RETENTION, &json!("720h")).ok(),
            Some(Some("30d".to_owned()))
        );
        assert_eq!(
            setting_value(AUDIT_RETENTION, &json!(null)).ok(),
            Some(None)
        );
        assert_eq!(
            setting_value(LOGS_MAX_BYTES, &json!(10_485_760)).ok(),
            Some(Some("10485760".to_owned()))
        );
        for (name, value) in [
            (LOGS_RETENTION, json!("30")),
            (LOGS_RETENTION, json!(30)),
            (AUDIT_RETENTION, json!("10s")),
            (AUDIT_RETENTION, json!("29d")),
            (LOGS_MAX_BYTES, json!(1024)),
            (LOGS_MAX_BYTES, json!(-5)),
            (LOGS_MAX_BYTES, json!(1.5e7)),
            (LOGS_MAX_BYTES, json!("10GB")),
            ("logs_retention_days", json!("30d")),
        ] {
            assert!(setting_value(name, &value).is_err(), "{name} = {value}");
        }
    }
}
