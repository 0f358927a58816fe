//! The enforcer: while this process holds the retention lease, applies every
//! tenant's policy on a fixed interval.
//!
//! Time comes in as an argument ([`Enforcer::round`] takes `now`), so tests
//! move the clock instead of waiting for it.

use std::sync::Arc;
use std::time::Duration;

use meta::MetaStore;
use model::{Stream, Timestamp};
use store::{EventStore, Filter, HistogramRequest, Order, SearchRequest};
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
}

/// Buckets of the histogram that finds where a size limit cuts.
const SIZE_BUCKETS: i64 = 1_000;

/// Applies retention policies to one store.
pub struct Enforcer {
    pub meta: MetaStore,
    pub store: Arc<dyn EventStore>,
    pub config: EnforcerConfig,
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Tenants whose policy was applied without error.
    pub tenants: usize,
    /// Log cutoffs applied: (tenant, events before this time were deleted).
    pub logs_cut: Vec<(String, Timestamp)>,
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
        // The size of the store per event, measured once per round.
        let mut bytes_per_event = None;
        for tenant in tenants {
            match self.tenant(&tenant.id, now, &mut bytes_per_event).await {
                Ok(cut) => {
                    report.tenants += 1;
                    report
                        .logs_cut
                        .extend(cut.map(|at| (tenant.id.clone(), at)));
                }
                Err(error) => report.errors.push(format!("tenant {}: {error}", tenant.id)),
            }
        }
        report
    }

    /// Applies one tenant's policy; returns the log cutoff applied, if any.
    async fn tenant(
        &self,
        tenant: &str,
        now: Timestamp,
        bytes_per_event: &mut Option<f64>,
    ) -> Result<Option<Timestamp>, RetentionError> {
        let settings = self.meta.settings(tenant).await?;
        let policy = Policy::resolve(&self.config.defaults, tenant, &settings);
        let by_age = policy.logs_max_age.map(|age| before(now, age.duration()));
        let by_size = match policy.logs_max_bytes {
            Some(max) => {
                let per_event = match *bytes_per_event {
                    Some(measured) => measured,
                    None => {
                        let footprint = self.store.footprint().await?;
                        let measured = footprint.bytes as f64 / footprint.events.max(1) as f64;
                        *bytes_per_event = Some(measured);
                        measured
                    }
                };
                self.size_cutoff(tenant, max, per_event).await?
            }
            None => None,
        };
        let cutoff = by_age.into_iter().chain(by_size).max();
        if let Some(cutoff) = cutoff {
            self.store.expire_logs(tenant, cutoff).await?;
            tracing::debug!(tenant, cutoff = %cutoff.to_rfc3339(), "applied log retention");
        }
        Ok(cutoff)
    }

    /// Where the tenant's oldest log events must be cut for the rest to fit in
    /// `max_bytes`, at `per_event` bytes each (the store's average): `None`
    /// when they already fit.
    ///
    /// The cut falls on the end of the histogram bucket (a thousandth of the
    /// tenant's time span) in which the oldest events that must go end, so it
    /// may delete up to a bucket more than needed, never less.
    async fn size_cutoff(
        &self,
        tenant: &str,
        max_bytes: u64,
        per_event: f64,
    ) -> Result<Option<Timestamp>, RetentionError> {
        let all = filter(tenant);
        let events = self.store.stats(all.clone()).await?.total;
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
        let span = newest
            .nanos()
            .saturating_sub(oldest.nanos())
            .saturating_add(1);
        let interval = (span / SIZE_BUCKETS).max(1) + 1;
        let buckets = self
            .store
            .histogram(HistogramRequest {
                filter: store::Filter {
                    from: Some(oldest),
                    to: Some(Timestamp::from_nanos(newest.nanos().saturating_add(1))),
                    ..all
                },
                interval_nanos: interval,
            })
            .await?;
        let mut counted = 0;
        for bucket in buckets {
            counted += bucket.count;
            if counted >= excess {
                let end = bucket.start.nanos().saturating_add(interval);
                return Ok(Some(Timestamp::from_nanos(end)));
            }
        }
        // Events arrived between the count and the histogram: cut them all.
        Ok(Some(Timestamp::from_nanos(
            newest.nanos().saturating_add(1),
        )))
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
