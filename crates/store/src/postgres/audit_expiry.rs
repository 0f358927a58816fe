//! Audit retention in the PostgreSQL store: a tenant's oldest audit events
//! lose their bodies (`store_audit_leaves.leaf` set to NULL, the only update
//! the table's trigger allows) and their rows in `store_events`, in one
//! transaction that also moves the trail head's `pruned` count. Their leaf
//! hashes and subtree hashes stay, so roots, proofs and checkpoints do not
//! change; their `store_event_ids` rows stay too, and remember each pruned
//! event's sequence number (its arrival) and keep it from being appended to
//! the trail again.

use model::{Stream, Timestamp};
use sqlx::postgres::PgConnection;

use super::PostgresStore;
use super::compile::stream_code;
use super::errors::engine;
use super::trail::LOCK;
use super::write::{arrival_column, arrival_number};
use crate::StoreError;

/// Leaves read per query while looking for the end of the expired prefix.
const CHUNK: i64 = 1_000;

/// The most leaves one expiry prunes, in one transaction that holds the
/// tenant's append lock: a large backlog is pruned over several rounds.
const MAX_PRUNED_PER_CALL: u64 = 50_000;

/// What an expiry reads of each leaf.
#[derive(serde::Deserialize)]
struct Head {
    received_at: Timestamp,
}

/// How many leaves of the tenant's trail are pruned (0 without a trail).
pub(super) async fn pruned(connection: &mut PgConnection, tenant: &str) -> Result<u64, StoreError> {
    let pruned: Option<i64> =
        sqlx::query_scalar("SELECT pruned FROM store_audit_heads WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&mut *connection)
            .await
            .map_err(engine("reading an audit trail's head"))?;
    Ok(pruned.unwrap_or(0) as u64)
}

impl PostgresStore {
    /// Prunes the tenant's audit events received before `before` (see
    /// [`crate::AuditLog::expire_audit`]).
    pub(super) async fn expire_audit(
        &self,
        tenant: &str,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let failed = engine("pruning an audit trail");
        let mut connection = self.inner.pool.acquire().await.map_err(&failed)?;
        let start = pruned(&mut connection, tenant).await?;
        let end = expired_end(&mut connection, tenant, start, before)
            .await?
            .min(start + MAX_PRUNED_PER_CALL);
        drop(connection);
        if end <= start {
            return Ok(0);
        }
        let mut tx = self.inner.pool.begin().await.map_err(&failed)?;
        // The lock that orders the tenant's appends: pruning never races one.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))")
            .bind(LOCK)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        // Another process may have pruned meanwhile: start from where it ended.
        let from = pruned(&mut tx, tenant).await?;
        if from >= end {
            return Ok(0);
        }
        sqlx::query(
            "UPDATE store_audit_leaves SET leaf = NULL \
             WHERE tenant = $1 AND seq >= $2 AND seq < $3",
        )
        .bind(tenant)
        .bind(from as i64)
        .bind(end as i64)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        // An audit event's arrival is its sequence number.
        let deleted = sqlx::query(
            "DELETE FROM store_events \
             WHERE tenant = $1 AND stream = $2 AND arrival >= $3 AND arrival < $4",
        )
        .bind(tenant)
        .bind(stream_code(Stream::Audit))
        .bind(arrival_column(from))
        .bind(arrival_column(end))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?
        .rows_affected();
        if deleted > 0 {
            sqlx::query(
                "INSERT INTO store_counts (shard, events) VALUES (pg_backend_pid() % 16, $1) \
                 ON CONFLICT (shard) DO UPDATE SET events = store_counts.events + excluded.events",
            )
            .bind(-(deleted as i64))
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        }
        sqlx::query("UPDATE store_audit_heads SET pruned = $2 WHERE tenant = $1")
            .bind(tenant)
            .bind(end as i64)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(&failed)?;
        Ok(end - from)
    }

    /// The sequence number of the tenant's pruned audit event `id`: its id row
    /// outlives its body.
    pub(super) async fn pruned_seq(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let failed = engine("finding a pruned audit event");
        let mut connection = self.inner.pool.acquire().await.map_err(&failed)?;
        let arrival: Option<i64> = sqlx::query_scalar(
            "SELECT arrival FROM store_event_ids WHERE tenant = $1 AND stream = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(stream_code(Stream::Audit))
        .bind(id)
        .fetch_optional(&mut *connection)
        .await
        .map_err(&failed)?;
        let pruned = pruned(&mut connection, tenant).await?;
        Ok(arrival.map(arrival_number).filter(|seq| *seq < pruned))
    }
}

/// The end of the tenant's expired prefix from leaf `start` on: the first
/// leaf Logbook received at or after `before` (or the trail's end). A leaf
/// already pruned (by another process meanwhile) counts as expired.
async fn expired_end(
    connection: &mut PgConnection,
    tenant: &str,
    start: u64,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let mut next = start;
    loop {
        if next - start >= MAX_PRUNED_PER_CALL {
            return Ok(next);
        }
        let rows: Vec<(i64, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT seq, leaf FROM store_audit_leaves \
             WHERE tenant = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(tenant)
        .bind(next as i64)
        .bind(CHUNK)
        .fetch_all(&mut *connection)
        .await
        .map_err(engine("reading audit leaves"))?;
        let count = rows.len();
        for (seq, leaf) in rows {
            if seq as u64 != next {
                return Err(StoreError::Corrupt(format!(
                    "the trail of {tenant:?} has no leaf {next}; run `logbook verify`"
                )));
            }
            if let Some(leaf) = leaf {
                let head: Head = serde_json::from_slice(&leaf).map_err(|error| {
                    StoreError::Corrupt(format!(
                        "audit event {seq} of {tenant:?} has no receive time: {error}; run \
                         `logbook verify`"
                    ))
                })?;
                if head.received_at >= before {
                    return Ok(next);
                }
            }
            next += 1;
        }
        if count < CHUNK as usize {
            return Ok(next);
        }
    }
}
