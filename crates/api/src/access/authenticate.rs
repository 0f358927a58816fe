//! Establishing who is calling: an access token (JWT) of a login session, an
//! API key sent as a bearer token, or an HMAC-signed request of a signing key.

use std::time::Duration;

use auth::jwt::{JwtKey, TokenError};
use auth::signing::{BodyVerifier, Replay, ReplayGuard, SignatureError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use meta::{ApiKey, MetaStore};

use super::limits::{RateLimits, RateSettings};
use super::{Permission, Principal, Role, Rule, Scope};
use crate::ApiError;
use crate::AppState;

/// Headers of a signed request.
pub(crate) const KEY_ID_HEADER: &str = "x-logbook-key-id";
pub(crate) const TIMESTAMP_HEADER: &str = "x-logbook-timestamp";
pub(crate) const SIGNATURE_HEADER: &str = "x-logbook-signature";

/// Keys remembered by the key cache at most.
const KEY_CACHE_ENTRIES: usize = 100_000;

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
    /// How many signatures the replay guard remembers per signing key.
    pub signatures_per_key: usize,
    /// How many signatures the replay guard remembers over all keys.
    pub signatures_total: usize,
    /// Password hashes (Argon2) computed at once over all requests.
    pub concurrent_password_checks: usize,
    /// Rate limits and login throttles.
    pub rates: RateSettings,
    /// How long a key the metadata store confirmed is used without asking again.
    pub key_cache: Duration,
    /// How long a confirmed key keeps working while the metadata store cannot
    /// be reached (also the longest a key revoked just before an outage works).
    pub key_outage_grace: Duration,
}

/// Secrets and live state of authentication, shared by every request.
pub struct AuthState {
    pub(crate) meta: MetaStore,
    pub(crate) jwt: JwtKey,
    pub(crate) signing_master: Vec<u8>,
    pub(crate) replays: ReplayGuard,
    pub(crate) limits: RateLimits,
    /// Bounds the CPU and memory that password hashing takes at once.
    pub(crate) password_checks: tokio::sync::Semaphore,
    /// Seals pagination cursors (keyed from the signing master secret, so
    /// every process sharing the metadata store opens the others' cursors).
    pub(crate) cursor_seal: auth::cursor::CursorSeal,
    /// Keys as the metadata store last confirmed them.
    pub(crate) keys: super::key_cache::KeyCache,
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
            cursor_seal: auth::cursor::CursorSeal::new(&signing_master),
            signing_master,
            replays: ReplayGuard::new(window, config.signatures_per_key, config.signatures_total),
            limits: RateLimits::new(&config.rates),
            keys: super::key_cache::KeyCache::new(
                config.key_cache,
                config.key_outage_grace,
                KEY_CACHE_ENTRIES,
            ),
            password_checks: tokio::sync::Semaphore::new(
                config
                    .concurrent_password_checks
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            ),
            config,
        }
    }

    /// The metadata store.
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }
}

/// A key lookup that failed: 503 while the metadata database cannot be
/// reached (and the key was not confirmed recently enough to go on without
/// it), 500 otherwise.
fn key_lookup_failed(error: meta::MetaError) -> ApiError {
    if error.is_unavailable() {
        tracing::warn!(%error, "cannot check an API key: the metadata database is unavailable");
        let mut refusal = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
            "the key cannot be checked now (the metadata database is unavailable); retry later",
        );
        refusal.retry_after_seconds = Some(2);
        return refusal;
    }
    ApiError::internal("looking up an API key", &error)
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

/// Authenticates a request for a route with `rule`; signed requests have their
/// body read and put back, and their signature is handed back to be remembered
/// once the request passed its other checks.
pub(super) async fn authenticate(
    state: &AppState,
    request: Request,
    rule: Rule,
) -> Result<(Principal, Request, Option<SignatureToRemember>), ApiError> {
    if request.headers().contains_key(KEY_ID_HEADER) {
        return signed(state, request, rule).await;
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
    let principal = match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            bearer(state, token.trim()).await?
        }
        // Shippers that can only send HTTP Basic credentials (Loki clients,
        // Fluent Bit, Beats) put the API key in the password; the user name
        // is not read.
        Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") => {
            bearer(state, &basic_password(credentials.trim())?).await?
        }
        _ => {
            return Err(unauthorized(
                "invalid_credentials",
                "the Authorization header must be `Bearer <token>`, or `Basic` with the API key as the password",
            ));
        }
    };
    Ok((principal, request, None))
}

/// The password of HTTP Basic credentials (`base64(user ":" password)`).
fn basic_password(credentials: &str) -> Result<String, ApiError> {
    use base64::Engine as _;
    let invalid = || {
        unauthorized(
            "invalid_credentials",
            "Basic credentials must be base64 of `user:password`, with the API key as the password",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    match text.split_once(':') {
        Some((_, password)) if !password.is_empty() => Ok(password.to_owned()),
        _ => Err(invalid()),
    }
}

/// The caller a bearer token names: an access token of a login session or an API key.
pub(crate) async fn bearer(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if looks_like_jwt(token) {
        from_access_token(state, token).await
    } else {
        from_key(state, token).await
    }
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
    let hash = auth::apikey::hash_key(token);
    let key = state
        .auth
        .keys
        .get(hash.clone(), state.auth.meta.key_by_token_hash(&hash))
        .await
        .map_err(key_lookup_failed)?
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

/// The largest body a signed request may send when its key could not use a
/// large one on this route anyway: read while the signature is still unproven.
const SMALL_SIGNED_BODY_BYTES: usize = 64 * 1024;

/// A verified signature, remembered by [`ReplayGuard`] only once the request has
/// passed every other check (see [`super::guard`]).
pub(crate) struct SignatureToRemember {
    key_id: String,
    signature: [u8; 32],
    at: i64,
}

impl SignatureToRemember {
    /// Refuses a replayed signature before anything is charged for it.
    pub(crate) fn refuse_replay(&self, state: &AppState) -> Result<(), ApiError> {
        match state
            .auth
            .replays
            .was_used(&self.key_id, &self.signature, self.at)
        {
            true => Err(replayed()),
            false => Ok(()),
        }
    }

    /// Refuses the request if its signature was used before, or if its key's
    /// share of the replay guard, or the guard, is full.
    pub(crate) fn remember(self, state: &AppState) -> Result<(), ApiError> {
        match state
            .auth
            .replays
            .first_use(&self.key_id, &self.signature, self.at)
        {
            Replay::Fresh => Ok(()),
            Replay::Replayed => Err(replayed()),
            Replay::Full => {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_signatures",
                    "this key has sent more signed requests than the server remembers within the signature tolerance; slow down",
                );
                error.retry_after_seconds = Some(1);
                Err(error)
            }
            Replay::AllFull => {
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_busy",
                    "the server remembers as many recent signatures as it may; retry shortly",
                );
                error.retry_after_seconds = Some(1);
                Err(error)
            }
        }
    }
}

/// A signed request: everything the headers can tell is checked before the body
/// is read (timestamp, signature format, key, revocation); the body is then read
/// within a limit that depends on whether the key may send large bodies here,
/// and its HMAC computed as it streams in.
async fn signed(
    state: &AppState,
    request: Request,
    rule: Rule,
) -> Result<(Principal, Request, Option<SignatureToRemember>), ApiError> {
    let (parts, body) = request.into_parts();
    let key_id = required_header(&parts.headers, KEY_ID_HEADER)?;
    let timestamp = required_header(&parts.headers, TIMESTAMP_HEADER)?;
    let signature = required_header(&parts.headers, SIGNATURE_HEADER)?;
    let now = now_seconds();
    let tolerance = state.auth.config.signature_tolerance.as_secs() as i64;
    let signature_error = |error: SignatureError| match error {
        SignatureError::OutsideWindow { skew_seconds } => unauthorized(
            "signature_expired",
            format!(
                "the signed timestamp is {skew_seconds} s from the server's clock; the tolerance is {tolerance} s"
            ),
        ),
        other => unauthorized(
            "invalid_signature",
            format!("the request signature is not valid: {other}"),
        ),
    };
    let expected = auth::signing::check_headers(timestamp, signature, now, tolerance)
        .map_err(signature_error)?;
    let key = state
        .auth
        .keys
        .get(format!("id:{key_id}"), state.auth.meta.key(key_id))
        .await
        .map_err(key_lookup_failed)?
        .filter(|key| key.signed)
        .ok_or_else(|| unauthorized("invalid_credentials", "no signing key has this id"))?;
    let principal = usable_key(state, key)?;

    let max = match rule {
        Rule::Needs(permission @ (Permission::WriteLogs | Permission::WriteAudit))
            if principal.can(permission) =>
        {
            state.limits.max_body_bytes
        }
        _ => SMALL_SIGNED_BODY_BYTES,
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let secret = auth::apikey::derive_signing_key(&state.auth.signing_master, key_id);
    let mut verifier = BodyVerifier::new(&secret, timestamp, parts.method.as_str(), path);
    let buffered = crate::body::read(
        body,
        max,
        state.limits.body_timeout,
        crate::body::content_length(&parts.headers),
        &state.body_budget,
        &principal.tenant,
        |chunk| {
            // The tenant pays for what it makes the server read, signed or not.
            state
                .auth
                .limits
                .admit_bytes(&principal, chunk.len() as u64)?;
            verifier.update(chunk);
            Ok(())
        },
    )
    .await?;
    verifier.finish(&expected).map_err(signature_error)?;
    let remember = SignatureToRemember {
        key_id: key_id.to_owned(),
        signature: expected,
        at: now,
    };
    // The body's budget is returned here; the handler reserves it again as it reads.
    let mut request = Request::from_parts(parts, Body::from(buffered.bytes));
    request.extensions_mut().insert(crate::body::AlreadyCharged);
    Ok((principal, request, Some(remember)))
}

fn replayed() -> ApiError {
    unauthorized(
        "replayed_signature",
        "this signature was already used; sign each request afresh",
    )
}
