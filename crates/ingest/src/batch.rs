//! A batch under construction: every protocol hands its events here, one by
//! one, and gets the same validation, limits and per-event errors.

use model::{DecodeError, DecodedBatch, EventError, IngestContext, Limits};
use serde_json::{Map, Value};

use crate::IngestError;

/// The most bytes of queue lines one batch may grow to: the queue's default
/// record limit. Events can be larger than what was sent for them (an OTLP
/// resource or a Loki label set is repeated in each of its events), so the
/// total is checked as they are added, not only the body's size.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// The events of one request, validated as they are added.
pub struct Batch<'a> {
    decoded: DecodedBatch,
    context: &'a IngestContext,
    limits: &'a Limits,
    /// Events added so far, valid or not: the next one's index.
    count: usize,
}

impl<'a> Batch<'a> {
    /// An empty batch for events received in `context`, with room for about
    /// `bytes` of queue lines.
    pub fn new(context: &'a IngestContext, limits: &'a Limits, bytes: usize) -> Batch<'a> {
        Batch {
            decoded: DecodedBatch::with_capacity(bytes),
            context,
            limits,
            count: 0,
        }
    }

    /// Adds the next event, or the reason the protocol could not make one of
    /// it; returns its index. Fails when the batch already holds
    /// [`Limits::max_batch_events`], or its events take more than
    /// [`MAX_BATCH_BYTES`].
    pub fn add(
        &mut self,
        event: Result<Map<String, Value>, EventError>,
    ) -> Result<usize, IngestError> {
        self.add_at(None, event)
    }

    /// Like [`Batch::add`], for an event read from `line` of the body.
    pub fn add_at(
        &mut self,
        line: Option<usize>,
        event: Result<Map<String, Value>, EventError>,
    ) -> Result<usize, IngestError> {
        if self.count == self.limits.max_batch_events {
            return Err(DecodeError::TooManyEvents {
                max: self.limits.max_batch_events,
            }
            .into());
        }
        let index = self.count;
        self.decoded
            .push(index, line, event, self.context, self.limits);
        self.count += 1;
        if self.decoded.ndjson.len() > MAX_BATCH_BYTES {
            return Err(IngestError::BatchTooLarge {
                max: MAX_BATCH_BYTES,
            });
        }
        Ok(index)
    }

    /// The largest event, in bytes of JSON: a part shared by many events
    /// (a resource, a label set) larger than this makes every one of them
    /// too large, and is refused without being copied into each.
    pub fn max_event_bytes(&self) -> usize {
        self.limits.max_event_bytes
    }

    /// How many messages of any kind a body may hold before it is refused
    /// unread: twice the events a batch may hold, so containers (resources,
    /// streams) have room too; [`Batch::add`] still counts the events exactly.
    pub fn max_messages(&self) -> usize {
        self.limits
            .max_batch_events
            .saturating_mul(2)
            .saturating_add(16)
    }

    /// Events added so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The validated batch; a request without any event is an error.
    pub fn finish(self) -> Result<DecodedBatch, DecodeError> {
        match self.count {
            0 => Err(DecodeError::Empty),
            _ => Ok(self.decoded),
        }
    }
}
