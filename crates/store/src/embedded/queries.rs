//! What keeps one query from taking the server down: a deadline and a cancel
//! flag every query checks while it runs, a cap on the queries each tenant runs
//! at once, and a cap on the queries the whole store runs at once, so that the
//! indexer and commits always keep a core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{DocSet, SegmentOrdinal, SegmentReader, TERMINATED, TantivyError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StoreError;

/// Bounds on the queries the store runs (search, stats, histogram).
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// A query still running after this long is stopped (`QueryTimeout`); the
    /// time spent waiting for a free query slot counts.
    pub timeout: Duration,
    /// The most index terms one prefix (`pay*`, `service:pay*`) may match.
    pub max_prefix_terms: usize,
    /// Queries run at once over all tenants; the rest wait (within their deadline).
    pub max_concurrent: usize,
    /// Queries one tenant may run at once; one more is refused (`TooManyQueries`).
    pub max_concurrent_per_tenant: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(5),
            max_prefix_terms: 1000,
            max_concurrent: default_concurrency(),
            max_concurrent_per_tenant: 4,
        }
    }
}

/// One core less than the machine has (at least one), so queries alone cannot
/// keep the indexer and commits from running.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|cores| cores.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// How often (in documents) a running query looks at its deadline and cancel flag.
pub(crate) const CHECK_EVERY: u32 = 1024;

/// The deadline and cancel flag of one query.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    deadline: Instant,
    timeout: Duration,
    cancelled: Arc<AtomicBool>,
}

impl Budget {
    pub(crate) fn new(timeout: Duration) -> Self {
        Budget {
            deadline: Instant::now() + timeout,
            timeout,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A guard that cancels the query when dropped (when the caller's future is).
    pub(crate) fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Arc::clone(&self.cancelled))
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Why the query must stop, if it must.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(StoreError::Cancelled)
        } else if Instant::now() >= self.deadline {
            Err(StoreError::QueryTimeout(self.timeout))
        } else {
            Ok(())
        }
    }

    /// [`Budget::check`] as tantivy's error, to stop a search from inside a collector.
    fn check_engine(&self) -> tantivy::Result<()> {
        self.check()
            .map_err(|error| TantivyError::InternalError(error.to_string()))
    }

    /// The error a failed search reports: the budget's verdict if the budget ran
    /// out (that is what stopped it), otherwise `error`.
    pub(crate) fn explain(&self, error: StoreError) -> StoreError {
        self.check().err().unwrap_or(error)
    }
}

/// Sets a query's cancel flag when dropped.
pub(crate) struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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
        self.budget.check_engine()?;
        let mut child = self.inner.for_segment(segment, reader)?;
        let mut scorer = weight.scorer(reader, 1.0)?;
        self.budget.check_engine()?;
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
                self.budget.check_engine()?;
            }
            doc = scorer.advance();
        }
        Ok(child.harvest())
    }
}

/// Who may run a query now: the per-tenant and the store-wide caps.
pub(crate) struct Admission {
    limits: QueryLimits,
    slots: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<String, usize>>>,
    /// Each tenant's ticket to the line for store-wide slots: one query per
    /// tenant waits there at a time, the tenant's others wait for the ticket,
    /// so another tenant's query never queues behind a burst of one tenant's.
    /// One small entry per tenant that ever queried (tenants are few and made
    /// by an admin).
    tickets: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A query's place in the caps; released when dropped (when the blocking work
/// ends, not when the caller goes away, so a cancelled query still counts
/// until it has stopped).
pub(crate) struct Admitted {
    _slot: OwnedSemaphorePermit,
    tenant: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        release(&self.running, &self.tenant);
    }
}

/// Counts one query of `tenant` as ended.
fn release(running: &Mutex<HashMap<String, usize>>, tenant: &str) {
    let mut running = running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(count) = running.get_mut(tenant) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            running.remove(tenant);
        }
    }
}

/// Gives back a tenant's place if admission stops before a slot is granted.
struct TenantPlace<'a> {
    tenant: &'a str,
    running: &'a Arc<Mutex<HashMap<String, usize>>>,
    armed: bool,
}

impl Drop for TenantPlace<'_> {
    fn drop(&mut self) {
        if self.armed {
            release(self.running, self.tenant);
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: QueryLimits) -> Self {
        Admission {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            running: Arc::new(Mutex::new(HashMap::new())),
            tickets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Admits a query of `tenant`: refused at once if the tenant is at its cap,
    /// otherwise takes a free store-wide slot or waits for one until the
    /// budget's deadline, behind at most one waiting query of each tenant.
    pub(crate) async fn admit(
        &self,
        tenant: &str,
        budget: &Budget,
    ) -> Result<Admitted, StoreError> {
        let cap = self.limits.max_concurrent_per_tenant.max(1);
        {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = running.entry(tenant.to_owned()).or_default();
            if *count >= cap {
                return Err(StoreError::TooManyQueries(cap));
            }
            *count += 1;
        }
        let mut place = TenantPlace {
            tenant,
            running: &self.running,
            armed: true,
        };
        let deadline = tokio::time::Instant::from_std(budget.deadline());
        let timed_out = |_| StoreError::QueryTimeout(self.limits.timeout);
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let ticket = Arc::clone(
                    self.tickets
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .entry(tenant.to_owned())
                        .or_insert_with(|| Arc::new(Semaphore::new(1))),
                );
                let _ticket = tokio::time::timeout_at(deadline, ticket.acquire_owned())
                    .await
                    .map_err(timed_out)?
                    .map_err(|_| StoreError::Task("the query line is closed".into()))?;
                tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
                    .await
                    .map_err(timed_out)?
                    .map_err(|_| StoreError::Task("the query slots are closed".into()))?
            }
        };
        place.armed = false;
        Ok(Admitted {
            _slot: slot,
            tenant: tenant.to_owned(),
            running: Arc::clone(&self.running),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{FAST, INDEXED, Schema};
    use tantivy::{DocId, Index, Score, TantivyDocument};

    use super::*;

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

    #[tokio::test]
    async fn tenants_are_capped_apart_and_the_store_as_a_whole() {
        let admission = Admission::new(QueryLimits {
            timeout: Duration::from_millis(50),
            max_prefix_terms: 10,
            max_concurrent: 2,
            max_concurrent_per_tenant: 1,
        });
        let budget = || Budget::new(Duration::from_millis(50));
        let first = admission.admit("a", &budget()).await.unwrap();
        assert!(matches!(
            admission.admit("a", &budget()).await,
            Err(StoreError::TooManyQueries(1))
        ));
        let other = admission.admit("b", &budget()).await.unwrap();
        // Both store-wide slots are taken: a third tenant waits until its deadline.
        assert!(matches!(
            admission.admit("c", &budget()).await,
            Err(StoreError::QueryTimeout(_))
        ));
        drop(first);
        drop(other);
        let again = admission.admit("a", &budget()).await.unwrap();
        drop(again);
        // A refused or timed-out admission left no count behind.
        assert!(admission.running.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn another_tenant_does_not_queue_behind_one_tenants_burst() {
        let admission = Arc::new(Admission::new(QueryLimits {
            timeout: Duration::from_secs(5),
            max_prefix_terms: 10,
            max_concurrent: 1,
            max_concurrent_per_tenant: 4,
        }));
        let budget = || Budget::new(Duration::from_secs(5));
        let order = Arc::new(Mutex::new(Vec::new()));
        let running = admission.admit("a", &budget()).await.unwrap();
        let mut queued = Vec::new();
        // A sends three more queries, then B one: B must not wait for all of A's.
        for tenant in ["a", "a", "a", "b"] {
            let admission = Arc::clone(&admission);
            let order = Arc::clone(&order);
            queued.push(tokio::spawn(async move {
                let admitted = admission.admit(tenant, &budget()).await.unwrap();
                order.lock().unwrap().push(tenant);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(admitted);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(running);
        for task in queued {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let b = order.iter().position(|tenant| *tenant == "b").unwrap();
        assert!(b <= 1, "b ran after {b} of a's queries: {order:?}");
    }
}
