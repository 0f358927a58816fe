//! The bytes one accepted request becomes in the queue, and back.
//!
//! A record is a header line, then one normalised event per line:
//! `{"v":1,"replace":[0,3]}\n{event}\n{event}\n…`. `replace` lists the events
//! (by position among the record's events) whose id the client chose; storing
//! one of those replaces an earlier event with the same tenant, stream and id.

use serde::{Deserialize, Serialize};

use crate::decode::DecodedBatch;
use crate::event::Event;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    v: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    replace: Vec<u32>,
}

/// Why a record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record has no header line")]
    MissingHeader,
    #[error("record header is unreadable: {0}")]
    Header(serde_json::Error),
    #[error("record version {0} is not supported")]
    Version(u32),
    #[error("event {index} of the record is unreadable: {source}")]
    Event {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// One event read back from a record.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub event: Event,
    /// The event's line, which is its canonical JSON.
    pub json: String,
    pub replace_existing: bool,
    /// The event's place in arrival order: the queue position of its record
    /// plus its index among the record's events. It breaks timestamp ties, so
    /// a batch reads back in the order it was sent, and a replay after a crash
    /// gives every event the same value again.
    pub arrival: u64,
}

/// Encodes the accepted events of a batch as one queue record.
pub fn encode_record(batch: &DecodedBatch) -> Vec<u8> {
    let header = Header {
        v: VERSION,
        replace: batch.client_ids.clone(),
    };
    let mut record = Vec::with_capacity(batch.ndjson.len() + 32);
    // Serialising a struct of integers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut record, &header);
    record.push(b'\n');
    record.extend_from_slice(&batch.ndjson);
    record
}

/// Reads the events of the record that starts at queue position `position`.
///
/// Arrival numbers are `position + index`. A record takes at least as many
/// positions as it has payload bytes (the queue's positions are byte offsets)
/// and every event is at least one byte, so no two events of different records
/// share a number and later records get larger ones.
pub fn decode_record(record: &[u8], position: u64) -> Result<Vec<QueuedEvent>, RecordError> {
    let mut lines = record
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty());
    let header: Header = serde_json::from_slice(lines.next().ok_or(RecordError::MissingHeader)?)
        .map_err(RecordError::Header)?;
    if header.v != VERSION {
        return Err(RecordError::Version(header.v));
    }
    let mut replace = header.replace.iter().peekable();
    lines
        .enumerate()
        .map(|(index, line)| {
            // Lines were written from Strings, so they are UTF-8 unless damaged.
            let json = String::from_utf8(line.to_vec())
                .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
            let event = serde_json::from_str(&json)
                .map_err(|source| RecordError::Event { index, source })?;
            let replace_existing = replace.next_if(|&&i| i as usize == index).is_some();
            Ok(QueuedEvent {
                event,
                json,
                replace_existing,
                arrival: position.saturating_add(index as u64),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchFormat, IngestContext, Limits, Stream, Timestamp, decode_batch};

    #[test]
    fn records_round_trip_with_client_ids_marked() {
        let context = IngestContext::new("default", Timestamp::from_nanos(5), None);
        let body = br#"[{"message":"a"},{"id":"mine","message":"b"},{"message":"c"},{"id":"x","message":"d"}]"#;
        let batch =
            decode_batch(body, BatchFormat::Json, &context, &Limits::default()).expect("valid");
        let events = decode_record(&encode_record(&batch), 0).expect("readable");
        let summary: Vec<(&str, bool)> = events
            .iter()
            .map(|e| (e.event.message.as_str(), e.replace_existing))
            .collect();
        assert_eq!(
            summary,
            [("a", false), ("b", true), ("c", false), ("d", true)]
        );
        assert_eq!(events[1].event.id, "mine");
        assert_eq!(
            serde_json::from_str::<Event>(&events[2].json)
                .expect("json")
                .message,
            "c"
        );
    }

    #[test]
    fn records_round_trip_the_stream() {
        // Audit events cannot choose their id, so neither event does here.
        let body = br#"[{"message":"a","action":"x","userId":"u"},{"message":"b","action":"y","userId":"u","stream":"logs"}]"#;
        for stream in [Stream::Logs, Stream::Audit] {
            let context =
                IngestContext::new("t", Timestamp::from_nanos(5), None).with_stream(stream);
            let batch =
                decode_batch(body, BatchFormat::Json, &context, &Limits::default()).expect("valid");
            let events = decode_record(&encode_record(&batch), 0).expect("readable");
            assert_eq!(events.len(), 2);
            for queued in &events {
                assert_eq!(queued.event.stream, stream);
                assert_eq!(queued.event.tenant, "t");
                let reread: Event = serde_json::from_str(&queued.json).expect("json");
                assert_eq!(reread.stream, stream, "the stored JSON carries the stream");
                assert!(!queued.replace_existing);
            }
        }
    }

    #[test]
    fn arrivals_follow_the_queue_and_the_order_within_a_record() {
        let context = IngestContext::new("t", Timestamp::from_nanos(5), None);
        let body = br#"[{"message":"a"},{"message":"b"},{"message":"c"}]"#;
        let batch =
            decode_batch(body, BatchFormat::Json, &context, &Limits::default()).expect("valid");
        let record = encode_record(&batch);
        // The next record starts at least the record's length later.
        let second_position = 1_000 + record.len() as u64;
        let mut arrivals: Vec<u64> = decode_record(&record, 1_000)
            .expect("readable")
            .iter()
            .map(|queued| queued.arrival)
            .collect();
        assert_eq!(arrivals, [1_000, 1_001, 1_002]);
        arrivals.extend(
            decode_record(&record, second_position)
                .expect("readable")
                .iter()
                .map(|queued| queued.arrival),
        );
        assert!(
            arrivals.windows(2).all(|pair| pair[0] < pair[1]),
            "{arrivals:?}"
        );
        let again: Vec<u64> = decode_record(&record, 1_000)
            .expect("readable")
            .iter()
            .map(|queued| queued.arrival)
            .collect();
        assert_eq!(again, arrivals[..3], "a replay gives the same numbers");
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(matches!(
            decode_record(b"", 0),
            Err(RecordError::MissingHeader)
        ));
        assert!(matches!(
            decode_record(b"{\"v\":2}\n", 0),
            Err(RecordError::Version(2))
        ));
        assert!(matches!(
            decode_record(b"{\"v\":1}\n{oops}\n", 0),
            Err(RecordError::Event { index: 0, .. })
        ));
    }
}
