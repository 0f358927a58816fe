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
use serde::Deserialize;
use serde_json::{Map, Value, json};
use store::{DeadLetter, DeadLetterInfo, StoreError};

use crate::access::Principal;
use crate::auth_routes::actor_of;
use crate::search::{NoParams, invalid_parameter, parameter_error};
use crate::security::{Actor, Outcome, SecurityEvent};
use crate::{ApiError, AppState};

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    limit: Option<String>,
    after: Option<String>,
}

fn info_json(info: &DeadLetterInfo) -> Value {
    json!({
        "id": info.id,
        "tenant": info.tenant,
        "stream": info.stream,
        "position": info.position,
        "error": info.error,
        "attempts": info.attempts,
        "first_failed_at": info.first_failed_at,
        "last_failed_at": info.last_failed_at,
        "payload_bytes": info.payload_bytes,
    })
}

/// A letter with its payload: the queue record as text (or `payload_hex`
/// when it is not UTF-8), and its events when the record is readable.
fn letter_json(letter: &DeadLetter) -> Value {
    let mut body = info_json(&letter.info);
    match std::str::from_utf8(&letter.payload) {
        Ok(text) => body["payload"] = json!(text),
        Err(_) => {
            let hex: String = letter
                .payload
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            body["payload_hex"] = json!(hex);
        }
    }
    if let Ok(events) = model::decode_record(&letter.payload, letter.info.position) {
        let events: Vec<&model::Event> = events.iter().map(|queued| &queued.event).collect();
        body["events"] = json!(events);
    }
    body
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

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
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
    let letters: Vec<Value> = page.letters.iter().map(info_json).collect();
    Ok(Json(json!({"dead_letters": letters, "next": page.next})).into_response())
}

/// `GET /v1/admin/dead-letters/{id}`: one letter with its payload.
pub(crate) async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    query.map_err(parameter_error)?;
    let id = path_id(id)?;
    let letter = find(&state, &id).await?;
    Ok(Json(letter_json(&letter)).into_response())
}

/// `POST /v1/admin/dead-letters/{id}/replay`: the payload goes back into the
/// queue (durably), then the letter is removed. Answers 202 with the new position.
pub(crate) async fn replay(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let letter = find(&state, &id).await?;
    let (position, next) =
        crate::ingest::append(&state, bytes::Bytes::from(letter.payload.clone())).await?;
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
    let answer =
        json!({"id": id, "replayed": true, "position": position.0, "next_position": next.0});
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// `DELETE /v1/admin/dead-letters/{id}`: the letter is gone for good.
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
    Ok(Json(json!({"id": id, "purged": true})).into_response())
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
