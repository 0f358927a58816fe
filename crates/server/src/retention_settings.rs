//! The `[retention]` section of the configuration: the server's default
//! policy for tenants that set none, and how often it is enforced.

use anyhow::Context as _;
use serde::Deserialize;

/// The `[retention]` settings, as written in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often every tenant's retention is applied (`"5m"`).
    pub check_interval: String,
    /// Default age past which log events are deleted (`"30d"`); unset: kept.
    pub logs: Option<String>,
    /// Default size limit of each tenant's log events, in bytes; unset: none.
    pub logs_max_bytes: Option<u64>,
    /// Default age past which audit events lose their bodies; unset: kept forever.
    pub audit: Option<String>,
    /// The longest any tenant's log events are kept, whatever it set; unset: no cap.
    pub max_logs: Option<String>,
    /// The most bytes any tenant's log events may take, whatever it set; unset: no cap.
    pub max_logs_bytes: Option<u64>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            check_interval: "5m".to_owned(),
            logs: None,
            logs_max_bytes: None,
            audit: None,
            max_logs: None,
            max_logs_bytes: None,
        }
    }
}

impl RetentionSettings {
    /// The enforcer's configuration; refuses values the API would refuse.
    pub fn enforcer_config(&self) -> anyhow::Result<retention::EnforcerConfig> {
        let age = |value: &Option<String>, key: &str| {
            value
                .as_deref()
                .map(str::parse::<retention::Age>)
                .transpose()
                .with_context(|| format!("retention.{key}"))
        };
        let bytes = |value: Option<u64>, key: &str| match value {
            Some(bytes) if bytes < retention::MIN_BYTES => anyhow::bail!(
                "retention.{key}: {bytes} is below the smallest limit, {} (1 MiB)",
                retention::MIN_BYTES
            ),
            other => Ok(other),
        };
        let logs_max_bytes = bytes(self.logs_max_bytes, "logs_max_bytes")?;
        Ok(retention::EnforcerConfig {
            check_interval: retention::parse_interval(&self.check_interval)
                .context("retention.check_interval")?,
            lease_retry: std::time::Duration::from_secs(10),
            ceiling: retention::Policy {
                logs_max_age: age(&self.max_logs, "max_logs")?,
                logs_max_bytes: bytes(self.max_logs_bytes, "max_logs_bytes")?,
                audit_max_age: None,
            },
            defaults: retention::Policy {
                logs_max_age: age(&self.logs, "logs")?,
                logs_max_bytes,
                audit_max_age: self
                    .audit
                    .as_deref()
                    .map(retention::parse_audit_age)
                    .transpose()
                    .context("retention.audit")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_everything_and_check_every_five_minutes() {
        let config = RetentionSettings::default().enforcer_config();
        let config = config.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.check_interval, std::time::Duration::from_secs(300));
        assert_eq!(config.defaults, retention::Policy::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                RetentionSettings {
                    logs: Some("30".into()),
                    ..Default::default()
                },
                "retention.logs",
            ),
            (
                RetentionSettings {
                    audit: Some("1s".into()),
                    ..Default::default()
                },
                "retention.audit",
            ),
            (
                RetentionSettings {
                    check_interval: "0s".into(),
                    ..Default::default()
                },
                "retention.check_interval",
            ),
            (
                RetentionSettings {
                    logs_max_bytes: Some(10),
                    ..Default::default()
                },
                "retention.logs_max_bytes",
            ),
        ];
        for (settings, key) in cases {
            let error = settings.enforcer_config().err().map(|e| format!("{e:#}"));
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(key)),
                "{key}: {error:?}"
            );
        }
    }
}
