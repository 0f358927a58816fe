//! Who may do what: principals, permissions, and the one table that maps every
//! route to the permission it needs.
//!
//! Architecture invariant: handlers never decide access. [`guard`] runs before
//! every routed request, looks the route up in [`rule_for`], authenticates the
//! caller and checks the permission; a route missing from the table is refused
//! with a 500 rather than served unchecked. Handlers then read the caller's
//! tenant from the [`Principal`] and never from the request.

pub(crate) mod authenticate;
mod key_cache;
pub(crate) mod limits;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiError, AppState, telemetry};

pub use authenticate::AccessConfig;
pub use authenticate::AuthState;
pub use limits::RateSettings;

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Send log events.
    WriteLogs,
    /// Search, count and fetch log events.
    ReadLogs,
    /// Send audit events.
    WriteAudit,
    /// Search and fetch the audit trail.
    ReadAudit,
    /// Manage the tenant's users, keys, settings and alert rules.
    ManageTenant,
    /// Create and list tenants (the server-wide super-admin).
    ManageTenants,
    /// Scrape `/metrics`, whose figures cover every tenant: the operator's.
    ReadMetrics,
}

impl Permission {
    /// The name used in error messages and the README's matrix.
    pub fn name(self) -> &'static str {
        match self {
            Permission::WriteLogs => "logs:write",
            Permission::ReadLogs => "logs:read",
            Permission::WriteAudit => "audit:write",
            Permission::ReadAudit => "audit:read",
            Permission::ManageTenant => "tenant:manage",
            Permission::ManageTenants => "tenants:manage",
            Permission::ReadMetrics => "metrics:read",
        }
    }
}

/// A user's role in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manages users, keys and settings of the tenant; reads everything.
    Admin,
    /// Reads logs and the audit trail.
    Auditor,
    /// Reads logs, not the audit trail.
    Developer,
}

impl Role {
    /// Every role, for validation messages and tests.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Auditor, Role::Developer];

    /// Parses `admin`, `auditor` or `developer`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }

    /// The role's name as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Developer => "developer",
        }
    }

    fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[ReadLogs, ReadAudit, ManageTenant],
            Role::Auditor => &[ReadLogs, ReadAudit],
            Role::Developer => &[ReadLogs],
        }
    }
}

/// A scope an API key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    LogsWrite,
    LogsRead,
    AuditWrite,
    AuditRead,
    /// Every tenant's figures at `/metrics`; only the super-admin may create
    /// a key holding it.
    MetricsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::LogsWrite,
        Scope::LogsRead,
        Scope::AuditWrite,
        Scope::AuditRead,
        Scope::MetricsRead,
    ];

    /// The scopes about the key's own tenant; the bootstrap key holds all of them.
    pub const TENANT: [Scope; 4] = [
        Scope::LogsWrite,
        Scope::LogsRead,
        Scope::AuditWrite,
        Scope::AuditRead,
    ];

    /// Parses `logs:write`, `logs:read`, `audit:write`, `audit:read` or `metrics:read`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == name)
    }

    /// The scope's name as stored and shown.
    pub fn name(self) -> &'static str {
        self.permission().name()
    }

    fn permission(self) -> Permission {
        match self {
            Scope::LogsWrite => Permission::WriteLogs,
            Scope::LogsRead => Permission::ReadLogs,
            Scope::AuditWrite => Permission::WriteAudit,
            Scope::AuditRead => Permission::ReadAudit,
            Scope::MetricsRead => Permission::ReadMetrics,
        }
    }
}

/// Who is calling, as established by [`guard`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant every read and write of this request is confined to.
    pub tenant: String,
    pub kind: PrincipalKind,
    permissions: Vec<Permission>,
}

/// A logged-in user or a service's API key.
#[derive(Debug, Clone)]
pub enum PrincipalKind {
    User {
        id: String,
        username: String,
        role: Role,
        super_admin: bool,
        /// The login session the access token belongs to.
        session: String,
    },
    Key {
        id: String,
        name: String,
    },
}

impl Principal {
    /// A user with a role (plus tenant management and metrics for a super-admin).
    pub(crate) fn user(
        tenant: String,
        id: String,
        username: String,
        role: Role,
        super_admin: bool,
        session: String,
    ) -> Principal {
        let mut permissions = role.permissions().to_vec();
        if super_admin {
            permissions.push(Permission::ManageTenants);
            permissions.push(Permission::ReadMetrics);
        }
        Principal {
            tenant,
            kind: PrincipalKind::User {
                id,
                username,
                role,
                super_admin,
                session,
            },
            permissions,
        }
    }

    /// An API key with scopes.
    pub(crate) fn key(tenant: String, id: String, name: String, scopes: &[Scope]) -> Principal {
        Principal {
            tenant,
            kind: PrincipalKind::Key { id, name },
            permissions: scopes.iter().map(|scope| scope.permission()).collect(),
        }
    }

    /// Whether the caller holds a permission.
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// The names of the permissions held, for `GET /v1/auth/me`.
    pub fn permission_names(&self) -> Vec<&'static str> {
        self.permissions
            .iter()
            .map(|permission| permission.name())
            .collect()
    }

    /// `("user", id, username)` or `("key", id, name)`, for audit events.
    pub fn actor(&self) -> (&'static str, &str, &str) {
        match &self.kind {
            PrincipalKind::User { id, username, .. } => ("user", id, username),
            PrincipalKind::Key { id, name } => ("api_key", id, name),
        }
    }

    /// The bucket key of this caller's own rate limits.
    pub(crate) fn limit_key(&self) -> String {
        match &self.kind {
            PrincipalKind::User { id, .. } => format!("user:{id}"),
            PrincipalKind::Key { id, .. } => format!("key:{id}"),
        }
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone (health checks; login, which has its own throttles).
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// A logged-in user (not a key): logout, change password.
    UserSession,
    /// A caller holding this permission.
    Needs(Permission),
}

/// Which callers a rule lets in, for the OpenAPI document's security requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Callers {
    /// No credentials needed.
    pub anyone: bool,
    /// API keys (bearer or signed requests) can hold what the rule needs.
    pub keys: bool,
    /// Users' access tokens can hold what the rule needs.
    pub users: bool,
    /// Some authenticated callers are refused (403).
    pub some_refused: bool,
}

/// The callers [`guard`] lets through a rule.
pub(crate) fn callers(rule: Rule) -> Callers {
    let held_by_keys = |permission| {
        Scope::ALL
            .iter()
            .any(|scope| scope.permission() == permission)
    };
    let held_by_users = |permission| {
        permission == Permission::ManageTenants
            || Role::ALL
                .iter()
                .any(|role| role.permissions().contains(&permission))
    };
    match rule {
        Rule::Public => Callers {
            anyone: true,
            keys: false,
            users: false,
            some_refused: false,
        },
        Rule::Authenticated => Callers {
            anyone: false,
            keys: true,
            users: true,
            some_refused: false,
        },
        Rule::UserSession => Callers {
            anyone: false,
            keys: false,
            users: true,
            some_refused: true,
        },
        Rule::Needs(permission) => Callers {
            anyone: false,
            keys: held_by_keys(permission),
            users: held_by_users(permission),
            some_refused: true,
        },
    }
}

/// The access rule of every route: the one place access is decided. `HEAD`
/// is `GET` without a body, so it has the rule of `GET`.
pub fn rule_for(method: &Method, route: &str) -> Option<Rule> {
    use Permission::*;
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let rule = match (method, route) {
        ("GET", "/healthz" | "/readyz" | "/v1/audit/public-key") => Rule::Public,
        // This API's document and its UI (the page and its own assets, nothing else).
        ("GET", "/openapi.json" | "/docs" | "/docs/" | "/docs/{*file}") => Rule::Public,
        // The web UI's page and files: it signs in through the API like any client.
        ("GET", "/" | "/ui/{*file}") => Rule::Public,
        ("POST", "/v1/auth/login" | "/v1/auth/refresh" | "/v1/auth/register") => Rule::Public,
        ("POST", "/v1/auth/logout" | "/v1/auth/password") => Rule::UserSession,
        ("GET", "/v1/auth/me") => Rule::Authenticated,
        ("POST", "/v1/logs") => Rule::Needs(WriteLogs),
        ("GET", "/v1/logs" | "/v1/logs/histogram" | "/v1/logs/{id}" | "/v1/stats") => {
            Rule::Needs(ReadLogs)
        }
        ("POST", "/v1/audit") => Rule::Needs(WriteAudit),
        // Other protocols' ingest, and the probes their shippers make first.
        ("POST", "/otlp/v1/logs" | "/loki/api/v1/push" | "/es/_bulk" | "/es/{*path}")
        | ("GET", "/es/" | "/es/_license" | "/es/{*path}")
        | ("PUT", "/es/_bulk" | "/es/{*path}") => Rule::Needs(WriteLogs),
        ("GET", "/v1/tail") => Rule::Needs(ReadLogs),
        ("GET", "/v1/audit/tail") => Rule::Needs(ReadAudit),
        // A ticket carries its issuer's permissions; the tail it opens checks them.
        ("POST", "/v1/tail/ticket") => Rule::Authenticated,
        (
            "GET",
            "/v1/audit"
            | "/v1/audit/{id}"
            | "/v1/audit/{id}/proof"
            | "/v1/audit/checkpoint"
            | "/v1/audit/consistency"
            | "/v1/audit/export",
        ) => Rule::Needs(ReadAudit),
        ("GET" | "POST", "/v1/users" | "/v1/keys") => Rule::Needs(ManageTenant),
        ("PATCH", "/v1/users/{id}") | ("DELETE", "/v1/keys/{id}") => Rule::Needs(ManageTenant),
        ("GET" | "PUT", "/v1/settings") => Rule::Needs(ManageTenant),
        // Alert rules hold webhook URLs and are the admins'; what fires is
        // counts of logs, which readers of logs could count themselves.
        ("GET", "/v1/alerts") => Rule::Needs(ReadLogs),
        ("GET" | "POST", "/v1/alerts/rules")
        | ("GET" | "PUT" | "PATCH" | "DELETE", "/v1/alerts/rules/{id}") => {
            Rule::Needs(ManageTenant)
        }
        ("GET" | "POST", "/v1/tenants") | ("GET", "/v1/admin/status") => Rule::Needs(ManageTenants),
        // Figures of every tenant: the operator's (a super-admin or a `metrics:read` key).
        ("GET", "/metrics") => Rule::Needs(ReadMetrics),
        // What the worker could not store, of every tenant: the super-admin's.
        ("GET", "/v1/admin/dead-letters" | "/v1/admin/dead-letters/{id}")
        | ("POST", "/v1/admin/dead-letters/{id}/replay")
        | ("DELETE", "/v1/admin/dead-letters/{id}") => Rule::Needs(ManageTenants),
        // A copy of every tenant's data and of the server's secrets.
        ("POST", "/v1/admin/backup") => Rule::Needs(ManageTenants),
        _ => return None,
    };
    Some(rule)
}

/// Runs before every routed request: authenticate, authorise, rate-limit, and
/// hand the handler the [`Principal`].
pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let Some(rule) = rule_for(request.method(), &route) else {
        if request.method() == Method::HEAD {
            // A route without GET: HEAD is a method it does not accept, not a gap in the table.
            return Err(crate::error::method_not_allowed().await);
        }
        tracing::error!(method = %request.method(), route, "route has no access rule");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this endpoint has no access rule; refusing to serve it",
        ));
    };
    if rule == Rule::Public {
        return Ok(next.run(request).await);
    }
    // A browser's tail: the token in a subprotocol, or a ticket in the URL.
    let tail_principal =
        crate::tail::ticket::tail_credentials(&state, &route, request.uri(), request.headers())
            .await
            .inspect_err(telemetry::auth_refused)?;
    let (principal, request_back, signature) = match tail_principal {
        Some(principal) => (principal, request, None),
        None => authenticate::authenticate(&state, request, rule)
            .await
            .inspect_err(telemetry::auth_refused)?,
    };
    request = request_back;
    let allowed = match rule {
        Rule::Public | Rule::Authenticated => true,
        Rule::UserSession => matches!(principal.kind, PrincipalKind::User { .. }),
        Rule::Needs(permission) => principal.can(permission),
    };
    if !allowed {
        let needed = match rule {
            Rule::Needs(permission) => format!("the {} permission", permission.name()),
            _ => "a user login (API keys cannot do this)".to_owned(),
        };
        let refusal = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this request needs {needed}"),
        );
        telemetry::auth_refused(&refusal);
        return Err(refusal);
    }
    // A replay is refused before it is charged to the key's rate limit, so
    // whoever captured a signed request cannot spend its owner's budget.
    if let Some(signature) = &signature {
        signature
            .refuse_replay(&state)
            .inspect_err(telemetry::auth_refused)?;
    }
    let headers = match state.auth.limits.admit_request(&principal) {
        Ok(headers) => headers,
        Err(refusal) => {
            if matches!(
                rule,
                Rule::Needs(Permission::WriteLogs | Permission::WriteAudit)
            ) {
                telemetry::ingest_refused_at_the_door(
                    &principal.tenant,
                    &route,
                    request.headers(),
                    &refusal,
                );
            }
            return Err(refusal);
        }
    };
    // Only now, with the key allowed and within its rate, is its signature
    // remembered: refused requests cannot fill the replay guard.
    if let Some(signature) = signature {
        signature.remember(&state)?;
    }
    let is_query = matches!(
        rule,
        Rule::Needs(Permission::ReadLogs | Permission::ReadAudit)
    );
    request.extensions_mut().insert(principal);
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    if is_query {
        telemetry::query_answered(route, started.elapsed());
    }
    response.headers_mut().extend(headers);
    Ok(response)
}
