//! Collectors that read fast columns: counts by service and level, and counts
//! per time bucket; and the sort key of a page of events.

use std::collections::{BTreeMap, HashMap};

use model::Level;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::blocks::NO_SERVICE;
use crate::request::{MAX_BUCKETS, too_many_buckets_message};
use crate::{Cursor, Order, Stats};

/// Fast-field names the collectors read.
pub(crate) const TIMESTAMP: &str = "timestamp";
pub(crate) const ARRIVAL: &str = "arrival";
pub(crate) const SERVICE: &str = "service";
pub(crate) const LEVEL: &str = "level";

/// The sort key as one number in which "comes first on the page" is "larger",
/// whatever the order, so one heap serves both orders.
pub(crate) fn rank(cursor: Cursor, order: Order) -> u128 {
    let key =
        (u128::from((cursor.timestamp as u64) ^ (1 << 63)) << 64) | u128::from(cursor.arrival);
    match order {
        Order::Descending => key,
        Order::Ascending => !key,
    }
}

/// Counts matching events in total, by service and by level.
pub(crate) struct StatsCollector;

pub(crate) struct StatsSegment {
    total: u64,
    services: Option<StrColumn>,
    service_counts: HashMap<u64, u64>,
    without_service: u64,
    levels: Column<u64>,
    level_counts: [u64; Level::ALL.len()],
}

impl Collector for StatsCollector {
    type Fruit = Stats;
    type Child = StatsSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(StatsSegment {
            total: 0,
            services: reader.fast_fields().str(SERVICE)?,
            service_counts: HashMap::new(),
            without_service: 0,
            levels: reader.fast_fields().u64(LEVEL)?,
            level_counts: [0; Level::ALL.len()],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Stats>) -> tantivy::Result<Stats> {
        let mut merged = Stats::default();
        for fruit in fruits {
            merged.total += fruit.total;
            for (service, count) in fruit.by_service {
                *merged.by_service.entry(service).or_default() += count;
            }
            for (level, count) in fruit.by_level {
                *merged.by_level.entry(level).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl StatsSegment {
    /// Adds counts of (service ordinal or [`NO_SERVICE`], level rank, events)
    /// read from block summaries instead of from the events.
    pub(crate) fn add_counts(&mut self, counts: impl Iterator<Item = (u64, u64, u64)>) {
        for (service, level, count) in counts {
            self.total += count;
            if service == NO_SERVICE {
                self.without_service += count;
            } else {
                *self.service_counts.entry(service).or_default() += count;
            }
            if let Some(slot) = self.level_counts.get_mut(level as usize) {
                *slot += count;
            }
        }
    }
}

impl SegmentCollector for StatsSegment {
    type Fruit = Stats;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.total += 1;
        match self
            .services
            .as_ref()
            .and_then(|column| column.ords().first(doc))
        {
            Some(ord) => *self.service_counts.entry(ord).or_default() += 1,
            None => self.without_service += 1,
        }
        if let Some(rank) = self.levels.first(doc)
            && let Some(count) = self.level_counts.get_mut(rank as usize)
        {
            *count += 1;
        }
    }

    fn harvest(self) -> Stats {
        let mut by_service = BTreeMap::new();
        if let Some(column) = &self.services {
            let mut name = String::new();
            for (ord, count) in self.service_counts {
                name.clear();
                // A failed dictionary read leaves the name empty; counts stay right.
                let _ = column.ord_to_str(ord, &mut name);
                *by_service.entry(name.clone()).or_default() += count;
            }
        }
        if self.without_service > 0 {
            *by_service.entry(String::new()).or_default() += self.without_service;
        }
        let by_level = Level::ALL
            .iter()
            .zip(self.level_counts)
            .filter(|(_, count)| *count > 0)
            .map(|(level, count)| (level.as_str().to_owned(), count))
            .collect();
        Stats {
            total: self.total,
            by_service,
            by_level,
        }
    }
}

/// Counts matching events per fixed-width time bucket, refusing to produce more
/// than [`MAX_BUCKETS`] buckets.
pub(crate) struct HistogramCollector {
    pub interval_nanos: i64,
}

pub(crate) struct HistogramSegment {
    interval_nanos: i64,
    timestamps: Column<i64>,
    counts: BTreeMap<i64, u64>,
    /// The bucket of the last events seen and how many there were, added to
    /// `counts` when an event of another bucket comes: events arrive mostly in
    /// time order, so most events cost no map lookup.
    pending: Option<(i64, u64)>,
    overflow: bool,
}

/// The start of the bucket holding `timestamp`, computed without overflow.
fn bucket_start(timestamp: i64, interval_nanos: i64) -> i64 {
    let start =
        i128::from(timestamp).div_euclid(i128::from(interval_nanos)) * i128::from(interval_nanos);
    i64::try_from(start).unwrap_or(i64::MIN)
}

impl Collector for HistogramCollector {
    type Fruit = BTreeMap<i64, u64>;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(HistogramSegment {
            interval_nanos: self.interval_nanos,
            timestamps: reader.fast_fields().i64(TIMESTAMP)?,
            counts: BTreeMap::new(),
            pending: None,
            overflow: false,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<Option<BTreeMap<i64, u64>>>,
    ) -> tantivy::Result<Self::Fruit> {
        let mut merged = BTreeMap::new();
        for fruit in fruits {
            let counts = fruit.ok_or_else(too_many_buckets)?;
            for (start, count) in counts {
                *merged.entry(start).or_default() += count;
            }
            if merged.len() > MAX_BUCKETS {
                return Err(too_many_buckets());
            }
        }
        Ok(merged)
    }
}

impl HistogramSegment {
    /// Adds `count` events whose timestamps lie between `min` and `max` if
    /// those are in one bucket; otherwise adds nothing and says so.
    pub(crate) fn add_span(&mut self, min: i64, max: i64, count: u64) -> bool {
        let start = bucket_start(min, self.interval_nanos);
        if start != bucket_start(max, self.interval_nanos) {
            return false;
        }
        self.add(start, count);
        true
    }

    fn add(&mut self, start: i64, count: u64) {
        if self.overflow {
            return;
        }
        if self.counts.len() == MAX_BUCKETS && !self.counts.contains_key(&start) {
            self.overflow = true;
            return;
        }
        *self.counts.entry(start).or_default() += count;
    }

    fn flush(&mut self) {
        if let Some((start, count)) = self.pending.take() {
            self.add(start, count);
        }
    }
}

impl SegmentCollector for HistogramSegment {
    /// `None` if the segment alone needs more than [`MAX_BUCKETS`] buckets.
    type Fruit = Option<BTreeMap<i64, u64>>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.overflow {
            return;
        }
        if let Some(timestamp) = self.timestamps.first(doc) {
            let start = bucket_start(timestamp, self.interval_nanos);
            match &mut self.pending {
                Some((pending, count)) if *pending == start => *count += 1,
                _ => {
                    self.flush();
                    self.pending = Some((start, 1));
                }
            }
        }
    }

    fn harvest(mut self) -> Self::Fruit {
        self.flush();
        (!self.overflow).then_some(self.counts)
    }
}

fn too_many_buckets() -> tantivy::TantivyError {
    tantivy::TantivyError::InvalidArgument(too_many_buckets_message())
}

#[cfg(test)]
mod tests {
    use super::bucket_start;

    #[test]
    fn buckets_start_at_multiples_of_the_interval_without_overflow() {
        assert_eq!(bucket_start(125, 60), 120);
        assert_eq!(bucket_start(-1, 60), -60);
        assert_eq!(bucket_start(i64::MIN, 7), i64::MIN);
        assert_eq!(bucket_start(i64::MAX, 1_000), i64::MAX - i64::MAX % 1_000);
    }
}
