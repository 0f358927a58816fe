//! The verifiable audit trail: signed checkpoints, inclusion and consistency
//! proofs, and the public key that checks them. Hashes are lowercase hex;
//! checkpoints are signed notes (C2SP tlog-checkpoint). Events pruned by audit
//! retention keep their leaf hashes: their proofs are still served, and an
//! export carries their hashes in place of their bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::search::{NoParams, parameter_error};
use crate::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SizeParams {
    /// The size of a signed checkpoint (the newest when absent).
    size: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeParams {
    /// The older tree size.
    from: u64,
    /// The newer tree size.
    to: u64,
}

/// The key checkpoints are signed with.
#[derive(Serialize, ToSchema)]
pub(crate) struct PublicKey {
    /// A signed-note verifier key: `logbook+<key hash>+<base64 key>`.
    public_key: String,
}

/// A signed checkpoint with its fields read back, for clients that do not parse notes.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignedCheckpoint {
    tenant: String,
    /// The number of events the checkpoint covers.
    size: u64,
    /// The Merkle tree's root hash, lowercase hex.
    root: String,
    /// When it was signed, in Unix seconds.
    time: i64,
    /// The C2SP signed note itself.
    note: String,
}

/// An audit event's inclusion proof (RFC 9162).
#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProof {
    id: String,
    /// The event's position in the trail.
    seq: u64,
    /// The tree size the proof is for.
    size: u64,
    /// The event's leaf hash: of its canonical bytes, or for a pruned event the one
    /// the trail recorded (hash the event as you kept it to check it is the same).
    leaf_hash: String,
    /// Whether audit retention pruned the event: its body is gone from the server,
    /// its leaf hash and this proof remain.
    pruned: bool,
    /// The proof's hashes, lowercase hex.
    proof: Vec<String>,
    checkpoint: SignedCheckpoint,
}

/// A consistency proof between two tree sizes (RFC 9162).
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    from: u64,
    to: u64,
    /// The proof's hashes, lowercase hex.
    proof: Vec<String>,
    /// The signed checkpoint of size `from`, if there is one.
    from_checkpoint: Option<SignedCheckpoint>,
    /// The signed checkpoint of size `to`, if there is one.
    to_checkpoint: Option<SignedCheckpoint>,
}

fn hex(hash: &[u8]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A signed note with its fields read back, for clients that do not parse notes.
fn checkpoint_json(state: &AppState, note: &str) -> Result<SignedCheckpoint, ApiError> {
    let key = audit::VerifyingKey::from_text(&state.audit.public_key())
        .map_err(|error| ApiError::internal("reading the checkpoint key", &error))?;
    let checkpoint = audit::Checkpoint::verify(note, &key)
        .map_err(|error| ApiError::internal("reading a stored checkpoint", &error))?;
    Ok(SignedCheckpoint {
        tenant: checkpoint.tenant,
        size: checkpoint.size,
        root: hex(&checkpoint.root),
        time: checkpoint.time,
        note: note.to_owned(),
    })
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
#[utoipa::path(
    get,
    path = "/v1/audit/public-key",
    tag = "audit",
    responses(
        (status = 200, description = "The checkpoint signing key", body = PublicKey),
        (status = 400, description = "A query parameter was given (`invalid_parameter`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn public_key(
    State(state): State<AppState>,
    params: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    params.map_err(parameter_error)?;
    Ok(axum::Json(PublicKey {
        public_key: state.audit.public_key(),
    })
    .into_response())
}

/// `GET /v1/audit/checkpoint[?size=N]`.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    tag = "audit",
    params(SizeParams),
    responses(
        (status = 200, description = "The tenant's newest signed checkpoint, or the one of `size`", body = SignedCheckpoint),
        (status = 400, description = "A parameter is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No signed checkpoint (of that size) yet (`no_checkpoint`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/v1/audit/{id}/proof",
    tag = "audit",
    params(("id" = String, Path, description = "The audit event's id"), SizeParams),
    responses(
        (status = 200, description = "The inclusion proof and the checkpoint it leads to", body = InclusionProof),
        (status = 400, description = "A parameter is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such audit event, pruned or not (`not_found`), or no signed checkpoint (of that size) (`no_checkpoint`)", body = crate::error::ErrorBody),
        (status = 409, description = "The event is newer than the checkpoint (`not_yet_checkpointed`) or has no sequence number (`not_sequenced`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<SizeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) =
        id.map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))?;
    let Query(params) = params.map_err(parameter_error)?;
    let tenant = &principal.tenant;
    // The event itself, or for a pruned one its sequence number.
    let (seq, event) = match state.store.get(tenant, Stream::Audit, &id).await? {
        Some(event) => {
            let event: Value = serde_json::from_str(event.get())
                .map_err(|error| ApiError::internal("reading a stored audit event", &error))?;
            let seq = event["seq"].as_u64().ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "not_sequenced",
                    "this audit event has no sequence number",
                )
            })?;
            (seq, Some(event))
        }
        None => {
            let seq = state.audit.pruned_seq(tenant, &id).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no audit event with id {id:?}"),
                )
            })?;
            (seq, None)
        }
    };
    let note = signed_checkpoint(&state, &principal.tenant, params.size).await?;
    let checkpoint = checkpoint_json(&state, &note)?;
    let size = checkpoint.size;
    if seq >= size {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_yet_checkpointed",
            format!(
                "event {seq} is newer than the checkpoint of size {size}; retry after the next checkpoint"
            ),
        ));
    }
    let proof = state.audit.inclusion_proof(tenant, seq, size).await?;
    let leaf = match &event {
        Some(event) => audit::leaf_hash(&audit::canonical_json(event)),
        None => {
            let recorded = state.audit.leaf_hashes(tenant, seq, seq + 1).await?;
            *recorded.first().ok_or_else(|| {
                ApiError::internal(
                    "reading a pruned event's leaf hash",
                    &store::StoreError::Corrupt(format!("no leaf hash for event {seq}")),
                )
            })?
        }
    };
    Ok(axum::Json(InclusionProof {
        id,
        seq,
        size,
        pruned: event.is_none(),
        leaf_hash: hex(&leaf),
        proof: proof.iter().map(|hash| hex(hash)).collect(),
        checkpoint,
    })
    .into_response())
}

/// `GET /v1/audit/consistency?from=N&to=M`.
#[utoipa::path(
    get,
    path = "/v1/audit/consistency",
    tag = "audit",
    params(RangeParams),
    responses(
        (status = 200, description = "The consistency proof, with the signed checkpoints of both sizes where they exist", body = ConsistencyProof),
        (status = 400, description = "A parameter is missing or not valid (`invalid_parameter`), or the sizes are out of range (`out_of_range`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
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
                Some(note) => Ok::<_, ApiError>(Some(checkpoint_json(&state, &note)?)),
                None => Ok(None),
            }
        }
    };
    Ok(axum::Json(ConsistencyProof {
        from,
        to,
        proof: proof.iter().map(|hash| hex(hash)).collect(),
        from_checkpoint: signed(from).await?,
        to_checkpoint: signed(to).await?,
    })
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

/// The format of an export of a trail with pruned events: format 2 where the
/// pruned events have their leaf-hash line and no event line.
const PRUNED_EXPORT_FORMAT: u32 = 3;

/// `GET /v1/audit/export[?size=N]`: everything needed to verify the trail up to
/// a checkpoint offline, as NDJSON. The first line is
/// `{"format": 2, "tenant", "size", "checkpoint": <signed note>, "public_key"}`;
/// then, for each event `0..size` in sequence order, a line
/// `{"leaf_hash": "<hex>"}` with the leaf hash the trail recorded for it, and
/// the event itself, exactly its leaf's canonical bytes. The recorded hashes
/// let a verifier name an altered event exactly: their tree must have the
/// checkpoint's root, so they cannot be forged to point elsewhere. When the
/// first events were pruned (audit retention), the header is format 3 with
/// `"pruned": n`, and each of those `n` events has its leaf-hash line only. A
/// prune while the export runs cuts it short (verification says so).
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    params(SizeParams),
    responses(
        (status = 200, description = "The trail up to the checkpoint, as NDJSON: a header line, then a leaf-hash line and the event for each event", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A parameter is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No signed checkpoint (of that size) yet (`no_checkpoint`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot be reached (`store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<SizeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(parameter_error)?;
    let note = signed_checkpoint(&state, &principal.tenant, params.size).await?;
    let size = checkpoint_json(&state, &note)?.size;
    let pruned = state.audit.pruned(&principal.tenant).await?.min(size);
    let mut header_line = json!({
        "format": EXPORT_FORMAT,
        "tenant": principal.tenant,
        "size": size,
        "checkpoint": note,
        "public_key": state.audit.public_key(),
    });
    if pruned > 0 {
        header_line["format"] = json!(PRUNED_EXPORT_FORMAT);
        header_line["pruned"] = json!(pruned);
    }
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
            // Pruned events first: their hashes alone.
            let to = (from + EXPORT_CHUNK).min(if from < pruned { pruned } else { size });
            let read = async {
                let leaves = match from < pruned {
                    true => None,
                    false => Some(state.audit.leaves(&tenant, from, to).await?),
                };
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
            let leaf_bytes: usize = leaves.iter().flatten().map(Vec::len).sum();
            let mut chunk = Vec::with_capacity(leaf_bytes + hashes.len() * LEAF_HASH_LINE_BYTES);
            for (index, hash) in hashes.iter().enumerate() {
                chunk
                    .extend_from_slice(format!("{{\"leaf_hash\":\"{}\"}}\n", hex(hash)).as_bytes());
                if let Some(leaf) = leaves.as_ref().and_then(|leaves| leaves.get(index)) {
                    chunk.extend_from_slice(leaf);
                    chunk.push(b'\n');
                }
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
