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

use super::blocks::{BLOCK_DOCS, BlockSummary, PART_DOCS, Part, SegmentBlocks, TimeBlocks};
use super::collect::{HistogramCollector, StatsCollector, rank};
use super::query_error;
use super::schema::Fields;
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
    fn read(&mut self, number: usize, block: &BlockSummary) -> Read;
    fn visit(&mut self, doc: DocId);
}

/// One query over one searcher: the compiled query (the partition's term
/// and the user's query, without the window), the window, and the summaries.
pub(crate) struct Plan<'a> {
    pub searcher: &'a Searcher,
    pub weight: Box<dyn Weight>,
    pub fields: &'a Fields,
    pub blocks: &'a TimeBlocks,
    pub partition: &'a str,
    pub query: &'a Query,
    pub window: Window,
    pub budget: &'a Budget,
}

impl Plan<'_> {
    fn summaries(&self) -> Result<Vec<Arc<SegmentBlocks>>, StoreError> {
        self.searcher
            .segment_readers()
            .iter()
            .map(|reader| self.blocks.of(reader, self.fields).map_err(query_error))
            .collect()
    }

    /// Reads the blocks of one segment in ascending order, as `visitor`
    /// decides, with one forward pass of the query.
    fn scan(
        &self,
        reader: &SegmentReader,
        blocks: &[Option<BlockSummary>],
        only: Option<usize>,
        visitor: &mut dyn Visitor,
    ) -> Result<(), StoreError> {
        self.budget.check()?;
        let timestamps = reader.fast_fields().i64("timestamp").map_err(query_error)?;
        let alive = reader.alive_bitset();
        let mut scorer: Option<Box<dyn Scorer>> = None;
        let mut since_check = 0;
        let numbered = blocks.iter().enumerate();
        let chosen: Box<dyn Iterator<Item = (usize, &Option<BlockSummary>)>> = match only {
            Some(number) => Box::new(numbered.skip(number).take(1)),
            None => Box::new(numbered),
        };
        for (number, block) in chosen {
            let Some(block) = block else { continue };
            if !self.window.meets(block) {
                continue;
            }
            let start = number as DocId * BLOCK_DOCS;
            let end = (start + BLOCK_DOCS).min(reader.max_doc());
            let whole = self.window.covers(block);
            match visitor.read(number, block) {
                Read::Skip => {}
                Read::Matching => {
                    let scorer = match &mut scorer {
                        Some(scorer) => scorer,
                        None => {
                            scorer.insert(self.weight.scorer(reader, 1.0).map_err(query_error)?)
                        }
                    };
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
                    if doc == TERMINATED {
                        break;
                    }
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
        let summaries = self.summaries()?;
        let mut page = Page {
            limit,
            after,
            order,
            heap: BinaryHeap::with_capacity(limit + 1),
        };
        // Every block that may hold an event of the page, best bound first.
        let mut candidates: Vec<(i64, SegmentOrdinal, usize)> = Vec::new();
        for (ordinal, segment) in summaries.iter().enumerate() {
            for (number, block) in segment.of(self.partition).iter().enumerate() {
                let Some(block) = block else { continue };
                if self.window.meets(block) && !page.passed(block) {
                    candidates.push((page.bound(block), ordinal as SegmentOrdinal, number));
                }
            }
        }
        match order {
            Order::Descending => candidates.sort_unstable_by_key(|entry| Reverse(entry.0)),
            Order::Ascending => candidates.sort_unstable_by_key(|entry| entry.0),
        }
        let mut read: Vec<Vec<bool>> = summaries
            .iter()
            .map(|segment| vec![false; segment.of(self.partition).len()])
            .collect();
        let readers = self.searcher.segment_readers();
        for &(bound, ordinal, number) in candidates.iter().take(FIRST_BLOCKS) {
            if !page.may_take(bound) {
                return Ok(page.into_hits());
            }
            let (Some(reader), Some(segment)) = (
                readers.get(ordinal as usize),
                summaries.get(ordinal as usize),
            ) else {
                continue;
            };
            if let Some(flag) = read
                .get_mut(ordinal as usize)
                .and_then(|flags| flags.get_mut(number))
            {
                *flag = true;
            }
            let mut visitor = PageVisitor::new(&mut page, reader, ordinal, &[])?;
            self.scan(
                reader,
                segment.of(self.partition),
                Some(number),
                &mut visitor,
            )?;
        }
        // The rest, segment by segment, the segment with the best block first.
        let mut order_of_segments: Vec<SegmentOrdinal> = Vec::new();
        for &(_, ordinal, number) in candidates.iter().skip(FIRST_BLOCKS) {
            let unread = read
                .get(ordinal as usize)
                .and_then(|flags| flags.get(number))
                .is_some_and(|flag| !flag);
            if unread && !order_of_segments.contains(&ordinal) {
                order_of_segments.push(ordinal);
            }
        }
        for ordinal in order_of_segments {
            let (Some(reader), Some(segment), Some(flags)) = (
                readers.get(ordinal as usize),
                summaries.get(ordinal as usize),
                read.get(ordinal as usize),
            ) else {
                continue;
            };
            let mut visitor = PageVisitor::new(&mut page, reader, ordinal, flags)?;
            self.scan(reader, segment.of(self.partition), None, &mut visitor)?;
        }
        Ok(page.into_hits())
    }

    /// Counts of the matching events; whole blocks are added from their
    /// summaries when the query is everything or one service.
    pub(crate) fn stats(&self) -> Result<Stats, StoreError> {
        let summaries = self.summaries()?;
        let collector = StatsCollector;
        let tally = Tally::of(self.query);
        let mut fruits = Vec::with_capacity(summaries.len());
        for ((ordinal, reader), segment) in self
            .searcher
            .segment_readers()
            .iter()
            .enumerate()
            .zip(&summaries)
        {
            let mut child = collector
                .for_segment(ordinal as SegmentOrdinal, reader)
                .map_err(query_error)?;
            let summed = match &tally {
                Tally::Everything => Summed::Everything,
                Tally::Service(name) => Summed::OneService(service_ordinal(reader, name)?),
                Tally::No => Summed::Nothing,
            };
            let mut visitor = StatsVisitor {
                child: &mut child,
                summed,
                window: self.window,
            };
            self.scan(reader, segment.of(self.partition), None, &mut visitor)?;
            fruits.push(child.harvest());
        }
        collector.merge_fruits(fruits).map_err(query_error)
    }

    /// Counts of the matching events per bucket; a block within one bucket is
    /// added whole when the query is everything.
    pub(crate) fn histogram(
        &self,
        collector: &HistogramCollector,
    ) -> Result<std::collections::BTreeMap<i64, u64>, StoreError> {
        let summaries = self.summaries()?;
        let everything = matches!(self.query, Query::All);
        let mut fruits = Vec::with_capacity(summaries.len());
        for ((ordinal, reader), segment) in self
            .searcher
            .segment_readers()
            .iter()
            .enumerate()
            .zip(&summaries)
        {
            let mut child = collector
                .for_segment(ordinal as SegmentOrdinal, reader)
                .map_err(query_error)?;
            let mut visitor = HistogramVisitor {
                child: &mut child,
                everything,
                window: self.window,
                max_doc: reader.max_doc(),
            };
            self.scan(reader, segment.of(self.partition), None, &mut visitor)?;
            fruits.push(child.harvest());
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
    /// Blocks already read (by number).
    read: &'a [bool],
    timestamps: tantivy::columnar::Column<i64>,
    arrivals: tantivy::columnar::Column<u64>,
}

impl<'a> PageVisitor<'a> {
    fn new(
        page: &'a mut Page,
        reader: &SegmentReader,
        segment: SegmentOrdinal,
        read: &'a [bool],
    ) -> Result<Self, StoreError> {
        let fast = reader.fast_fields();
        Ok(PageVisitor {
            page,
            segment,
            read,
            timestamps: fast.i64("timestamp").map_err(query_error)?,
            arrivals: fast.u64("arrival").map_err(query_error)?,
        })
    }
}

impl Visitor for PageVisitor<'_> {
    fn read(&mut self, number: usize, block: &BlockSummary) -> Read {
        let done = self.read.get(number).copied().unwrap_or(false);
        if done || self.page.passed(block) || !self.page.may_take(self.page.bound(block)) {
            Read::Skip
        } else {
            Read::Matching
        }
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
    let column = reader.fast_fields().str("service").map_err(query_error)?;
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

struct StatsVisitor<'a> {
    child: &'a mut <StatsCollector as Collector>::Child,
    summed: Summed,
    window: Window,
}

impl Visitor for StatsVisitor<'_> {
    fn read(&mut self, _: usize, block: &BlockSummary) -> Read {
        let Some(counts) = &block.counts else {
            return Read::Matching;
        };
        if !self.window.covers(block) {
            return Read::Matching;
        }
        match self.summed {
            Summed::Nothing => return Read::Matching,
            Summed::Everything => self.child.add_counts(counts.iter().copied()),
            Summed::OneService(None) => {}
            Summed::OneService(Some(ordinal)) => self.child.add_counts(
                counts
                    .iter()
                    .copied()
                    .filter(|(service, _, _)| *service == ordinal),
            ),
        }
        Read::Skip
    }

    fn visit(&mut self, doc: DocId) {
        self.child.collect(doc, 0.0);
    }
}

struct HistogramVisitor<'a> {
    child: &'a mut <HistogramCollector as Collector>::Child,
    everything: bool,
    window: Window,
    max_doc: DocId,
}

impl Visitor for HistogramVisitor<'_> {
    fn read(&mut self, number: usize, block: &BlockSummary) -> Read {
        if !self.everything || !self.window.covers(block) {
            return Read::Matching;
        }
        if self.child.add_span(block.min, block.max, block.total) {
            return Read::Skip;
        }
        // A part whose every document is one of the partition's live events
        // is added whole when it lies in one bucket, or read without the
        // query; a block with any other part is read with the query.
        let start = number as DocId * BLOCK_DOCS;
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
            return Read::Matching;
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
        Read::Skip
    }

    fn visit(&mut self, doc: DocId) {
        self.child.collect(doc, 0.0);
    }
}

#[cfg(test)]
mod tests;
