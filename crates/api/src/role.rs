//! Which part of Logbook a process runs: everything, or one role of a
//! scale-out deployment over a shared queue and store.

use std::str::FromStr;

use serde::Deserialize;

/// A process's role; see the README's scale-out section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ingest, worker and query in one process (the default).
    #[default]
    All,
    /// Serves the write endpoints and appends to the queue.
    Ingest,
    /// Drains the queue into the store; serves only health endpoints.
    Worker,
    /// Serves reads, accounts, keys and the audit trail's proofs.
    Query,
}

impl Role {
    /// Whether this process serves `POST /v1/logs` and `POST /v1/audit`.
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    /// Whether this process runs a pipeline worker.
    pub fn works(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }

    /// Whether this process serves reads, accounts and the audit trail.
    pub fn queries(self) -> bool {
        matches!(self, Role::All | Role::Query)
    }

    /// The name used in settings and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingest => "ingest",
            Role::Worker => "worker",
            Role::Query => "query",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(Role::All),
            "ingest" => Ok(Role::Ingest),
            "worker" => Ok(Role::Worker),
            "query" => Ok(Role::Query),
            other => Err(format!(
                "unknown role {other:?}: expected all, ingest, worker or query"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
