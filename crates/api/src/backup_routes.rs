//! `POST /v1/admin/backup`: the super-admin's consistent copy of a running
//! server's embedded data, streamed as a tar archive that ends with its
//! manifest (`logbook backup` unpacks and checks it).
//!
//! The server takes the snapshot (only it can hold its writers still for the
//! moment it needs) through [`Backups`]; this handler decides nothing about
//! what is copied. One backup runs at a time; the archive is produced by a
//! blocking task into a small bounded channel, so a slow client slows the
//! copy rather than filling memory.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, json};

use crate::access::Principal;
use crate::auth_routes::actor_of;
use crate::search::{NoParams, parameter_error};
use crate::security::{Outcome, SecurityEvent};
use crate::{ApiError, AppState};

/// The archive's bytes as they are produced; an `Err` ends it unfinished
/// (the connection is cut, so the client never sees a manifest).
pub type BackupStream = tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>;

/// Why a backup did not start.
#[derive(Debug)]
pub enum BackupRefusal {
    /// Another backup is being taken or streamed.
    Busy,
    /// This server's engines are not the embedded ones (the reason says which
    /// and what to do instead).
    Unsupported(String),
    /// Taking the snapshot failed.
    Failed(String),
}

/// What the metadata of a started backup says, for the audit event.
#[derive(Debug, Clone, Copy)]
pub struct BackupStarted {
    /// The queue position the copied index commit covers.
    pub queue_position: Option<u64>,
    /// Files in the archive, and their bytes.
    pub files: usize,
    pub bytes: u64,
}

/// A started backup: what it holds and the archive's bytes, or why not.
pub type BackupStart<'a> =
    Pin<Box<dyn Future<Output = Result<(BackupStarted, BackupStream), BackupRefusal>> + Send + 'a>>;

/// Takes snapshots for `POST /v1/admin/backup`; the server implements it over
/// its embedded queue, store and metadata database.
pub trait Backups: Send + Sync {
    /// Takes a consistent snapshot, then streams it as a tar archive.
    fn start(&self) -> BackupStart<'_>;
}

/// `POST /v1/admin/backup`: a consistent copy of the data directory as a tar
/// archive, ending with `MANIFEST.json` (each file's size and SHA-256).
#[utoipa::path(
    post,
    path = "/v1/admin/backup",
    tag = "admin",
    responses(
        (status = 200, description = "The backup as a tar archive whose last entry is `MANIFEST.json`; an archive without it was cut short", content_type = "application/x-tar", body = Vec<u8>),
        (status = 400, description = "A query parameter was given (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 409, description = "Another backup is running (`backup_in_progress`)", body = crate::error::ErrorBody),
        (status = 501, description = "The server's queue, store or metadata are not the embedded ones (`backup_unsupported`): back up PostgreSQL with pg_dump", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn backup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    query.map_err(parameter_error)?;
    let (started, stream) = state
        .backups
        .start()
        .await
        .map_err(|refusal| match refusal {
            BackupRefusal::Busy => ApiError::new(
                StatusCode::CONFLICT,
                "backup_in_progress",
                "another backup is running; try again once it has finished",
            ),
            BackupRefusal::Unsupported(reason) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "backup_unsupported", reason)
            }
            BackupRefusal::Failed(reason) => {
                ApiError::internal("taking a backup", &std::io::Error::other(reason))
            }
        })?;
    let actor = actor_of(&principal, peer, &headers);
    let mut details = Map::new();
    details.insert("files".into(), json!(started.files));
    details.insert("bytes".into(), json!(started.bytes));
    details.insert("queue_position".into(), json!(started.queue_position));
    let event = SecurityEvent {
        tenant: &principal.tenant,
        action: "backup.create",
        outcome: Outcome::Success,
        actor: &actor,
        target: None,
        reason: None,
        details,
    };
    // Dropping the stream on a failure here stops the archive and frees the slot.
    state
        .auth
        .meta
        .record_audit(&[event.entry()])
        .await
        .map_err(|error| ApiError::internal("recording an audit event", &error))?;
    tracing::info!(
        files = started.files,
        bytes = started.bytes,
        "a backup is being streamed"
    );
    let mut response = Response::new(Body::new(ArchiveBody(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"logbook-backup.tar\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The archive's channel as a response body.
struct ArchiveBody(BackupStream);

impl http_body::Body for ArchiveBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| bytes.map(http_body::Frame::data)))
    }
}
