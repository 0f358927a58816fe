//! Runs a compiled query block by block (see `blocks.rs`): only blocks of the
//! filter's partition whose time span meets the filter's window are read; a
//! page of events reads blocks newest (or oldest) first and stops once no
//! block left can change the page; stats and histograms add up whole blocks
//! from their summaries when the query asks for nothing but the partition.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use query::{Predicate, Query};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{Scorer, Weight};
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentOrdinal, SegmentReader, TERMINATED};

use super::blocks::{BLOCK_DOCS, BlockSummary, Blocks, PART_DOCS, Part, SegmentBlocks, TimeBlocks};
use super::collect::{ARRIVAL, HistogramCollector, SERVICE, StatsCollector, TIMESTAMP, rank};
use super::query_error;
use crate::analysis::MAX_EXACT_BYTES;
use crate::limits::Budget;
use crate::{Cursor, Filter, Order, Stats, StoreError};

/// How often (in documents) a running query looks at its deadline and cancel flag.
pub(crate) const CHECK_EVERY: u32 = 1024;

/// Blocks read one by one, newest first, before the rest of each segment is
/// read in one pass: enough to fill a page when matches are common, few
/// enough that a rare match costs little more than one pass.
const FIRST_BLOCKS: usize = 8;

/// The stretch of time a filter reads, both ends inclusive; empty when
/// `first > last`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    first: i64,
    last: i64,
}

impl Window {
    pub(crate) fn of(filter: &Filter) -> Window {
        let first = filter.from.map_or(i64::MIN, |from| from.nanos());
        match filter.to.map(|to| to.nanos()) {
            None => Window {
                first,
                last: i64::MAX,
            },
            Some(i64::MIN) => Window {
                first: i64::MAX,
                last: i64::MIN,
            },
            Some(to) => Window {
                first,
                last: to - 1,
            },
        }
    }

    fn contains(self, timestamp: i64) -> bool {
        self.first <= timestamp && timestamp <= self.last
    }

    fn meets(self, block: &BlockSummary) -> bool {
        block.max >= self.first && block.min <= self.last
    }

    fn covers(self, block: &BlockSummary) -> bool {
        self.first <= block.min && block.max <= self.last
    }
}

/// What to do with one block.
enum Read {
    Skip,
    /// Visit the events the query matches (and the window holds).
    Matching,
}

/// Decides block by block and sees the events of the blocks it reads.
trait Visitor {
    /// What to do with `block`, the `index`-th of its segment's list.
    fn read(&mut self, index: usize, number: u32, block: &BlockSummary)
    -> Result<Read, StoreError>;
    fn visit(&mut self, doc: DocId);
}

/// A visitor that feeds one segment's collector.
trait Feeds<C>: Visitor {
    fn into_child(self) -> C;
}

/// One query over one searcher: the compiled query (the partition's term
/// and the user's query, without the window), the window, and the summaries.
pub(crate) struct Plan<'a> {
    pub searcher: &'a Searcher,
    pub weight: Box<dyn Weight>,
    pub blocks: &'a TimeBlocks,
    pub partition: &'a str,
    pub query: &'a Query,
    pub window: Window,
    pub budget: &'a Budget,
}

/// One segment as a plan sees it.
struct Segment<'a> {
    ordinal: SegmentOrdinal,
    reader: &'a SegmentReader,
    summaries: Option<Arc<SegmentBlocks>>,
}

impl Segment<'_> {
    /// The partition's blocks, if the segment is summarised.
    fn blocks(&self, partition: &str) -> Option<&Blocks> {
        self.summaries.as_ref()?.of(partition)
    }

    /// Whether the summaries count the segment's live events.
    fn exact(&self) -> bool {
        self.summaries
            .as_ref()
            .is_some_and(|summaries| summaries.exact)
    }
}

impl Plan<'_> {
    fn segments(&self) -> Vec<Segment<'_>> {
        self.searcher
            .segment_readers()
            .iter()
            .enumerate()
            .map(|(ordinal, reader)| Segment {
                ordinal: ordinal as SegmentOrdinal,
                reader,
                summaries: self.blocks.get(reader),
            })
            .collect()
    }

    /// Reads one segment with one forward pass of the query: the listed
    /// blocks in ascending order as `visitor` decides (all of them, or only
    /// the `only`-th), or, without a list, every matching event.
    fn scan(
        &self,
        reader: &SegmentReader,
        blocks: Option<&Blocks>,
        only: Option<usize>,
        visitor: &mut dyn Visitor,
    ) -> Result<(), StoreError> {
        self.budget.check()?;
        let timestamps = reader.fast_fields().i64(TIMESTAMP).map_err(query_error)?;
        let alive = reader.alive_bitset();
        let mut scorer = self.weight.scorer(reader, 1.0).map_err(query_error)?;
        let mut since_check = 0;
        let mut read = |scorer: &mut Box<dyn Scorer>,
                        visitor: &mut dyn Visitor,
                        start: DocId,
                        end: DocId,
                        whole: bool|
         -> Result<DocId, StoreError> {
            let mut doc = scorer.doc();
            if doc < start {
                doc = scorer.seek(start);
            }
            while doc < end {
                if alive.is_none_or(|alive| alive.is_alive(doc))
                    && (whole
                        || timestamps
                            .first(doc)
                            .is_some_and(|timestamp| self.window.contains(timestamp)))
                {
                    visitor.visit(doc);
                }
                since_check += 1;
                if since_check == CHECK_EVERY {
                    since_check = 0;
                    self.budget.check()?;
                }
                doc = scorer.advance();
            }
            Ok(doc)
        };
        let Some(blocks) = blocks else {
            read(&mut scorer, visitor, 0, TERMINATED, false)?;
            return Ok(());
        };
        let listed = blocks.iter().enumerate();
        let chosen: Box<dyn Iterator<Item = (usize, &(u32, BlockSummary))>> = match only {
            Some(index) => Box::new(listed.skip(index).take(1)),
            None => Box::new(listed),
        };
        for (index, (number, block)) in chosen {
            if !self.window.meets(block) {
                continue;
            }
            if let Read::Matching = visitor.read(index, *number, block)? {
                let start = number * BLOCK_DOCS;
                let end = (start + BLOCK_DOCS).min(reader.max_doc());
                if read(&mut scorer, visitor, start, end, self.window.covers(block))? == TERMINATED
                {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The first `limit` matching events in `order` after `after`.
    pub(crate) fn page(
        &self,
        limit: usize,
        after: Option<Cursor>,
        order: Order,
    ) -> Result<Vec<(Cursor, DocAddress)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let segments = self.segments();
        let mut page = Page {
            limit,
            after,
            order,
            heap: BinaryHeap::with_capacity(limit + 1),
        };
        // Every summarised block that may hold an event of the page, best
        // bound first, as (bound, segment, index in its list).
        let mut candidates: Vec<(i64, usize, usize)> = Vec::new();
        for (position, segment) in segments.iter().enumerate() {
            for (index, (_, block)) in segment
                .blocks(self.partition)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if self.window.meets(block) && !page.passed(block) {
                    candidates.push((page.bound(block), position, index));
                }
            }
        }
        match order {
            Order::Descending => candidates.sort_unstable_by_key(|entry| Reverse(entry.0)),
            Order::Ascending => candidates.sort_unstable_by_key(|entry| entry.0),
        }
        let mut read: Vec<Vec<bool>> = segments
            .iter()
            .map(|segment| vec![false; segment.blocks(self.partition).map_or(0, <[_]>::len)])
            .collect();
        for &(bound, position, index) in candidates.iter().take(FIRST_BLOCKS) {
            if !page.may_take(bound) {
                return Ok(page.into_hits());
            }
            let Some(segment) = segments.get(position) else {
                continue;
            };
            if let Some(flag) = read
                .get_mut(position)
                .and_then(|flags| flags.get_mut(index))
            {
                *flag = true;
            }
            let mut visitor = PageVisitor::new(&mut page, segment, &[])?;
            self.scan(
                segment.reader,
                segment.blocks(self.partition),
                Some(index),
                &mut visitor,
            )?;
        }
        // Then each segment in one pass, the segment with the best bound
        // first: a summarised one bounded by its blocks left unread, one
        // without summaries by its timestamp column.
        let mut rest: Vec<(i64, usize)> = Vec::new();
        for (position, segment) in segments.iter().enumerate() {
            let bound = match segment.blocks(self.partition) {
                Some(blocks) => {
                    let flags = read.get(position).map_or(&[][..], Vec::as_slice);
                    let unread = blocks
                        .iter()
                        .zip(flags)
                        .filter(|((_, block), done)| {
                            !**done && self.window.meets(block) && !page.passed(block)
                        })
                        .map(|((_, block), _)| page.bound(block));
                    match order {
                        Order::Descending => unread.max(),
                        Order::Ascending => unread.min(),
                    }
                }
                None => {
                    let timestamps = segment
                        .reader
                        .fast_fields()
                        .i64(TIMESTAMP)
                        .map_err(query_error)?;
                    Some(match order {
                        Order::Descending => timestamps.max_value(),
                        Order::Ascending => timestamps.min_value(),
                    })
                }
            };
            if let Some(bound) = bound {
                rest.push((bound, position));
            }
        }
        match order {
            Order::Descending => rest.sort_unstable_by_key(|entry| Reverse(entry.0)),
            Order::Ascending => rest.sort_unstable_by_key(|entry| entry.0),
        }
        for (bound, position) in rest {
            let (Some(segment), Some(flags)) = (segments.get(position), read.get(position)) else {
                continue;
            };
            if !page.may_take(bound) {
                continue;
            }
            let mut visitor = PageVisitor::new(&mut page, segment, flags)?;
            self.scan(
                segment.reader,
                segment.blocks(self.partition),
                None,
                &mut visitor,
            )?;
        }
        Ok(page.into_hits())
    }

    /// Counts of the matching events; whole blocks are added from their
    /// summaries when the query is everything or one service.
    pub(crate) fn stats(&self) -> Result<Stats, StoreError> {
        let tally = Tally::of(self.query);
        self.count(&StatsCollector, |segment, child| {
            let summed = match &tally {
                _ if !segment.exact() => Summed::Nothing,
                Tally::Everything => Summed::Everything,
                Tally::Service(name) => Summed::OneService(service_ordinal(segment.reader, name)?),
                Tally::No => Summed::Nothing,
            };
            Ok(StatsVisitor {
                child,
                summed,
                window: self.window,
            })
        })
    }

    /// Counts of the matching events per bucket; a block or part within one
    /// bucket is added whole when the query is everything.
    pub(crate) fn histogram(
        &self,
        collector: &HistogramCollector,
    ) -> Result<std::collections::BTreeMap<i64, u64>, StoreError> {
        let everything = matches!(self.query, Query::All);
        self.count(collector, |segment, child| {
            Ok(HistogramVisitor {
                child,
                everything: everything && segment.exact(),
                window: self.window,
                max_doc: segment.reader.max_doc(),
                budget: self.budget,
            })
        })
    }

    /// Runs `collector` segment by segment, each segment's collector fed by
    /// the visitor `feeding` makes of it, and merges what they counted.
    fn count<C, V>(
        &self,
        collector: &C,
        feeding: impl Fn(&Segment<'_>, C::Child) -> Result<V, StoreError>,
    ) -> Result<C::Fruit, StoreError>
    where
        C: Collector,
        V: Feeds<C::Child>,
    {
        let segments = self.segments();
        let mut fruits = Vec::with_capacity(segments.len());
        for segment in &segments {
            let child = collector
                .for_segment(segment.ordinal, segment.reader)
                .map_err(query_error)?;
            let mut visitor = feeding(segment, child)?;
            self.scan(
                segment.reader,
                segment.blocks(self.partition),
                None,
                &mut visitor,
            )?;
            fruits.push(visitor.into_child().harvest());
        }
        collector.merge_fruits(fruits).map_err(query_error)
    }
}

/// The page being filled: the best `limit` events seen so far.
struct Page {
    limit: usize,
    /// Where the previous page ended.
    after: Option<Cursor>,
    order: Order,
    heap: BinaryHeap<Reverse<(u128, Cursor, DocAddress)>>,
}

impl Page {
    /// The best timestamp a block can give the page.
    fn bound(&self, block: &BlockSummary) -> i64 {
        match self.order {
            Order::Descending => block.max,
            Order::Ascending => block.min,
        }
    }

    /// Whether every event of the block lies before the previous page's end.
    fn passed(&self, block: &BlockSummary) -> bool {
        self.after.is_some_and(|cursor| match self.order {
            Order::Descending => block.min > cursor.timestamp,
            Order::Ascending => block.max < cursor.timestamp,
        })
    }

    /// Whether an event with this timestamp may still enter the page.
    fn may_take(&self, bound: i64) -> bool {
        if self.heap.len() < self.limit {
            return true;
        }
        self.heap
            .peek()
            .is_none_or(|Reverse((_, worst, _))| match self.order {
                Order::Descending => bound >= worst.timestamp,
                Order::Ascending => bound <= worst.timestamp,
            })
    }

    fn offer(&mut self, cursor: Cursor, address: DocAddress) {
        let key = rank(cursor, self.order);
        if self
            .after
            .is_some_and(|after| key >= rank(after, self.order))
        {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((key, cursor, address)));
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse((worst, _, _))| key > *worst)
        {
            self.heap.pop();
            self.heap.push(Reverse((key, cursor, address)));
        }
    }

    fn into_hits(self) -> Vec<(Cursor, DocAddress)> {
        let mut hits: Vec<_> = self.heap.into_iter().map(|Reverse(entry)| entry).collect();
        hits.sort_unstable_by_key(|entry| Reverse(entry.0));
        hits.into_iter()
            .map(|(_, cursor, address)| (cursor, address))
            .collect()
    }
}

struct PageVisitor<'a> {
    page: &'a mut Page,
    segment: SegmentOrdinal,
    /// Blocks already read (by index in the segment's list).
    read: &'a [bool],
    timestamps: tantivy::columnar::Column<i64>,
    arrivals: tantivy::columnar::Column<u64>,
}

impl<'a> PageVisitor<'a> {
    fn new(
        page: &'a mut Page,
        segment: &Segment<'_>,
        read: &'a [bool],
    ) -> Result<Self, StoreError> {
        let fast = segment.reader.fast_fields();
        Ok(PageVisitor {
            page,
            segment: segment.ordinal,
            read,
            timestamps: fast.i64(TIMESTAMP).map_err(query_error)?,
            arrivals: fast.u64(ARRIVAL).map_err(query_error)?,
        })
    }
}

impl Visitor for PageVisitor<'_> {
    fn read(&mut self, index: usize, _: u32, block: &BlockSummary) -> Result<Read, StoreError> {
        let done = self.read.get(index).copied().unwrap_or(false);
        Ok(
            if done || self.page.passed(block) || !self.page.may_take(self.page.bound(block)) {
                Read::Skip
            } else {
                Read::Matching
            },
        )
    }

    fn visit(&mut self, doc: DocId) {
        let cursor = Cursor {
            timestamp: self.timestamps.first(doc).unwrap_or(i64::MIN),
            arrival: self.arrivals.first(doc).unwrap_or(0),
        };
        self.page.offer(cursor, DocAddress::new(self.segment, doc));
    }
}

/// Which stats a block's summary answers.
enum Tally {
    /// The query is everything: every count of the summary.
    Everything,
    /// The query is one service: that service's counts.
    Service(String),
    /// The summary does not answer the query.
    No,
}

impl Tally {
    fn of(query: &Query) -> Tally {
        match query {
            Query::All => Tally::Everything,
            Query::Field {
                field,
                predicate: Predicate::Equals(value),
                ..
            } if field == "service" && value.len() < MAX_EXACT_BYTES => {
                Tally::Service(value.clone())
            }
            _ => Tally::No,
        }
    }
}

/// The ordinal of a service in a segment's service column (`None` when no
/// event of the segment has it).
fn service_ordinal(reader: &SegmentReader, name: &str) -> Result<Option<u64>, StoreError> {
    let column = reader.fast_fields().str(SERVICE).map_err(query_error)?;
    match column {
        None => Ok(None),
        Some(column) => column
            .dictionary()
            .term_ord(name)
            .map_err(|error| query_error(error.into())),
    }
}

/// What a segment's block summaries add to its stats.
enum Summed {
    /// Every count.
    Everything,
    /// The counts of the service with this ordinal (none without one).
    OneService(Option<u64>),
    /// Nothing: the events are counted one by one.
    Nothing,
}

struct StatsVisitor {
    child: <StatsCollector as Collector>::Child,
    summed: Summed,
    window: Window,
}

impl Feeds<<StatsCollector as Collector>::Child> for StatsVisitor {
    fn into_child(self) -> <StatsCollector as Collector>::Child {
        self.child
    }
}

impl Visitor for StatsVisitor {
    fn read(&mut self, _: usize, _: u32, block: &BlockSummary) -> Result<Read, StoreError> {
        let Some(counts) = &block.counts else {
            return Ok(Read::Matching);
        };
        if !self.window.covers(block) {
            return Ok(Read::Matching);
        }
        match self.summed {
            Summed::Nothing => return Ok(Read::Matching),
            Summed::Everything => self.child.add_counts(counts.iter().copied()),
            Summed::OneService(None) => {}
            Summed::OneService(Some(ordinal)) => self.child.add_counts(
                counts
                    .iter()
                    .copied()
                    .filter(|(service, _, _)| *service == ordinal),
            ),
        }
        Ok(Read::Skip)
    }

    fn visit(&mut self, doc: DocId) {
        self.child.collect(doc, 0.0);
    }
}

struct HistogramVisitor<'a> {
    child: <HistogramCollector as Collector>::Child,
    /// The query is everything and the segment's summaries count its live events.
    everything: bool,
    window: Window,
    max_doc: DocId,
    budget: &'a Budget,
}

impl Feeds<<HistogramCollector as Collector>::Child> for HistogramVisitor<'_> {
    fn into_child(self) -> <HistogramCollector as Collector>::Child {
        self.child
    }
}

impl Visitor for HistogramVisitor<'_> {
    fn read(&mut self, _: usize, number: u32, block: &BlockSummary) -> Result<Read, StoreError> {
        if !self.everything || !self.window.covers(block) {
            return Ok(Read::Matching);
        }
        if self.child.add_span(block.min, block.max, block.total) {
            return Ok(Read::Skip);
        }
        // A part whose every document is one of the partition's live events
        // is added whole when it lies in one bucket, or read without the
        // query; a block with any other part is read with the query.
        let start = number * BLOCK_DOCS;
        let pure = |index: usize, part: &Part| {
            let first = start + index as DocId * PART_DOCS;
            let len = (first + PART_DOCS).min(self.max_doc).saturating_sub(first);
            part.total == len
        };
        if !block
            .parts
            .iter()
            .enumerate()
            .all(|(index, part)| pure(index, part))
        {
            return Ok(Read::Matching);
        }
        for (index, part) in block.parts.iter().enumerate() {
            if part.total == 0
                || self
                    .child
                    .add_span(part.min, part.max, u64::from(part.total))
            {
                continue;
            }
            let first = start + index as DocId * PART_DOCS;
            for doc in first..(first + PART_DOCS).min(self.max_doc) {
                self.child.collect(doc, 0.0);
            }
        }
        self.budget.check()?;
        Ok(Read::Skip)
    }

    fn visit(&mut self, doc: DocId) {
        self.child.collect(doc, 0.0);
    }
}

#[cfg(test)]
mod tests;
