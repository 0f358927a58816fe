//! Creating tenants, users and keys, and the first start: the rules both the
//! HTTP API and `logbook admin` apply, so neither can skip one.

use auth::RandomError;
use meta::{ApiKey, MetaError, MetaStore, NewApiKey, NewUser, Tenant, User};
use serde_json::{Map, json};

use crate::access::{Role, Scope};
use crate::security::{Actor, Outcome, SecurityEvent};

/// The tenant created on first start.
pub const DEFAULT_TENANT: &str = model::DEFAULT_TENANT;
/// The user created on first start.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// Name of the server secret that signs access tokens.
pub const JWT_SECRET: &str = "jwt-hs256-v1";
/// Name of the server secret signing keys are derived from.
pub const SIGNING_MASTER: &str = "request-signing-v1";

/// Why an account operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input breaks a rule; `field` names the culprit.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Meta(MetaError),
    #[error("cannot get random bytes: {0}")]
    Random(#[from] RandomError),
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("cannot hash a password: {0}")]
    Password(#[from] auth::password::PasswordError),
}

impl From<MetaError> for AccountError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::Conflict(what) => AccountError::Conflict(what),
            MetaError::NotFound(what) => AccountError::NotFound(what),
            other => AccountError::Meta(other),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Invalid {
        field,
        message: message.into(),
    }
}

/// Tenant ids: 1 to 63 of `a-z`, `0-9` and `-`, starting with a letter or digit.
/// (The store relies on them never holding control characters.)
pub fn check_tenant_id(id: &str) -> Result<(), AccountError> {
    let valid = !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "tenant",
            "a tenant id is 1 to 63 characters of a-z, 0-9 and '-', not starting with '-'",
        ))
    }
}

/// Usernames: 1 to 64 of letters, digits, `.`, `_`, `-` and `@`.
pub fn check_username(name: &str) -> Result<(), AccountError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "username",
            "a username is 1 to 64 characters of letters, digits, '.', '_', '-' and '@'",
        ))
    }
}

/// Parses a role name.
pub fn parse_role(name: &str) -> Result<Role, AccountError> {
    Role::parse(name).ok_or_else(|| {
        invalid(
            "role",
            format!("unknown role {name:?}; use admin, auditor or developer"),
        )
    })
}

/// Parses scope names; at least one, no unknown ones, duplicates removed.
pub fn parse_scopes<S: AsRef<str>>(names: &[S]) -> Result<Vec<Scope>, AccountError> {
    let mut scopes = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        let scope = Scope::parse(name).ok_or_else(|| {
            invalid(
                "scopes",
                format!(
                    "unknown scope {name:?}; use logs:write, logs:read, audit:write, audit:read or metrics:read"
                ),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(invalid("scopes", "a key needs at least one scope"));
    }
    Ok(scopes)
}

fn check_key_name(name: &str) -> Result<(), AccountError> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "a key name is 1 to 100 printable characters",
        ));
    }
    Ok(())
}

/// A key as created: the stored record and the key itself, shown once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: String,
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct KeyRequest<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub scopes: &'a [Scope],
    /// Requests must be HMAC-signed; the key's value is then derived from the
    /// server's signing secret so the server can check signatures without storing it.
    pub signed: bool,
    /// A value chosen by the operator (bootstrap only) instead of a random one.
    pub value: Option<&'a str>,
}

fn new_key(
    request: &KeyRequest<'_>,
    signing_master: &[u8],
    actor: &Actor,
) -> Result<(NewApiKey, String), AccountError> {
    check_key_name(request.name)?;
    let id = auth::apikey::generate_key_id()?;
    let token = match (request.value, request.signed) {
        (Some(value), _) => {
            auth::apikey::check_provided_key(value)
                .map_err(|error| invalid("key", error.to_string()))?;
            value.to_owned()
        }
        (None, true) => auth::apikey::derive_signing_key(signing_master, &id),
        (None, false) => auth::apikey::generate_key()?,
    };
    let record = NewApiKey {
        id,
        tenant: request.tenant.to_owned(),
        name: request.name.to_owned(),
        token_hash: auth::apikey::hash_key(&token),
        scopes: request
            .scopes
            .iter()
            .map(|scope| scope.name().to_owned())
            .collect(),
        signed: request.signed,
        created_by: (actor.kind != "operator").then(|| actor.id.clone()),
    };
    Ok((record, token))
}

fn key_event<'a>(actor: &'a Actor, key: &'a NewApiKey) -> SecurityEvent<'a> {
    let mut details = Map::new();
    details.insert("name".into(), json!(key.name));
    details.insert("scopes".into(), json!(key.scopes));
    details.insert("signed".into(), json!(key.signed));
    SecurityEvent {
        tenant: &key.tenant,
        action: "key.create",
        outcome: Outcome::Success,
        actor,
        target: Some(("api_key", &key.id)),
        reason: None,
        details,
    }
}

/// Creates an API key and records it in the tenant's audit stream.
pub async fn create_key(
    meta: &MetaStore,
    request: &KeyRequest<'_>,
    signing_master: &[u8],
    actor: &Actor,
) -> Result<CreatedKey, AccountError> {
    let (record, token) = new_key(request, signing_master, actor)?;
    let audit = key_event(actor, &record).entry();
    let key = meta.create_key(&record, &[audit]).await?;
    Ok(CreatedKey { key, token })
}

/// What a new user should be.
#[derive(Debug, Clone)]
pub struct UserRequest<'a> {
    pub tenant: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub super_admin: bool,
}

/// Hashes a password on the blocking pool: Argon2id takes tens of milliseconds.
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || auth::password::hash_password(&password))
        .await
        .map_err(|error| AccountError::Task(error.to_string()))?
        .map_err(AccountError::from)
}

async fn new_user(request: &UserRequest<'_>) -> Result<NewUser, AccountError> {
    check_username(request.username)?;
    auth::password::check_policy(request.username, request.password)
        .map_err(|error| invalid("password", error.to_string()))?;
    Ok(NewUser {
        id: format!("usr_{}", ulid::Ulid::new()),
        tenant: request.tenant.to_owned(),
        username: request.username.to_owned(),
        password_hash: hash_password(request.password).await?,
        role: request.role.name().to_owned(),
        super_admin: request.super_admin,
    })
}

fn user_event<'a>(actor: &'a Actor, user: &'a NewUser, action: &'static str) -> SecurityEvent<'a> {
    let mut details = Map::new();
    details.insert("username".into(), json!(user.username));
    details.insert("role".into(), json!(user.role));
    if user.super_admin {
        details.insert("super_admin".into(), json!(true));
    }
    SecurityEvent {
        tenant: &user.tenant,
        action,
        outcome: Outcome::Success,
        actor,
        target: Some(("user", &user.id)),
        reason: None,
        details,
    }
}

/// Creates a user (the password checked against the policy and hashed) and
/// records it in the tenant's audit stream.
pub async fn create_user(
    meta: &MetaStore,
    request: &UserRequest<'_>,
    actor: &Actor,
) -> Result<User, AccountError> {
    let record = new_user(request).await?;
    let audit = user_event(actor, &record, "user.create").entry();
    Ok(meta.create_user(&record, &[audit]).await?)
}

/// Creates a tenant and records it in the new tenant's audit stream.
pub async fn create_tenant(
    meta: &MetaStore,
    id: &str,
    name: &str,
    actor: &Actor,
) -> Result<Tenant, AccountError> {
    check_tenant_id(id)?;
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "a tenant name is 1 to 200 printable characters",
        ));
    }
    let event = SecurityEvent {
        tenant: id,
        action: "tenant.create",
        outcome: Outcome::Success,
        actor,
        target: Some(("tenant", id)),
        reason: None,
        details: Map::new(),
    };
    Ok(meta.create_tenant(id, name, &[event.entry()]).await?)
}

/// The credentials made on first start, shown once.
#[derive(Debug, Clone)]
pub struct BootstrapCredentials {
    pub tenant: String,
    pub username: String,
    /// `None` when the operator supplied it (`LOGBOOK_ADMIN_PASSWORD`): not echoed.
    pub password: Option<String>,
    pub key_id: String,
    /// `None` when the operator supplied it (`LOGBOOK_BOOTSTRAP_KEY`).
    pub key: Option<String>,
}

/// First start: when the metadata store has no tenant, creates the default
/// tenant, its super-admin `admin` and a key with every scope, all in one
/// transaction. Returns `None` when the store was already set up.
pub async fn bootstrap(
    meta: &MetaStore,
    admin_password: Option<&str>,
    key_value: Option<&str>,
) -> Result<Option<BootstrapCredentials>, AccountError> {
    if !meta.tenants().await?.is_empty() {
        return Ok(None);
    }
    let generated_password = match admin_password {
        Some(_) => None,
        None => Some(auth::password::generate_password()?),
    };
    let password = admin_password
        .or(generated_password.as_deref())
        .unwrap_or_default();
    let actor = Actor::operator("bootstrap");
    let user = new_user(&UserRequest {
        tenant: DEFAULT_TENANT,
        username: BOOTSTRAP_ADMIN,
        password,
        role: Role::Admin,
        super_admin: true,
    })
    .await
    .map_err(|error| match error {
        AccountError::Invalid { message, .. } => invalid("LOGBOOK_ADMIN_PASSWORD", message),
        other => other,
    })?;
    let (key, token) = new_key(
        &KeyRequest {
            tenant: DEFAULT_TENANT,
            name: "bootstrap",
            scopes: &Scope::TENANT,
            signed: false,
            value: key_value,
        },
        &[],
        &actor,
    )
    .map_err(|error| match error {
        AccountError::Invalid { message, .. } => invalid("LOGBOOK_BOOTSTRAP_KEY", message),
        other => other,
    })?;
    let tenant = Tenant {
        id: DEFAULT_TENANT.to_owned(),
        name: "Default".to_owned(),
        created_at: meta::now_millis(),
    };
    let tenant_event = SecurityEvent {
        tenant: DEFAULT_TENANT,
        action: "tenant.create",
        outcome: Outcome::Success,
        actor: &actor,
        target: Some(("tenant", DEFAULT_TENANT)),
        reason: None,
        details: Map::new(),
    };
    let audit = [
        tenant_event.entry(),
        user_event(&actor, &user, "user.create").entry(),
        key_event(&actor, &key).entry(),
    ];
    if !meta.bootstrap(&tenant, &user, &key, &audit).await? {
        return Ok(None);
    }
    Ok(Some(BootstrapCredentials {
        tenant: DEFAULT_TENANT.to_owned(),
        username: BOOTSTRAP_ADMIN.to_owned(),
        password: generated_password,
        key_id: key.id,
        key: key_value.is_none().then_some(token),
    }))
}
