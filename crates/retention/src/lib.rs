//! Retention: how long and how much of its events each tenant keeps, and the
//! enforcer that deletes the rest in the background.
//!
//! A tenant's policy is the server's defaults (`[retention]` in the TOML)
//! overridden by the tenant's own settings (`PUT /v1/settings`), validated
//! here for the API. [`Enforcer`] applies every tenant's policy once per
//! check interval, in one process at a time (the retention lease), through
//! [`store::EventStore::expire_logs`]; stores decide how space comes back.
//! Knows no HTTP; time is an argument, so tests inject it.

mod age;
mod enforce;
mod policy;

pub use age::{Age, MAX_AGE, MIN_AGE, parse_interval};
pub use enforce::{Enforcer, EnforcerConfig, RoundReport};
pub use policy::{
    AUDIT_RETENTION, LOGS_MAX_BYTES, LOGS_RETENTION, MIN_AUDIT_AGE, MIN_BYTES, Policy,
    parse_audit_age, setting_value,
};

/// Why a retention setting was refused, or a policy could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// An age that does not parse or is out of bounds.
    #[error("{0}")]
    InvalidAge(String),
    /// A size that is not a whole number of bytes or is out of bounds.
    #[error("{0}")]
    InvalidBytes(String),
    /// A setting name retention does not know.
    #[error("{0:?} is not a retention setting")]
    UnknownSetting(String),
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A stored event whose timestamp could not be read back.
    #[error("a stored event's timestamp cannot be read: {0}")]
    Stored(String),
}
