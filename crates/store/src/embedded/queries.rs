//! Stops a tantivy search whose [`Budget`] is spent: the collector wrapper
//! every embedded query runs under.

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{DocSet, SegmentOrdinal, SegmentReader, TERMINATED, TantivyError};

use crate::limits::Budget;

/// How often (in documents) a running query looks at its deadline and cancel flag.
pub(crate) const CHECK_EVERY: u32 = 1024;

/// [`Budget::check`] as tantivy's error, to stop a search from inside a collector.
fn check_engine(budget: &Budget) -> tantivy::Result<()> {
    budget
        .check()
        .map_err(|error| TantivyError::InternalError(error.to_string()))
}

/// Runs a collector while checking a [`Budget`] every [`CHECK_EVERY`]
/// documents, stopping the search with an error once the budget is spent.
pub(crate) struct Bounded<C> {
    pub inner: C,
    pub budget: Budget,
}

impl<C: Collector> Collector for Bounded<C> {
    type Fruit = C::Fruit;
    type Child = C::Child;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        self.inner.for_segment(segment, reader)
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<<C::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.inner.merge_fruits(fruits)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<<C::Child as SegmentCollector>::Fruit> {
        check_engine(&self.budget)?;
        let mut child = self.inner.for_segment(segment, reader)?;
        let mut scorer = weight.scorer(reader, 1.0)?;
        check_engine(&self.budget)?;
        let alive = reader.alive_bitset();
        let mut doc = scorer.doc();
        let mut since_check = 0;
        while doc != TERMINATED {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                child.collect(doc, 0.0);
            }
            since_check += 1;
            if since_check == CHECK_EVERY {
                since_check = 0;
                check_engine(&self.budget)?;
            }
            doc = scorer.advance();
        }
        Ok(child.harvest())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{FAST, INDEXED, Schema};
    use tantivy::{DocId, Index, Score, TantivyDocument};

    use super::*;
    use crate::StoreError;
    use crate::limits::CancelOnDrop;

    const DOCS: u32 = 20_000;

    fn index() -> Index {
        let mut builder = Schema::builder();
        let number = builder.add_u64_field("n", INDEXED | FAST);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for n in 0..u64::from(DOCS) {
            let mut document = TantivyDocument::new();
            document.add_u64(number, n);
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        index
    }

    /// Counts the documents it is shown and, like a client hanging up, cancels
    /// the query after the first `cancel_after`.
    struct HangUpAfter {
        cancel_after: u32,
        budget: Budget,
        seen: Arc<AtomicU32>,
    }

    struct HangUpSegment {
        cancel_after: u32,
        cancel: Option<CancelOnDrop>,
        seen: Arc<AtomicU32>,
    }

    impl Collector for HangUpAfter {
        type Fruit = ();
        type Child = HangUpSegment;

        fn for_segment(
            &self,
            _: SegmentOrdinal,
            _: &SegmentReader,
        ) -> tantivy::Result<Self::Child> {
            Ok(HangUpSegment {
                cancel_after: self.cancel_after,
                cancel: Some(self.budget.cancel_on_drop()),
                seen: Arc::clone(&self.seen),
            })
        }

        fn requires_scoring(&self) -> bool {
            false
        }

        fn merge_fruits(&self, _: Vec<()>) -> tantivy::Result<()> {
            Ok(())
        }
    }

    impl SegmentCollector for HangUpSegment {
        type Fruit = ();

        fn collect(&mut self, _: DocId, _: Score) {
            if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.cancel_after {
                self.cancel.take();
            }
        }

        fn harvest(self) {}
    }

    #[test]
    fn a_cancelled_search_stops_within_one_check_interval() {
        let index = index();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.search(&AllQuery, &Count).unwrap(), DOCS as usize);

        let budget = Budget::new(Duration::from_secs(60));
        let seen = Arc::new(AtomicU32::new(0));
        let collector = Bounded {
            inner: HangUpAfter {
                cancel_after: 100,
                budget: budget.clone(),
                seen: Arc::clone(&seen),
            },
            budget: budget.clone(),
        };
        let error = searcher.search(&AllQuery, &collector).unwrap_err();
        assert!(matches!(
            budget.explain(StoreError::Task(error.to_string())),
            StoreError::Cancelled
        ));
        let seen = seen.load(Ordering::Relaxed);
        assert!(
            seen <= CHECK_EVERY,
            "{seen} documents seen after the cancel"
        );
    }

    #[test]
    fn a_search_past_its_deadline_stops_before_the_first_document() {
        let index = index();
        let searcher = index.reader().unwrap().searcher();
        let budget = Budget::new(Duration::ZERO);
        let collector = Bounded {
            inner: Count,
            budget: budget.clone(),
        };
        let error = searcher.search(&AllQuery, &collector).unwrap_err();
        assert!(matches!(
            budget.explain(StoreError::Task(error.to_string())),
            StoreError::QueryTimeout(_)
        ));
        let unbounded = Bounded {
            inner: Count,
            budget: Budget::new(Duration::from_secs(60)),
        };
        assert_eq!(
            searcher.search(&AllQuery, &unbounded).unwrap(),
            DOCS as usize
        );
    }
}
