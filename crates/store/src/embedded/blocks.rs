//! Block summaries: for every run of [`BLOCK_DOCS`] documents of a segment and
//! every partition in it, the time span of its events and their counts by
//! service and level. Segments never change once written, so each is summarised
//! once, on a background thread, and every later search, stats or histogram
//! skips or adds up whole blocks instead of visiting each event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, IndexReader, Searcher, SegmentReader, TERMINATED};

use super::collect::{LEVEL, SERVICE, TIMESTAMP};
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

/// A partition's blocks in one segment, in ascending block number: only
/// the blocks where it has live events.
pub(crate) type Blocks = [(u32, BlockSummary)];

/// Each partition's blocks.
type Partitions = HashMap<String, Vec<(u32, BlockSummary)>>;

/// The summaries of one segment, per partition.
#[derive(Debug)]
pub(crate) struct SegmentBlocks {
    /// `None` when the segment's partitions interleave too finely for
    /// summaries to pay (see [`MIN_DOCS_PER_ENTRY`]): it is read event by event.
    partitions: Option<Arc<Partitions>>,
    /// Whether the counts are those of the segment's live events. A segment
    /// that gained deletes keeps its previous summaries for a while: their time
    /// spans still bound its events, but their counts are too high.
    pub exact: bool,
    /// When the summaries were read from the segment.
    made: Instant,
}

/// A segment whose (partition, block) entries would cover fewer documents
/// than this on average is not summarised: many tenants' events interleaved
/// block by block would cost memory for little gain.
const MIN_DOCS_PER_ENTRY: u32 = 512;

/// A segment that gained deletes is summarised again at most this often; in
/// between, its earlier summaries serve as time bounds only.
const RESUMMARISE_AFTER: Duration = Duration::from_secs(30);

impl SegmentBlocks {
    /// The blocks of `partition`: `None` if the segment is not summarised,
    /// empty if it has no live events of the partition.
    pub(crate) fn of(&self, partition: &str) -> Option<&Blocks> {
        let partitions = self.partitions.as_ref()?;
        Some(partitions.get(partition).map_or(&[], Vec::as_slice))
    }

    /// The same summaries, as time bounds only.
    fn inexact(&self) -> SegmentBlocks {
        SegmentBlocks {
            partitions: self.partitions.clone(),
            exact: false,
            made: self.made,
        }
    }

    /// Reads a segment's timestamps, services and levels once, partition by
    /// partition (each partition is one term of the `tenant` field).
    fn summarise(reader: &SegmentReader, fields: &Fields) -> tantivy::Result<SegmentBlocks> {
        let made = Instant::now();
        let timestamps: Column<i64> = reader.fast_fields().i64(TIMESTAMP)?;
        let services: Option<StrColumn> = reader.fast_fields().str(SERVICE)?;
        let levels: Column<u64> = reader.fast_fields().u64(LEVEL)?;
        let alive = reader.alive_bitset();
        let max_entries = (reader.max_doc() / MIN_DOCS_PER_ENTRY).max(64) as usize;
        let inverted = reader.inverted_index(fields.tenant)?;
        let mut terms = inverted.terms().stream()?;
        let mut partitions = HashMap::new();
        let mut entries = 0;
        while terms.advance() {
            let Ok(partition) = std::str::from_utf8(terms.key()) else {
                continue;
            };
            let mut postings =
                inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            // Postings come in document order, so blocks in ascending order.
            let mut blocks: Vec<(u32, Builder)> = Vec::new();
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|alive| alive.is_alive(doc)) {
                    let timestamp = timestamps.first(doc).unwrap_or(i64::MIN);
                    let service = services
                        .as_ref()
                        .and_then(|column| column.ords().first(doc))
                        .unwrap_or(NO_SERVICE);
                    let level = levels.first(doc).unwrap_or(0);
                    let number = doc / BLOCK_DOCS;
                    match blocks.last_mut() {
                        Some((last, builder)) if *last == number => {
                            builder.add(doc, timestamp, service, level);
                        }
                        _ => {
                            entries += 1;
                            if entries > max_entries {
                                return Ok(SegmentBlocks {
                                    partitions: None,
                                    exact: true,
                                    made,
                                });
                            }
                            let mut builder = Builder::new(timestamp);
                            builder.add(doc, timestamp, service, level);
                            blocks.push((number, builder));
                        }
                    }
                }
                doc = postings.advance();
            }
            if !blocks.is_empty() {
                partitions.insert(
                    partition.to_owned(),
                    blocks
                        .into_iter()
                        .map(|(number, builder)| (number, builder.build()))
                        .collect(),
                );
            }
        }
        Ok(SegmentBlocks {
            partitions: Some(Arc::new(partitions)),
            exact: true,
            made,
        })
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
/// deletes (a delete changes what a segment's blocks hold). Only the
/// background thread computes them; a search reads a segment without one
/// event by event, as every search did before summaries existed.
#[derive(Default)]
pub(crate) struct TimeBlocks {
    cache: Mutex<HashMap<(SegmentId, DocId), Arc<SegmentBlocks>>>,
    /// Whether a refresh was asked for since the running one began.
    requested: AtomicBool,
    /// Whether the background thread runs.
    running: AtomicBool,
}

impl TimeBlocks {
    /// The summaries of a segment, if it has them yet.
    pub(crate) fn get(&self, reader: &SegmentReader) -> Option<Arc<SegmentBlocks>> {
        let key = (reader.segment_id(), reader.num_deleted_docs());
        self.lock().get(&key).cloned()
    }

    /// Summarises every segment of `searcher` not summarised yet and forgets
    /// segments it no longer has (merged away or with new deletes).
    pub(crate) fn refresh(&self, searcher: &Searcher, fields: &Fields) -> tantivy::Result<()> {
        let current: Vec<(SegmentId, DocId)> = searcher
            .segment_readers()
            .iter()
            .map(|reader| (reader.segment_id(), reader.num_deleted_docs()))
            .collect();
        for reader in searcher.segment_readers() {
            let key = (reader.segment_id(), reader.num_deleted_docs());
            let earlier = {
                let cache = self.lock();
                if cache.contains_key(&key) {
                    continue;
                }
                cache
                    .iter()
                    .find(|((segment, _), _)| *segment == key.0)
                    .map(|(_, blocks)| Arc::clone(blocks))
            };
            let blocks = match earlier {
                Some(earlier) if earlier.made.elapsed() < RESUMMARISE_AFTER => earlier.inexact(),
                _ => SegmentBlocks::summarise(reader, fields)?,
            };
            self.lock().insert(key, Arc::new(blocks));
        }
        self.lock().retain(|key, _| current.contains(key));
        Ok(())
    }

    /// Refreshes on a thread of its own, so the commit that made new segments
    /// does not wait for their summaries. One thread at most: a refresh asked
    /// for while it runs makes it run once more.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, reader: &IndexReader, fields: &Fields) {
        self.requested.store(true, Ordering::Release);
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (blocks, reader, fields) = (Arc::clone(self), reader.clone(), fields.clone());
        let spawned = std::thread::Builder::new()
            .name("block-summaries".to_owned())
            .spawn(move || {
                let running = Running(&blocks.running);
                loop {
                    blocks.requested.store(false, Ordering::Release);
                    if let Err(error) = blocks.refresh(&reader.searcher(), &fields) {
                        tracing::warn!(%error, "cannot summarise the index's new segments");
                    }
                    if !blocks.requested.load(Ordering::Acquire) {
                        drop(running);
                        // A request that came after the check above and saw
                        // this thread still running is served by a new one.
                        if blocks.requested.load(Ordering::Acquire) {
                            blocks.refresh_in_background(&reader, &fields);
                        }
                        return;
                    }
                }
            });
        if let Err(error) = spawned {
            self.running.store(false, Ordering::Release);
            tracing::warn!(%error, "cannot start summarising new segments");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SegmentId, DocId), Arc<SegmentBlocks>>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Clears the running flag when the background thread ends, even by a panic.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
