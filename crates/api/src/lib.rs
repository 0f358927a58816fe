//! The HTTP API: routes, request parsing and the JSON shapes of answers.
//!
//! API boundary: handlers turn HTTP into calls on the [`queue::Queue`] and
//! [`store::EventStore`] traits and back; they hold no state of their own and
//! know nothing about which backend sits behind either trait.

pub mod access;
pub mod accounts;
mod admin_routes;
mod alert_routes;
mod auth_routes;
pub mod body;
mod dead_letter_routes;
mod decompress;
mod error;
mod health;
mod ingest;
mod json_body;
mod role;
mod search;
pub mod security;
pub mod telemetry;
pub mod tail;
mod trail;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, patch, post};
use pipeline::Progress;
use queue::Queue;
use store::{DeadLetters, EventStore};
use tokio::sync::watch;

pub use error::ApiError;
pub use role::Role;

/// Limits on what one ingest request may carry.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// The largest request body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// The largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Per-event and per-batch limits.
    pub events: model::Limits,
    /// The longest a client may take to send a body.
    pub body_timeout: std::time::Duration,
    /// The most request-body bytes buffered at once over all requests.
    pub max_buffered_bytes: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            events: model::Limits::default(),
            body_timeout: std::time::Duration::from_secs(30),
            max_buffered_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn EventStore>,
    /// What the worker could not store, for the super-admin to replay or purge.
    pub dead_letters: Arc<dyn DeadLetters>,
    pub limits: Arc<IngestLimits>,
    /// What the pipeline worker reports, for readiness.
    pub progress: watch::Receiver<Progress>,
    /// Bounds how many request bodies are decoded at once.
    pub decode_permits: Arc<tokio::sync::Semaphore>,
    /// The bytes of request body the server may buffer at once, over all
    /// requests ([`IngestLimits::max_buffered_bytes`]), a quarter per tenant.
    pub body_budget: Arc<body::BodyBudget>,
    /// Accounts, keys, sessions and rate limits.
    pub auth: Arc<access::AuthState>,
    /// Checkpoints and proofs of the audit trails.
    pub audit: Arc<dyn store::AuditLog>,
    /// Bounds on the query language (length, terms, prefix length) checked
    /// before a query reaches the store.
    pub query_limits: query::Limits,
    /// Which routes this process serves, and whether it runs a worker.
    pub role: Role,
    /// Renders `GET /metrics`; none when metrics are turned off.
    pub metrics: Option<Arc<telemetry::MetricsEndpoint>>,
    /// Bounds on alert rules (count, durations, webhook targets).
    pub alert_policy: alerts::RulePolicy,
    /// The live tail's subscribers and the task that follows the queue for them.
    pub tail: Arc<tail::TailHub>,
}

/// How many request bodies are decoded at the same time.
pub const CONCURRENT_DECODES: usize = 4;

/// The API of the state's role. Every route passes [`access::guard`], which
/// applies the route's rule from [`access::rule_for`] before the handler runs.
/// Routes another role serves answer 404 here; a method another role serves
/// on a shared path (`GET /v1/logs` on an ingest node) answers 405.
pub fn router(state: AppState) -> Router {
    let role = state.role;
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(telemetry::metrics));
    if role != Role::Worker {
        router = router
            .route("/v1/admin/status", get(health::admin_status))
            .route("/v1/admin/dead-letters", get(dead_letter_routes::list))
            .route(
                "/v1/admin/dead-letters/{id}",
                get(dead_letter_routes::show).delete(dead_letter_routes::purge),
            )
            .route(
                "/v1/admin/dead-letters/{id}/replay",
                post(dead_letter_routes::replay),
            );
    }
    if role.ingests() && role.queries() {
        router = router
            .route(
                "/v1/logs",
                post(ingest::ingest_logs).get(search::search_logs),
            )
            .route(
                "/v1/audit",
                post(ingest::ingest_audit).get(search::search_audit),
            );
    } else if role.ingests() {
        router = router
            .route("/v1/logs", post(ingest::ingest_logs))
            .route("/v1/audit", post(ingest::ingest_audit));
    } else if role.queries() {
        router = router
            .route("/v1/logs", get(search::search_logs))
            .route("/v1/audit", get(search::search_audit));
    }
    if role.queries() {
        router = read_routes(router);
        router = tail::routes(router);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// Searches, the audit trail's proofs, accounts, keys, tenants and alerts.
fn read_routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/logs/histogram", get(search::histogram))
        .route("/v1/logs/{id}", get(search::get_log))
        .route("/v1/stats", get(search::stats))
        .route("/v1/audit/{id}", get(search::get_audit))
        .route("/v1/audit/{id}/proof", get(trail::inclusion))
        .route("/v1/audit/checkpoint", get(trail::checkpoint))
        .route("/v1/audit/consistency", get(trail::consistency))
        .route("/v1/audit/export", get(trail::export))
        .route("/v1/audit/public-key", get(trail::public_key))
        .route("/v1/auth/login", post(auth_routes::login))
        .route("/v1/auth/refresh", post(auth_routes::refresh))
        .route("/v1/auth/logout", post(auth_routes::logout))
        .route("/v1/auth/password", post(auth_routes::change_password))
        .route("/v1/auth/register", post(auth_routes::register))
        .route("/v1/auth/me", get(auth_routes::me))
        .route(
            "/v1/users",
            get(admin_routes::list_users).post(admin_routes::create_user),
        )
        .route("/v1/users/{id}", patch(admin_routes::update_user))
        .route(
            "/v1/keys",
            get(admin_routes::list_keys).post(admin_routes::create_key),
        )
        .route("/v1/keys/{id}", delete(admin_routes::revoke_key))
        .route(
            "/v1/settings",
            get(admin_routes::get_settings).put(admin_routes::put_settings),
        )
        .route(
            "/v1/tenants",
            get(admin_routes::list_tenants).post(admin_routes::create_tenant),
        )
        .route("/v1/alerts", get(alert_routes::list_alerts))
        .route(
            "/v1/alerts/rules",
            get(alert_routes::list_rules).post(alert_routes::create_rule),
        )
        .route(
            "/v1/alerts/rules/{id}",
            get(alert_routes::show_rule)
                .put(alert_routes::replace_rule)
                .patch(alert_routes::patch_rule)
                .delete(alert_routes::delete_rule),
        )
}
