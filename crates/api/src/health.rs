//! Liveness, readiness, and the server's status for the super-admin.
//!
//! `/readyz` is public (load balancers call it without credentials), so it says
//! only whether the server is ready and which component is not, and costs the
//! same however much the store holds: it asks the store whether it answers,
//! never how much it holds. The figures behind that answer (queue positions,
//! event counts, bytes, summed over every tenant) are the super-admin's, at
//! `GET /v1/admin/status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipeline::Progress;
use queue::QueueStats;
use serde_json::{Value, json};
use store::EventStore;

use crate::{AppState, Role};

/// Alive: the process answers HTTP.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready: the queue accepts appends (its writer works and it is not full), the
/// store answers, and the worker runs. Names the components that are not ready.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let queue = state.queue.stats();
    let progress = *state.progress.borrow();
    let not_ready = not_ready(state.role, &queue, &progress, state.store.as_ref()).await;
    let mut body = if not_ready.is_empty() {
        json!({"status": "ready"})
    } else {
        json!({"status": "not_ready", "not_ready": not_ready})
    };
    // Settings that can lose acknowledged events are said where operators
    // look: a broker's persistence, no tenant's figures.
    if !queue.warnings.is_empty() {
        body["warnings"] = json!(queue.warnings);
    }
    (http_status(&not_ready), axum::Json(body)).into_response()
}

/// `queue`, `store` and/or `worker`: the components this process's role needs
/// that are not ready. Constant work: the store is only asked whether it
/// answers.
async fn not_ready(
    role: Role,
    queue: &QueueStats,
    progress: &Progress,
    store: &dyn EventStore,
) -> Vec<&'static str> {
    let mut not_ready = Vec::new();
    let full = queue.pending_bytes >= queue.max_bytes;
    if (full && role.ingests()) || queue.failed {
        not_ready.push("queue");
    }
    if (role.queries() || role.works()) && store.ready().await.is_err() {
        not_ready.push("store");
    }
    if role.works() && (!progress.running || progress.store_failing) {
        not_ready.push("worker");
    }
    not_ready
}

fn http_status(not_ready: &[&str]) -> StatusCode {
    if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /v1/admin/status`: readiness with the figures behind it.
pub(crate) async fn admin_status(State(state): State<AppState>) -> Response {
    let queue = state.queue.stats();
    let progress = *state.progress.borrow();
    let not_ready = not_ready(state.role, &queue, &progress, state.store.as_ref()).await;
    let mut body = details(&queue, &progress, state.store.as_ref()).await;
    body["role"] = json!(state.role.name());
    body["status"] = json!(if not_ready.is_empty() {
        "ready"
    } else {
        "not_ready"
    });
    body["not_ready"] = json!(not_ready);
    axum::Json(body).into_response()
}

/// Server-wide figures, for the super-admin only. Measuring the store costs in
/// proportion to what it holds.
async fn details(queue: &QueueStats, progress: &Progress, store: &dyn EventStore) -> Value {
    let store = match store.footprint().await {
        Ok(footprint) => json!({"events": footprint.events, "bytes": footprint.bytes}),
        Err(error) => json!({"error": error.to_string()}),
    };
    json!({
        "queue": {
            "pending_bytes": queue.pending_bytes,
            "max_bytes": queue.max_bytes,
            "durable_end": queue.durable_end.0,
            "segments": queue.segments,
            "syncs": queue.syncs,
            "full": queue.pending_bytes >= queue.max_bytes,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use store::{
        Bucket, Filter, Footprint, HistogramRequest, SearchPage, SearchRequest, Stats, StoreError,
        StoredEvent,
    };

    /// A store that answers readiness and refuses to be measured or used.
    struct Unmeasured {
        answers: bool,
    }

    #[async_trait]
    impl EventStore for Unmeasured {
        async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
            unreachable!("readiness reads no position")
        }
        async fn stage(&self, _: Vec<model::QueuedEvent>) -> Result<(), StoreError> {
            unreachable!("readiness writes nothing")
        }
        async fn commit(&self, _: Option<u64>) -> Result<(), StoreError> {
            unreachable!("readiness writes nothing")
        }
        async fn search(&self, _: SearchRequest) -> Result<SearchPage, StoreError> {
            unreachable!("readiness searches nothing")
        }
        async fn get(
            &self,
            _: &str,
            _: model::Stream,
            _: &str,
        ) -> Result<Option<StoredEvent>, StoreError> {
            unreachable!("readiness reads no event")
        }
        async fn stats(&self, _: Filter) -> Result<Stats, StoreError> {
            unreachable!("readiness counts nothing")
        }
        async fn histogram(&self, _: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
            unreachable!("readiness counts nothing")
        }
        async fn ready(&self) -> Result<(), StoreError> {
            match self.answers {
                true => Ok(()),
                false => Err(StoreError::Task("stopped".into())),
            }
        }
        async fn footprint(&self) -> Result<Footprint, StoreError> {
            panic!("the public readiness probe measured the store")
        }
    }

    #[tokio::test]
    async fn readiness_asks_the_store_whether_it_answers_not_what_it_holds() {
        let queue = QueueStats {
            max_bytes: 100,
            ..QueueStats::default()
        };
        let running = Progress {
            running: true,
            ..Progress::default()
        };
        let store = Unmeasured { answers: true };
        assert!(
            not_ready(Role::All, &queue, &running, &store)
                .await
                .is_empty()
        );
        let stopped = Unmeasured { answers: false };
        let full = QueueStats {
            pending_bytes: 100,
            ..queue
        };
        assert_eq!(
            not_ready(Role::All, &full, &Progress::default(), &stopped).await,
            ["queue", "store", "worker"]
        );
        // Each role is judged by what it needs.
        assert_eq!(
            not_ready(Role::Ingest, &full, &Progress::default(), &stopped).await,
            ["queue"]
        );
        assert_eq!(
            not_ready(Role::Query, &full, &Progress::default(), &stopped).await,
            ["store"]
        );
    }
}
