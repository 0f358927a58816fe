//! The event model of Logbook: what an event is, and how untrusted JSON becomes one.
//!
//! This crate does no I/O and knows nothing of HTTP, queues or storage. It is the
//! one place that decides what a valid event looks like, so every ingest path
//! (HTTP today, other protocols later) validates the same way.

mod audit_schema;
mod decode;
mod event;
mod level;
mod record;
mod source;
mod stream;
mod timestamp;

pub use decode::{
    BatchFormat, DecodeError, DecodedBatch, IngestContext, Limits, Rejection, decode_batch,
};
pub use event::{Event, EventError, MAX_ID_LEN, RESERVED_SERVICE, type_name};
pub use level::Level;
pub use record::{QueuedEvent, RecordError, decode_record, encode_record};
pub use source::Source;
pub use stream::Stream;
pub use timestamp::{Timestamp, TimestampError};

/// The tenant every event belongs to until access control introduces more.
pub const DEFAULT_TENANT: &str = "default";
