//! A tenant's audit trail read straight from the database, for
//! `logbook verify --store-url`: read-only (no migrations, no signing key),
//! and in chunks, so a trail of any length is checked in bounded memory.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::errors::engine;
use crate::StoreError;

/// Read access to the trails of a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct TrailSource {
    pool: PgPool,
}

impl TrailSource {
    /// Connects to the store's database at `url`; creates and changes nothing.
    pub async fn connect(url: &str) -> Result<TrailSource, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .map_err(engine("connecting to PostgreSQL"))?;
        Ok(TrailSource { pool })
    }

    /// The tenants that have an audit trail, in name order.
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT tenant FROM store_audit_heads ORDER BY tenant")
            .fetch_all(&self.pool)
            .await
            .map_err(engine("listing audit trails"))
    }

    /// Every signed checkpoint of `tenant`, oldest first, as stored (each is
    /// checked by the verifier, never trusted here).
    pub async fn checkpoints(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT note FROM store_audit_checkpoints WHERE tenant = $1 ORDER BY size",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(engine("reading checkpoints"))
    }

    /// Up to `limit` leaves of `tenant` from `from` on, with their recorded
    /// hashes, in sequence order; a pruned leaf has no bytes. A gap in the
    /// numbers ends the chunk early (the verifier then sees the trail end
    /// there and reports it).
    pub async fn leaves(
        &self,
        tenant: &str,
        from: u64,
        limit: u32,
    ) -> Result<Vec<(Option<Vec<u8>>, Vec<u8>)>, StoreError> {
        let rows: Vec<(i64, Option<Vec<u8>>, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, leaf, hash FROM store_audit_leaves \
             WHERE tenant = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(tenant)
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(engine("reading audit leaves"))?;
        Ok(rows
            .into_iter()
            .zip(from..)
            .take_while(|((seq, _, _), expected)| *seq as u64 == *expected)
            .map(|((_, leaf, hash), _)| (leaf, hash))
            .collect())
    }
}
