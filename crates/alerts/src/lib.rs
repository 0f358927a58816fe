//! Alerts: rules a tenant sets on the count of its log events that match a
//! query within a window, evaluated by one process at a time, and signed
//! webhook notifications of each transition between `firing` and `resolved`.
//!
//! Architecture invariants: the evaluator runs only while its process holds
//! the alert lease (`meta::Lease`), so processes sharing a metadata store never
//! evaluate at once; what is firing and what was last notified lives in the
//! metadata store, so a restart resumes and never re-sends a notification the
//! webhook acknowledged; a webhook is only ever contacted at an address that
//! passed [`target::refusal`] (unless internal targets are allowed).
//! Knows no HTTP server: the API validates rules with [`rule`], the server
//! spawns [`evaluate::run`].

pub mod deliver;
pub mod evaluate;
pub mod notification;
pub mod rule;
pub mod target;

pub use deliver::{DeliveryError, DeliveryPolicy, deliver};
pub use evaluate::{EvaluatorConfig, run};
pub use rule::{RuleError, RuleInput, RulePolicy};

/// Why a rule could not be evaluated this time.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The stored query no longer parses within the server's limits.
    #[error("the rule's query is refused: {0}")]
    Query(String),
}
