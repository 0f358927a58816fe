//! Groups events into request bodies bounded by an event count and a byte
//! size, keeping for each body the input lines of its events (to name them
//! in errors) and the offset a resumed import would continue from once the
//! server answered it.

use super::split::{Item, Refusal};

/// One request body and what the summary and the state file need to know of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON: one event per line, in input order.
    pub body: Vec<u8>,
    /// The input line of each event of `body`, by its index in the body.
    pub lines: Vec<u64>,
    /// Events refused before sending, with their lines.
    pub refused: Vec<(u64, Refusal)>,
    /// Input offset just after the last event (sent or refused) of the batch.
    pub end: u64,
    /// Newlines of the input before `end`.
    pub end_line: u64,
}

impl Batch {
    fn items(&self) -> usize {
        self.lines.len() + self.refused.len()
    }
}

/// Fills batches of at most `max_events` events (refused ones included)
/// and `max_bytes` of body.
pub struct Batcher {
    max_events: usize,
    max_bytes: usize,
    current: Batch,
}

impl Batcher {
    pub fn new(max_events: usize, max_bytes: usize) -> Batcher {
        Batcher {
            max_events,
            max_bytes,
            current: Batch::default(),
        }
    }

    /// Adds `item`, which ends at input offset `end` after `end_line`
    /// newlines; returns the batch that was full before it, if one was.
    pub fn push(&mut self, item: Item, end: u64, end_line: u64) -> Option<Batch> {
        let event = item.event.and_then(|event| {
            if event.len() + 1 > self.max_bytes {
                Err(Refusal {
                    code: "event_too_large",
                    message: format!(
                        "{} bytes of JSON is more than one request may carry (--batch-bytes {})",
                        event.len(),
                        self.max_bytes
                    ),
                })
            } else {
                Ok(event)
            }
        });
        let full = match &event {
            _ if self.current.items() >= self.max_events => true,
            Ok(event) => {
                !self.current.lines.is_empty()
                    && self.current.body.len() + event.len() + 1 > self.max_bytes
            }
            Err(_) => false,
        };
        let ready = full.then(|| std::mem::take(&mut self.current));
        match event {
            Ok(event) => {
                self.current.body.extend_from_slice(&event);
                self.current.body.push(b'\n');
                self.current.lines.push(item.line);
            }
            Err(refusal) => self.current.refused.push((item.line, refusal)),
        }
        self.current.end = end;
        self.current.end_line = end_line;
        ready
    }

    /// The last batch, unless it is empty.
    pub fn finish(self) -> Option<Batch> {
        (self.current.items() > 0).then_some(self.current)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(line: u64, text: &str) -> Item {
        Item {
            line,
            event: Ok(text.as_bytes().to_vec()),
        }
    }

    fn refused(line: u64) -> Item {
        Item {
            line,
            event: Err(Refusal {
                code: "invalid_utf8",
                message: "no".into(),
            }),
        }
    }

    #[test]
    fn batches_close_at_the_event_count() {
        let mut batcher = Batcher::new(2, 1000);
        assert_eq!(batcher.push(event(1, "a"), 2, 1), None);
        assert_eq!(batcher.push(refused(2), 4, 2), None);
        let first = batcher.push(event(3, "b"), 6, 3).unwrap();
        assert_eq!(first.body, b"a\n");
        assert_eq!(first.lines, [1]);
        assert_eq!(first.refused.len(), 1);
        assert_eq!((first.end, first.end_line), (4, 2));
        let last = batcher.finish().unwrap();
        assert_eq!((last.body.as_slice(), last.end), (&b"b\n"[..], 6));
        assert_eq!(Batcher::new(2, 1000).finish(), None);
    }

    #[test]
    fn batches_close_before_the_byte_limit() {
        let mut batcher = Batcher::new(100, 8);
        assert_eq!(batcher.push(event(1, "aaa"), 4, 1), None);
        assert_eq!(batcher.push(event(2, "bbb"), 8, 2), None);
        let first = batcher.push(event(3, "c"), 10, 3).unwrap();
        assert_eq!(first.body, b"aaa\nbbb\n");
        assert_eq!(first.lines, [1, 2]);
        // An event that could never fit is refused, not sent alone.
        assert_eq!(batcher.push(event(4, "12345678"), 19, 4), None);
        let last = batcher.finish().unwrap();
        assert_eq!(last.body, b"c\n");
        assert_eq!(last.refused[0].0, 4);
        assert_eq!(last.refused[0].1.code, "event_too_large");
        assert_eq!(last.end, 19);
    }
}
