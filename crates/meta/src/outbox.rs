//! The audit outbox: security events waiting to enter the event pipeline.
//!
//! Writers insert an entry in the same transaction as the change it records;
//! the server drains entries into the queue in id order and deletes them once
//! the queue has synced them. An entry drained twice (a crash between append
//! and delete) carries the same event id both times, and the store keeps one.

use sqlx::{AnyConnection, Row as _};

use crate::{MetaError, MetaStore, now_millis, query_failed};

/// A security event to record: its id, tenant and JSON (an event object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The event id; ids sort by time (ULIDs), which orders the drain.
    pub id: String,
    pub tenant: String,
    /// The event as JSON, in the form the pipeline's queue records carry.
    pub event: String,
}

/// An entry read back from the outbox.
pub type OutboxEntry = AuditEntry;

pub(crate) async fn insert(
    connection: &mut AnyConnection,
    entries: &[AuditEntry],
) -> Result<(), MetaError> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO audit_outbox (id, tenant_id, event, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&entry.id)
        .bind(&entry.tenant)
        .bind(&entry.event)
        .bind(now_millis())
        .execute(&mut *connection)
        .await
        .map_err(query_failed("recording an audit event"))?;
    }
    Ok(())
}

impl MetaStore {
    /// Records security events that go with no other change (a login, a failed login).
    pub async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), MetaError> {
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(query_failed("recording an audit event"))?;
        insert(&mut connection, entries).await
    }

    /// The oldest entries waiting in the outbox, at most `limit`.
    pub async fn outbox_batch(&self, limit: i64) -> Result<Vec<OutboxEntry>, MetaError> {
        let rows =
            sqlx::query("SELECT id, tenant_id, event FROM audit_outbox ORDER BY id LIMIT $1")
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
