//! `/v1/auth/*`: login, refresh, logout, password change, self-registration
//! and "who am I".

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meta::{NewSession, RefreshOutcome, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::access::{
    Principal, PrincipalKind, Role, authenticate::now_seconds, authenticate::unauthorized,
};
use crate::accounts::{self, AccountError, UserRequest};
use crate::json_body::json_body;
use crate::security::{self, Actor, Outcome, SecurityEvent};
use crate::{ApiError, AppState, telemetry};

/// Longest username or password looked at; longer ones are refused before hashing.
const MAX_USERNAME_BYTES: usize = 256;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    tenant: String,
    username: String,
    password: String,
}

/// A login session's tokens.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tokens {
    /// Send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds the access token is valid for.
    expires_in: i64,
    /// Exchange at `POST /v1/auth/refresh` for new tokens (once).
    refresh_token: String,
    /// Seconds the refresh token is valid for.
    refresh_expires_in: u64,
}

/// `GET /v1/auth/me`'s answer: who the credentials belong to and what they allow.
#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    tenant: String,
    #[serde(flatten)]
    caller: Caller,
    /// The permissions held (`logs:read`, `tenant:manage`…).
    #[schema(value_type = Vec<String>)]
    permissions: Vec<&'static str>,
}

/// A logged-in user or an API key.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Caller {
    User {
        id: String,
        username: String,
        /// `admin`, `auditor` or `developer`.
        #[schema(value_type = String)]
        role: &'static str,
        super_admin: bool,
    },
    ApiKey {
        id: String,
        name: String,
    },
}

/// The actor of a request from its principal, address and user agent.
pub(crate) fn actor_of(principal: &Principal, peer: SocketAddr, headers: &HeaderMap) -> Actor {
    let (kind, id, name) = principal.actor();
    Actor {
        kind,
        id: id.to_owned(),
        name: name.to_owned(),
        source_ip: Some(peer.ip().to_string()),
        user_agent: user_agent(headers),
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(256).collect())
}

fn user_actor(user: &User, peer: SocketAddr, headers: &HeaderMap) -> Actor {
    Actor {
        kind: "user",
        id: user.id.clone(),
        name: user.username.clone(),
        source_ip: Some(peer.ip().to_string()),
        user_agent: user_agent(headers),
    }
}

fn check_credentials_size(username: &str, password: &str) -> Result<(), ApiError> {
    if username.len() > MAX_USERNAME_BYTES || password.len() > auth::password::MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(
            "credentials_too_large",
            format!(
                "usernames are at most {MAX_USERNAME_BYTES} bytes and passwords at most {} bytes",
                auth::password::MAX_PASSWORD_BYTES
            ),
        ));
    }
    Ok(())
}

/// A turn to hash a password, or 503 when as many hashes as allowed are under
/// way: logins from many addresses cannot take every core and Argon2's memory.
fn password_turn(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    state.auth.password_checks.try_acquire().map_err(|_| {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "the server is checking as many passwords as it allows at once; retry shortly",
        );
        error.retry_after_seconds = Some(1);
        error
    })
}

/// Verifies a password on the blocking pool; unknown users cost the same time.
async fn password_matches(password: &str, hash: Option<String>) -> Result<bool, ApiError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => auth::password::verify_password(&password, &hash).unwrap_or(false),
        None => {
            auth::password::burn_verification(&password);
            false
        }
    })
    .await
    .map_err(|error| ApiError::internal("checking a password", &error))
}

pub(crate) fn account_error(error: AccountError) -> ApiError {
    match error {
        AccountError::Invalid { field, message } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {message}"),
        )
        .at(json!({"field": field})),
        AccountError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{what} already exists"),
        ),
        AccountError::NotFound(what) => ApiError::new(StatusCode::NOT_FOUND, "not_found", what),
        other => ApiError::internal("changing accounts", &other),
    }
}

fn meta_error(context: &str) -> impl Fn(meta::MetaError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

async fn record(state: &AppState, events: &[SecurityEvent<'_>]) -> Result<(), ApiError> {
    let entries: Vec<_> = events.iter().map(SecurityEvent::entry).collect();
    state
        .auth
        .meta
        .record_audit(&entries)
        .await
        .map_err(meta_error("recording a security event"))
}

fn new_refresh_token() -> Result<String, ApiError> {
    let bytes = auth::random_bytes::<32>()
        .map_err(|error| ApiError::internal("making a refresh token", &error))?;
    let mut token = String::from("lbr_");
    for byte in bytes {
        token.push_str(&format!("{byte:02x}"));
    }
    Ok(token)
}

/// Starts or continues a session: a fresh access token for `user` in `session`.
fn token_answer(state: &AppState, user: &User, session: &str, refresh_token: &str) -> Response {
    let now = now_seconds();
    let ttl = state.auth.config.access_token_ttl.as_secs() as i64;
    let claims = auth::jwt::Claims {
        iss: auth::jwt::ISSUER.to_owned(),
        sub: user.id.clone(),
        tenant: user.tenant.clone(),
        role: user.role.clone(),
        sid: session.to_owned(),
        super_admin: user.super_admin,
        iat: now,
        exp: now + ttl,
    };
    let access_token = auth::jwt::encode(&state.auth.jwt, &claims);
    let mut response = Json(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: refresh_token.to_owned(),
        refresh_expires_in: state.auth.config.refresh_token_ttl.as_secs(),
    })
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session's tokens", body = Tokens),
        (status = 400, description = "The body is not valid JSON (`invalid_json`) or the credentials are too long (`credentials_too_large`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 401, description = "Wrong username or password, or a disabled user (`invalid_credentials`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is missing, unknown or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failed logins for this account or address (`too_many_login_attempts`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "As many passwords are being checked as allowed (`server_busy`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
/// `POST /v1/auth/login`; a refused login counts as an authentication failure.
pub(crate) async fn login(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    log_in(state, peer, headers, body)
        .await
        .inspect_err(telemetry::auth_refused)
}

async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    check_credentials_size(&request.username, &request.password)?;
    let limits = &state.auth.limits;
    limits.reserve_login(&request.username, peer.ip())?;
    let turn = match password_turn(&state) {
        Ok(turn) => turn,
        Err(error) => {
            // Not an attempt: the password was never looked at.
            limits.login_succeeded(&request.username, peer.ip());
            return Err(error);
        }
    };
    let found = state
        .auth
        .meta
        .user_by_username(&request.username)
        .await
        .map_err(meta_error("looking up a user"))?;
    let hash = found.as_ref().map(|user| user.password_hash.clone());
    let matches = password_matches(&request.password, hash).await?;
    drop(turn);
    let user = match found {
        Some(found) if matches && !found.user.disabled => found.user,
        found => {
            if let Some(found) = found {
                let actor = user_actor(&found.user, peer, &headers);
                let reason = if found.user.disabled {
                    "user disabled"
                } else {
                    "wrong password"
                };
                let mut event =
                    security::simple(&found.user.tenant, "auth.login", Outcome::Failure, &actor);
                event.reason = Some(reason);
                record(&state, &[event]).await?;
            } else {
                tracing::info!(username = %request.username.escape_debug(), ip = %peer.ip(), "login for an unknown user refused");
            }
            return Err(unauthorized(
                "invalid_login",
                "the username or password is wrong",
            ));
        }
    };
    limits.login_succeeded(&request.username, peer.ip());
    let session = format!("ses_{}", ulid::Ulid::new());
    let refresh_token = new_refresh_token()?;
    let now = meta::now_millis();
    let refresh_ttl = state.auth.config.refresh_token_ttl.as_millis() as i64;
    state
        .auth
        .meta
        .create_session(
            &NewSession {
                id: session.clone(),
                user_id: user.id.clone(),
                refresh_hash: auth::apikey::hash_key(&refresh_token),
                expires_at: now + refresh_ttl,
            },
            now,
        )
        .await
        .map_err(meta_error("starting a session"))?;
    let actor = user_actor(&user, peer, &headers);
    record(
        &state,
        &[security::simple(
            &user.tenant,
            "auth.login",
            Outcome::Success,
            &actor,
        )],
    )
    .await?;
    Ok(token_answer(&state, &user, &session, &refresh_token))
}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = Tokens),
        (status = 400, description = "The body is not valid JSON (`invalid_json`) or the credentials are too long (`credentials_too_large`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 401, description = "The refresh token is unknown, expired or already used (`invalid_token`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is missing, unknown or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 503, description = "The metadata store cannot be reached (`auth_unavailable`)", body = crate::error::ErrorBody),
    ),
)]
/// `POST /v1/auth/refresh`; a refused refresh token counts as an
/// authentication failure.
pub(crate) async fn refresh(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    refresh_session(state, peer, headers, body)
        .await
        .inspect_err(telemetry::auth_refused)
}

async fn refresh_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    if request.refresh_token.len() > 256 {
        return Err(unauthorized(
            "invalid_refresh_token",
            "the refresh token is not valid",
        ));
    }
    let new_token = new_refresh_token()?;
    let now = meta::now_millis();
    let expires = now + state.auth.config.refresh_token_ttl.as_millis() as i64;
    let outcome = state
        .auth
        .meta
        .rotate_refresh(
            &auth::apikey::hash_key(&request.refresh_token),
            &auth::apikey::hash_key(&new_token),
            expires,
            now,
        )
        .await
        .map_err(meta_error("refreshing a session"))?;
    match outcome {
        RefreshOutcome::Rotated(session) if !session.user.disabled => {
            Ok(token_answer(&state, &session.user, &session.id, &new_token))
        }
        RefreshOutcome::Rotated(_) | RefreshOutcome::Invalid => Err(unauthorized(
            "invalid_refresh_token",
            "the refresh token is not valid, expired or revoked; log in again",
        )),
        RefreshOutcome::Reused(session) => {
            let actor = user_actor(&session.user, peer, &headers);
            let mut event = security::simple(
                &session.user.tenant,
                "auth.refresh",
                Outcome::Denied,
                &actor,
            );
            event.reason = Some("a used refresh token was presented again; the session is revoked");
            event.target = Some(("session", &session.id));
            record(&state, &[event]).await?;
            Err(unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session is revoked, log in again",
            ))
        }
    }
}

fn session_of(principal: &Principal) -> Result<(&str, &str), ApiError> {
    match &principal.kind {
        PrincipalKind::User { id, session, .. } => Ok((id, session)),
        PrincipalKind::Key { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "API keys have no session",
        )),
    }
}

/// `POST /v1/auth/logout`.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    responses((status = 204, description = "The session is ended; its tokens no longer work")),
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, session) = session_of(&principal)?;
    state
        .auth
        .meta
        .revoke_session(session, meta::now_millis())
        .await
        .map_err(meta_error("ending a session"))?;
    let actor = actor_of(&principal, peer, &headers);
    record(
        &state,
        &[security::simple(
            &principal.tenant,
            "auth.logout",
            Outcome::Success,
            &actor,
        )],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/auth/password`.
#[utoipa::path(
    post,
    path = "/v1/auth/password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "The password is changed"),
        (status = 400, description = "The body is not valid JSON (`invalid_json`) or the credentials are too long (`credentials_too_large`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 403, description = "The current password is wrong (`invalid_password`), or the caller is not a user (`forbidden`)", body = crate::error::ErrorBody),
        (status = 422, description = "The new password does not meet the policy (`invalid_field`) or a field is missing or of the wrong type (`invalid_json`); `where` names the field", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failed attempts (`too_many_login_attempts`) or over the caller's rate (`rate_limited`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "As many passwords are being checked as allowed (`server_busy`) or credentials cannot be checked (`auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    let (user_id, session) = session_of(&principal)?;
    let (_, _, username) = principal.actor();
    check_credentials_size(username, &request.current_password)?;
    state.auth.limits.reserve_login(username, peer.ip())?;
    let turn = match password_turn(&state) {
        Ok(turn) => turn,
        Err(error) => {
            state.auth.limits.login_succeeded(username, peer.ip());
            return Err(error);
        }
    };
    let stored = state
        .auth
        .meta
        .user(user_id)
        .await
        .map_err(meta_error("looking up a user"))?
        .ok_or_else(|| unauthorized("invalid_token", "the user no longer exists"))?;
    let actor = actor_of(&principal, peer, &headers);
    if !password_matches(&request.current_password, Some(stored.password_hash)).await? {
        let mut event = security::simple(
            &principal.tenant,
            "user.password_change",
            Outcome::Failure,
            &actor,
        );
        event.reason = Some("wrong current password");
        record(&state, &[event]).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_password",
            "the current password is wrong",
        ));
    }
    auth::password::check_policy(username, &request.new_password).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("new_password: {error}"),
        )
        .at(json!({"field": "new_password"}))
    })?;
    let hash = accounts::hash_password(&request.new_password)
        .await
        .map_err(account_error)?;
    let mut event = security::simple(
        &principal.tenant,
        "user.password_change",
        Outcome::Success,
        &actor,
    );
    event.target = Some(("user", user_id));
    event.reason = Some("other sessions of the user were revoked");
    state
        .auth
        .meta
        .set_password(user_id, &hash, Some(session), &[event.entry()])
        .await
        .map_err(meta_error("changing a password"))?;
    drop(turn);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The tenant setting that allows self-registration.
pub(crate) const SELF_REGISTRATION: &str = "self_registration";

/// `POST /v1/auth/register`.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "The new user (role `developer`)", body = crate::admin_routes::UserBody),
        (status = 400, description = "The body is not valid JSON (`invalid_json`) or the credentials are too long (`credentials_too_large`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 403, description = "The tenant does not allow self-registration (`registration_disabled`)", body = crate::error::ErrorBody),
        (status = 409, description = "The username is taken (`conflict`)", body = crate::error::ErrorBody),
        (status = 422, description = "A field is not valid (`invalid_field`; `where` names it) or missing or of the wrong type (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many attempts from this address (`too_many_login_attempts`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "As many passwords are being checked as allowed (`server_busy`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<Registration>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    check_credentials_size(&request.username, &request.password)?;
    // Every registration attempt counts against the address (and the name), like a
    // failed login: it bounds account creation and probing for taken usernames.
    state
        .auth
        .limits
        .reserve_login(&request.username, peer.ip())?;
    // Held until the new account's password is hashed.
    let _turn = password_turn(&state)?;
    let allowed = accounts::check_tenant_id(&request.tenant).is_ok()
        && state
            .auth
            .meta
            .settings(&request.tenant)
            .await
            .map_err(meta_error("reading settings"))?
            .iter()
            .any(|(name, value)| name == SELF_REGISTRATION && value == "true");
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration_disabled",
            "self-registration is not enabled for this tenant",
        ));
    }
    let actor = Actor {
        kind: "anonymous",
        id: request.username.clone(),
        name: request.username.clone(),
        source_ip: Some(peer.ip().to_string()),
        user_agent: user_agent(&headers),
    };
    let user = accounts::create_user(
        &state.auth.meta,
        &UserRequest {
            tenant: &request.tenant,
            username: &request.username,
            password: &request.password,
            role: Role::Developer,
            super_admin: false,
        },
        &actor,
    )
    .await
    .map_err(account_error)?;
    Ok((
        StatusCode::CREATED,
        Json(crate::admin_routes::UserBody::from(&user)),
    )
        .into_response())
}

/// `GET /v1/auth/me`.
#[utoipa::path(
    get,
    path = "/v1/auth/me",
    tag = "auth",
    responses((status = 200, description = "The caller", body = Me)),
)]
pub(crate) async fn me(Extension(principal): Extension<Principal>) -> Response {
    let caller = match &principal.kind {
        PrincipalKind::User {
            id,
            username,
            role,
            super_admin,
            ..
        } => Caller::User {
            id: id.clone(),
            username: username.clone(),
            role: role.name(),
            super_admin: *super_admin,
        },
        PrincipalKind::Key { id, name } => Caller::ApiKey {
            id: id.clone(),
            name: name.clone(),
        },
    };
    Json(Me {
        tenant: principal.tenant.clone(),
        caller,
        permissions: principal.permission_names(),
    })
    .into_response()
}
