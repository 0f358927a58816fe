//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// Alive: the process answers HTTP.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready: the queue accepts appends (its writer works and it is not full), the
/// store answers, and the worker runs.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let queue = state.queue.stats();
    let progress = *state.progress.borrow();
    let store = state.store.footprint().await;
    let queue_full = queue.pending_bytes >= queue.max_bytes;
    let ready = progress.running && store.is_ok() && !queue_full && !queue.failed;
    let store = match store {
        Ok(footprint) => json!({"events": footprint.events, "bytes": footprint.bytes}),
        Err(error) => json!({"error": error.to_string()}),
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "queue": {
            "pending_bytes": queue.pending_bytes,
            "max_bytes": queue.max_bytes,
            "durable_end": queue.durable_end.0,
            "segments": queue.segments,
            "syncs": queue.syncs,
            "full": queue_full,
            "failed": queue.failed,
        },
        "store": store,
        "worker": {
            "running": progress.running,
            "committed_position": progress.committed.0,
            "committed_events": progress.committed_events,
            "skipped_records": progress.skipped_records,
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
