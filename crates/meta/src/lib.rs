//! The metadata store: tenants, users, API keys, login sessions, settings,
//! server secrets, alert rules and their states, and the audit outbox.
//!
//! One implementation serves both engines through sqlx's `Any` driver: SQLite
//! in the data directory by default, PostgreSQL when a database URL is
//! configured. The SQL and the migrations are the same for both, so a test run
//! against each exercises the one code path.
//!
//! Architecture invariant: every change that security reviewers care about
//! (a user, key, role or setting created or changed) writes its audit event to
//! `audit_outbox` in the same transaction as the change, so the change and its
//! record commit or vanish together. The server drains the outbox into the
//! event pipeline (`server::outbox`).

mod alerts;
mod backup;
mod keys;
mod lease;
mod migrations;
mod outbox;
mod sessions;
mod settings;
mod tenants;
mod tickets;
mod users;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor as _};

pub use alerts::{AlertPhase, AlertRule, AlertRuleSpec, AlertState, Evaluation, TenantAlert};
pub use keys::{ApiKey, NewApiKey};
pub use lease::Lease;
pub use outbox::{AuditEntry, OutboxEntry};
pub use sessions::{NewSession, RefreshOutcome, Session};
pub use tenants::Tenant;
pub use tickets::{NewTicket, RedeemedTicket};
pub use users::{NewUser, User, UserWithPassword};

/// What went wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("cannot open the metadata database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("metadata schema migration {version} failed: {source}")]
    Migrate {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the metadata database is at schema version {found}, newer than this binary knows ({known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("metadata query failed while {context}: {source}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A unique name (tenant id, username) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// A row refers to something that does not exist (an unknown tenant).
    #[error("{0}")]
    NotFound(String),
    /// A per-tenant cap is reached (the number of alert rules).
    #[error("{0}")]
    LimitReached(String),
}

impl MetaError {
    /// The database could not be reached (connections refused or dropped, the
    /// pool gave up waiting): a retry later may succeed.
    pub fn is_unavailable(&self) -> bool {
        let source = match self {
            MetaError::Connect(source) | MetaError::Query { source, .. } => source,
            _ => return false,
        };
        matches!(
            source,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
        )
    }
}

/// Wraps a query error with what was being done.
fn query_failed(context: &'static str) -> impl Fn(sqlx::Error) -> MetaError {
    move |source| MetaError::Query { context, source }
}

/// Whether an error is a unique-constraint violation.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// Whether an error is a foreign-key violation (a row naming a missing tenant).
///
/// Inserts rely on it instead of reading first: in SQLite a transaction that
/// reads and then writes can fail to upgrade its lock when another writer
/// got in between, while one that writes first simply waits its turn.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_foreign_key_violation())
}

/// The current time in Unix milliseconds, the unit of every time column.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The metadata database, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct MetaStore {
    pool: AnyPool,
    /// PostgreSQL (shared by processes) rather than SQLite (one process).
    postgres: bool,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").finish_non_exhaustive()
    }
}

/// The file name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "meta.db";

impl MetaStore {
    /// Opens (creating if needed) the SQLite database `meta.db` in `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> Result<MetaStore, MetaError> {
        MetaStore::open(&sqlite_url(&data_dir.join(SQLITE_FILE))).await
    }

    /// Opens the database at `url` (`sqlite://…` or `postgres://…`) and migrates it.
    pub async fn open(url: &str) -> Result<MetaStore, MetaError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            // A database that is down is reported within seconds, so callers
            // can fall back (ingest's key cache) or answer 503 instead of hanging.
            .acquire_timeout(Duration::from_secs(if sqlite { 10 } else { 3 }))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets `logbook admin` write while the server reads and
                        // writes; the busy timeout makes writers wait for each other.
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                                 PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(MetaError::Connect)?;
        migrations::migrate(&pool).await?;
        Ok(MetaStore {
            pool,
            postgres: !sqlite,
        })
    }

    /// The value of a server-wide secret, storing `candidate` if there is none yet.
    ///
    /// Every process sharing the database agrees on the value, whichever stored it first.
    pub async fn secret_or_insert(&self, name: &str, candidate: &str) -> Result<String, MetaError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(query_failed("storing a server secret"))?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(query_failed("reading a server secret"))
    }

    /// Whether the database answers, for readiness.
    pub async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_failed("checking the connection"))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A `sqlite://` URL for a file, created if missing. `%`, `?` and `#` in the
/// path are percent-encoded so the URL parser reads the path back unchanged.
pub fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Helpers for tests that run against a shared PostgreSQL server.
pub mod testing {
    use sqlx::Connection as _;

    /// Names of test schemas: the prefix, then the creation time in Unix ms.
    const PREFIX: &str = "logbook_test_";

    /// The PostgreSQL URL tests run against, from `LOGBOOK_TEST_POSTGRES_URL`;
    /// when it is unset, says so where the person running the tests sees it
    /// (libtest captures `eprintln!` of passing tests, but not direct writes
    /// to stderr) and returns `None`.
    pub fn postgres_url(test: &str) -> Option<String> {
        match std::env::var("LOGBOOK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED the PostgreSQL half of {test}: LOGBOOK_TEST_POSTGRES_URL is not set \
                     (e.g. postgres://postgres@127.0.0.1:5432/test)"
                );
                None
            }
        }
    }

    /// Creates a schema with a unique name in the database at `url` and returns
    /// a URL whose connections use it, so tests running at once never meet.
    /// Schemas that earlier runs left behind for more than an hour are dropped.
    pub async fn fresh_postgres_schema(url: &str) -> Result<String, sqlx::Error> {
        sqlx::any::install_default_drivers();
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = super::now_millis();
        let schema = format!(
            "{PREFIX}{now}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut connection = sqlx::AnyConnection::connect(url).await?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'logbook_test_%'",
        )
        .fetch_all(&mut connection)
        .await?;
        for old in existing {
            let created = old
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|millis| millis.parse::<i64>().ok());
            if created.is_some_and(|created| now - created > 3_600_000) {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {old} CASCADE"
                )))
                .execute(&mut connection)
                .await?;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        let separator = if url.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{url}{separator}options=-c%20search_path%3D{schema}"
        ))
    }
}
