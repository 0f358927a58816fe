//! Dead letters in PostgreSQL, for deployments whose workers share one
//! database: a `dead_letters` table (created if missing), one row per letter.
//! Times are Unix nanoseconds, as everywhere else in Logbook; ids compare
//! byte by byte (`COLLATE "C"`), so pages follow the same order as the
//! directory's.

use async_trait::async_trait;
use model::{Stream, Timestamp};
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::{DeadLetter, DeadLetterInfo, DeadLetterPage, DeadLetters, is_valid_id, page_size};
use crate::StoreError;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT COLLATE \"C\" PRIMARY KEY,
    tenant TEXT,
    stream TEXT,
    position BIGINT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at BIGINT NOT NULL,
    last_failed_at BIGINT NOT NULL,
    payload BYTEA NOT NULL
)";

/// The columns of [`DeadLetterInfo`], in the order [`info_of`] reads them.
const INFO_COLUMNS: &str = "id, tenant, stream, position, error, attempts, first_failed_at, \
                            last_failed_at, octet_length(payload)::BIGINT AS payload_bytes";

/// Dead letters in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresDeadLetters {
    pool: PgPool,
}

impl PostgresDeadLetters {
    /// Connects to `url` and creates the table if it is missing.
    pub async fn connect(url: &str) -> Result<PostgresDeadLetters, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(failed("connecting to PostgreSQL"))?;
        PostgresDeadLetters::with_pool(pool).await
    }

    /// Uses an existing pool (the event store's), creating the table if it is missing.
    pub async fn with_pool(pool: PgPool) -> Result<PostgresDeadLetters, StoreError> {
        sqlx::query(CREATE_TABLE)
            .execute(&pool)
            .await
            .map_err(failed("creating the dead_letters table"))?;
        Ok(PostgresDeadLetters { pool })
    }
}

/// Maps a database error: one that says the database cannot be reached is
/// [`StoreError::Unavailable`] (retry later), anything else an engine error.
fn failed(context: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{context}: {error}")),
        // Connection exceptions (class 08), too many connections or no
        // resources (53), a server shutting down or restarting (57P0x).
        sqlx::Error::Database(database)
            if database.code().is_some_and(|code| {
                code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
            }) =>
        {
            StoreError::Unavailable(format!("{context}: {error}"))
        }
        _ => StoreError::Engine {
            context,
            source: Box::new(error),
        },
    }
}

/// A number stored as BIGINT, refused rather than wrapped when it does not fit.
fn bigint(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Rejected(format!("{what} {value} does not fit in a BIGINT")))
}

fn info_of(row: &PgRow) -> Result<DeadLetterInfo, StoreError> {
    let read = failed("reading a dead letter");
    let stream: Option<String> = row.try_get("stream").map_err(&read)?;
    let stream = match stream.as_deref() {
        None => None,
        Some("logs") => Some(Stream::Logs),
        Some("audit") => Some(Stream::Audit),
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "a dead letter names the unknown stream {other:?}"
            )));
        }
    };
    let position: i64 = row.try_get("position").map_err(&read)?;
    let attempts: i32 = row.try_get("attempts").map_err(&read)?;
    let payload_bytes: i64 = row.try_get("payload_bytes").map_err(&read)?;
    Ok(DeadLetterInfo {
        id: row.try_get("id").map_err(&read)?,
        tenant: row.try_get("tenant").map_err(&read)?,
        stream,
        position: u64::try_from(position).unwrap_or(0),
        error: row.try_get("error").map_err(&read)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        first_failed_at: Timestamp::from_nanos(row.try_get("first_failed_at").map_err(&read)?),
        last_failed_at: Timestamp::from_nanos(row.try_get("last_failed_at").map_err(&read)?),
        payload_bytes: u64::try_from(payload_bytes).unwrap_or(0),
    })
}

#[async_trait]
impl DeadLetters for PostgresDeadLetters {
    async fn put(&self, letter: DeadLetter) -> Result<(), StoreError> {
        let info = &letter.info;
        if !is_valid_id(&info.id) {
            return Err(StoreError::Rejected(format!(
                "{:?} cannot name a dead letter",
                info.id
            )));
        }
        sqlx::query(
            "INSERT INTO dead_letters
                 (id, tenant, stream, position, error, attempts, first_failed_at, last_failed_at, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET
                 tenant = EXCLUDED.tenant, stream = EXCLUDED.stream, position = EXCLUDED.position,
                 error = EXCLUDED.error, attempts = EXCLUDED.attempts,
                 first_failed_at = EXCLUDED.first_failed_at,
                 last_failed_at = EXCLUDED.last_failed_at, payload = EXCLUDED.payload",
        )
        .bind(&info.id)
        .bind(info.tenant.as_deref())
        .bind(info.stream.map(Stream::as_str))
        .bind(bigint(info.position, "the queue position")?)
        .bind(&info.error)
        .bind(i32::try_from(info.attempts).unwrap_or(i32::MAX))
        .bind(info.first_failed_at.nanos())
        .bind(info.last_failed_at.nanos())
        .bind(&letter.payload)
        .execute(&self.pool)
        .await
        .map_err(failed("storing a dead letter"))?;
        Ok(())
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<DeadLetterPage, StoreError> {
        let limit = page_size(limit);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INFO_COLUMNS} FROM dead_letters
             WHERE $1::TEXT IS NULL OR id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing dead letters"))?;
        let mut letters = rows.iter().map(info_of).collect::<Result<Vec<_>, _>>()?;
        let next = if letters.len() > limit {
            letters.truncate(limit);
            letters.last().map(|info| info.id.clone())
        } else {
            None
        };
        Ok(DeadLetterPage { letters, next })
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INFO_COLUMNS}, payload FROM dead_letters WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading a dead letter"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(DeadLetter {
            info: info_of(&row)?,
            payload: row
                .try_get("payload")
                .map_err(failed("reading a dead letter"))?,
        }))
    }

    async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed("removing a dead letter"))?;
        Ok(done.rows_affected() > 0)
    }
}
