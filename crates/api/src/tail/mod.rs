//! The live tail: `GET /v1/tail` and `GET /v1/audit/tail` stream the events
//! matching a query as they are acknowledged, over a WebSocket or as
//! Server-Sent Events, and `POST /v1/tail/ticket` issues the single-use
//! tickets browsers put in a WebSocket URL.
//!
//! One [`TailHub`] per process follows the queue ([`queue::Queue::follow`])
//! and fans events out to subscribers; a subscriber that cannot keep up loses
//! events (and is told how many), never slows ingest.

mod hub;
mod sse;
mod subscription;
pub(crate) mod ticket;
mod ws;

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Stream;
use serde::Deserialize;

use crate::access::Principal;
use crate::{ApiError, AppState};

pub use hub::TailHub;

/// The WebSocket subprotocol the server selects; a client offers it next to
/// `logbook.bearer.<token>` when it cannot send an `Authorization` header.
pub(crate) const SUBPROTOCOL: &str = "logbook";

/// Settings of the live tail.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Events waiting for one subscriber at most; more are dropped for it.
    pub buffer_events: usize,
    /// A subscriber that dropped more events than it received over this
    /// long, or whose connection took no bytes for this long, is closed.
    pub max_lag: Duration,
    /// Subscribers one tenant may have at once, over both streams.
    pub max_subscribers_per_tenant: usize,
    /// A comment (SSE) or ping (WebSocket) is sent after this long without events.
    pub keepalive: Duration,
    /// How long a ticket can be redeemed after it was issued.
    pub ticket_ttl: Duration,
    /// Live tickets one caller may hold at once.
    pub max_tickets_per_principal: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            buffer_events: 1024,
            max_lag: Duration::from_secs(10),
            max_subscribers_per_tenant: 64,
            keepalive: Duration::from_secs(15),
            ticket_ttl: Duration::from_secs(30),
            max_tickets_per_principal: 16,
        }
    }
}

/// Adds the tail routes (in roles that serve queries).
pub(crate) fn routes(routes: crate::routes::Routes) -> crate::routes::Routes {
    routes
        .get("/v1/tail", tail_logs)
        .get("/v1/audit/tail", tail_audit)
        .post("/v1/tail/ticket", ticket::issue)
}

/// The parameters of a tail; `ticket` was used by the access guard.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TailParams {
    /// The query, in the language of `GET /v1/logs?q=`; everything when absent.
    q: Option<String>,
    /// A single-use ticket from `POST /v1/tail/ticket`, for browsers, which
    /// cannot send an `Authorization` header on a WebSocket.
    #[serde(rename = "ticket")]
    #[param(rename = "ticket", value_type = Option<String>)]
    _ticket: Option<serde::de::IgnoredAny>,
}

/// `GET /v1/tail`.
#[utoipa::path(
    get,
    path = "/v1/tail",
    tag = "logs",
    params(TailParams),
    responses(
        (status = 101, description = "With `Upgrade: websocket`: a WebSocket; each text message is one matching log event (the JSON of a search result) or a notice `{\"dropped\": n}` / `{\"missed\": true}`"),
        (status = 200, description = "With `Accept: text/event-stream`: Server-Sent Events; `data:` is one matching log event; `event: dropped`, `event: missed` and `event: close` are notices", content_type = "text/event-stream", body = String),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`); `where` names it", body = crate::error::ErrorBody),
        (status = 406, description = "Neither a WebSocket upgrade nor `Accept: text/event-stream` (`not_acceptable`)", body = crate::error::ErrorBody),
        (status = 429, description = "The tenant has as many live tails as allowed (`too_many_tails`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn tail_logs(
    state: State<AppState>,
    principal: Extension<Principal>,
    query: Result<Query<TailParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tail(state, principal, Stream::Logs, query, upgrade, headers).await
}

/// `GET /v1/audit/tail`.
#[utoipa::path(
    get,
    path = "/v1/audit/tail",
    tag = "audit",
    params(TailParams),
    responses(
        (status = 101, description = "With `Upgrade: websocket`: a WebSocket; each text message is one matching audit event (the JSON of a search result) or a notice `{\"dropped\": n}` / `{\"missed\": true}`"),
        (status = 200, description = "With `Accept: text/event-stream`: Server-Sent Events; `data:` is one matching audit event; `event: dropped`, `event: missed` and `event: close` are notices", content_type = "text/event-stream", body = String),
        (status = 400, description = "A parameter or the query is not valid (`invalid_parameter`, `invalid_query`, `query_too_complex`); `where` names it", body = crate::error::ErrorBody),
        (status = 406, description = "Neither a WebSocket upgrade nor `Accept: text/event-stream` (`not_acceptable`)", body = crate::error::ErrorBody),
        (status = 429, description = "The tenant has as many live tails as allowed (`too_many_tails`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn tail_audit(
    state: State<AppState>,
    principal: Extension<Principal>,
    query: Result<Query<TailParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tail(state, principal, Stream::Audit, query, upgrade, headers).await
}

async fn tail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    stream: Stream,
    query: Result<Query<TailParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(crate::search::parameter_error)?;
    let wants_events = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"));
    if upgrade.is_err() && !wants_events {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "a tail is a WebSocket (Upgrade: websocket) or Server-Sent Events (Accept: text/event-stream)",
        ));
    }
    let filter = crate::search::FilterParams::only_query(params.q).into_filter(
        &principal.tenant,
        stream,
        &state.query_limits,
    )?;
    let matcher = store::matcher::Matcher::for_stream(stream, &filter.query)?;
    let subscription = state
        .tail
        .subscribe(&principal.tenant, stream, matcher)
        .await?;
    let config = state.tail.config().clone();
    Ok(match upgrade {
        Ok(upgrade) => ws::respond(upgrade, subscription, config),
        Err(_) => sse::respond(subscription, config).into_response(),
    })
}
