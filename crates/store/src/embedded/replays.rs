//! Which staged log events may already be stored, so that a queue record
//! delivered twice (a queue that redelivers after a consumer dies) is stored
//! once. A redelivered record carries the arrival numbers it had the first
//! time, so only events at or below the highest arrival ever committed need a
//! lookup in the index; newer ones are new by construction, and a queue read
//! in order (the embedded one) never pays for a lookup.
//!
//! Arrival numbers grow within a lane, named by their top bits: a
//! partitioned queue (Kafka) numbers each partition in a lane of its own (see
//! `queue::position_of`), whose offsets grow apart from the others', so the
//! highest arrival is kept per lane. Every other queue has one lane.

use std::collections::{HashMap, HashSet};

use tantivy::Searcher;

use super::engine;
use crate::StoreError;

/// Arrival numbers share a lane when they agree above this bit; the queue
/// crate's partitioned positions put the partition there.
const LANE_SHIFT: u32 = 58;

fn lane(arrival: u64) -> u64 {
    arrival >> LANE_SHIFT
}

#[derive(Debug, Default)]
pub(crate) struct Replays {
    /// Per lane, the highest arrival number in the index (any stream).
    committed_max: HashMap<u64, u64>,
    /// Event keys staged since the last commit.
    staged: HashSet<u64>,
    staged_max: HashMap<u64, u64>,
}

/// Raises a lane's highest arrival to `arrival`.
fn note(maxima: &mut HashMap<u64, u64>, arrival: u64) {
    let max = maxima.entry(lane(arrival)).or_insert(arrival);
    *max = (*max).max(arrival);
}

impl Replays {
    /// Starts from what the index holds: a segment whose numbers lie in one
    /// lane gives its maximum at once, others are read through.
    pub(crate) fn open(searcher: &Searcher) -> Result<Replays, StoreError> {
        let mut committed_max = HashMap::new();
        for segment in searcher.segment_readers() {
            if segment.num_docs() == 0 {
                continue;
            }
            let arrivals = segment
                .fast_fields()
                .u64("arrival")
                .map_err(engine("reading arrival numbers"))?;
            if lane(arrivals.min_value()) == lane(arrivals.max_value()) {
                note(&mut committed_max, arrivals.max_value());
                continue;
            }
            for doc in 0..segment.max_doc() {
                for arrival in arrivals.values_for_doc(doc) {
                    note(&mut committed_max, arrival);
                }
            }
        }
        Ok(Replays {
            committed_max,
            ..Replays::default()
        })
    }

    /// Notes a staged event; `true` if an event with its key was already
    /// staged since the last commit.
    pub(crate) fn stage(&mut self, key: u64, arrival: u64) -> bool {
        note(&mut self.staged_max, arrival);
        !self.staged.insert(key)
    }

    /// Whether an event with this arrival number may be in the index already.
    pub(crate) fn may_be_stored(&self, arrival: u64) -> bool {
        self.committed_max
            .get(&lane(arrival))
            .is_some_and(|&max| arrival <= max)
    }

    /// What was staged is now committed (or dropped with a failed commit).
    pub(crate) fn committed(&mut self) {
        for (_, arrival) in self.staged_max.drain() {
            note(&mut self.committed_max, arrival);
        }
        self.staged.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lane_remembers_its_own_highest_arrival() {
        let mut replays = Replays::default();
        let high_lane = 3 << LANE_SHIFT;
        assert!(!replays.stage(1, 500));
        assert!(!replays.stage(2, high_lane + 10));
        assert!(replays.stage(1, 501), "a key staged twice");
        replays.committed();
        assert!(replays.may_be_stored(400));
        assert!(!replays.may_be_stored(502), "newer than lane 0's highest");
        assert!(replays.may_be_stored(high_lane + 10));
        assert!(!replays.may_be_stored(high_lane + 11));
        assert!(
            !replays.may_be_stored(1 << LANE_SHIFT),
            "a lane never committed"
        );
    }
}
