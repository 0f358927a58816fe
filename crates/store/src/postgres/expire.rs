//! Retention in the PostgreSQL store: a tenant's expired log events are
//! deleted, and a day's partition left empty by every tenant's retention is
//! dropped, which gives its space back to the filesystem at once. Rows deleted
//! from a partition that other events keep alive are reclaimed by (auto)vacuum
//! for the partition's later rows, as PostgreSQL does for any delete.

use model::{Stream, Timestamp};

use super::Inner;
use super::compile::stream_code;
use super::errors::engine;
use super::partitions::{Partitions, day_of, days_of_tables};
use crate::StoreError;

impl Inner {
    /// Deletes the log events of `tenant` older than `before`, then drops the
    /// partitions wholly before `before` that nothing is left in.
    pub(super) async fn expire_logs(
        &self,
        tenant: &str,
        before: Timestamp,
    ) -> Result<(), StoreError> {
        let failed = engine("deleting expired events");
        let stream = stream_code(Stream::Logs);
        let mut tx = self.pool.begin().await.map_err(&failed)?;
        let deleted =
            sqlx::query("DELETE FROM store_events WHERE tenant = $1 AND stream = $2 AND ts < $3")
                .bind(tenant)
                .bind(stream)
                .bind(before.nanos())
                .execute(&mut *tx)
                .await
                .map_err(&failed)?
                .rows_affected();
        sqlx::query("DELETE FROM store_event_ids WHERE tenant = $1 AND stream = $2 AND ts < $3")
            .bind(tenant)
            .bind(stream)
            .bind(before.nanos())
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
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
        tx.commit().await.map_err(&failed)?;
        self.drop_empty_days(before).await
    }

    /// Drops each day's partition that ends at or before `before` and holds
    /// no row of any tenant or stream.
    async fn drop_empty_days(&self, before: Timestamp) -> Result<(), StoreError> {
        let failed = engine("dropping an expired day's partition");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'store_events'::regclass",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(&failed)?;
        let last_whole_day = day_of(before.nanos()) - 1;
        for (day, table) in days_of_tables(&tables) {
            if day > last_whole_day {
                continue;
            }
            let mut tx = self.pool.begin().await.map_err(&failed)?;
            Partitions::lock_for_change(&mut tx).await?;
            // Writers of this day wait for the lock; once it is released they
            // find the table gone and their commit fails as `Unavailable`, is
            // retried, and creates the partition again (`Inner::commit`).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            )))
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
            let empty: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT NOT EXISTS (SELECT 1 FROM {table})"
            )))
            .fetch_one(&mut *tx)
            .await
            .map_err(&failed)?;
            if empty {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                    .execute(&mut *tx)
                    .await
                    .map_err(&failed)?;
            }
            tx.commit().await.map_err(&failed)?;
            if empty {
                self.partitions.forget(day);
                tracing::info!(table, "dropped an expired day's partition");
            }
        }
        Ok(())
    }
}
