//! Who wrote an audit event: a client of the API, or Logbook about itself.

use serde::{Deserialize, Serialize};

/// The author of an audit event, set by the server and never by the client's
/// JSON (a client's own `source` field is kept as the attribute
/// `attributes.source`). Log events have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Sent by a client to `POST /v1/audit`.
    Client,
    /// A security event Logbook records about itself (logins, keys, users…).
    Logbook,
}

impl Source {
    /// The source's name as it is serialised and searched (`source:logbook`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Client => "client",
            Source::Logbook => "logbook",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_serialise_as_their_names() {
        for source in [Source::Client, Source::Logbook] {
            let text = serde_json::to_string(&source).expect("serialises");
            assert_eq!(text, format!("\"{}\"", source.as_str()));
        }
    }
}
