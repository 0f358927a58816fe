//! The stream an event belongs to: ordinary logs or the audit trail.

use serde::{Deserialize, Serialize};

/// Which of a tenant's two event streams an event belongs to.
///
/// The streams are strictly apart: a read of one never returns an event of the
/// other, and an event of one never replaces an event of the other. The stream
/// is decided by the ingest path (see [`crate::IngestContext`]), never by the
/// client's JSON.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Ordinary application logs.
    #[default]
    Logs,
    /// The audit trail.
    Audit,
}

impl Stream {
    /// Whether this is the logs stream (which events leave out when serialised).
    pub fn is_logs(&self) -> bool {
        *self == Stream::Logs
    }

    /// The stream's name as it is serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Logs => "logs",
            Stream::Audit => "audit",
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_serialise_in_lowercase() {
        assert_eq!(Stream::default(), Stream::Logs);
        for stream in [Stream::Logs, Stream::Audit] {
            let text = serde_json::to_string(&stream).expect("serialises");
            assert_eq!(text, format!("\"{stream}\""));
            assert_eq!(
                serde_json::from_str::<Stream>(&text).expect("deserialises"),
                stream
            );
        }
        assert!(serde_json::from_str::<Stream>("\"Audit\"").is_err());
    }
}
