//! The verifiable audit trail: signed checkpoints, inclusion and consistency
//! proofs, and the public key that checks them. Hashes are lowercase hex;
//! checkpoints are signed notes (C2SP tlog-checkpoint).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Principal;
use crate::search::{NoParams, parameter_error};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SizeParams {
    size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeParams {
    from: u64,
    to: u64,
}

fn hex(hash: &[u8]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A signed note with its fields read back, for clients that do not parse notes.
fn checkpoint_json(state: &AppState, note: &str) -> Result<Value, ApiError> {
    let key = audit::VerifyingKey::from_text(&state.audit.public_key())
        .map_err(|error| ApiError::internal("reading the checkpoint key", &error))?;
    let checkpoint = audit::Checkpoint::verify(note, &key)
        .map_err(|error| ApiError::internal("reading a stored checkpoint", &error))?;
    Ok(json!({
        "tenant": checkpoint.tenant,
        "size": checkpoint.size,
        "root": hex(&checkpoint.root),
        "time": checkpoint.time,
        "note": note,
    }))
}

fn no_checkpoint(size: Option<u64>) -> ApiError {
    let message = match size {
        Some(size) => format!("no signed checkpoint of size {size}"),
        None => "this tenant's audit trail has no signed checkpoint yet".to_owned(),
    };
    ApiError::new(StatusCode::NOT_FOUND, "no_checkpoint", message)
}

/// The tenant's newest signed checkpoint, or the one of exactly `size`; 404 if none.
async fn signed_checkpoint(
    state: &AppState,
    tenant: &str,
    size: Option<u64>,
) -> Result<String, ApiError> {
    state
        .audit
        .checkpoint(tenant, size)
        .await?
        .ok_or_else(|| no_checkpoint(size))
}

/// `GET /v1/audit/public-key`: the key checkpoints are signed with.
pub(crate) async fn public_key(
    State(state): State<AppState>,
    params: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    params.map_err(parameter_error)?;
    Ok(axum::Json(json!({"public_key": state.audit.public_key()})).into_response())
}

/// `GET /v1/audit/checkpoint[?size=N]`.
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<SizeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(parameter_error)?;
    let note = signed_checkpoint(&state, &principal.tenant, params.size).await?;
    Ok(axum::Json(checkpoint_json(&state, &note)?).into_response())
}

/// `GET /v1/audit/{id}/proof[?size=N]`: the event's inclusion proof against
/// the checkpoint of `size` (the newest by default).
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<SizeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) =
        id.map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))?;
    let Query(params) = params.map_err(parameter_error)?;
    let event = state
        .store
        .get(&principal.tenant, Stream::Audit, &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no audit event with id {id:?}"),
            )
        })?;
    let event: Value = serde_json::from_str(event.get())
        .map_err(|error| ApiError::internal("reading a stored audit event", &error))?;
    let seq = event["seq"].as_u64().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_sequenced",
            "this audit event has no sequence number",
        )
    })?;
    let note = signed_checkpoint(&state, &principal.tenant, params.size).await?;
    let checkpoint = checkpoint_json(&state, &note)?;
    let size = checkpoint["size"].as_u64().unwrap_or(0);
    if seq >= size {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_yet_checkpointed",
            format!(
                "event {seq} is newer than the checkpoint of size {size}; retry after the next checkpoint"
            ),
        ));
    }
    let proof = state
        .audit
        .inclusion_proof(&principal.tenant, seq, size)
        .await?;
    let leaf = audit::leaf_hash(&audit::canonical_json(&event));
    Ok(axum::Json(json!({
        "id": id,
        "seq": seq,
        "size": size,
        "leaf_hash": hex(&leaf),
        "proof": proof.iter().map(|hash| hex(hash)).collect::<Vec<_>>(),
        "checkpoint": checkpoint,
    }))
    .into_response())
}

/// `GET /v1/audit/consistency?from=N&to=M`.
pub(crate) async fn consistency(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(RangeParams { from, to }) = params.map_err(parameter_error)?;
    let proof = state
        .audit
        .consistency_proof(&principal.tenant, from, to)
        .await?;
    let signed = |size| {
        let state = state.clone();
        let tenant = principal.tenant.clone();
        async move {
            match state.audit.checkpoint(&tenant, Some(size)).await? {
                Some(note) => Ok::<Value, ApiError>(checkpoint_json(&state, &note)?),
                None => Ok(Value::Null),
            }
        }
    };
    Ok(axum::Json(json!({
        "from": from,
        "to": to,
        "proof": proof.iter().map(|hash| hex(hash)).collect::<Vec<_>>(),
        "from_checkpoint": signed(from).await?,
        "to_checkpoint": signed(to).await?,
    }))
    .into_response())
}

/// Events read from the trail per step of an export.
const EXPORT_CHUNK: u64 = 10_000;

/// What an event adds to an export besides its bytes: its line
/// `{"leaf_hash":"<64 hex digits>"}` and the newlines of both.
const LEAF_HASH_LINE_BYTES: usize = 82;

/// A response body fed by a task through a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// The export format [`export`] writes. Format 1 (no `format` in the header) had
/// no leaf-hash lines.
const EXPORT_FORMAT: u32 = 2;

/// `GET /v1/audit/export[?size=N]`: everything needed to verify the trail up to
/// a checkpoint offline, as NDJSON. The first line is
/// `{"format": 2, "tenant", "size", "checkpoint": <signed note>, "public_key"}`;
/// then, for each event `0..size` in sequence order, a line
/// `{"leaf_hash": "<hex>"}` with the leaf hash the trail recorded for it, and
/// the event itself, exactly its leaf's canonical bytes. The recorded hashes
/// let a verifier name an altered event exactly: their tree must have the
/// checkpoint's root, so they cannot be forged to point elsewhere.
pub(crate) async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<SizeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(parameter_error)?;
    let note = signed_checkpoint(&state, &principal.tenant, params.size).await?;
    let size = checkpoint_json(&state, &note)?["size"]
        .as_u64()
        .unwrap_or(0);
    let header_line = json!({
        "format": EXPORT_FORMAT,
        "tenant": principal.tenant,
        "size": size,
        "checkpoint": note,
        "public_key": state.audit.public_key(),
    });
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    let tenant = principal.tenant.clone();
    tokio::spawn(async move {
        if sender
            .send(format!("{header_line}\n").into())
            .await
            .is_err()
        {
            return;
        }
        let mut from = 0;
        while from < size {
            let to = (from + EXPORT_CHUNK).min(size);
            let read = async {
                let leaves = state.audit.leaves(&tenant, from, to).await?;
                let hashes = state.audit.leaf_hashes(&tenant, from, to).await?;
                Ok::<_, store::StoreError>((leaves, hashes))
            };
            let (leaves, hashes) = match read.await {
                Ok(read) => read,
                Err(error) => {
                    // The client sees a short export, which verification reports.
                    tracing::error!(%error, tenant, "audit export cut short");
                    return;
                }
            };
            let mut chunk = Vec::with_capacity(
                leaves
                    .iter()
                    .map(|leaf| leaf.len() + LEAF_HASH_LINE_BYTES)
                    .sum(),
            );
            for (leaf, hash) in leaves.iter().zip(&hashes) {
                chunk
                    .extend_from_slice(format!("{{\"leaf_hash\":\"{}\"}}\n", hex(hash)).as_bytes());
                chunk.extend_from_slice(leaf);
                chunk.push(b'\n');
            }
            if sender.send(chunk.into()).await.is_err() {
                return;
            }
            from = to;
        }
    });
    let mut response = Response::new(Body::new(ChannelBody(receiver)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
