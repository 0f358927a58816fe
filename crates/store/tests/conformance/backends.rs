//! The stores the suite runs against: the embedded store in a temporary
//! directory, and the PostgreSQL store in a fresh schema of the database at
//! `LOGBOOK_TEST_POSTGRES_URL` (skipped, visibly, when it is unset).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::Connection as _;
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::postgres::{PostgresStore, PostgresStoreOptions};
use store::{EventStore, QueryLimits};

/// Where a case's store lives: every store it opens sees what the stores it
/// opened before committed (closed first, for backends that need it).
#[async_trait]
pub trait Backend: Send + Sync {
    async fn open_with(&self, limits: QueryLimits) -> Arc<dyn EventStore>;

    async fn open(&self) -> Arc<dyn EventStore> {
        self.open_with(QueryLimits::default()).await
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
    async fn open_with(&self, limits: QueryLimits) -> Arc<dyn EventStore> {
        let mut config = EmbeddedStoreConfig::new(self.dir.path().join("index"));
        config.audit_dir = self.dir.path().join("audit");
        config.writer_memory_bytes = 32 * 1024 * 1024;
        config.queries = limits;
        Arc::new(EmbeddedStore::open(&config).expect("the embedded store opens"))
    }
}

/// Names of test schemas: the prefix, then the creation time in Unix ms.
const PREFIX: &str = "logbook_store_test_";

pub struct Postgres {
    admin_url: String,
    schema: String,
    url: String,
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
        })
    }

    /// Another handle on the same schema (for stores opened from other tasks).
    pub fn clone_handle(&self) -> Postgres {
        Postgres {
            admin_url: self.admin_url.clone(),
            schema: self.schema.clone(),
            url: self.url.clone(),
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
    async fn open_with(&self, limits: QueryLimits) -> Arc<dyn EventStore> {
        let options = PostgresStoreOptions {
            max_connections: 4,
            queries: limits,
            ..PostgresStoreOptions::default()
        };
        Arc::new(
            PostgresStore::open(&self.url, &options)
                .await
                .expect("the PostgreSQL store opens"),
        )
    }
}
