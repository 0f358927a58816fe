//! Establishing who is calling: an access token (JWT) of a login session, an
//! API key sent as a bearer token, or an HMAC-signed request of a signing key.

use std::time::Duration;

use auth::jwt::{JwtKey, TokenError};
use auth::signing::{ReplayGuard, SignatureError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use meta::{ApiKey, MetaStore};

use super::limits::{RateLimits, RateSettings};
use super::{Principal, Role, Scope};
use crate::ApiError;
use crate::AppState;

/// Headers of a signed request.
pub(crate) const KEY_ID_HEADER: &str = "x-logbook-key-id";
pub(crate) const TIMESTAMP_HEADER: &str = "x-logbook-timestamp";
pub(crate) const SIGNATURE_HEADER: &str = "x-logbook-signature";

/// How often a key's `last_used_at` is written at most.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Settings of authentication.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (each refresh starts a new one).
    pub refresh_token_ttl: Duration,
    /// How far a signed request's timestamp may be from the server's clock.
    pub signature_tolerance: Duration,
    /// Rate limits and login throttles.
    pub rates: RateSettings,
}

/// Secrets and live state of authentication, shared by every request.
pub struct AuthState {
    pub(crate) meta: MetaStore,
    pub(crate) jwt: JwtKey,
    pub(crate) signing_master: Vec<u8>,
    pub(crate) replays: ReplayGuard,
    pub(crate) limits: RateLimits,
    pub(crate) config: AccessConfig,
}

impl AuthState {
    /// Authentication over `meta`, with the server secrets stored there.
    pub fn new(
        meta: MetaStore,
        jwt: JwtKey,
        signing_master: Vec<u8>,
        config: AccessConfig,
    ) -> AuthState {
        let window = config.signature_tolerance.as_secs() as i64;
        AuthState {
            meta,
            jwt,
            signing_master,
            replays: ReplayGuard::new(window, 1_000_000),
            limits: RateLimits::new(&config.rates),
            config,
        }
    }

    /// The metadata store.
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }
}

/// A 401 with a `WWW-Authenticate` challenge.
pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    let mut error = ApiError::new(StatusCode::UNAUTHORIZED, code, message);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"logbook\""),
    );
    error.headers = Some(Box::new(headers));
    error
}

pub(crate) fn now_seconds() -> i64 {
    meta::now_millis() / 1000
}

/// Authenticates a request; signed requests have their body read and put back.
pub(super) async fn authenticate(
    state: &AppState,
    request: Request,
) -> Result<(Principal, Request), ApiError> {
    if request.headers().contains_key(KEY_ID_HEADER) {
        return signed(state, request).await;
    }
    let value = match request.headers().get(header::AUTHORIZATION) {
        None => {
            return Err(unauthorized(
                "missing_credentials",
                "send an API key or access token as `Authorization: Bearer <token>`",
            ));
        }
        Some(value) => value,
    };
    let text = value.to_str().map_err(|_| {
        unauthorized(
            "invalid_credentials",
            "the Authorization header is not ASCII",
        )
    })?;
    let token = match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(unauthorized(
                "invalid_credentials",
                "the Authorization header must be `Bearer <token>`",
            ));
        }
    };
    let principal = if looks_like_jwt(token) {
        from_access_token(state, token).await?
    } else {
        from_key(state, token).await?
    };
    Ok((principal, request))
}

/// Our access tokens are three base64url parts starting with an encoded `{"`.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

async fn from_access_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let auth = &state.auth;
    let claims =
        auth::jwt::decode(&auth.jwt, token, now_seconds()).map_err(|error| match error {
            TokenError::Expired => {
                unauthorized("token_expired", "the access token has expired; refresh it")
            }
            other => unauthorized(
                "invalid_token",
                format!("the access token is not valid: {other}"),
            ),
        })?;
    let session = auth
        .meta
        .session(&claims.sid)
        .await
        .map_err(|error| ApiError::internal("checking a session", &error))?;
    let Some(session) = session else {
        return Err(unauthorized(
            "invalid_token",
            "the access token's session does not exist",
        ));
    };
    if session.revoked_at.is_some() {
        return Err(unauthorized(
            "session_revoked",
            "this session has ended; log in again",
        ));
    }
    let user = session.user;
    if user.disabled || user.id != claims.sub || user.tenant != claims.tenant {
        return Err(unauthorized(
            "invalid_token",
            "the access token's user is disabled or changed",
        ));
    }
    let role = Role::parse(&user.role).ok_or_else(|| {
        ApiError::internal(
            "reading a user's role",
            &meta::MetaError::NotFound(format!("unknown role {:?}", user.role)),
        )
    })?;
    Ok(Principal::user(
        user.tenant,
        user.id,
        user.username,
        role,
        user.super_admin,
        session.id,
    ))
}

async fn from_key(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    auth::apikey::check_presented_key(token).map_err(|error| {
        unauthorized(
            "invalid_credentials",
            format!("the API key is malformed: {error}"),
        )
    })?;
    let key = state
        .auth
        .meta
        .key_by_token_hash(&auth::apikey::hash_key(token))
        .await
        .map_err(|error| ApiError::internal("looking up an API key", &error))?
        .ok_or_else(|| {
            unauthorized(
                "invalid_credentials",
                "the API key or access token is not valid",
            )
        })?;
    if key.signed {
        return Err(unauthorized(
            "signature_required",
            "this key must sign its requests (X-Logbook-Key-Id, X-Logbook-Timestamp, X-Logbook-Signature); see the README",
        ));
    }
    usable_key(state, key)
}

/// A key that is not revoked becomes a principal; its use is recorded now and then.
fn usable_key(state: &AppState, key: ApiKey) -> Result<Principal, ApiError> {
    if key.revoked_at.is_some() {
        return Err(unauthorized("key_revoked", "this API key has been revoked"));
    }
    let now = meta::now_millis();
    if key
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS)
    {
        let meta = state.auth.meta.clone();
        let id = key.id.clone();
        tokio::spawn(async move {
            if let Err(error) = meta.touch_key(&id, now).await {
                tracing::warn!(%error, key = id, "cannot record a key's last use");
            }
        });
    }
    let scopes: Vec<Scope> = key
        .scopes
        .iter()
        .filter_map(|name| Scope::parse(name))
        .collect();
    Ok(Principal::key(key.tenant, key.id, key.name, &scopes))
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| {
            unauthorized(
                "invalid_signature",
                format!("a signed request needs the {name} header"),
            )
        })?
        .to_str()
        .map_err(|_| {
            unauthorized(
                "invalid_signature",
                format!("the {name} header is not ASCII"),
            )
        })
}

async fn signed(state: &AppState, request: Request) -> Result<(Principal, Request), ApiError> {
    let (parts, body) = request.into_parts();
    let key_id = required_header(&parts.headers, KEY_ID_HEADER)?;
    let timestamp = required_header(&parts.headers, TIMESTAMP_HEADER)?;
    let signature = required_header(&parts.headers, SIGNATURE_HEADER)?;
    let key = state
        .auth
        .meta
        .key(key_id)
        .await
        .map_err(|error| ApiError::internal("looking up an API key", &error))?
        .filter(|key| key.signed)
        .ok_or_else(|| unauthorized("invalid_credentials", "no signing key has this id"))?;
    let limits = &state.limits;
    let body = crate::ingest::read_body(body, limits.max_body_bytes, limits.body_timeout).await?;
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let secret = auth::apikey::derive_signing_key(&state.auth.signing_master, &key.id);
    let now = now_seconds();
    let tolerance = state.auth.config.signature_tolerance.as_secs() as i64;
    auth::signing::verify(&secret, timestamp, signature, parts.method.as_str(), path, &body, now, tolerance)
        .map_err(|error| match error {
            SignatureError::OutsideWindow { skew_seconds } => unauthorized(
                "signature_expired",
                format!("the signed timestamp is {skew_seconds} s from the server's clock; the tolerance is {tolerance} s"),
            ),
            other => unauthorized("invalid_signature", format!("the request signature is not valid: {other}")),
        })?;
    if !state.auth.replays.first_use(&key.id, signature, now) {
        return Err(unauthorized(
            "replayed_signature",
            "this signature was already used; sign each request afresh",
        ));
    }
    let principal = usable_key(state, key)?;
    Ok((principal, Request::from_parts(parts, Body::from(body))))
}
