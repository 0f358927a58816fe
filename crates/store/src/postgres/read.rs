//! Reading: searches, counts, histograms, warnings and lookups by id, each
//! bound to one tenant's stream and run within the query limits (admitted
//! under the caps, under a `statement_timeout` of the time left).

use std::collections::BTreeMap;
use std::time::Duration;

use model::{Level, Stream};
use serde_json::value::RawValue;
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::query::QueryAs;
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use super::Inner;
use super::compile::{Compiled, Param, Params, PrefixCheck, compile_filter, stream_code};
use super::errors::{engine, query as query_error};
use super::terms::{query_path_key, unescape};
use super::write::{arrival_column, arrival_number};
use crate::fields::{too_many_terms, unknown_attribute};
use crate::limits::Budget;
use crate::request::{MAX_BUCKETS, too_many_buckets_message};
use crate::{
    Bucket, Cursor, Filter, HistogramRequest, Order, SearchPage, SearchRequest, Stats, StoreError,
    StoredEvent,
};

/// A statement returning rows of `O`, with `params` bound in order.
fn bind<O>(sql: String, params: Params) -> QueryAs<'static, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let mut statement = sqlx::query_as(AssertSqlSafe(sql));
    for param in params.0 {
        statement = match param {
            Param::Text(text) => statement.bind(text),
            Param::Int2(value) => statement.bind(value),
            Param::Int8(value) => statement.bind(value),
        };
    }
    statement
}

/// A stored event's JSON as the API returns it.
fn stored(doc: String) -> Result<StoredEvent, StoreError> {
    RawValue::from_string(doc)
        .map_err(|error| StoreError::Corrupt(format!("a stored event is not JSON: {error}")))
}

impl Inner {
    /// A read-only transaction whose statements stop at the budget's deadline.
    async fn begin_query(
        &self,
        budget: &Budget,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let deadline = tokio::time::Instant::from_std(budget.deadline());
        let failed = query_error(budget.timeout());
        let mut tx = tokio::time::timeout_at(deadline, self.pool.begin())
            .await
            .map_err(|_| StoreError::QueryTimeout(budget.timeout()))?
            .map_err(&failed)?;
        budget.check()?;
        let millis = budget.remaining().max(Duration::from_millis(1)).as_millis();
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {millis}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        Ok(tx)
    }

    /// Refuses a query whose prefixes match more terms than the limit allows.
    async fn check_prefixes(
        &self,
        connection: &mut PgConnection,
        prefixes: &[PrefixCheck],
        budget: &Budget,
    ) -> Result<(), StoreError> {
        let max_terms = self.admission.limits().max_prefix_terms;
        for check in prefixes {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM store_lexicon WHERE lexeme LIKE $1 LIMIT $2) matching",
            )
            .bind(&check.pattern)
            .bind(max_terms as i64 + 1)
            .fetch_one(&mut *connection)
            .await
            .map_err(query_error(budget.timeout()))?;
            if count as usize > max_terms {
                return Err(crate::fields::at(check.position)(too_many_terms(
                    &check.shown,
                    max_terms,
                )));
            }
        }
        Ok(())
    }

    /// Compiles `filter` and opens its transaction, prefixes checked.
    async fn prepare(
        &self,
        filter: &Filter,
        budget: &Budget,
    ) -> Result<(Compiled, Transaction<'static, Postgres>), StoreError> {
        let compiled = compile_filter(filter)?;
        let mut tx = self.begin_query(budget).await?;
        self.check_prefixes(&mut tx, &compiled.prefixes, budget)
            .await?;
        Ok((compiled, tx))
    }

    pub(super) async fn search(
        &self,
        request: SearchRequest,
        budget: &Budget,
    ) -> Result<SearchPage, StoreError> {
        let (
            Compiled {
                mut clause,
                mut params,
                ..
            },
            mut tx,
        ) = self.prepare(&request.filter, budget).await?;
        let (after, direction) = match request.order {
            Order::Descending => ("<", "DESC"),
            Order::Ascending => (">", "ASC"),
        };
        if let Some(cursor) = request.cursor {
            let ts = params.push(Param::Int8(cursor.timestamp));
            let arrival = params.push(Param::Int8(arrival_column(cursor.arrival)));
            clause.push_str(&format!(" AND (ts, arrival) {after} ({ts}, {arrival})"));
        }
        let limit = params.push(Param::Int8(request.limit as i64 + 1));
        let sql = format!(
            "SELECT doc, ts, arrival FROM store_events WHERE {clause} \
             ORDER BY ts {direction}, arrival {direction} LIMIT {limit}"
        );
        let rows: Vec<(String, i64, i64)> = bind(sql, params)
            .fetch_all(&mut *tx)
            .await
            .map_err(|error| budget.explain(query_error(budget.timeout())(error)))?;
        let more = rows.len() > request.limit;
        let mut events = Vec::with_capacity(rows.len().min(request.limit));
        let mut last = None;
        for (doc, ts, arrival) in rows.into_iter().take(request.limit) {
            events.push(stored(doc)?);
            last = Some(Cursor {
                timestamp: ts,
                arrival: arrival_number(arrival),
            });
        }
        Ok(SearchPage {
            events,
            next_cursor: if more { last } else { None },
        })
    }

    pub(super) async fn stats(&self, filter: Filter, budget: &Budget) -> Result<Stats, StoreError> {
        let (Compiled { clause, params, .. }, mut tx) = self.prepare(&filter, budget).await?;
        let sql = format!(
            "SELECT service, level, count(*) FROM store_events WHERE {clause} GROUP BY service, level"
        );
        let rows: Vec<(Option<String>, i16, i64)> = bind(sql, params)
            .fetch_all(&mut *tx)
            .await
            .map_err(|error| budget.explain(query_error(budget.timeout())(error)))?;
        let mut stats = Stats::default();
        for (service, level, count) in rows {
            let count = count as u64;
            stats.total += count;
            let service = service.as_deref().map(unescape).unwrap_or_default();
            *stats.by_service.entry(service).or_default() += count;
            if let Some(level) = Level::ALL.get(level as usize) {
                *stats.by_level.entry(level.as_str().to_owned()).or_default() += count;
            }
        }
        Ok(stats)
    }

    pub(super) async fn histogram(
        &self,
        request: HistogramRequest,
        budget: &Budget,
    ) -> Result<Vec<Bucket>, StoreError> {
        let (
            Compiled {
                clause, mut params, ..
            },
            mut tx,
        ) = self.prepare(&request.filter, budget).await?;
        let interval = request.interval_nanos;
        let width = params.push(Param::Int8(interval));
        // Two groups per bucket at most (a quotient and a remainder's sign).
        let sql = format!(
            "SELECT ts / {width}, ts % {width} < 0, count(*) FROM store_events WHERE {clause} \
             GROUP BY 1, 2 LIMIT {}",
            2 * MAX_BUCKETS + 2
        );
        let rows: Vec<(i64, bool, i64)> = bind(sql, params)
            .fetch_all(&mut *tx)
            .await
            .map_err(|error| budget.explain(query_error(budget.timeout())(error)))?;
        let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
        for (quotient, negative, count) in rows {
            // The bucket is the floor of the quotient, times the interval.
            let floor = i128::from(quotient) - i128::from(negative);
            let start = i64::try_from(floor * i128::from(interval)).unwrap_or(i64::MIN);
            *counts.entry(start).or_default() += count as u64;
        }
        if counts.len() > MAX_BUCKETS {
            return Err(StoreError::InvalidQuery(too_many_buckets_message()));
        }
        Ok(counts
            .into_iter()
            .map(|(start, count)| Bucket {
                start: model::Timestamp::from_nanos(start),
                count,
            })
            .collect())
    }

    pub(super) async fn warnings(
        &self,
        filter: &Filter,
        paths: Vec<(String, String)>,
        budget: &Budget,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_query(budget).await?;
        let mut warnings = Vec::new();
        for (name, path) in paths {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM store_fields WHERE tenant = $1 AND stream = $2 AND path = $3)",
            )
            .bind(&filter.tenant)
            .bind(stream_code(filter.stream))
            .bind(query_path_key(&path))
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(budget.timeout()))?;
            if !known {
                warnings.push(unknown_attribute(&name, &path));
            }
        }
        Ok(warnings)
    }

    pub(super) async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar(
            "SELECT e.doc FROM store_event_ids k JOIN store_events e \
                 ON e.tenant = k.tenant AND e.stream = k.stream AND e.ts = k.ts \
                AND e.arrival = k.arrival AND e.id = k.id \
             WHERE k.tenant = $1 AND k.stream = $2 AND k.id = $3",
        )
        .bind(tenant)
        .bind(stream_code(stream))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(engine("reading an event"))?;
        doc.map(stored).transpose()
    }
}
