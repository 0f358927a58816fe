//! Retention in the PostgreSQL store: a tenant's expired log events are
//! deleted a day at a time, and a day's partition left empty (by every
//! tenant and both streams) is dropped, which gives its space back to the
//! filesystem at once. Rows deleted from a partition that other rows keep
//! alive leave their space to the partition, as any delete does.

use model::{Stream, Timestamp};

use super::Inner;
use super::compile::stream_code;
use super::errors::engine;
use super::partitions::{NANOS_PER_DAY, Partitions, day_of, days_of_tables};
use crate::StoreError;

impl Inner {
    /// Deletes the log events of `tenant` older than `before`, one day per
    /// transaction (oldest first, so an interrupted expiry leaves no gap),
    /// then drops the days wholly before `before` that nothing is left in.
    pub(super) async fn expire_logs(
        &self,
        tenant: &str,
        before: Timestamp,
    ) -> Result<(), StoreError> {
        let failed = engine("deleting expired events");
        let stream = stream_code(Stream::Logs);
        let mut from = i64::MIN;
        let mut deleted = 0u64;
        loop {
            // The index on (tenant, stream, ts) finds the next day to clear
            // at once, however sparse the tenant's days are.
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT min(ts) FROM store_events \
                 WHERE tenant = $1 AND stream = $2 AND ts >= $3 AND ts < $4",
            )
            .bind(tenant)
            .bind(stream)
            .bind(from)
            .bind(before.nanos())
            .fetch_one(&self.pool)
            .await
            .map_err(&failed)?;
            let Some(oldest) = next else { break };
            let day_end = (day_of(oldest) + 1)
                .checked_mul(NANOS_PER_DAY)
                .unwrap_or(i64::MAX);
            let to = day_end.min(before.nanos());
            let mut tx = self.pool.begin().await.map_err(&failed)?;
            // A key row goes with the copy it points at (not with an older
            // copy a replacement left behind).
            let gone: i64 = sqlx::query_scalar(
                "WITH gone AS ( \
                     DELETE FROM store_events \
                     WHERE tenant = $1 AND stream = $2 AND ts >= $3 AND ts < $4 \
                     RETURNING id, ts, arrival), \
                 keys AS ( \
                     DELETE FROM store_event_ids k USING gone \
                     WHERE k.tenant = $1 AND k.stream = $2 AND k.id = gone.id \
                       AND k.ts = gone.ts AND k.arrival = gone.arrival) \
                 SELECT count(*) FROM gone",
            )
            .bind(tenant)
            .bind(stream)
            .bind(oldest)
            .bind(to)
            .fetch_one(&mut *tx)
            .await
            .map_err(&failed)?;
            if gone > 0 {
                sqlx::query(
                    "INSERT INTO store_counts (shard, events) VALUES (pg_backend_pid() % 16, $1) \
                     ON CONFLICT (shard) DO UPDATE SET events = store_counts.events + excluded.events",
                )
                .bind(-gone)
                .execute(&mut *tx)
                .await
                .map_err(&failed)?;
            }
            tx.commit().await.map_err(&failed)?;
            deleted += gone as u64;
            if to == before.nanos() {
                break;
            }
            from = to;
        }
        if deleted > 0 {
            self.drop_empty_days(before).await?;
        }
        Ok(())
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
        let empty = |table: &str| format!("SELECT NOT EXISTS (SELECT 1 FROM {table})");
        for (day, table) in days_of_tables(&tables) {
            if day > last_whole_day {
                continue;
            }
            // Without a lock first: most old days still hold some tenant's
            // rows, and need no lock to be passed over.
            let candidate: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(empty(table)))
                .fetch_one(&self.pool)
                .await
                .map_err(&failed)?;
            if !candidate {
                continue;
            }
            let mut tx = self.pool.begin().await.map_err(&failed)?;
            Partitions::lock_for_change(&mut tx).await?;
            sqlx::query("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *tx)
                .await
                .map_err(&failed)?;
            // The parent first, as writers and readers take it, so no one
            // waits for the other in the opposite order. Writers of this day
            // wait; once the lock is released they find the table gone, their
            // commit fails as `Unavailable`, and its retry creates the day
            // again (`Inner::commit`).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "LOCK TABLE store_events, {table} IN ACCESS EXCLUSIVE MODE"
            )))
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
            let still_empty: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(empty(table)))
                .fetch_one(&mut *tx)
                .await
                .map_err(&failed)?;
            if still_empty {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                    .execute(&mut *tx)
                    .await
                    .map_err(&failed)?;
            }
            tx.commit().await.map_err(&failed)?;
            if still_empty {
                self.partitions.forget(day);
                tracing::info!(table, "dropped an expired day's partition");
            }
        }
        Ok(())
    }
}
