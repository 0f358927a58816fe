//! The PostgreSQL store's tables, created and upgraded at open: numbered
//! migrations applied in order, each once, under an advisory lock so that
//! processes starting at once over the same database never race.

use sqlx::{Executor as _, PgPool};

use super::errors::engine;
use crate::StoreError;

/// The first key of the advisory lock that migrations take (the second is the
/// schema's hash, so stores in different schemas do not wait for each other).
const LOCK: i32 = 0x6c6f_6701;

/// Every migration, in the order applied. Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[(i32, &str)] = &[(1, EVENTS)];

/// The events, their ids, the lexicon of prefixable terms, the attribute paths
/// each tenant's streams hold, event counts and the queue position.
const EVENTS: &str = r#"
CREATE TABLE store_events (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    ts bigint NOT NULL,
    arrival bigint NOT NULL,
    id text COLLATE "C" NOT NULL,
    service text COLLATE "C",
    level smallint NOT NULL,
    terms tsvector NOT NULL,
    nums jsonb,
    doc text NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX store_events_order ON store_events (tenant, stream, ts, arrival);
CREATE INDEX store_events_terms ON store_events USING gin (terms);

CREATE TABLE store_event_ids (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    id text COLLATE "C" NOT NULL,
    ts bigint NOT NULL,
    arrival bigint NOT NULL,
    replaced_ts bigint,
    replaced_arrival bigint,
    PRIMARY KEY (tenant, stream, id)
);

CREATE TABLE store_lexicon (
    lexeme text COLLATE "C" PRIMARY KEY
);

CREATE TABLE store_fields (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    path text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, stream, path)
);

CREATE TABLE store_counts (
    shard integer PRIMARY KEY,
    events bigint NOT NULL
);

CREATE TABLE store_position (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position bigint
);
INSERT INTO store_position (singleton, position) VALUES (true, NULL);
"#;

/// Brings the schema up to date; safe to run from many processes at once.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let failed = engine("migrating the store's tables");
    let mut tx = pool.begin().await.map_err(&failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(LOCK)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS store_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(&failed)?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM store_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(&failed)?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.execute(*sql).await.map_err(&failed)?;
        sqlx::query("INSERT INTO store_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
    }
    if let Some(newest) = applied.iter().max()
        && MIGRATIONS.iter().all(|(version, _)| version < newest)
    {
        return Err(StoreError::Corrupt(format!(
            "the store's tables are at version {newest}, newer than this program knows; run a newer Logbook"
        )));
    }
    tx.commit().await.map_err(&failed)
}
