//! Dead letters: what the worker could not store, kept so that an operator can
//! inspect, replay or purge it instead of it being lost or blocking the queue.
//!
//! A letter holds a queue record, ready to be appended again as it is: for an
//! event the store refused on its own (a poison event), a record of just that
//! event; for a record the worker could not read, the record's bytes. Every
//! backend implements [`DeadLetters`] and passes the one conformance suite in
//! `tests/dead_letters.rs`: the embedded [`DirectoryDeadLetters`] (a file per
//! letter) and, with the `postgres` feature, [`PostgresDeadLetters`].

mod directory;
#[cfg(feature = "postgres")]
mod postgres;

use async_trait::async_trait;
use model::{DecodedBatch, QueuedEvent, Stream, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoreError;

pub use directory::DirectoryDeadLetters;
#[cfg(feature = "postgres")]
pub use postgres::PostgresDeadLetters;

/// The most letters one [`DeadLetters::list`] call returns.
pub const MAX_PAGE: usize = 1000;

/// Everything about a dead letter but its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterInfo {
    /// Stable and unique: the event's arrival number (its record's queue
    /// position plus its index in the record), or the record's position for a
    /// record that could not be read, as 20 digits. The same failure found
    /// again (a replay after a crash) gets the same id, so it replaces its
    /// letter instead of adding a second one.
    pub id: String,
    /// The event's tenant; unknown for an unreadable record.
    pub tenant: Option<String>,
    /// The event's stream; unknown for an unreadable record.
    pub stream: Option<Stream>,
    /// Where the record the letter came from started in the queue.
    pub position: u64,
    /// Why it could not be stored, as the store or the decoder said.
    pub error: String,
    /// How many times storing it was tried.
    pub attempts: u32,
    #[schema(value_type = String, format = DateTime)]
    pub first_failed_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_failed_at: Timestamp,
    /// The payload's length.
    pub payload_bytes: u64,
}

/// A dead letter with its payload: a queue record, appended again as it is
/// to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub info: DeadLetterInfo,
    pub payload: Vec<u8>,
}

/// What went wrong, how often and when: the failure a letter records.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: String,
    pub attempts: u32,
    pub first_failed_at: Timestamp,
    pub last_failed_at: Timestamp,
}

impl DeadLetter {
    /// The letter of an event the store refused: its payload is a record of
    /// that event alone, marked so that storing it replaces any copy with its
    /// id (replaying a letter twice stores the event once).
    pub fn for_event(event: &QueuedEvent, record_position: u64, failure: Failure) -> DeadLetter {
        let mut ndjson = event.json.clone().into_bytes();
        ndjson.push(b'\n');
        let batch = DecodedBatch {
            ids: vec![event.event.id.clone()],
            ndjson,
            client_ids: vec![0],
            rejected: Vec::new(),
        };
        let payload = model::encode_record(&batch);
        DeadLetter {
            info: DeadLetterInfo {
                id: letter_id(event.arrival),
                tenant: Some(event.event.tenant.clone()),
                stream: Some(event.event.stream),
                position: record_position,
                error: failure.error,
                attempts: failure.attempts,
                first_failed_at: failure.first_failed_at,
                last_failed_at: failure.last_failed_at,
                payload_bytes: payload.len() as u64,
            },
            payload,
        }
    }

    /// The letter of a queue record that could not be read at all.
    pub fn for_record(position: u64, payload: Vec<u8>, error: String) -> DeadLetter {
        let now = Timestamp::now();
        DeadLetter {
            info: DeadLetterInfo {
                id: letter_id(position),
                tenant: None,
                stream: None,
                position,
                error,
                attempts: 1,
                first_failed_at: now,
                last_failed_at: now,
                payload_bytes: payload.len() as u64,
            },
            payload,
        }
    }
}

/// The id of the letter for arrival number or record position `n`.
fn letter_id(n: u64) -> String {
    format!("{n:020}")
}

/// Whether `id` can name a letter: 1 to 64 of `A-Za-z0-9-_`. Anything else
/// (a path, an empty string) names none, so it can never reach outside a
/// backend's own files or rows.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// One page of letters, in id order.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterPage {
    pub letters: Vec<DeadLetterInfo>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Where dead letters are kept. Written by the pipeline worker, read and
/// emptied by the admin API; ids are chosen by the caller ([`DeadLetter`]'s
/// constructors) and an id that is not [`is_valid_id`] names no letter.
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Stores a letter durably before returning, replacing one with the same id.
    async fn put(&self, letter: DeadLetter) -> Result<(), StoreError>;
    /// Letters whose id sorts after `after`, at most `limit` (1 to [`MAX_PAGE`]).
    async fn list(&self, after: Option<&str>, limit: usize) -> Result<DeadLetterPage, StoreError>;
    /// The letter with this id, with its payload.
    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;
    /// Removes the letter; whether there was one.
    async fn remove(&self, id: &str) -> Result<bool, StoreError>;
}

/// `limit` within 1..=[`MAX_PAGE`].
fn page_size(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{BatchFormat, IngestContext, Limits, decode_batch};

    #[test]
    fn an_event_letter_is_a_record_of_that_event_that_replaces() {
        let context = IngestContext::new("acme", Timestamp::from_nanos(5), None);
        let body = br#"[{"message":"fine"},{"message":"poison pill","metadata":{"k":1}}]"#;
        let batch =
            decode_batch(body, BatchFormat::Json, &context, &Limits::default()).expect("valid");
        let events = model::decode_record(&model::encode_record(&batch), 4_000).expect("record");
        let failure = Failure {
            error: "refused".into(),
            attempts: 3,
            first_failed_at: Timestamp::from_nanos(1),
            last_failed_at: Timestamp::from_nanos(2),
        };
        let letter = DeadLetter::for_event(&events[1], 4_000, failure);
        assert_eq!(letter.info.id, "00000000000000004001");
        assert_eq!(letter.info.tenant.as_deref(), Some("acme"));
        assert_eq!(letter.info.stream, Some(Stream::Logs));
        assert_eq!(letter.info.payload_bytes, letter.payload.len() as u64);
        let replayed = model::decode_record(&letter.payload, 9_000).expect("a record");
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].event, events[1].event);
        assert!(replayed[0].replace_existing);
    }

    #[test]
    fn ids_that_could_leave_a_directory_are_invalid() {
        assert!(is_valid_id("00000000000000004001"));
        for bad in ["", "../x", "a/b", "a.b", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
