//! The HTTP API: routes, request parsing and the JSON shapes of answers.
//!
//! API boundary: handlers turn HTTP into calls on the [`queue::Queue`] and
//! [`store::EventStore`] traits and back; they hold no state of their own and
//! know nothing about which backend sits behind either trait.

mod decompress;
mod error;
mod health;
mod ingest;
mod search;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use pipeline::Progress;
use queue::Queue;
use store::EventStore;
use tokio::sync::watch;

pub use error::ApiError;

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
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            events: model::Limits::default(),
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn EventStore>,
    pub limits: Arc<IngestLimits>,
    /// What the pipeline worker reports, for readiness.
    pub progress: watch::Receiver<Progress>,
    /// Bounds how many request bodies are decoded at once.
    pub decode_permits: Arc<tokio::sync::Semaphore>,
}

/// How many request bodies are decoded at the same time.
pub const CONCURRENT_DECODES: usize = 4;

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/logs", post(ingest::ingest).get(search::search))
        .route("/v1/logs/histogram", get(search::histogram))
        .route("/v1/logs/{id}", get(search::get_event))
        .route("/v1/stats", get(search::stats))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}
