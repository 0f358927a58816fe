//! Block summaries: for every run of [`BLOCK_DOCS`] documents of a segment and
//! every partition in it, the time span of its events and their counts by
//! service and level. Segments never change once written, so each is summarised
//! once (deletes make a new summary) and every later search, stats or histogram
//! skips or adds up whole blocks instead of visiting each event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, IndexReader, Searcher, SegmentReader, TERMINATED};

use super::schema::Fields;

/// Documents per block. Events arrive roughly in time order, so a block covers
/// a short stretch of time; small enough that a search for the newest page
/// reads few events, large enough that a segment of millions has a few
/// thousand summaries.
pub(crate) const BLOCK_DOCS: u32 = 4096;

/// Documents per part of a block: the finer time spans a histogram adds up
/// when a block straddles two of its buckets.
pub(crate) const PART_DOCS: u32 = 256;

/// More distinct (service, level) pairs than this in one block and the block
/// keeps no counts: its stats are counted event by event.
const MAX_PAIRS: usize = 256;

/// Stands for "no service" in [`BlockSummary::counts`].
pub(crate) const NO_SERVICE: u64 = u64::MAX;

/// One partition's live events in one block.
#[derive(Debug, Clone)]
pub(crate) struct BlockSummary {
    /// The smallest and largest timestamp of those events.
    pub min: i64,
    pub max: i64,
    pub total: u64,
    /// Events per (service ordinal in the segment's service column, or
    /// [`NO_SERVICE`]; level rank); `None` past [`MAX_PAIRS`] pairs.
    pub counts: Option<Vec<(u64, u64, u64)>>,
    /// The same block cut into parts of [`PART_DOCS`] documents (parts
    /// without the partition's events have a total of 0).
    pub parts: Vec<Part>,
}

/// One partition's live events in one part of a block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub min: i64,
    pub max: i64,
    pub total: u32,
}

/// The summaries of one segment: per partition, one entry per block (`None`
/// where the partition has no live events in that block).
#[derive(Debug, Default)]
pub(crate) struct SegmentBlocks {
    partitions: HashMap<String, Vec<Option<BlockSummary>>>,
}

impl SegmentBlocks {
    /// The blocks of `partition`, empty if the segment has none of its events.
    pub(crate) fn of(&self, partition: &str) -> &[Option<BlockSummary>] {
        self.partitions.get(partition).map_or(&[], Vec::as_slice)
    }

    /// Reads a segment's timestamps, services and levels once, partition by
    /// partition (each partition is one term of the `tenant` field).
    fn summarise(reader: &SegmentReader, fields: &Fields) -> tantivy::Result<SegmentBlocks> {
        let timestamps: Column<i64> = reader.fast_fields().i64("timestamp")?;
        let services: Option<StrColumn> = reader.fast_fields().str("service")?;
        let levels: Column<u64> = reader.fast_fields().u64("level")?;
        let alive = reader.alive_bitset();
        let blocks = reader.max_doc().div_ceil(BLOCK_DOCS) as usize;
        let inverted = reader.inverted_index(fields.tenant)?;
        let mut terms = inverted.terms().stream()?;
        let mut partitions = HashMap::new();
        while terms.advance() {
            let Ok(partition) = std::str::from_utf8(terms.key()) else {
                continue;
            };
            let mut postings =
                inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            let mut summaries: Vec<Option<Builder>> = Vec::new();
            summaries.resize_with(blocks, || None);
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|alive| alive.is_alive(doc)) {
                    let timestamp = timestamps.first(doc).unwrap_or(i64::MIN);
                    let service = services
                        .as_ref()
                        .and_then(|column| column.ords().first(doc))
                        .unwrap_or(NO_SERVICE);
                    let level = levels.first(doc).unwrap_or(0);
                    if let Some(slot) = summaries.get_mut((doc / BLOCK_DOCS) as usize) {
                        slot.get_or_insert_with(|| Builder::new(timestamp))
                            .add(doc, timestamp, service, level);
                    }
                }
                doc = postings.advance();
            }
            partitions.insert(
                partition.to_owned(),
                summaries
                    .into_iter()
                    .map(|slot| slot.map(Builder::build))
                    .collect(),
            );
        }
        Ok(SegmentBlocks { partitions })
    }
}

/// A block's summary while its events are read.
struct Builder {
    min: i64,
    max: i64,
    total: u64,
    pairs: Option<HashMap<(u64, u64), u64>>,
    parts: Vec<Part>,
}

impl Builder {
    fn new(timestamp: i64) -> Self {
        Builder {
            min: timestamp,
            max: timestamp,
            total: 0,
            pairs: Some(HashMap::new()),
            parts: vec![
                Part {
                    min: i64::MAX,
                    max: i64::MIN,
                    total: 0,
                };
                (BLOCK_DOCS / PART_DOCS) as usize
            ],
        }
    }

    fn add(&mut self, doc: DocId, timestamp: i64, service: u64, level: u64) {
        self.min = self.min.min(timestamp);
        self.max = self.max.max(timestamp);
        self.total += 1;
        if let Some(part) = self
            .parts
            .get_mut(((doc % BLOCK_DOCS) / PART_DOCS) as usize)
        {
            part.min = part.min.min(timestamp);
            part.max = part.max.max(timestamp);
            part.total += 1;
        }
        if let Some(pairs) = &mut self.pairs {
            *pairs.entry((service, level)).or_default() += 1;
            if pairs.len() > MAX_PAIRS {
                self.pairs = None;
            }
        }
    }

    fn build(self) -> BlockSummary {
        BlockSummary {
            min: self.min,
            max: self.max,
            total: self.total,
            counts: self.pairs.map(|pairs| {
                let mut counts: Vec<_> = pairs
                    .into_iter()
                    .map(|((service, level), count)| (service, level, count))
                    .collect();
                counts.sort_unstable();
                counts
            }),
            parts: self.parts,
        }
    }
}

/// The summaries of the segments searched lately, by segment and number of
/// deletes (a delete changes what a segment's blocks hold).
#[derive(Default)]
pub(crate) struct TimeBlocks {
    cache: Mutex<HashMap<(SegmentId, DocId), Arc<SegmentBlocks>>>,
    /// Whether a background refresh is running.
    refreshing: AtomicBool,
}

impl TimeBlocks {
    /// The summaries of a segment, computed on first use.
    pub(crate) fn of(
        &self,
        reader: &SegmentReader,
        fields: &Fields,
    ) -> tantivy::Result<Arc<SegmentBlocks>> {
        let key = (reader.segment_id(), reader.num_deleted_docs());
        if let Some(blocks) = self.lock().get(&key) {
            return Ok(Arc::clone(blocks));
        }
        // Computed outside the lock: two searches may both compute a new
        // segment's summary, and neither waits for the other.
        let blocks = Arc::new(SegmentBlocks::summarise(reader, fields)?);
        self.lock().insert(key, Arc::clone(&blocks));
        Ok(blocks)
    }

    /// Summarises every segment of `searcher` not summarised yet and forgets
    /// segments it no longer has (merged away or with new deletes).
    pub(crate) fn refresh(&self, searcher: &Searcher, fields: &Fields) -> tantivy::Result<()> {
        let current: Vec<(SegmentId, DocId)> = searcher
            .segment_readers()
            .iter()
            .map(|reader| (reader.segment_id(), reader.num_deleted_docs()))
            .collect();
        self.lock().retain(|key, _| current.contains(key));
        for reader in searcher.segment_readers() {
            self.of(reader, fields)?;
        }
        Ok(())
    }

    /// Refreshes on a thread of its own, so the commit that made new segments
    /// does not wait for their summaries; at most one such thread runs, and a
    /// refresh asked for while one runs is left to the next commit (or to the
    /// first search, which summarises what it lacks).
    pub(crate) fn refresh_in_background(self: &Arc<Self>, reader: &IndexReader, fields: &Fields) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (blocks, reader, fields) = (Arc::clone(self), reader.clone(), fields.clone());
        let spawned = std::thread::Builder::new()
            .name("block-summaries".to_owned())
            .spawn(move || {
                if let Err(error) = blocks.refresh(&reader.searcher(), &fields) {
                    tracing::warn!(%error, "cannot summarise the index's new segments");
                }
                blocks.refreshing.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            self.refreshing.store(false, Ordering::Release);
            tracing::warn!(%error, "cannot start summarising new segments");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SegmentId, DocId), Arc<SegmentBlocks>>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
