//! [`AuditLog`] over the trails in PostgreSQL: checkpoints as signed, leaves
//! in sequence (pruned ones without their bodies), and proofs computed from
//! the stored subtree hashes, with the embedded store's bounds and messages.

use async_trait::async_trait;
use audit::Checkpoint;
use model::Timestamp;
use sqlx::postgres::PgConnection;

use super::PostgresStore;
use super::audit_expiry::pruned;
use super::errors::engine;
use super::trail::prove;
use crate::{AuditLog, StoreError};

/// The committed size of a tenant's trail.
async fn size_of(connection: &mut PgConnection, tenant: &str) -> Result<u64, StoreError> {
    let size: Option<i64> =
        sqlx::query_scalar("SELECT size FROM store_audit_heads WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&mut *connection)
            .await
            .map_err(engine("reading an audit trail's size"))?;
    size.map(|size| size as u64)
        .ok_or_else(|| StoreError::OutOfRange(format!("tenant {tenant:?} has no audit events")))
}

/// Refuses a tree size outside `1..=committed`.
fn check_committed(size: u64, committed: u64) -> Result<(), StoreError> {
    if size == 0 || size > committed {
        return Err(StoreError::OutOfRange(format!(
            "size must be from 1 to {committed} (the committed audit events)"
        )));
    }
    Ok(())
}

/// The refusal of leaves below `pruned`.
fn pruned_leaves(pruned: u64) -> StoreError {
    StoreError::OutOfRange(format!(
        "events 0..{pruned} of this trail are pruned: their bodies are gone, their leaf hashes kept"
    ))
}

/// What [`PostgresStore::committed_column`] reads of each leaf row.
#[derive(Clone, Copy)]
enum Column {
    Leaf,
    Hash,
}

impl PostgresStore {
    /// The leaf bytes or leaf hashes of committed events `from..to` of a
    /// tenant's trail, in sequence; all of them, or an error (leaf bytes of a
    /// pruned event are `OutOfRange`).
    async fn committed_column(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        column: Column,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut connection = self.connection().await?;
        check_committed(to, size_of(&mut connection, tenant).await?)?;
        if from > to {
            return Err(StoreError::OutOfRange(format!("from must be at most {to}")));
        }
        if let Column::Leaf = column {
            let pruned = pruned(&mut connection, tenant).await?;
            if from < pruned {
                return Err(pruned_leaves(pruned));
            }
        }
        let query = match column {
            Column::Leaf => {
                "SELECT leaf FROM store_audit_leaves WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq"
            }
            Column::Hash => {
                "SELECT hash FROM store_audit_leaves WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq"
            }
        };
        let rows: Vec<Option<Vec<u8>>> = sqlx::query_scalar(query)
            .bind(tenant)
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&mut *connection)
            .await
            .map_err(engine("reading audit leaves"))?;
        let rows = rows
            .into_iter()
            .map(|row| {
                // Pruned by a commit since the head was read.
                row.ok_or_else(|| {
                    StoreError::OutOfRange(format!(
                        "events of {from}..{to} were pruned meanwhile: their bodies are gone"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if rows.len() as u64 != to - from {
            return Err(StoreError::Corrupt(format!(
                "the trail of {tenant:?} holds {} of the leaves {from}..{to}",
                rows.len()
            )));
        }
        Ok(rows)
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.inner
            .pool
            .acquire()
            .await
            .map_err(engine("reading an audit trail"))
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    fn public_key(&self) -> String {
        self.inner.signer.verifying.to_text()
    }

    async fn checkpoint(
        &self,
        tenant: &str,
        size: Option<u64>,
    ) -> Result<Option<String>, StoreError> {
        let failed = engine("reading a checkpoint");
        let note: Option<String> = match size {
            None => sqlx::query_scalar(
                "SELECT note FROM store_audit_checkpoints WHERE tenant = $1 ORDER BY size DESC LIMIT 1",
            )
            .bind(tenant)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(&failed)?,
            Some(size) => {
                let note: Option<String> = sqlx::query_scalar(
                    "SELECT note FROM store_audit_checkpoints WHERE tenant = $1 AND size = $2",
                )
                .bind(tenant)
                .bind(size as i64)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(&failed)?;
                if let Some(note) = &note {
                    Checkpoint::verify(note, &self.inner.signer.verifying).map_err(|error| {
                        StoreError::Corrupt(format!(
                            "the checkpoint of size {size} of {tenant:?} does not verify: {error}"
                        ))
                    })?;
                }
                note
            }
        };
        Ok(note)
    }

    async fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        let mut connection = self.connection().await?;
        check_committed(size, size_of(&mut connection, tenant).await?)?;
        if seq >= size {
            return Err(StoreError::OutOfRange(format!(
                "event {seq} is not in a tree of {size}"
            )));
        }
        prove(&mut connection, tenant, size, |tree| {
            audit::inclusion_proof(tree, seq, size)
        })
        .await
    }

    async fn leaf_hashes(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        self.committed_column(tenant, from, to, Column::Hash)
            .await?
            .into_iter()
            .map(|hash| {
                audit::Hash::try_from(hash).map_err(|hash| {
                    StoreError::Corrupt(format!("an audit hash of {} bytes", hash.len()))
                })
            })
            .collect()
    }

    async fn leaves(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.committed_column(tenant, from, to, Column::Leaf).await
    }

    async fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        let mut connection = self.connection().await?;
        check_committed(to, size_of(&mut connection, tenant).await?)?;
        if from == 0 || from > to {
            return Err(StoreError::OutOfRange(format!(
                "from must be from 1 to {to}"
            )));
        }
        prove(&mut connection, tenant, to, |tree| {
            audit::consistency_proof(tree, from, to)
        })
        .await
    }

    async fn expire_audit(&self, tenant: &str, before: Timestamp) -> Result<u64, StoreError> {
        PostgresStore::expire_audit(self, tenant, before).await
    }

    async fn pruned(&self, tenant: &str) -> Result<u64, StoreError> {
        pruned(&mut *self.connection().await?, tenant).await
    }

    async fn pruned_seq(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError> {
        PostgresStore::pruned_seq(self, tenant, id).await
    }
}
