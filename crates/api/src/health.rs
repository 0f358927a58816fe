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
use serde::Serialize;
use store::EventStore;
use utoipa::ToSchema;

use crate::{AppState, Role};

/// `GET /healthz`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Alive {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// `GET /readyz`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    /// The components that are not ready (`queue`, `store`, `worker`), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    not_ready: Option<Vec<&'static str>>,
    /// Settings that can lose acknowledged events (a broker's persistence).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// `GET /v1/admin/status`'s answer: readiness with the figures behind it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServerStatus {
    /// The role of this process: `all`, `ingest`, `worker` or `query`.
    #[schema(value_type = String)]
    role: &'static str,
    /// `ready` or `not_ready`.
    #[schema(value_type = String)]
    status: &'static str,
    /// The components that are not ready (empty when ready).
    #[schema(value_type = Vec<String>)]
    not_ready: Vec<&'static str>,
    queue: QueueFigures,
    store: StoreFigures,
    worker: WorkerFigures,
}

/// The queue's figures.
#[derive(Serialize, ToSchema)]
pub(crate) struct QueueFigures {
    pending_bytes: u64,
    max_bytes: u64,
    durable_end: u64,
    segments: usize,
    syncs: u64,
    full: bool,
    failed: bool,
    /// `embedded` or `redis`.
    #[schema(value_type = String)]
    backend: &'static str,
    pending_records: Option<u64>,
    warnings: Vec<String>,
}

/// What the store holds, or why it could not be measured.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum StoreFigures {
    Measured { events: u64, bytes: u64 },
    Failed { error: String },
}

/// The pipeline worker's progress.
#[derive(Serialize, ToSchema)]
pub(crate) struct WorkerFigures {
    running: bool,
    committed_position: u64,
    committed_events: u64,
    skipped_records: u64,
    store_failing: bool,
}

/// Alive: the process answers HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process answers", body = Alive)),
)]
pub(crate) async fn healthz() -> Response {
    axum::Json(Alive { status: "ok" }).into_response()
}

/// Ready: the queue accepts appends (its writer works and it is not full), the
/// store answers, and the worker runs. Names the components that are not ready.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Some component is not ready; `not_ready` names it", body = Readiness),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let queue = state.queue.stats();
    let progress = *state.progress.borrow();
    let not_ready = not_ready(state.role, &queue, &progress, state.store.as_ref()).await;
    let status = http_status(&not_ready);
    let body = Readiness {
        status: if not_ready.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        not_ready: (!not_ready.is_empty()).then_some(not_ready),
        // Settings that can lose acknowledged events are said where operators
        // look: a broker's persistence, no tenant's figures.
        warnings: queue.warnings,
    };
    (status, axum::Json(body)).into_response()
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
#[utoipa::path(
    get,
    path = "/v1/admin/status",
    tag = "admin",
    responses((status = 200, description = "Readiness and the server-wide figures", body = ServerStatus)),
)]
pub(crate) async fn admin_status(State(state): State<AppState>) -> Response {
    let queue = state.queue.stats();
    let progress = *state.progress.borrow();
    let not_ready = not_ready(state.role, &queue, &progress, state.store.as_ref()).await;
    // Measuring the store costs in proportion to what it holds: the super-admin's only.
    let store = match state.store.footprint().await {
        Ok(footprint) => StoreFigures::Measured {
            events: footprint.events,
            bytes: footprint.bytes,
        },
        Err(error) => StoreFigures::Failed {
            error: error.to_string(),
        },
    };
    let body = ServerStatus {
        role: state.role.name(),
        status: if not_ready.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        not_ready,
        queue: QueueFigures {
            pending_bytes: queue.pending_bytes,
            max_bytes: queue.max_bytes,
            durable_end: queue.durable_end.0,
            segments: queue.segments,
            syncs: queue.syncs,
            full: queue.pending_bytes >= queue.max_bytes,
            failed: queue.failed,
            backend: queue.backend,
            pending_records: queue.pending_records,
            warnings: queue.warnings,
        },
        store,
        worker: WorkerFigures {
            running: progress.running,
            committed_position: progress.committed.0,
            committed_events: progress.committed_events,
            skipped_records: progress.skipped_records,
            store_failing: progress.store_failing,
        },
    };
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use model::Timestamp;
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
        async fn commit_offsets(&self, _: &str, _: &[(u32, u64)]) -> Result<(), StoreError> {
            unreachable!("readiness writes nothing")
        }
        async fn committed_offsets(
            &self,
            _: &str,
        ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
            unreachable!("readiness reads no offset")
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
        async fn expire_logs(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
            unreachable!("readiness deletes nothing")
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
