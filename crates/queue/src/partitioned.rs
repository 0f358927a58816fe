//! What partitioned queues (Kafka) share with the pipeline in every build: how
//! a record's position names its partition and offset, and how a consumer
//! learns the offsets that the store's commits recorded.
//!
//! A position packs the partition, the record's offset in it and room for the
//! record's events: `partition << 58 | offset << 17`. The pipeline numbers a
//! record's events `position + index` (their arrival numbers, which order
//! equal timestamps and name dead letters), so every event of every partition
//! gets a number of its own, the same on every replay, growing with the
//! offset within a partition, as long as a record holds at most 2^17 events
//! (the default `ingest.max_batch_events` is 100,000), a topic has at most 64
//! partitions and a partition at most 2^41 records. The embedded store keeps
//! the highest arrival number per partition (its top 6 bits) to know which
//! events may repeat stored ones: keep the partition there.

use std::collections::BTreeMap;

use crate::{Position, QueueError};

const INDEX_BITS: u32 = 17;
const OFFSET_BITS: u32 = 41;

/// The most partitions a topic of a partitioned queue may have.
pub const MAX_PARTITIONS: u32 = 1 << (64 - INDEX_BITS - OFFSET_BITS);

/// The most events a record of a partitioned queue holds with distinct arrival numbers.
pub const MAX_RECORD_EVENTS: usize = 1 << INDEX_BITS;

/// The position of the record at `offset` of `partition`.
pub fn position_of(partition: u32, offset: u64) -> Result<Position, QueueError> {
    if partition >= MAX_PARTITIONS || offset >= 1 << OFFSET_BITS {
        return Err(QueueError::Corrupt(format!(
            "partition {partition} offset {offset} is beyond what positions number \
             ({MAX_PARTITIONS} partitions of 2^{OFFSET_BITS} records)"
        )));
    }
    Ok(Position(
        (u64::from(partition) << (OFFSET_BITS + INDEX_BITS)) | (offset << INDEX_BITS),
    ))
}

/// The partition a position of a partitioned queue names.
pub fn partition_of(position: Position) -> u32 {
    (position.0 >> (OFFSET_BITS + INDEX_BITS)) as u32
}

/// The offset within its partition a position of a partitioned queue names.
pub fn offset_of(position: Position) -> u64 {
    (position.0 >> INDEX_BITS) & ((1 << OFFSET_BITS) - 1)
}

/// Where the store's commits say each partition goes on: implemented by the
/// pipeline over its store, asked by a partitioned queue's consumer whenever
/// partitions are assigned to it.
#[async_trait::async_trait]
pub trait StoredOffsets: Send + Sync + 'static {
    /// The next offset to read of each partition of `topic` that a commit
    /// covered; partitions absent start at their beginning.
    async fn stored_offsets(&self, topic: &str) -> Result<BTreeMap<u32, u64>, QueueError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn positions_name_partition_and_offset_and_leave_room_for_events() {
        let position = position_of(5, 1_234).unwrap();
        assert_eq!((partition_of(position), offset_of(position)), (5, 1_234));
        let next = position_of(5, 1_235).unwrap();
        assert_eq!(next.0 - position.0, MAX_RECORD_EVENTS as u64);
        let last = position_of(MAX_PARTITIONS - 1, (1 << OFFSET_BITS) - 1).unwrap();
        assert_eq!(partition_of(last), MAX_PARTITIONS - 1);
        assert_eq!(last.0 + (MAX_RECORD_EVENTS as u64 - 1), u64::MAX);
        assert!(position_of(MAX_PARTITIONS, 0).is_err());
        assert!(position_of(0, 1 << OFFSET_BITS).is_err());
    }
}
