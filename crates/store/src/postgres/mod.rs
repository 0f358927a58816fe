//! The PostgreSQL store: events in a table partitioned by day, found with the
//! embedded store's exact query semantics, for deployments that run several
//! workers and query nodes over one database.
//!
//! Staged events wait in memory; a commit writes them in one transaction
//! (keys, then a binary `COPY` of the rows) with the queue position it covers.
//! Several processes may stage and commit at once: ids keep each event
//! exactly once (see `write.rs`). Terms are cut by our own analyzers into a
//! tsvector (see `terms.rs`), never by PostgreSQL's text parser, so a query
//! matches exactly what it matches in the embedded store.
//!
//! A commit that fails drops what was staged: the queue still holds those
//! events, and staging them again is harmless (ids skip what did get stored).

mod audit_expiry;
mod audit_log;
mod checkpoints;
mod compile;
mod copy;
mod errors;
mod expire;
mod migrations;
mod partitions;
mod read;
mod terms;
mod trail;
mod trail_source;
mod write;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use self::trail_source::TrailSource;

use async_trait::async_trait;
use model::{QueuedEvent, Stream, Timestamp};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use self::checkpoints::Signer;
use self::errors::engine;
use self::partitions::{Partitions, day_of};
use self::write::{Known, Pending};
use crate::embedded::CheckpointPolicy;
use crate::fields::attribute_paths;
use crate::limits::{Admission, Budget, QueryLimits};
use crate::{
    Bucket, EventStore, Filter, Footprint, HistogramRequest, SearchPage, SearchRequest, Stats,
    StoreError, StoredEvent,
};

/// How the PostgreSQL store connects, bounds its queries and signs its audit trails.
#[derive(Debug, Clone)]
pub struct PostgresStoreOptions {
    /// The file of the key that signs audit checkpoints (created if missing).
    /// Every process over one database needs the same key: the database
    /// remembers its public half and refuses another.
    pub audit_key_file: PathBuf,
    /// When a tenant's trail gets a new signed checkpoint.
    pub checkpoints: CheckpointPolicy,
    /// Connections the store keeps to the database at most.
    pub max_connections: u32,
    /// How long to wait for a connection before the store is reported unavailable.
    pub acquire_timeout: Duration,
    /// Deadline, prefix expansion and concurrency of searches, stats and histograms.
    pub queries: QueryLimits,
    /// Rows this process writes into a day's partition before it refreshes
    /// the partition's planner statistics (`ANALYZE`) itself.
    pub analyze_after_rows: u64,
}

impl PostgresStoreOptions {
    /// Defaults, with the audit signing key in `audit_key_file`.
    pub fn new(audit_key_file: impl Into<PathBuf>) -> Self {
        PostgresStoreOptions {
            audit_key_file: audit_key_file.into(),
            checkpoints: CheckpointPolicy::default(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            queries: QueryLimits::default(),
            analyze_after_rows: 100_000,
        }
    }
}

/// The PostgreSQL-backed [`EventStore`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    pending: Mutex<Pending>,
    partitions: Partitions,
    known: Known,
    admission: Admission,
    signer: Signer,
}

/// How often due checkpoints are looked for when no commit happens.
const CHECKPOINT_TICK: Duration = Duration::from_millis(500);

impl PostgresStore {
    /// Connects to the database at `url` and creates or upgrades the store's
    /// tables (`store_*`) in its schema.
    pub async fn open(url: &str, options: &PostgresStoreOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await
            .map_err(engine("connecting to PostgreSQL"))?;
        migrations::migrate(&pool).await?;
        let signer = Signer::open(&options.audit_key_file, options.checkpoints)?;
        signer.check_identity(&pool).await?;
        signer.check_trails(&pool).await?;
        let inner = Inner {
            pool,
            pending: Mutex::new(Pending::default()),
            partitions: Partitions::new(options.analyze_after_rows),
            known: Known::new(),
            admission: Admission::new(options.queries),
            signer,
        };
        // Today's and tomorrow's partitions exist before the first commit needs them.
        inner
            .partitions
            .ensure(&inner.pool, upcoming_days())
            .await?;
        let inner = Arc::new(inner);
        spawn_checkpointer(Arc::downgrade(&inner));
        Ok(PostgresStore { inner })
    }

    /// Runs a query of `tenant` within the query limits: admitted under the
    /// tenant's and the store's caps and given a deadline.
    async fn query<T, F, Fut>(&self, tenant: &str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Inner>, Budget) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let budget = Budget::new(self.inner.admission.limits().timeout);
        let _cancel = budget.cancel_on_drop();
        let _admitted = self.inner.admission.admit(tenant, &budget).await?;
        work(Arc::clone(&self.inner), budget).await
    }
}

/// Signs due checkpoints while no commits happen (a quiet trail still gets its
/// last events checkpointed within the policy's interval); ends with the store.
fn spawn_checkpointer(inner: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_TICK).await;
            let Some(inner) = inner.upgrade() else { return };
            if let Err(error) = inner.signer.sign_due(&inner.pool).await {
                tracing::error!(%error, "cannot sign an audit checkpoint");
            }
        }
    });
}

/// Today and tomorrow by the clock, as days since the epoch.
fn upcoming_days() -> [i64; 2] {
    let today = day_of(model::Timestamp::now().nanos());
    [today, today + 1]
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn commit(&self, covers: write::Covers<'_>) -> Result<(), StoreError> {
        let staged = self.pending().take();
        if staged.is_empty() && matches!(covers, write::Covers::Nothing) {
            return Ok(());
        }
        let encoded = tokio::task::spawn_blocking(move || write::encode(staged))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?;
        let days: Vec<i64> = encoded.iter().map(|event| day_of(event.ts)).collect();
        let audited = encoded.iter().any(|event| event.audit.is_some());
        self.partitions
            .ensure(&self.pool, days.iter().copied().chain(upcoming_days()))
            .await?;
        self.known.record(&self.pool, &encoded).await?;
        let failed = engine("committing");
        let mut tx = self.pool.begin().await.map_err(&failed)?;
        if let Err(error) = write::write(&mut tx, encoded, covers).await {
            if partitions::is_missing_partition(&error) {
                // Retention in another process dropped a day this one knew:
                // look every day up again, and let the caller retry.
                self.partitions.forget_all();
                return Err(StoreError::Unavailable(format!(
                    "a day's partition was dropped while committing: {error}"
                )));
            }
            return Err(error);
        }
        tx.commit().await.map_err(&failed)?;
        self.partitions.wrote(&self.pool, days);
        if audited && let Err(error) = self.signer.sign_due(&self.pool).await {
            // The events are stored; the checkpointer signs them on its next round.
            tracing::error!(%error, "cannot sign an audit checkpoint");
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
        let position: Option<i64> = sqlx::query_scalar("SELECT position FROM store_position")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(engine("reading the queue position"))?;
        Ok(position.map(|position| position as u64))
    }

    async fn stage(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        let mut pending = self.inner.pending();
        for event in events {
            pending.stage(event);
        }
        Ok(())
    }

    async fn commit(&self, position: Option<u64>) -> Result<(), StoreError> {
        let covers = position.map_or(write::Covers::Nothing, write::Covers::Position);
        self.inner.commit(covers).await
    }

    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError> {
        self.inner.commit(write::Covers::Offsets(topic, next)).await
    }

    async fn committed_offsets(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        let rows: Vec<(i32, i64)> =
            sqlx::query_as("SELECT partition, next FROM queue_offsets WHERE topic = $1")
                .bind(topic)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(engine("reading the queue offsets"))?;
        Ok(rows
            .into_iter()
            .map(|(partition, next)| (partition as u32, next as u64))
            .collect())
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchPage, StoreError> {
        let tenant = request.filter.tenant.clone();
        self.query(&tenant, |inner, budget| async move {
            inner.search(request, &budget).await
        })
        .await
    }

    async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.get(tenant, stream, id).await
    }

    async fn stats(&self, filter: Filter) -> Result<Stats, StoreError> {
        let tenant = filter.tenant.clone();
        self.query(&tenant, |inner, budget| async move {
            inner.stats(filter, &budget).await
        })
        .await
    }

    async fn histogram(&self, request: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
        if request.interval_nanos <= 0 {
            return Err(StoreError::InvalidQuery(
                "the interval must be positive".into(),
            ));
        }
        let tenant = request.filter.tenant.clone();
        self.query(&tenant, |inner, budget| async move {
            inner.histogram(request, &budget).await
        })
        .await
    }

    async fn warnings(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let paths = attribute_paths(filter.stream, &filter.query);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        self.query(&filter.tenant, |inner, budget| async move {
            inner.warnings(filter, paths, &budget).await
        })
        .await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(engine("checking the database"))?;
        Ok(())
    }

    async fn expire_logs(&self, tenant: &str, before: Timestamp) -> Result<(), StoreError> {
        self.inner.expire_logs(tenant, before).await
    }

    async fn footprint(&self) -> Result<Footprint, StoreError> {
        let (events, bytes): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(events), 0)::bigint FROM store_counts), \
                    (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
                        AND c.relname LIKE 'store\\_%')",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(engine("measuring the store"))?;
        Ok(Footprint {
            events: events as u64,
            bytes: bytes as u64,
        })
    }
}
