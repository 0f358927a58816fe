//! The stores the suite runs against: the embedded store in a temporary
//! directory, and the PostgreSQL store in a fresh schema of the database at
//! `LOGBOOK_TEST_POSTGRES_URL` (skipped, visibly, when it is unset).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::Connection as _;
use store::embedded::{CheckpointPolicy, EmbeddedStore, EmbeddedStoreConfig};
use store::postgres::{PostgresStore, PostgresStoreOptions};
use store::{AuditLog, EventStore, QueryLimits};

/// What every backend is: an event store and the audit log of its audit stream.
pub trait Store: EventStore + AuditLog {}

impl<T: EventStore + AuditLog> Store for T {}

/// What a case may tune in the stores it opens.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: QueryLimits,
    pub checkpoints: CheckpointPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: QueryLimits::default(),
            // Every 10 events, and never by time within a test.
            checkpoints: CheckpointPolicy {
                every_events: 10,
                interval: std::time::Duration::from_secs(3600),
            },
        }
    }
}

/// Where a case's store lives: every store it opens sees what the stores it
/// opened before committed (closed first, for backends that need it).
#[async_trait]
pub trait Backend: Send + Sync {
    async fn open_with(&self, settings: Settings) -> Arc<dyn Store>;

    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(Settings::default()).await
    }
}

pub struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    pub fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn open_with(&self, settings: Settings) -> Arc<dyn Store> {
        let mut config = EmbeddedStoreConfig::new(self.dir.path().join("index"));
        config.audit_dir = self.dir.path().join("audit");
        config.writer_memory_bytes = 32 * 1024 * 1024;
        config.queries = settings.limits;
        config.checkpoints = settings.checkpoints;
        Arc::new(EmbeddedStore::open(&config).expect("the embedded store opens"))
    }
}

/// Names of test schemas: the prefix, then the creation time in Unix ms.
const PREFIX: &str = "logbook_store_test_";

pub struct Postgres {
    admin_url: String,
    schema: String,
    url: String,
    /// Holds the audit signing key every store of the case shares.
    keys: Arc<tempfile::TempDir>,
}

impl Postgres {
    /// A fresh schema for one case, or `None` (having said so) without a database.
    pub async fn new(case: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("LOGBOOK_TEST_POSTGRES_URL") else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the PostgreSQL half of {case}: LOGBOOK_TEST_POSTGRES_URL is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_millis() as i64;
        let schema = format!(
            "{PREFIX}{now}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut connection = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("the test database answers");
        // Schemas of runs that died before cleaning up, an hour later.
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
                .bind(format!("{PREFIX}%"))
                .fetch_all(&mut connection)
                .await
                .expect("schemas are listed");
        for old in existing {
            let created = old
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|millis| millis.parse::<i64>().ok());
            if created.is_some_and(|created| now - created > 3_600_000) {
                drop_schema(&mut connection, &old).await;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut connection)
            .await
            .expect("a schema is created");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
        Some(Postgres {
            admin_url,
            schema,
            url,
            keys: Arc::new(tempfile::tempdir().expect("a temporary directory")),
        })
    }

    /// The URL of the case's schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection to the case's schema, to look behind the store.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("the test database answers")
    }

    /// The options the case's stores open with.
    pub fn options(&self) -> PostgresStoreOptions {
        self.options_with(Settings::default())
    }

    fn options_with(&self, settings: Settings) -> PostgresStoreOptions {
        PostgresStoreOptions {
            max_connections: 4,
            queries: settings.limits,
            checkpoints: settings.checkpoints,
            ..PostgresStoreOptions::new(self.keys.path().join("checkpoint.key"))
        }
    }

    /// Another handle on the same schema (for stores opened from other tasks).
    pub fn clone_handle(&self) -> Postgres {
        Postgres {
            admin_url: self.admin_url.clone(),
            schema: self.schema.clone(),
            url: self.url.clone(),
            keys: Arc::clone(&self.keys),
        }
    }

    /// Drops the case's schema.
    pub async fn cleanup(self) {
        let mut connection = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("the test database answers");
        drop_schema(&mut connection, &self.schema).await;
    }
}

async fn drop_schema(connection: &mut sqlx::PgConnection, schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(connection)
    .await
    .expect("a test schema is dropped");
}

#[async_trait]
impl Backend for Postgres {
    async fn open_with(&self, settings: Settings) -> Arc<dyn Store> {
        let options = self.options_with(settings);
        Arc::new(
            PostgresStore::open(&self.url, &options)
                .await
                .expect("the PostgreSQL store opens"),
        )
    }
}
