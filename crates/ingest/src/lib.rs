//! The ingest core every protocol shares, and the translators of the wire
//! protocols Logbook speaks besides its own JSON.
//!
//! A front end (an HTTP handler, the syslog listener) only reads its wire
//! format: it hands each event it finds to a [`Batch`], which applies the one
//! set of rules of [`model`] (validation, normalisation, per-event and
//! per-batch limits, per-event errors), and then calls [`enqueue`], which
//! answers only once the queue holds the batch durably. What comes back — the
//! accepted ids, the refused events with their reasons, or an
//! [`IngestError`] whose kind says whether and when to retry — is turned into
//! the protocol's own answer by the front end.
//!
//! Each protocol has a folder split the same way: `decode.rs` (wire format →
//! events) and, where the protocol has its own answer shape, `respond.rs`.

mod batch;
mod bounds;
pub mod elastic;
mod enqueue;
mod error;
pub mod loki;
pub mod otlp;
pub mod syslog;
mod value;

pub use batch::{Batch, MAX_BATCH_BYTES};
pub use enqueue::enqueue;
pub use error::IngestError;
