//! The daily partitions of the events table: created before a commit writes
//! into a day that has none (any day, past or future), and one day ahead of
//! the clock, so that dropping a day's table is all retention will need.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use sqlx::PgPool;

use super::errors::engine;
use crate::StoreError;

pub(crate) const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// The second key of the advisory lock partition creation takes (the first is
/// the schema's hash).
const LOCK: i32 = 0x6c6f_6702;

/// SQLSTATE of a row no partition takes (a `check_violation`).
const NO_PARTITION: &str = "23514";

/// Whether a write failed because the day of one of its rows has no
/// partition: one that another process's retention dropped.
pub(crate) fn is_missing_partition(error: &StoreError) -> bool {
    let StoreError::Engine { source, .. } = error else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(database)) => database.code().as_deref() == Some(NO_PARTITION),
        _ => false,
    }
}

/// The day (since the epoch) holding `nanos`.
pub(crate) fn day_of(nanos: i64) -> i64 {
    nanos.div_euclid(NANOS_PER_DAY)
}

/// The year, month and day of a day since the epoch (proleptic Gregorian).
fn civil(day: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The day since the epoch of a year, month and day (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, date: u32) -> i64 {
    // Howard Hinnant's days-from-civil algorithm, the inverse of `civil`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(date) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The day of each table named like [`table`] names them; other names are skipped.
pub(crate) fn days_of_tables(names: &[String]) -> Vec<(i64, &str)> {
    names
        .iter()
        .filter_map(|name| {
            let digits = name.strip_prefix("store_events_")?;
            if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let year = digits[..4].parse().ok()?;
            let month = digits[4..6].parse().ok()?;
            let date = digits[6..].parse().ok()?;
            let day = days_from_civil(year, month, date);
            (table(day) == *name).then_some((day, name.as_str()))
        })
        .collect()
}

/// The table of one day: `store_events_20260218`.
fn table(day: i64) -> String {
    let (year, month, date) = civil(day);
    format!("store_events_{year:04}{month:02}{date:02}")
}

/// A partition bound: the first nanosecond of `day`, or the open end when it
/// is beyond what a timestamp holds.
fn bound(day: i64, open: &str) -> String {
    match day.checked_mul(NANOS_PER_DAY) {
        Some(nanos) => nanos.to_string(),
        None => open.to_owned(),
    }
}

/// The days known to have a partition, so a commit asks PostgreSQL only about
/// new ones.
pub(crate) struct Partitions {
    known: Mutex<HashSet<i64>>,
    /// Rows written per day since this process last analysed its partition.
    unanalysed: Mutex<HashMap<i64, u64>>,
    /// Rows written into a day's partition before its statistics are refreshed.
    analyze_after: u64,
}

impl Partitions {
    pub fn new(analyze_after: u64) -> Partitions {
        Partitions {
            known: Mutex::default(),
            unanalysed: Mutex::default(),
            analyze_after: analyze_after.max(1),
        }
    }

    /// Counts the rows a commit wrote per day and refreshes, in the
    /// background, the statistics of a partition that grew by
    /// `analyze_after` rows: a day's partition filled by a bulk load
    /// has none until autovacuum gets to it, and without them the planner
    /// scans the whole day for every query (about 800 ms at 1.9 M rows).
    pub fn wrote(&self, pool: &PgPool, days: impl IntoIterator<Item = i64>) {
        let mut due = Vec::new();
        {
            let mut unanalysed = self
                .unanalysed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for day in days {
                let rows = unanalysed.entry(day).or_default();
                *rows += 1;
                if *rows >= self.analyze_after {
                    *rows = 0;
                    due.push(day);
                }
            }
        }
        for day in due {
            let pool = pool.clone();
            tokio::spawn(async move {
                let statement = format!("ANALYZE {}", table(day));
                if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(%error, day, "cannot refresh a partition's statistics");
                }
            });
        }
    }

    /// Forgets that `day` has a partition (it was dropped).
    pub fn forget(&self, day: i64) {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&day);
    }

    /// Forgets every known partition: another process dropped one this
    /// process believed in, so each is looked up again before the next write.
    pub fn forget_all(&self) {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// Takes, for the rest of `tx`, the lock every change to the set of
    /// partitions takes, and bounds how long `tx` waits for table locks.
    pub async fn lock_for_change(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        let failed = engine("locking the partitions");
        // One creator at a time; a creator waiting for readers of the parent
        // table gives up after a while rather than queue every query behind it.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)")
            .bind(LOCK)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        Ok(())
    }

    fn is_known(&self, day: i64) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&day)
    }

    /// Makes sure every day in `days` has its partition.
    pub async fn ensure(
        &self,
        pool: &PgPool,
        days: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let mut missing: Vec<i64> = days
            .into_iter()
            .filter(|day| !self.is_known(*day))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let failed = engine("creating a day's partition");
        let mut tx = pool.begin().await.map_err(&failed)?;
        Self::lock_for_change(&mut tx).await?;
        for day in &missing {
            let name = table(*day);
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&mut *tx)
                .await
                .map_err(&failed)?;
            if !exists {
                let create = format!(
                    "CREATE TABLE {name} PARTITION OF store_events FOR VALUES FROM ({}) TO ({})",
                    bound(*day, "MINVALUE"),
                    bound(day + 1, "MAXVALUE"),
                );
                sqlx::query(sqlx::AssertSqlSafe(create))
                    .execute(&mut *tx)
                    .await
                    .map_err(&failed)?;
            }
        }
        tx.commit().await.map_err(&failed)?;
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(missing);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_named_by_their_date() {
        assert_eq!(table(0), "store_events_19700101");
        assert_eq!(
            table(day_of(1_771_416_000_000_000_000)),
            "store_events_20260218"
        );
        assert_eq!(table(day_of(-1)), "store_events_19691231");
        assert_eq!(table(day_of(i64::MIN)), "store_events_16770921");
        assert_eq!(table(day_of(i64::MAX)), "store_events_22620411");
        assert_eq!(table(11_016), "store_events_20000229");
    }

    #[test]
    fn table_names_give_their_days_back() {
        let days = [0, 11_016, day_of(1_771_416_000_000_000_000), -1, -719_468];
        let names: Vec<String> = days.iter().map(|&day| table(day)).collect();
        let mut more = names.clone();
        more.extend([
            "store_events_2026021".into(),
            "store_events_20261340".into(),
            "store_counts".into(),
        ]);
        let found: Vec<i64> = days_of_tables(&more)
            .into_iter()
            .map(|(day, _)| day)
            .collect();
        assert_eq!(found, days);
    }

    #[test]
    fn the_first_and_last_days_are_open_ended() {
        assert_eq!(bound(day_of(i64::MIN), "MINVALUE"), "MINVALUE");
        assert_eq!(bound(day_of(i64::MAX) + 1, "MAXVALUE"), "MAXVALUE");
        assert_eq!(bound(1, "MINVALUE"), NANOS_PER_DAY.to_string());
    }
}
