//! Liveness, readiness, and the server's status for the super-admin.
//!
//! `/readyz` is public (load balancers call it without credentials), so it says
//! only whether the server is ready and which component is not; the figures
//! behind that answer (queue positions, event counts, bytes, summed over every
//! tenant) are the super-admin's, at `GET /v1/admin/status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;

/// Alive: the process answers HTTP.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready: the queue accepts appends (its writer works and it is not full), the
/// store answers, and the worker runs. Names the components that are not ready.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let status = Status::read(&state).await;
    let mut body = if status.not_ready.is_empty() {
        json!({"status": "ready"})
    } else {
        json!({"status": "not_ready", "not_ready": status.not_ready})
    };
    // Settings that can lose acknowledged events are said where operators look.
    if !status.warnings.is_empty() {
        body["warnings"] = json!(status.warnings);
    }
    (status.http_status(), axum::Json(body)).into_response()
}

/// `GET /v1/admin/status`: readiness with the figures behind it.
pub(crate) async fn admin_status(State(state): State<AppState>) -> Response {
    let status = Status::read(&state).await;
    let mut body = status.details;
    body["status"] = json!(if status.not_ready.is_empty() {
        "ready"
    } else {
        "not_ready"
    });
    body["not_ready"] = json!(status.not_ready);
    axum::Json(body).into_response()
}

/// What readiness found.
struct Status {
    /// `queue`, `store` and/or `worker`: the components that are not ready.
    not_ready: Vec<&'static str>,
    /// Server-wide figures, for the super-admin only.
    details: Value,
    /// What the queue reports about its durability (a broker's persistence
    /// settings); no tenant's figures.
    warnings: Vec<String>,
}

impl Status {
    async fn read(state: &AppState) -> Status {
        let queue = state.queue.stats();
        let progress = *state.progress.borrow();
        let store = state.store.footprint().await;
        let queue_full = queue.pending_bytes >= queue.max_bytes;
        let role = state.role;
        let mut not_ready = Vec::new();
        if (queue_full && role.ingests()) || queue.failed {
            not_ready.push("queue");
        }
        if store.is_err() && (role.queries() || role.works()) {
            not_ready.push("store");
        }
        if (!progress.running || progress.store_failing) && role.works() {
            not_ready.push("worker");
        }
        let store = match store {
            Ok(footprint) => json!({"events": footprint.events, "bytes": footprint.bytes}),
            Err(error) => json!({"error": error.to_string()}),
        };
        let details = json!({
            "queue": {
                "pending_bytes": queue.pending_bytes,
                "max_bytes": queue.max_bytes,
                "durable_end": queue.durable_end.0,
                "segments": queue.segments,
                "syncs": queue.syncs,
                "full": queue_full,
                "failed": queue.failed,
                "backend": queue.backend,
                "pending_records": queue.pending_records,
                "warnings": &queue.warnings,
            },
            "store": store,
            "worker": {
                "running": progress.running,
                "committed_position": progress.committed.0,
                "committed_events": progress.committed_events,
                "skipped_records": progress.skipped_records,
                "store_failing": progress.store_failing,
            },
            "role": role.name(),
        });
        Status {
            not_ready,
            details,
            warnings: queue.warnings,
        }
    }

    fn http_status(&self) -> StatusCode {
        if self.not_ready.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
