//! Which staged log events may already be stored, so that a queue record
//! delivered twice (a queue that redelivers after a consumer dies) is stored
//! once. A redelivered record carries the arrival numbers it had the first
//! time, so only events at or below the highest arrival ever committed need a
//! lookup in the index; newer ones are new by construction, and a queue read
//! in order (the embedded one) never pays for a lookup.

use std::collections::HashSet;

use tantivy::Searcher;

use super::engine;
use crate::StoreError;

#[derive(Debug, Default)]
pub(crate) struct Replays {
    /// The highest arrival number in the index (any stream), if any event is.
    committed_max: Option<u64>,
    /// Event keys staged since the last commit.
    staged: HashSet<u64>,
    staged_max: Option<u64>,
}

impl Replays {
    /// Starts from what the index holds.
    pub(crate) fn open(searcher: &Searcher) -> Result<Replays, StoreError> {
        let mut committed_max = None;
        for segment in searcher.segment_readers() {
            if segment.num_docs() == 0 {
                continue;
            }
            let arrivals = segment
                .fast_fields()
                .u64("arrival")
                .map_err(engine("reading arrival numbers"))?;
            committed_max = committed_max.max(Some(arrivals.max_value()));
        }
        Ok(Replays {
            committed_max,
            ..Replays::default()
        })
    }

    /// Notes a staged event; `true` if an event with its key was already
    /// staged since the last commit.
    pub(crate) fn stage(&mut self, key: u64, arrival: u64) -> bool {
        self.staged_max = self.staged_max.max(Some(arrival));
        !self.staged.insert(key)
    }

    /// Whether an event with this arrival number may be in the index already.
    pub(crate) fn may_be_stored(&self, arrival: u64) -> bool {
        self.committed_max.is_some_and(|max| arrival <= max)
    }

    /// What was staged is now committed (or dropped with a failed commit).
    pub(crate) fn committed(&mut self) {
        self.committed_max = self.committed_max.max(self.staged_max.take());
        self.staged.clear();
    }
}
