//! Metrics: the `/metrics` endpoint, and what the API records for it.
//!
//! The API only records, through the `metrics` facade; the server installs the
//! Prometheus recorder and hands the API a [`MetricsEndpoint`] that renders it.
//! Recording is per request, never per event: an ingest request adds its
//! event count to a counter once.

mod access;
mod ingest;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{ApiError, AppState};

pub(crate) use access::{auth_refused, query_answered};
pub(crate) use ingest::{IngestTally, ingest_refused_at_the_door};

/// The media type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the exposition of the process's metrics.
pub struct MetricsEndpoint {
    render: Box<dyn Fn() -> String + Send + Sync>,
    /// One rendering at a time; more scrapes wait their turn, so scrapers
    /// cannot take more than one core however many they are.
    renders: tokio::sync::Semaphore,
}

impl MetricsEndpoint {
    /// An endpoint answering with what `render` returns.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> MetricsEndpoint {
        MetricsEndpoint {
            render: Box::new(render),
            renders: tokio::sync::Semaphore::new(1),
        }
    }

    async fn respond(self: Arc<Self>) -> Result<Response, ApiError> {
        let _turn = self
            .renders
            .acquire()
            .await
            .map_err(|error| ApiError::internal("waiting to render metrics", &error))?;
        let endpoint = Arc::clone(&self);
        let text = tokio::task::spawn_blocking(move || (endpoint.render)())
            .await
            .map_err(|error| ApiError::internal("rendering metrics", &error))?;
        Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
    }
}

/// `GET /metrics` on the API's listener, behind the `metrics:read` permission.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Every metric in the Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "This server records no metrics (`metrics_disabled`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.metrics {
        Some(endpoint) => endpoint.respond().await,
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "this server does not record metrics (metrics.enabled = false)",
        )),
    }
}

/// The router of the metrics listener (`metrics.listen`): `GET /metrics`
/// without credentials, for scrapers on a private network, and nothing else.
pub fn metrics_router(endpoint: Arc<MetricsEndpoint>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(endpoint): State<Arc<MetricsEndpoint>>| endpoint.respond()),
        )
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .with_state(endpoint)
}
