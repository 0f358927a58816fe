//! Tenant administration: users, API keys and settings of the caller's tenant,
//! and tenants themselves for the super-admin.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meta::{ApiKey, Tenant, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::{Permission, Principal, PrincipalKind, Scope};
use crate::accounts::{self, KeyRequest, UserRequest};
use crate::auth_routes::{SELF_REGISTRATION, account_error, actor_of};
use crate::json_body::{json_body, rfc3339};
use crate::security::{Outcome, SecurityEvent};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    username: String,
    password: String,
    role: String,
    /// Only a super-admin may create users in another tenant.
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<String>,
    disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    signed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    self_registration: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantBody {
    id: String,
    name: Option<String>,
}

/// A user as the API shows it.
pub(crate) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "tenant": user.tenant,
        "username": user.username,
        "role": user.role,
        "super_admin": user.super_admin,
        "disabled": user.disabled,
        "created_at": rfc3339(user.created_at),
    })
}

fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "scopes": key.scopes,
        "signed": key.signed,
        "created_at": rfc3339(key.created_at),
        "created_by": key.created_by,
        "last_used_at": key.last_used_at.map(rfc3339),
        "revoked_at": key.revoked_at.map(rfc3339),
    })
}

fn tenant_json(tenant: &Tenant) -> Value {
    json!({"id": tenant.id, "name": tenant.name, "created_at": rfc3339(tenant.created_at)})
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
}

fn internal(context: &'static str) -> impl Fn(meta::MetaError) -> ApiError {
    move |error| ApiError::internal(context, &error)
}

pub(crate) async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let users = state
        .auth
        .meta
        .users(&principal.tenant)
        .await
        .map_err(internal("listing users"))?;
    Ok(Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()})).into_response())
}

pub(crate) async fn create_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<NewUserBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let tenant = match body.tenant {
        Some(tenant) if tenant != principal.tenant => {
            if !principal.can(crate::access::Permission::ManageTenants) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "only the super-admin may create users in another tenant",
                ));
            }
            tenant
        }
        _ => principal.tenant.clone(),
    };
    let role = accounts::parse_role(&body.role).map_err(account_error)?;
    let actor = actor_of(&principal, peer, &headers);
    let user = accounts::create_user(
        &state.auth.meta,
        &UserRequest {
            tenant: &tenant,
            username: &body.username,
            password: &body.password,
            role,
            super_admin: false,
        },
        &actor,
    )
    .await
    .map_err(account_error)?;
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

pub(crate) async fn update_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let change = json_body(body)?;
    if let PrincipalKind::User { id: own, .. } = &principal.kind
        && *own == id
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you cannot change your own role or disable yourself; ask another admin",
        ));
    }
    let target = state
        .auth
        .meta
        .user(&id)
        .await
        .map_err(internal("reading a user"))?
        .filter(|found| found.user.tenant == principal.tenant);
    if target.is_some_and(|found| found.user.super_admin)
        && !principal.can(crate::access::Permission::ManageTenants)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the super-admin may change the super-admin",
        ));
    }
    let role = change
        .role
        .as_deref()
        .map(accounts::parse_role)
        .transpose()
        .map_err(account_error)?;
    let actor = actor_of(&principal, peer, &headers);
    let mut events = Vec::new();
    if let Some(role) = role {
        let mut details = Map::new();
        details.insert("role".into(), json!(role.name()));
        events.push(SecurityEvent {
            tenant: &principal.tenant,
            action: "user.role_change",
            outcome: Outcome::Success,
            actor: &actor,
            target: Some(("user", &id)),
            reason: None,
            details,
        });
    }
    if let Some(disabled) = change.disabled {
        events.push(SecurityEvent {
            tenant: &principal.tenant,
            action: if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            outcome: Outcome::Success,
            actor: &actor,
            target: Some(("user", &id)),
            reason: None,
            details: Map::new(),
        });
    }
    let entries: Vec<_> = events.iter().map(SecurityEvent::entry).collect();
    let user = state
        .auth
        .meta
        .update_user(
            &principal.tenant,
            &id,
            role.map(|role| role.name()),
            change.disabled,
            &entries,
        )
        .await
        .map_err(internal("updating a user"))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no user {id:?} in this tenant"),
            )
        })?;
    Ok(Json(user_json(&user)).into_response())
}

pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let keys = state
        .auth
        .meta
        .keys(&principal.tenant)
        .await
        .map_err(internal("listing keys"))?;
    Ok(Json(json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()})).into_response())
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<NewKeyBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let scopes = accounts::parse_scopes(&body.scopes).map_err(account_error)?;
    // `/metrics` shows every tenant's figures: a tenant admin cannot hand that out.
    if scopes.contains(&Scope::MetricsRead) && !principal.can(Permission::ManageTenants) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the super-admin may create a key with the metrics:read scope",
        )
        .at(json!({"field": "scopes"})));
    }
    let actor = actor_of(&principal, peer, &headers);
    let created = accounts::create_key(
        &state.auth.meta,
        &KeyRequest {
            tenant: &principal.tenant,
            name: &body.name,
            scopes: &scopes,
            signed: body.signed,
            value: None,
        },
        &state.auth.signing_master,
        &actor,
    )
    .await
    .map_err(account_error)?;
    let mut answer = key_json(&created.key);
    answer["key"] = json!(created.token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let actor = actor_of(&principal, peer, &headers);
    let event = SecurityEvent {
        tenant: &principal.tenant,
        action: "key.revoke",
        outcome: Outcome::Success,
        actor: &actor,
        target: Some(("api_key", &id)),
        reason: None,
        details: Map::new(),
    };
    let key = state
        .auth
        .meta
        .revoke_key(&principal.tenant, &id, &[event.entry()])
        .await
        .map_err(internal("revoking a key"))?;
    // This process stops accepting the key at once; others within the key
    // cache's freshness (auth.key_cache_ms).
    state.auth.keys.clear();
    let key = key.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no key {id:?} in this tenant"),
        )
    })?;
    Ok(Json(key_json(&key)).into_response())
}

async fn settings_json(state: &AppState, tenant: &str) -> Result<Value, ApiError> {
    let stored = state
        .auth
        .meta
        .settings(tenant)
        .await
        .map_err(internal("reading settings"))?;
    let self_registration = stored
        .iter()
        .any(|(name, value)| name == SELF_REGISTRATION && value == "true");
    Ok(json!({ SELF_REGISTRATION: self_registration }))
}

pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    Ok(Json(settings_json(&state, &principal.tenant).await?).into_response())
}

pub(crate) async fn put_settings(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<SettingsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let mut values = Vec::new();
    let mut details = Map::new();
    if let Some(enabled) = body.self_registration {
        values.push((SELF_REGISTRATION.to_owned(), enabled.to_string()));
        details.insert(SELF_REGISTRATION.into(), json!(enabled));
    }
    if !values.is_empty() {
        let actor = actor_of(&principal, peer, &headers);
        let event = SecurityEvent {
            tenant: &principal.tenant,
            action: "settings.change",
            outcome: Outcome::Success,
            actor: &actor,
            target: Some(("tenant", &principal.tenant)),
            reason: None,
            details,
        };
        state
            .auth
            .meta
            .set_settings(&principal.tenant, &values, &[event.entry()])
            .await
            .map_err(internal("changing settings"))?;
    }
    Ok(Json(settings_json(&state, &principal.tenant).await?).into_response())
}

pub(crate) async fn list_tenants(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tenants = state
        .auth
        .meta
        .tenants()
        .await
        .map_err(internal("listing tenants"))?;
    Ok(
        Json(json!({"tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<NewTenantBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let actor = actor_of(&principal, peer, &headers);
    let name = body.name.unwrap_or_else(|| body.id.clone());
    let tenant = accounts::create_tenant(&state.auth.meta, &body.id, &name, &actor)
        .await
        .map_err(account_error)?;
    Ok((StatusCode::CREATED, Json(tenant_json(&tenant))).into_response())
}
