//! What keeps one query from taking the server down, whatever the backend: a
//! deadline and a cancel flag every query checks while it runs, a cap on the
//! queries each tenant runs at once, and a cap on the queries the whole store
//! runs at once, so that indexing and commits always keep a core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// The time left before the deadline (the PostgreSQL store's statement timeout).
    #[cfg(feature = "postgres")]
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The configured timeout (what a `QueryTimeout` reports).
    #[cfg(feature = "postgres")]
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
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
    use super::*;

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
