//! Tenant administration: users, API keys and settings of the caller's tenant,
//! and tenants themselves for the super-admin.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meta::{ApiKey, Tenant, User};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use utoipa::ToSchema;

use crate::access::{Permission, Principal, PrincipalKind, Scope};
use crate::accounts::{self, KeyRequest, UserRequest};
use crate::auth_routes::{SELF_REGISTRATION, account_error, actor_of};
use crate::json_body::{json_body, path_id, rfc3339};
use crate::security::{Outcome, SecurityEvent};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    username: String,
    password: String,
    role: String,
    /// Only a super-admin may create users in another tenant.
    tenant: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<String>,
    disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    signed: bool,
}

/// The settings to change; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    self_registration: Option<bool>,
    /// How long log events are kept (`"30d"`, `"12h"`, `"2w"`; 1 minute to
    /// 100 years); `null` falls back to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "30d")]
    logs_retention: Option<serde_json::Value>,
    /// The most bytes the tenant's log events may take (at least 1 MiB); the
    /// oldest go first. `null` falls back to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    logs_max_bytes: Option<serde_json::Value>,
    /// How long audit events keep their bodies (their leaf hashes stay, so
    /// the trail still verifies); `null` falls back to the server's default
    /// (kept forever unless the operator set one).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "365d")]
    audit_retention: Option<serde_json::Value>,
}

/// A field that is present, even as `null`, is `Some`: `null` asks for the
/// server's default, a missing field for no change.
fn present<'de, D>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    serde_json::Value::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantBody {
    id: String,
    name: Option<String>,
}

/// A user as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserBody {
    id: String,
    tenant: String,
    username: String,
    /// `admin`, `auditor` or `developer`.
    role: String,
    super_admin: bool,
    disabled: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        UserBody {
            id: user.id.clone(),
            tenant: user.tenant.clone(),
            username: user.username.clone(),
            role: user.role.clone(),
            super_admin: user.super_admin,
            disabled: user.disabled,
            created_at: rfc3339(user.created_at),
        }
    }
}

/// An API key as the API shows it (never its secret, except once at creation).
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyBody {
    id: String,
    name: String,
    /// `logs:write`, `logs:read`, `audit:write`, `audit:read`.
    scopes: Vec<String>,
    /// Whether requests with it must be signed (HMAC).
    signed: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// The id of the user who created it.
    created_by: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyBody {
    fn from(key: &ApiKey) -> Self {
        KeyBody {
            id: key.id.clone(),
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            signed: key.signed,
            created_at: rfc3339(key.created_at),
            created_by: key.created_by.clone(),
            last_used_at: key.last_used_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
        }
    }
}

/// A new key: the key's fields and, this once, its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedKeyBody {
    #[serde(flatten)]
    key: KeyBody,
    /// The secret (`lbk_…`): send it as a bearer token, or sign with it. Shown only now.
    #[serde(rename = "key")]
    token: String,
}

/// A tenant as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantBody {
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Tenant> for TenantBody {
    fn from(tenant: &Tenant) -> Self {
        TenantBody {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            created_at: rfc3339(tenant.created_at),
        }
    }
}

/// The tenant's settings.
#[derive(Serialize, ToSchema)]
pub(crate) struct Settings {
    /// Whether anyone may register as a `developer` of this tenant.
    self_registration: bool,
    /// The tenant's own log retention; `null`: the server's default.
    logs_retention: Option<String>,
    /// The tenant's own size limit for its logs, in bytes; `null`: the server's default.
    logs_max_bytes: Option<u64>,
    /// The tenant's own audit retention; `null`: the server's default.
    audit_retention: Option<String>,
}

/// `GET /v1/users`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserBody>,
}

/// `GET /v1/keys`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyBody>,
}

/// `GET /v1/tenants`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<TenantBody>,
}

fn internal(context: &'static str) -> impl Fn(meta::MetaError) -> ApiError {
    move |error| ApiError::internal(context, &error)
}

/// `GET /v1/users`.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "admin",
    responses(
        (status = 200, description = "The tenant's users", body = UserList),
    ),
)]
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
    Ok(Json(UserList {
        users: users.iter().map(UserBody::from).collect(),
    })
    .into_response())
}

/// `POST /v1/users`.
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "admin",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "The new user", body = UserBody),
        (status = 400, description = "The body is not valid JSON (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed: another tenant needs the super-admin (`forbidden`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such tenant (`not_found`)", body = crate::error::ErrorBody),
        (status = 409, description = "The username is taken (`conflict`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is not valid (`invalid_field`; `where` names it) or missing or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
    ),
)]
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
    Ok((StatusCode::CREATED, Json(UserBody::from(&user))).into_response())
}

/// `PATCH /v1/users/{id}`.
#[utoipa::path(
    patch,
    path = "/v1/users/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The user as changed", body = UserBody),
        (status = 400, description = "The body is not valid JSON (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed: one's own account, or the super-admin (`forbidden`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such user in this tenant (`not_found`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is not valid (`invalid_field`; `where` names it) or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
    ),
)]
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
    Ok(Json(UserBody::from(&user)).into_response())
}

/// `GET /v1/keys`.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "admin",
    responses(
        (status = 200, description = "The tenant's API keys", body = KeyList),
    ),
)]
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
    Ok(Json(KeyList {
        keys: keys.iter().map(KeyBody::from).collect(),
    })
    .into_response())
}

/// `POST /v1/keys`.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "admin",
    request_body = NewKeyBody,
    responses(
        (status = 201, description = "The new key, with its secret (shown only now)", body = CreatedKeyBody),
        (status = 400, description = "The body is not valid JSON (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is not valid (`invalid_field`; `where` names it) or missing or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
    ),
)]
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
    let answer = CreatedKeyBody {
        key: KeyBody::from(&created.key),
        token: created.token,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `DELETE /v1/keys/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, revoked", body = KeyBody),
        (status = 400, description = "The id is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such key in this tenant (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
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
    Ok(Json(KeyBody::from(&key)).into_response())
}

async fn settings_json(state: &AppState, tenant: &str) -> Result<Settings, ApiError> {
    let stored = state
        .auth
        .meta
        .settings(tenant)
        .await
        .map_err(internal("reading settings"))?;
    let value = |wanted: &str| {
        stored
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.clone())
    };
    Ok(Settings {
        self_registration: value(SELF_REGISTRATION).is_some_and(|value| value == "true"),
        logs_retention: value(retention::LOGS_RETENTION),
        logs_max_bytes: value(retention::LOGS_MAX_BYTES).and_then(|value| value.parse().ok()),
        audit_retention: value(retention::AUDIT_RETENTION),
    })
}

/// `GET /v1/settings`.
#[utoipa::path(
    get,
    path = "/v1/settings",
    tag = "admin",
    responses(
        (status = 200, description = "The tenant's settings", body = Settings),
    ),
)]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    Ok(Json(settings_json(&state, &principal.tenant).await?).into_response())
}

/// `PUT /v1/settings`: the settings given change, the others stay.
#[utoipa::path(
    put,
    path = "/v1/settings",
    tag = "admin",
    request_body = SettingsBody,
    responses(
        (status = 200, description = "The tenant's settings as changed", body = Settings),
        (status = 400, description = "The body is not valid JSON (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is of the wrong type (`invalid_json`), or a retention value is out of bounds (`invalid_setting`)", body = crate::error::ErrorBody),
    ),
)]
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
        values.push((SELF_REGISTRATION.to_owned(), Some(enabled.to_string())));
        details.insert(SELF_REGISTRATION.into(), json!(enabled));
    }
    let retention = [
        (retention::LOGS_RETENTION, body.logs_retention),
        (retention::LOGS_MAX_BYTES, body.logs_max_bytes),
        (retention::AUDIT_RETENTION, body.audit_retention),
    ];
    for (name, sent) in retention {
        let Some(sent) = sent else { continue };
        let stored = retention::setting_value(name, &sent).map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_setting",
                error.to_string(),
            )
            .at(json!({ "field": name }))
        })?;
        // The audit event carries the value as the API shows it.
        let shown = match (&stored, name) {
            (Some(bytes), retention::LOGS_MAX_BYTES) => json!(bytes.parse::<u64>().ok()),
            _ => json!(stored),
        };
        details.insert(name.into(), shown);
        values.push((name.to_owned(), stored));
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

/// `GET /v1/tenants`.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "admin",
    responses(
        (status = 200, description = "Every tenant", body = TenantList),
    ),
)]
pub(crate) async fn list_tenants(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tenants = state
        .auth
        .meta
        .tenants()
        .await
        .map_err(internal("listing tenants"))?;
    Ok(Json(TenantList {
        tenants: tenants.iter().map(TenantBody::from).collect(),
    })
    .into_response())
}

/// `POST /v1/tenants`.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "admin",
    request_body = NewTenantBody,
    responses(
        (status = 201, description = "The new tenant", body = TenantBody),
        (status = 400, description = "The body is not valid JSON (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 409, description = "The tenant exists (`conflict`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is not valid (`invalid_field`; `where` names it) or missing or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
    ),
)]
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
    Ok((StatusCode::CREATED, Json(TenantBody::from(&tenant))).into_response())
}
