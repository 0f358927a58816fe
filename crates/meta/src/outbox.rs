//! The audit outbox: security events waiting to enter the event pipeline.
//!
//! Writers insert an entry in the same transaction as the change it records;
//! the server drains entries into the queue in the order their transactions
//! committed and deletes them once the queue has synced them. An entry drained twice (a crash between append
//! and delete) carries the same event id both times, and the store keeps one.

use sqlx::{AnyConnection, Row as _};

use crate::{Lease, MetaError, MetaStore, now_millis, query_failed};

/// A security event to record: its id, tenant and JSON (an event object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The event id (a ULID, but ULIDs minted in the same millisecond do not
    /// sort by time; the drain follows the outbox's own sequence instead).
    pub id: String,
    pub tenant: String,
    /// The event as JSON, in the form the pipeline's queue records carry.
    pub event: String,
}

/// An entry read back from the outbox.
pub type OutboxEntry = AuditEntry;

/// Inserts entries in the order given, numbering them from the outbox counter.
///
/// The counter row is updated first, so it stays locked until the caller's
/// transaction ends: a concurrent transaction waits for it, and the numbers
/// follow the order in which transactions commit (SQLite runs one writer at a
/// time anyway). The drain reads entries by number, so the trail records the
/// changes in the order they happened, even those of one millisecond.
pub(crate) async fn insert(
    connection: &mut AnyConnection,
    entries: &[AuditEntry],
) -> Result<(), MetaError> {
    if entries.is_empty() {
        return Ok(());
    }
    let failed = query_failed("recording an audit event");
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'audit_outbox'")
        .bind(count)
        .execute(&mut *connection)
        .await
        .map_err(&failed)?;
    let last: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'audit_outbox'")
        .fetch_one(&mut *connection)
        .await
        .map_err(&failed)?;
    for (seq, entry) in (last - count + 1..).zip(entries) {
        sqlx::query(
            "INSERT INTO audit_outbox (id, tenant_id, event, created_at, seq) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&entry.id)
        .bind(&entry.tenant)
        .bind(&entry.event)
        .bind(now_millis())
        .bind(seq)
        .execute(&mut *connection)
        .await
        .map_err(&failed)?;
    }
    Ok(())
}

/// The advisory lock that makes one process at a time the outbox's drainer.
/// Over PostgreSQL, processes sharing the database would otherwise drain it at
/// once and could interleave their batches, so the trail would no longer follow
/// the order in which changes committed. The PostgreSQL store's locks use
/// `0x6c6f_6701` to `0x6c6f_6703` as their first key, the alert evaluator
/// `0x6c6f_6711`; this one must differ.
const OUTBOX_LOCK: i32 = 0x6c6f_6710;

impl MetaStore {
    /// Takes the outbox lease if no other process holds it; always granted
    /// over SQLite, which one process uses at a time.
    pub async fn try_outbox_lease(&self) -> Result<Option<Lease>, MetaError> {
        self.try_lease(OUTBOX_LOCK, "taking the outbox lease").await
    }

    /// Records security events that go with no other change (a login, a failed login).
    pub async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), MetaError> {
        let failed = query_failed("recording an audit event");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        insert(&mut transaction, entries).await?;
        transaction.commit().await.map_err(&failed)
    }

    /// The oldest entries waiting in the outbox, at most `limit`, in the order
    /// their transactions committed (entries from before that order was kept
    /// come first, by id).
    pub async fn outbox_batch(&self, limit: i64) -> Result<Vec<OutboxEntry>, MetaError> {
        let rows =
            sqlx::query("SELECT id, tenant_id, event FROM audit_outbox ORDER BY seq, id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(query_failed("reading the audit outbox"))?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    event: row.try_get("event")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(query_failed("reading the audit outbox"))
    }

    /// Deletes drained entries.
    pub async fn outbox_remove(&self, ids: &[String]) -> Result<(), MetaError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(query_failed("clearing the audit outbox"))?;
        for id in ids {
            sqlx::query("DELETE FROM audit_outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(query_failed("clearing the audit outbox"))?;
        }
        transaction
            .commit()
            .await
            .map_err(query_failed("clearing the audit outbox"))
    }
}
