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
pub mod backup_routes;
pub mod body;
mod dead_letter_routes;
mod decompress;
mod docs;
mod error;
mod health;
mod ingest;
mod json_body;
pub mod openapi;
mod role;
mod routes;
mod search;
pub mod security;
pub mod tail;
pub mod telemetry;
mod trail;
mod ui_routes;

use std::sync::Arc;

use axum::Router;
use pipeline::Progress;
use queue::Queue;
use store::{DeadLetters, EventStore};
use tokio::sync::watch;

pub use error::ApiError;
pub use role::Role;
pub use routes::Route;
use routes::Routes;

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
    /// Takes the snapshots `POST /v1/admin/backup` streams.
    pub backups: Arc<dyn backup_routes::Backups>,
}

/// How many request bodies are decoded at the same time.
pub const CONCURRENT_DECODES: usize = 4;

/// The API of the state's role. Every route passes [`access::guard`], which
/// applies the route's rule from [`access::rule_for`] before the handler runs.
/// Routes another role serves answer 404 here; a method another role serves
/// on a shared path (`GET /v1/logs` on an ingest node) answers 405.
pub fn router(state: AppState) -> Router {
    build(state.role)
        .into_router()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn(ingest::elastic::product_header))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// Every route a role's router serves, sorted; the OpenAPI document and the
/// access table are checked against this list.
pub fn routes(role: Role) -> Vec<Route> {
    build(role).list()
}

/// The routes of a role. Adding an endpoint: one line here, a
/// `#[utoipa::path]` on its handler listed in [`openapi::ApiDoc`], and a rule
/// in [`access::rule_for`]; `tests/openapi.rs` names whichever is missing.
fn build(role: Role) -> Routes {
    let mut routes = Routes::new()
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", telemetry::metrics)
        .get("/openapi.json", openapi::openapi_json)
        .get("/docs", docs::redirect)
        .get("/docs/", docs::index)
        .get("/docs/{*file}", docs::file);
    if role != Role::Worker {
        routes = routes
            .get("/v1/admin/status", health::admin_status)
            .get("/v1/admin/dead-letters", dead_letter_routes::list)
            .get("/v1/admin/dead-letters/{id}", dead_letter_routes::show)
            .delete("/v1/admin/dead-letters/{id}", dead_letter_routes::purge)
            .post(
                "/v1/admin/dead-letters/{id}/replay",
                dead_letter_routes::replay,
            )
            .post("/v1/admin/backup", backup_routes::backup);
    }
    if role.ingests() {
        routes = routes
            .post("/v1/logs", ingest::ingest_logs)
            .post("/v1/audit", ingest::ingest_audit)
            .post("/otlp/v1/logs", ingest::otlp::otlp_logs)
            .post("/loki/api/v1/push", ingest::loki::loki_push)
            .get("/es/", ingest::elastic::info)
            .get("/es/_license", ingest::elastic::license)
            .post("/es/_bulk", ingest::elastic::bulk)
            .get("/es/{*path}", ingest::elastic::setup)
            .put("/es/_bulk", ingest::elastic::bulk_put)
            .put("/es/{*path}", ingest::elastic::put_path)
            .post("/es/{*path}", ingest::elastic::post_path);
    }
    if role.queries() {
        routes = routes
            .get("/", ui_routes::index)
            .get("/ui/{*file}", ui_routes::file);
        routes = read_routes(routes);
        routes = tail::routes(routes);
    }
    routes
}

/// Searches, the audit trail's proofs, accounts, keys, tenants and alerts.
fn read_routes(routes: Routes) -> Routes {
    routes
        .get("/v1/logs", search::search_logs)
        .get("/v1/audit", search::search_audit)
        .get("/v1/logs/histogram", search::histogram)
        .get("/v1/logs/{id}", search::get_log)
        .get("/v1/stats", search::stats)
        .get("/v1/audit/{id}", search::get_audit)
        .get("/v1/audit/{id}/proof", trail::inclusion)
        .get("/v1/audit/checkpoint", trail::checkpoint)
        .get("/v1/audit/consistency", trail::consistency)
        .get("/v1/audit/export", trail::export)
        .get("/v1/audit/public-key", trail::public_key)
        .post("/v1/auth/login", auth_routes::login)
        .post("/v1/auth/refresh", auth_routes::refresh)
        .post("/v1/auth/logout", auth_routes::logout)
        .post("/v1/auth/password", auth_routes::change_password)
        .post("/v1/auth/register", auth_routes::register)
        .get("/v1/auth/me", auth_routes::me)
        .get("/v1/users", admin_routes::list_users)
        .post("/v1/users", admin_routes::create_user)
        .patch("/v1/users/{id}", admin_routes::update_user)
        .get("/v1/keys", admin_routes::list_keys)
        .post("/v1/keys", admin_routes::create_key)
        .delete("/v1/keys/{id}", admin_routes::revoke_key)
        .get("/v1/settings", admin_routes::get_settings)
        .put("/v1/settings", admin_routes::put_settings)
        .get("/v1/tenants", admin_routes::list_tenants)
        .post("/v1/tenants", admin_routes::create_tenant)
        .get("/v1/alerts", alert_routes::list_alerts)
        .get("/v1/alerts/rules", alert_routes::list_rules)
        .post("/v1/alerts/rules", alert_routes::create_rule)
        .get("/v1/alerts/rules/{id}", alert_routes::show_rule)
        .put("/v1/alerts/rules/{id}", alert_routes::replace_rule)
        .patch("/v1/alerts/rules/{id}", alert_routes::patch_rule)
        .delete("/v1/alerts/rules/{id}", alert_routes::delete_rule)
}
