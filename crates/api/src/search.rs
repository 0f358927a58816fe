//! The read endpoints: search with cursor pagination, one event by id, stats
//! and the histogram. Every read is scoped to the caller's tenant.

use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::{Stream, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use store::{Bucket, Cursor, Filter, HistogramRequest, Order, SearchRequest, Stats};
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::{ApiError, AppState};

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 100;
/// The largest page.
const MAX_LIMIT: usize = 1000;

// Every parameter struct refuses parameters it does not know (`deny_unknown_fields`
// does not work through `#[serde(flatten)]`, hence the repeated filter fields).

/// The parameters every read shares (all of `/v1/stats`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilterParams {
    /// A query in Logbook's search language (see the README); all events when absent.
    q: Option<String>,
    /// Events at or after this time: RFC 3339 or Unix epoch (s, ms, µs or ns).
    from: Option<String>,
    /// Events before this time: RFC 3339 or Unix epoch.
    to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// A query in Logbook's search language (see the README); all events when absent.
    q: Option<String>,
    /// Events at or after this time: RFC 3339 or Unix epoch (s, ms, µs or ns).
    from: Option<String>,
    /// Events before this time: RFC 3339 or Unix epoch.
    to: Option<String>,
    /// Events per page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistogramParams {
    /// A query in Logbook's search language (see the README); all events when absent.
    q: Option<String>,
    /// Events at or after this time: RFC 3339 or Unix epoch (s, ms, µs or ns).
    from: Option<String>,
    /// Events before this time: RFC 3339 or Unix epoch.
    to: Option<String>,
    /// The width of a bucket: a positive number and `ms`, `s`, `m`, `h` or `d` (default `1m`).
    #[param(pattern = "^[0-9]+(ms|s|m|h|d)$", example = "1m")]
    interval: Option<String>,
}

/// For endpoints that take no parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// A page of a search.
#[derive(Serialize, ToSchema)]
pub(crate) struct SearchAnswer {
    /// The events, as stored.
    #[schema(value_type = Vec<model::Event>)]
    events: Vec<Box<RawValue>>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
    took_ms: f64,
    /// Attribute paths the query names that none of the caller's events has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Counts of the matching events.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatsAnswer {
    #[serde(flatten)]
    stats: Stats,
    took_ms: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Counts of the matching events per time bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistogramAnswer {
    interval: String,
    buckets: Vec<Bucket>,
    took_ms: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(params)| params).map_err(parameter_error)
}

/// A 400 `invalid_parameter` for a query string that does not fit, naming the
/// parameter at fault when serde can tell which (an unknown one).
pub(crate) fn parameter_error(rejection: QueryRejection) -> ApiError {
    let message = rejection.body_text();
    let unknown = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match unknown {
        Some(name) => invalid_parameter(
            &name,
            format!("unknown parameter `{name}`; see the README for this endpoint's parameters"),
        ),
        None => ApiError::bad_request("invalid_parameter", message),
    }
}

/// A cursor as the client sees it: the store's sort position, sealed for the
/// tenant (it would otherwise show offsets in the queue every tenant shares).
fn seal_cursor(state: &AppState, tenant: &str, cursor: Cursor) -> String {
    let (high, low) = state
        .auth
        .cursor_seal
        .seal(tenant, (cursor.timestamp as u64, cursor.arrival));
    format!("{high:016x}{low:016x}")
}

/// Opens a cursor [`seal_cursor`] made.
fn open_cursor(state: &AppState, tenant: &str, text: &str) -> Result<Cursor, ApiError> {
    let sealed = text
        .parse::<Cursor>()
        .map_err(|error| invalid_parameter("cursor", error.to_string()))?;
    let (timestamp, arrival) = state
        .auth
        .cursor_seal
        .open(tenant, (sealed.timestamp as u64, sealed.arrival));
    Ok(Cursor {
        timestamp: timestamp as i64,
        arrival,
    })
}

pub(crate) fn invalid_parameter(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).at(json!({"parameter": parameter}))
}

fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl FilterParams {
    /// A query with no time range (the live tail's).
    pub(crate) fn only_query(q: Option<String>) -> FilterParams {
        FilterParams {
            q,
            from: None,
            to: None,
        }
    }

    /// The filter of these parameters: `q` parsed within `limits` (the same
    /// refusals and error shape on every read), `from` and `to` read.
    pub(crate) fn into_filter(
        self,
        tenant: &str,
        stream: Stream,
        limits: &query::Limits,
    ) -> Result<Filter, ApiError> {
        let text = self.q.unwrap_or_default();
        let query = query::parse_within(&text, limits).map_err(|error| {
            let code = match error.kind {
                query::ParseErrorKind::Syntax => "invalid_query",
                query::ParseErrorKind::TooComplex => "query_too_complex",
            };
            ApiError::bad_request(
                code,
                format!("{} (in q at byte {})", error.message, error.position),
            )
            .at(json!({"parameter": "q", "position": error.position}))
        })?;
        let time = |name: &str, value: Option<String>| {
            value
                .filter(|text| !text.trim().is_empty())
                .map(|text| {
                    Timestamp::parse(&text)
                        .map_err(|error| invalid_parameter(name, error.to_string()))
                })
                .transpose()
        };
        Ok(Filter {
            tenant: tenant.to_owned(),
            stream,
            query,
            from: time("from", self.from)?,
            to: time("to", self.to)?,
        })
    }
}

/// `GET /v1/logs`.
#[utoipa::path(
    get,
    path = "/v1/logs",
    tag = "logs",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of log events", body = SearchAnswer),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`, `out_of_range`); `where` names it", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate or the tenant's concurrent queries (`rate_limited`, `too_many_queries`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The query ran out of time or the store cannot be reached (`query_timeout`, `query_cancelled`, `store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn search_logs(
    state: State<AppState>,
    principal: Extension<Principal>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    search(state, principal, Stream::Logs, query).await
}

/// `GET /v1/audit`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of audit events", body = SearchAnswer),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`, `out_of_range`); `where` names it", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate or the tenant's concurrent queries (`rate_limited`, `too_many_queries`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The query ran out of time or the store cannot be reached (`query_timeout`, `query_cancelled`, `store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn search_audit(
    state: State<AppState>,
    principal: Extension<Principal>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    search(state, principal, Stream::Audit, query).await
}

async fn search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    stream: Stream,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let params = params(query)?;
    let filter = FilterParams {
        q: params.q,
        from: params.from,
        to: params.to,
    };
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(invalid_parameter(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let cursor = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(open_cursor(&state, &principal.tenant, text)?),
    };
    let order = match params.order.as_deref() {
        None | Some("") | Some("desc") => Order::Descending,
        Some("asc") => Order::Ascending,
        Some(_) => return Err(invalid_parameter("order", "order must be asc or desc")),
    };
    let request = SearchRequest {
        filter: filter.into_filter(&principal.tenant, stream, &state.query_limits)?,
        limit,
        cursor,
        order,
    };
    let warnings = state.store.warnings(&request.filter).await?;
    let page = state.store.search(request).await?;
    Ok(axum::Json(SearchAnswer {
        events: page.events,
        next_cursor: page
            .next_cursor
            .map(|cursor| seal_cursor(&state, &principal.tenant, cursor)),
        took_ms: millis_since(started),
        warnings,
    })
    .into_response())
}

/// `GET /v1/logs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/logs/{id}",
    tag = "logs",
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event", body = model::Event),
        (status = 400, description = "The id is not valid (`invalid_parameter`), or a query parameter was given", body = crate::error::ErrorBody),
        (status = 404, description = "No event with this id in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn get_log(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(query)?;
    get_event(state, principal, Stream::Logs, id).await
}

/// `GET /v1/audit/{id}`.
#[utoipa::path(
    get,
    path = "/v1/audit/{id}",
    tag = "audit",
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The audit event", body = model::Event),
        (status = 400, description = "The id is not valid (`invalid_parameter`), or a query parameter was given", body = crate::error::ErrorBody),
        (status = 404, description = "No event with this id in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn get_audit(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(query)?;
    get_event(state, principal, Stream::Audit, id).await
}

async fn get_event(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    stream: Stream,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) =
        id.map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))?;
    match state.store.get(&principal.tenant, stream, &id).await? {
        Some(event) => Ok(axum::Json(event).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event with id {id:?}"),
        )),
    }
}

/// `GET /v1/stats`.
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "logs",
    params(FilterParams),
    responses(
        (status = 200, description = "Counts of the matching log events", body = StatsAnswer),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`, `out_of_range`); `where` names it", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate or the tenant's concurrent queries (`rate_limited`, `too_many_queries`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The query ran out of time or the store cannot be reached (`query_timeout`, `query_cancelled`, `store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let filter =
        params(query)?.into_filter(&principal.tenant, Stream::Logs, &state.query_limits)?;
    let warnings = state.store.warnings(&filter).await?;
    let stats = state.store.stats(filter).await?;
    Ok(axum::Json(StatsAnswer {
        stats,
        took_ms: millis_since(started),
        warnings,
    })
    .into_response())
}

/// `GET /v1/logs/histogram`.
#[utoipa::path(
    get,
    path = "/v1/logs/histogram",
    tag = "logs",
    params(HistogramParams),
    responses(
        (status = 200, description = "Counts of the matching log events per time bucket", body = HistogramAnswer),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`, `out_of_range`); `where` names it", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate or the tenant's concurrent queries (`rate_limited`, `too_many_queries`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The query ran out of time or the store cannot be reached (`query_timeout`, `query_cancelled`, `store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn histogram(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<HistogramParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let params = params(query)?;
    let interval = params.interval.unwrap_or_else(|| "1m".to_owned());
    let interval_nanos = parse_interval(&interval).ok_or_else(|| {
        invalid_parameter(
            "interval",
            "interval must be a positive number with a unit: ms, s, m, h or d (e.g. 30s, 1m, 1h)",
        )
    })?;
    let filter = FilterParams {
        q: params.q,
        from: params.from,
        to: params.to,
    };
    let request = HistogramRequest {
        filter: filter.into_filter(&principal.tenant, Stream::Logs, &state.query_limits)?,
        interval_nanos,
    };
    let warnings = state.store.warnings(&request.filter).await?;
    let buckets = state.store.histogram(request).await?;
    Ok(axum::Json(HistogramAnswer {
        interval,
        buckets,
        took_ms: millis_since(started),
        warnings,
    })
    .into_response())
}

/// Reads `500ms`, `30s`, `1m`, `2h`, `1d` as nanoseconds.
fn parse_interval(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_nanos: i64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    number.checked_mul(unit_nanos)
}

#[cfg(test)]
mod tests {
    use super::parse_interval;

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("1m"), Some(60_000_000_000));
        assert_eq!(parse_interval("500ms"), Some(500_000_000));
        assert_eq!(parse_interval("2h"), Some(7_200_000_000_000));
        for bad in ["", "m", "0s", "1", "1w", "-1s", "1.5m", "99999999999999d"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }
}
