//! The super-admin's dead letters: what the worker could not store, listed,
//! inspected, replayed into the queue or purged. Replays and purges are
//! security events, recorded in the super-admin's tenant and in the letter's.
//!
//! A replay appends the letter's payload (a queue record) to the queue and
//! waits until it is durable, records the audit event, and only then removes
//! the letter: a failure on the way leaves the letter, and replaying it again
//! stores its event once (an event letter's record replaces any copy by id).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::{DeadLetter, DeadLetterInfo, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::auth_routes::actor_of;
use crate::json_body::path_id;
use crate::search::{NoParams, invalid_parameter, parameter_error};
use crate::security::{Actor, Outcome, SecurityEvent};
use crate::{ApiError, AppState};

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Letters per page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// A page of dead letters, without payloads.
#[derive(Serialize, ToSchema)]
pub(crate) struct LetterPage {
    dead_letters: Vec<DeadLetterInfo>,
    /// Pass as `after` for the next page; `null` on the last.
    next: Option<String>,
}

/// A letter with its payload: the queue record as text (or `payload_hex`
/// when it is not UTF-8), and its events when the record is readable.
#[derive(Serialize, ToSchema)]
pub(crate) struct LetterBody {
    #[serde(flatten)]
    info: DeadLetterInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<model::Event>>,
}

impl From<DeadLetter> for LetterBody {
    fn from(letter: DeadLetter) -> Self {
        let events = model::decode_record(&letter.payload, letter.info.position)
            .ok()
            .map(|events| events.into_iter().map(|queued| queued.event).collect());
        let (payload, payload_hex) = match String::from_utf8(letter.payload) {
            Ok(text) => (Some(text), None),
            Err(error) => {
                let hex = error
                    .as_bytes()
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                (None, Some(hex))
            }
        };
        LetterBody {
            info: letter.info,
            payload,
            payload_hex,
            events,
        }
    }
}

/// A replayed letter and where its record went in the queue.
#[derive(Serialize, ToSchema)]
pub(crate) struct Replayed {
    id: String,
    /// Always `true`.
    replayed: bool,
    position: u64,
    next_position: u64,
}

/// A purged letter.
#[derive(Serialize, ToSchema)]
pub(crate) struct Purged {
    id: String,
    /// Always `true`.
    purged: bool,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no dead letter {id:?}"),
    )
}

/// The dead-letter store failed: unavailable (503, retry) or a fault of the server.
fn letters_failed(context: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |error| match error {
        StoreError::Unavailable(reason) => {
            tracing::warn!(%reason, "the dead-letter store is unavailable");
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the dead-letter store cannot be reached; retry later",
            );
            error.retry_after_seconds = Some(2);
            error
        }
        other => ApiError::internal(context, &other),
    }
}

async fn find(state: &AppState, id: &str) -> Result<DeadLetter, ApiError> {
    state
        .dead_letters
        .get(id)
        .await
        .map_err(letters_failed("reading a dead letter"))?
        .ok_or_else(|| not_found(id))
}

/// `GET /v1/admin/dead-letters?limit=&after=`: a page in id order, without payloads.
#[utoipa::path(
    get,
    path = "/v1/admin/dead-letters",
    tag = "admin",
    params(ListParams),
    responses(
        (status = 200, description = "A page of dead letters in id order", body = LetterPage),
        (status = 400, description = "A parameter is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 503, description = "The dead-letter store cannot be reached (`store_unavailable`) or credentials cannot be checked (`auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(parameter_error)?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=store::dead_letters::MAX_PAGE).contains(&limit) => limit,
            _ => {
                return Err(invalid_parameter(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {}",
                        store::dead_letters::MAX_PAGE
                    ),
                ));
            }
        },
    };
    let after = params.after.as_deref().filter(|after| !after.is_empty());
    let page = state
        .dead_letters
        .list(after, limit)
        .await
        .map_err(letters_failed("listing dead letters"))?;
    Ok(Json(LetterPage {
        dead_letters: page.letters,
        next: page.next,
    })
    .into_response())
}

/// `GET /v1/admin/dead-letters/{id}`: one letter with its payload.
#[utoipa::path(
    get,
    path = "/v1/admin/dead-letters/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The letter's id")),
    responses(
        (status = 200, description = "The letter with its payload", body = LetterBody),
        (status = 400, description = "A query parameter was given (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such letter (`not_found`)", body = crate::error::ErrorBody),
        (status = 503, description = "The dead-letter store cannot be reached (`store_unavailable`) or credentials cannot be checked (`auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    query.map_err(parameter_error)?;
    let id = path_id(id)?;
    let letter = find(&state, &id).await?;
    Ok(Json(LetterBody::from(letter)).into_response())
}

/// `POST /v1/admin/dead-letters/{id}/replay`: the payload goes back into the
/// queue (durably), then the letter is removed. Answers 202 with the new position.
#[utoipa::path(
    post,
    path = "/v1/admin/dead-letters/{id}/replay",
    tag = "admin",
    params(("id" = String, Path, description = "The letter's id")),
    responses(
        (status = 202, description = "The record is back in the queue, durably; the letter is gone", body = Replayed),
        (status = 404, description = "No such letter (`not_found`)", body = crate::error::ErrorBody),
        (status = 413, description = "The record is over the queue's record limit (`record_too_large`)", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is full or cannot write, or a store cannot be reached (`queue_full`, `queue_unavailable`, `store_unavailable`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn replay(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let letter = find(&state, &id).await?;
    let (position, next) = crate::ingest::append(
        &state,
        letter.info.tenant.as_deref(),
        bytes::Bytes::from(letter.payload.clone()),
    )
    .await?;
    let mut details = Map::new();
    details.insert("position".into(), json!(position.0));
    let actor = actor_of(&principal, peer, &headers);
    record(
        &state,
        &principal,
        &actor,
        "dead_letter.replay",
        &letter,
        details,
    )
    .await?;
    remove(&state, &id).await?;
    tracing::info!(
        dead_letter = id,
        position = position.0,
        "a dead letter was replayed"
    );
    let answer = Replayed {
        id,
        replayed: true,
        position: position.0,
        next_position: next.0,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// `DELETE /v1/admin/dead-letters/{id}`: the letter is gone for good.
#[utoipa::path(
    delete,
    path = "/v1/admin/dead-letters/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The letter's id")),
    responses(
        (status = 200, description = "The letter is gone for good", body = Purged),
        (status = 404, description = "No such letter (`not_found`)", body = crate::error::ErrorBody),
        (status = 503, description = "The dead-letter store cannot be reached (`store_unavailable`) or credentials cannot be checked (`auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn purge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let letter = find(&state, &id).await?;
    let actor = actor_of(&principal, peer, &headers);
    record(
        &state,
        &principal,
        &actor,
        "dead_letter.purge",
        &letter,
        Map::new(),
    )
    .await?;
    remove(&state, &id).await?;
    tracing::info!(dead_letter = id, "a dead letter was purged");
    Ok(Json(Purged { id, purged: true }).into_response())
}

async fn remove(state: &AppState, id: &str) -> Result<(), ApiError> {
    let removed = state
        .dead_letters
        .remove(id)
        .await
        .map_err(letters_failed("removing a dead letter"))?;
    // Removed meanwhile by another request: the outcome is the same.
    if !removed {
        tracing::info!(dead_letter = id, "the dead letter was already removed");
    }
    Ok(())
}

/// Records a replay or a purge in the super-admin's tenant and, when the
/// letter's tenant is known and another, in that tenant's trail too.
async fn record(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    action: &'static str,
    letter: &DeadLetter,
    mut details: Map<String, Value>,
) -> Result<(), ApiError> {
    let info = &letter.info;
    details.insert("error".into(), json!(info.error));
    details.insert("attempts".into(), json!(info.attempts));
    details.insert("letter_position".into(), json!(info.position));
    if let Some(tenant) = &info.tenant {
        details.insert("letter_tenant".into(), json!(tenant));
    }
    if let Some(stream) = info.stream {
        details.insert("letter_stream".into(), json!(stream));
    }
    let mut tenants = vec![principal.tenant.as_str()];
    if let Some(tenant) = info.tenant.as_deref()
        && tenant != principal.tenant
    {
        tenants.push(tenant);
    }
    let entries: Vec<_> = tenants
        .into_iter()
        .map(|tenant| {
            SecurityEvent {
                tenant,
                action,
                outcome: Outcome::Success,
                actor,
                target: Some(("dead_letter", &info.id)),
                reason: None,
                details: details.clone(),
            }
            .entry()
        })
        .collect();
    state
        .auth
        .meta
        .record_audit(&entries)
        .await
        .map_err(|error| ApiError::internal("recording an audit event", &error))
}
