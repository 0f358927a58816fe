//! The enforcer: while this process holds the retention lease, applies every
//! tenant's policy on a fixed interval.
//!
//! Time comes in as an argument ([`Enforcer::round`] takes `now`), so tests
//! move the clock instead of waiting for it.

use std::sync::Arc;
use std::time::Duration;

use meta::MetaStore;
use model::{Stream, Timestamp};
use store::{AuditLog, EventStore, Filter, HistogramRequest, Order, SearchRequest};
use tokio::sync::watch;

use crate::{Policy, RetentionError};

/// How the enforcer runs.
#[derive(Debug, Clone)]
pub struct EnforcerConfig {
    /// How often every tenant's policy is applied.
    pub check_interval: Duration,
    /// How often a process without the lease asks for it.
    pub lease_retry: Duration,
    /// The policy of a tenant that set nothing.
    pub defaults: Policy,
    /// The longest and largest any tenant's logs may be kept, whatever it set
    /// ([`Policy::capped`]); `None` fields cap nothing.
    pub ceiling: Policy,
}

/// Buckets of each histogram that narrows down where a size limit cuts.
const SIZE_BUCKETS: i64 = 1_000;

/// How wide the bucket a size limit cuts at may be: one second.
const CUT_PRECISION_NANOS: i64 = 1_000_000_000;

/// How many of a tenant's newest events its average event size is taken from.
const SAMPLE: usize = 100;

/// Applies retention policies to one store.
pub struct Enforcer {
    pub meta: MetaStore,
    pub store: Arc<dyn EventStore>,
    /// The same store's audit trails, whose oldest events audit retention prunes.
    pub audit: Arc<dyn AuditLog>,
    pub config: EnforcerConfig,
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Tenants whose policy was applied without error.
    pub tenants: usize,
    /// Log cutoffs applied: (tenant, events before this time were deleted).
    pub logs_cut: Vec<(String, Timestamp)>,
    /// Audit events pruned: (tenant, how many this round).
    pub audit_pruned: Vec<(String, u64)>,
    /// Errors met, one line each; the other tenants were still done.
    pub errors: Vec<String>,
}

impl Enforcer {
    /// Runs until `stop` turns true: one round per `check_interval` while
    /// this process holds the retention lease.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut lease: Option<meta::Lease> = None;
        while !*stop.borrow() {
            if let Some(held) = &mut lease
                && !held.holds().await
            {
                tracing::warn!("lost the retention lease (its database connection died)");
                lease = None;
            }
            if lease.is_none() {
                lease = match self.meta.try_retention_lease().await {
                    Ok(granted) => granted,
                    Err(error) => {
                        tracing::warn!(%error, "cannot ask for the retention lease; will retry");
                        None
                    }
                };
            }
            let pause = if lease.is_some() {
                let report = self.round(Timestamp::now()).await;
                for error in &report.errors {
                    tracing::warn!(error, "retention could not be applied");
                }
                self.config.check_interval
            } else {
                self.config.lease_retry
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Applies every tenant's policy as of `now`.
    pub async fn round(&self, now: Timestamp) -> RoundReport {
        let mut report = RoundReport::default();
        let tenants = match self.meta.tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                report
                    .errors
                    .push(format!("cannot list the tenants: {error}"));
                return report;
            }
        };
        for tenant in tenants {
            let errors = report.errors.len();
            self.tenant(&tenant.id, now, &mut report).await;
            if report.errors.len() == errors {
                report.tenants += 1;
            }
        }
        report
    }

    /// Applies one tenant's policy, noting what it cut and what failed.
    async fn tenant(&self, tenant: &str, now: Timestamp, report: &mut RoundReport) {
        let mut failed =
            |error: RetentionError| report.errors.push(format!("tenant {tenant}: {error}"));
        let settings = match self.meta.settings(tenant).await {
            Ok(settings) => settings,
            Err(error) => return failed(error.into()),
        };
        let policy =
            Policy::resolve(&self.config.defaults, tenant, &settings).capped(&self.config.ceiling);
        // The age applies even when the size cannot be measured this time.
        let by_age = policy.logs_max_age.map(|age| before(now, age.duration()));
        let by_size = match policy.logs_max_bytes {
            Some(max) => match self.size_cutoff(tenant, max).await {
                Ok(cut) => cut,
                Err(error) => {
                    failed(error);
                    None
                }
            },
            None => None,
        };
        if let Some(cutoff) = by_age.into_iter().chain(by_size).max() {
            match self.store.expire_logs(tenant, cutoff).await {
                Ok(()) => {
                    tracing::debug!(tenant, cutoff = %cutoff.to_rfc3339(), "applied log retention");
                    report.logs_cut.push((tenant.to_owned(), cutoff));
                }
                Err(error) => failed(error.into()),
            }
        }
        if let Some(age) = policy.audit_max_age {
            match self
                .audit
                .expire_audit(tenant, before(now, age.duration()))
                .await
            {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::info!(tenant, pruned, "pruned the bodies of expired audit events");
                    report.audit_pruned.push((tenant.to_owned(), pruned));
                }
                Err(error) => failed(error.into()),
            }
        }
    }

    /// Where the tenant's oldest log events must be cut for the rest to fit in
    /// `max_bytes`: `None` when they already fit.
    ///
    /// A tenant's size is its count of log events times the average length
    /// of their stored JSON, sampled from its newest [`SAMPLE`] events: an
    /// estimate that does not depend on deleted events still holding disk
    /// space (they would inflate a per-event cost taken from the store's files
    /// and make each round cut more). The cut is found by histograms, each
    /// over the bucket where the previous one reached the excess, until a
    /// bucket is at most [`CUT_PRECISION_NANOS`] wide: it deletes the excess
    /// and at most that last bucket's other events, however far apart the
    /// tenant's oldest and newest timestamps are.
    async fn size_cutoff(
        &self,
        tenant: &str,
        max_bytes: u64,
    ) -> Result<Option<Timestamp>, RetentionError> {
        let events = self.store.stats(filter(tenant)).await?.total;
        if events == 0 {
            return Ok(None);
        }
        let per_event = self.sampled_event_bytes(tenant).await?;
        let keep = (max_bytes as f64 / per_event.max(1.0)).floor() as u64;
        if events <= keep {
            return Ok(None);
        }
        let excess = events - keep;
        let (Some(oldest), Some(newest)) = (
            self.edge(tenant, Order::Ascending).await?,
            self.edge(tenant, Order::Descending).await?,
        ) else {
            return Ok(None);
        };
        // Events before `from` are already counted in `before_from`.
        let (mut from, mut to) = (oldest.nanos(), newest.nanos().saturating_add(1));
        let mut before_from = 0;
        loop {
            let span = to.saturating_sub(from).max(1);
            let interval = (span / SIZE_BUCKETS).max(1) + 1;
            let buckets = self
                .store
                .histogram(HistogramRequest {
                    filter: Filter {
                        from: Some(Timestamp::from_nanos(from)),
                        to: Some(Timestamp::from_nanos(to)),
                        ..filter(tenant)
                    },
                    interval_nanos: interval,
                })
                .await?;
            let mut counted = before_from;
            let reached = buckets.iter().find_map(|bucket| {
                let earlier = counted;
                counted += bucket.count;
                (counted >= excess).then_some((bucket.start.nanos(), earlier))
            });
            // Events went away since they were counted (another round ran,
            // or the age cut them): measure again next time.
            let Some((start, earlier)) = reached else {
                return Ok(None);
            };
            let end = start.saturating_add(interval).min(to);
            if end.saturating_sub(start) <= CUT_PRECISION_NANOS {
                return Ok(Some(Timestamp::from_nanos(end)));
            }
            (from, to, before_from) = (start.max(from), end, earlier);
        }
    }

    /// The average length of the tenant's stored log events, from its newest ones.
    async fn sampled_event_bytes(&self, tenant: &str) -> Result<f64, RetentionError> {
        let page = self
            .store
            .search(SearchRequest {
                filter: filter(tenant),
                limit: SAMPLE,
                cursor: None,
                order: Order::Descending,
            })
            .await?;
        let bytes: usize = page.events.iter().map(|event| event.get().len()).sum();
        Ok(bytes as f64 / page.events.len().max(1) as f64)
    }

    /// The timestamp of the tenant's oldest or newest log event.
    async fn edge(&self, tenant: &str, order: Order) -> Result<Option<Timestamp>, RetentionError> {
        let page = self
            .store
            .search(SearchRequest {
                filter: filter(tenant),
                limit: 1,
                cursor: None,
                order,
            })
            .await?;
        let Some(event) = page.events.first() else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Time {
            timestamp: String,
        }
        let time: Time = serde_json::from_str(event.get())
            .map_err(|error| RetentionError::Stored(error.to_string()))?;
        Timestamp::parse(&time.timestamp)
            .map(Some)
            .map_err(|error| RetentionError::Stored(error.to_string()))
    }
}

/// Every log event of a tenant.
fn filter(tenant: &str) -> Filter {
    Filter {
        tenant: tenant.to_owned(),
        stream: Stream::Logs,
        query: query::Query::All,
        from: None,
        to: None,
    }
}

/// `now` less `age`, saturating at the earliest timestamp.
fn before(now: Timestamp, age: Duration) -> Timestamp {
    let nanos = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_nanos(now.nanos().saturating_sub(nanos))
}
