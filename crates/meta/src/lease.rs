//! Leases: the right of one process, among those sharing a PostgreSQL
//! metadata store, to run a job that must not run twice at once (draining the
//! audit outbox, evaluating alert rules, enforcing retention).

use sqlx::{AnyConnection, Connection as _};

use crate::{MetaError, MetaStore, query_failed};

/// A held lease. Over PostgreSQL it is a session advisory lock on a
/// connection of its own, released when the lease (and so the connection) is
/// dropped or dies; over SQLite, which one process uses at a time, it is
/// always granted and holds nothing.
#[derive(Debug)]
pub struct Lease {
    connection: Option<AnyConnection>,
}

impl Lease {
    /// Whether the lease still holds: its connection answers (a connection
    /// that died took the lock with it).
    pub async fn holds(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => connection.ping().await.is_ok(),
        }
    }
}

/// The first half of the retention enforcer's advisory lock.
const RETENTION_LOCK: i32 = 0x6c6f_6712;

impl MetaStore {
    /// Takes the retention enforcer's lease if no other process holds it;
    /// always granted over SQLite.
    pub async fn try_retention_lease(&self) -> Result<Option<Lease>, MetaError> {
        self.try_lease(RETENTION_LOCK, "taking the retention lease")
            .await
    }

    /// Takes the lease whose advisory lock has `key` as its first half, if
    /// no other process holds it. The second half is the schema's hash, so
    /// deployments in other schemas of the same database do not contend.
    pub(crate) async fn try_lease(
        &self,
        key: i32,
        context: &'static str,
    ) -> Result<Option<Lease>, MetaError> {
        if !self.postgres {
            return Ok(Some(Lease { connection: None }));
        }
        let failed = query_failed(context);
        let mut connection = self.pool.acquire().await.map_err(&failed)?;
        let granted: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(key)
                .fetch_one(&mut *connection)
                .await
                .map_err(&failed)?;
        // A granted lock leaves the pool with its connection, so that closing
        // the connection is what releases it; a refused one goes back.
        Ok(granted.then(|| Lease {
            connection: Some(connection.detach()),
        }))
    }
}
