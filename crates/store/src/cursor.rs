//! Pagination cursors: the sort key of the last event of a page.
//!
//! Events are ordered by (timestamp, arrival), where arrival is the event's
//! place in the order the server received its partition's events (see
//! `model::QueuedEvent::arrival`), unique within a partition. The pair is a
//! strict bound, so a page never repeats an event of an earlier page and never
//! skips one that was stored when the first page was read, however many events
//! arrive in between.

use std::fmt;
use std::str::FromStr;

/// A position in the (timestamp, arrival) order of a tenant's stream of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub timestamp: i64,
    pub arrival: u64,
}

/// A cursor string this server did not produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: pass the next_cursor of a previous page unchanged")]
pub struct CursorError;

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.timestamp as u64, self.arrival)
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CursorError);
        }
        let timestamp = u64::from_str_radix(&text[..16], 16).map_err(|_| CursorError)? as i64;
        let arrival = u64::from_str_radix(&text[16..], 16).map_err(|_| CursorError)?;
        Ok(Cursor { timestamp, arrival })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_including_negative_times() {
        for timestamp in [0, 1, -1, i64::MIN, i64::MAX, 1_771_416_000_000_000_000] {
            let cursor = Cursor {
                timestamp,
                arrival: 0x9e37_79b9_7f4a_7c15,
            };
            assert_eq!(cursor.to_string().parse(), Ok(cursor));
        }
    }

    #[test]
    fn foreign_strings_are_rejected() {
        for text in [
            "",
            "abc",
            "zz00000000000000000000000000000",
            "0000000000000000000000000000000000",
        ] {
            assert_eq!(text.parse::<Cursor>(), Err(CursorError), "{text}");
        }
    }
}
