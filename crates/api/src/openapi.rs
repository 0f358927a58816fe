//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the response types' `ToSchema` derives, so it cannot drift
//! from the code. Security requirements and the guard's answers (401, 403,
//! 429, 503) are added per route from the one access table,
//! [`access::rule_for`], rather than repeated on every handler.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Components, Content, PathItem, Ref, RefOr, Response as Answer, ResponseBuilder,
};

use crate::access::{self, Rule};
use crate::{AppState, Role, Route};

/// Every documented operation. A handler listed here carries a
/// `#[utoipa::path]`; the schemas its answers use are collected from it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Logbook",
        description = "Centralized logging and a tamper-evident audit trail. \
            Authorise with an API key (`Authorization: Bearer lbk_…`), an access token \
            from `POST /v1/auth/login`, or a signed request \
            (`X-Logbook-Key-Id`, `X-Logbook-Timestamp`, `X-Logbook-Signature`; see the README). \
            Every error is an `ApiError`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::health::admin_status,
        openapi_json,
        crate::docs::redirect,
        crate::docs::index,
        crate::docs::file,
        crate::ui_routes::index,
        crate::ui_routes::file,
        crate::dead_letter_routes::list,
        crate::dead_letter_routes::show,
        crate::dead_letter_routes::purge,
        crate::dead_letter_routes::replay,
        crate::backup_routes::backup,
        crate::ingest::ingest_logs,
        crate::ingest::ingest_audit,
        crate::ingest::otlp::otlp_logs,
        crate::ingest::loki::loki_push,
        crate::ingest::elastic::info,
        crate::ingest::elastic::license,
        crate::ingest::elastic::bulk,
        crate::ingest::elastic::post_path,
        crate::ingest::elastic::setup,
        crate::ingest::elastic::bulk_put,
        crate::ingest::elastic::put_path,
        crate::search::search_logs,
        crate::search::search_audit,
        crate::search::histogram,
        crate::search::get_log,
        crate::search::stats,
        crate::search::get_audit,
        crate::trail::inclusion,
        crate::trail::checkpoint,
        crate::trail::consistency,
        crate::trail::export,
        crate::trail::public_key,
        crate::auth_routes::login,
        crate::auth_routes::refresh,
        crate::auth_routes::logout,
        crate::auth_routes::change_password,
        crate::auth_routes::register,
        crate::auth_routes::me,
        crate::admin_routes::list_users,
        crate::admin_routes::create_user,
        crate::admin_routes::update_user,
        crate::admin_routes::list_keys,
        crate::admin_routes::create_key,
        crate::admin_routes::revoke_key,
        crate::admin_routes::get_settings,
        crate::admin_routes::put_settings,
        crate::admin_routes::list_tenants,
        crate::admin_routes::create_tenant,
        crate::telemetry::metrics,
        crate::tail::tail_logs,
        crate::tail::tail_audit,
        crate::tail::ticket::issue,
        crate::alert_routes::list_alerts,
        crate::alert_routes::list_rules,
        crate::alert_routes::create_rule,
        crate::alert_routes::show_rule,
        crate::alert_routes::replace_rule,
        crate::alert_routes::patch_rule,
        crate::alert_routes::delete_rule,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&CallerComponents),
    tags(
        (name = "health", description = "Liveness, readiness and the server's status"),
        (name = "logs", description = "Sending and searching log events"),
        (name = "audit", description = "The audit trail: events, checkpoints and proofs"),
        (name = "auth", description = "Logging in and sessions"),
        (name = "admin", description = "Users, keys, settings, tenants and dead letters"),
        (name = "alerts", description = "Alert rules and the alerts they raise"),
        (name = "documentation", description = "This document and its UI"),
        (name = "ui", description = "The web UI: its page and files"),
        (name = "protocols", description = "Ingest in the protocols shippers already speak: OTLP/HTTP, Loki push, Elasticsearch bulk"),
    ),
)]
pub struct ApiDoc;

/// Names of the security schemes.
const API_KEY: &str = "api_key";
const ACCESS_TOKEN: &str = "access_token";
const SIGNED_KEY_ID: &str = "signed_key_id";
const SIGNED_TIMESTAMP: &str = "signed_timestamp";
const SIGNED_SIGNATURE: &str = "signed_signature";

/// Names of the guard's shared answers.
const UNAUTHORIZED: &str = "Unauthorized";
const FORBIDDEN: &str = "Forbidden";
const RATE_LIMITED: &str = "RateLimited";
const AUTH_UNAVAILABLE: &str = "AuthUnavailable";
const SIGNED_BODY_TOO_LARGE: &str = "SignedBodyTooLarge";
const BODY_TIMEOUT: &str = "BodyTimeout";

/// Adds the security schemes and the guard's answers to the components.
struct CallerComponents;

impl utoipa::Modify for CallerComponents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        let bearer = |description: &str, format: Option<&str>| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            API_KEY,
            bearer("An API key (`lbk_…`) as a bearer token.", None),
        );
        components.add_security_scheme(
            ACCESS_TOKEN,
            bearer(
                "An access token of a login session (`POST /v1/auth/login`, renewed with `POST /v1/auth/refresh`).",
                Some("JWT"),
            ),
        );
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            SIGNED_KEY_ID,
            header(
                "X-Logbook-Key-Id",
                "A signed request: the id of a signing key (all three signature headers go together).",
            ),
        );
        components.add_security_scheme(
            SIGNED_TIMESTAMP,
            header(
                "X-Logbook-Timestamp",
                "A signed request: Unix seconds, within the server's tolerance.",
            ),
        );
        components.add_security_scheme(
            SIGNED_SIGNATURE,
            header(
                "X-Logbook-Signature",
                "A signed request: the HMAC-SHA256 of timestamp, method, path and body (see the README).",
            ),
        );
        let error = |description: &str| -> RefOr<Answer> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ApiError"))),
                )
                .build()
                .into()
        };
        let answers = [
            (
                UNAUTHORIZED,
                "No valid credentials (`unauthorized`, `invalid_credentials`, `token_expired`, `invalid_signature`…); `WWW-Authenticate` names the scheme",
            ),
            (
                FORBIDDEN,
                "The caller lacks the permission this endpoint needs (`forbidden`)",
            ),
            (
                RATE_LIMITED,
                "Over the caller's request rate (`rate_limited`, `too_many_signatures`); `Retry-After` says when to retry",
            ),
            (
                AUTH_UNAVAILABLE,
                "Credentials cannot be checked now (`auth_unavailable`, `server_busy`); `Retry-After` says when to retry",
            ),
            (
                SIGNED_BODY_TOO_LARGE,
                "A signed request's body is over its limit (`body_too_large`, `exceeds_rate_limit`)",
            ),
            (
                BODY_TIMEOUT,
                "The body took longer than the body timeout to arrive (`body_timeout`)",
            ),
        ];
        for (name, description) in answers {
            components
                .responses
                .insert(name.to_owned(), error(description));
        }
    }
}

/// The document of the routes a role serves, each with who may call it.
pub fn document(role: Role) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    let served: BTreeSet<(Method, String)> = crate::routes(role)
        .iter()
        .map(|route| (route.method.clone(), route.openapi_path()))
        .collect();
    let rules: Vec<(Route, Option<Rule>)> = crate::routes(role)
        .into_iter()
        .map(|route| {
            let rule = access::rule_for(&route.method, route.path);
            (route, rule)
        })
        .collect();
    openapi.paths.paths.retain(|path, item| {
        for method in METHODS {
            let slot = operation_slot(item, &method);
            if slot.is_some() && !served.contains(&(method.clone(), path.clone())) {
                *slot = None;
            }
        }
        METHODS
            .iter()
            .any(|method| operation_slot(item, method).is_some())
    });
    for (route, rule) in rules {
        let Some(item) = openapi.paths.paths.get_mut(&route.openapi_path()) else {
            continue;
        };
        if let (Some(operation), Some(rule)) = (operation_slot(item, &route.method), rule) {
            add_callers(operation, rule);
        }
    }
    openapi
}

/// The methods a route can have.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The operation of a method in a path item (`GET` for a method routes never use).
fn operation_slot<'a>(item: &'a mut PathItem, method: &Method) -> &'a mut Option<Operation> {
    match method.as_str() {
        "POST" => &mut item.post,
        "PUT" => &mut item.put,
        "PATCH" => &mut item.patch,
        "DELETE" => &mut item.delete,
        _ => &mut item.get,
    }
}

/// Who may call an operation, and what the guard answers the others.
fn add_callers(operation: &mut Operation, rule: Rule) {
    let callers = access::callers(rule);
    if !callers.anyone {
        let mut security = Vec::new();
        if callers.keys {
            security.push(SecurityRequirement::new(API_KEY, Vec::<String>::new()));
            security.push(
                SecurityRequirement::new(SIGNED_KEY_ID, Vec::<String>::new())
                    .add(SIGNED_TIMESTAMP, Vec::<String>::new())
                    .add(SIGNED_SIGNATURE, Vec::<String>::new()),
            );
        }
        if callers.users {
            security.push(SecurityRequirement::new(ACCESS_TOKEN, Vec::<String>::new()));
        }
        operation.security = Some(security);
    }
    let mut shared = Vec::new();
    if !callers.anyone {
        shared.extend([
            ("401", UNAUTHORIZED),
            ("429", RATE_LIMITED),
            ("503", AUTH_UNAVAILABLE),
        ]);
    }
    if callers.some_refused {
        shared.push(("403", FORBIDDEN));
    }
    if callers.keys {
        shared.extend([("408", BODY_TIMEOUT), ("413", SIGNED_BODY_TOO_LARGE)]);
    }
    for (status, name) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| Ref::from_response_name(name).into());
    }
}

/// `GET /openapi.json`: this document, for the role this process serves.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 document of the routes this process serves", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serialized(state.role),
    )
        .into_response()
}

/// The document of a role, serialised once: the route is public, so each
/// request must cost no more than copying bytes.
fn serialized(role: Role) -> bytes::Bytes {
    static DOCUMENTS: [OnceLock<bytes::Bytes>; 4] = [const { OnceLock::new() }; 4];
    let slot = match role {
        Role::All => 0,
        Role::Ingest => 1,
        Role::Worker => 2,
        Role::Query => 3,
    };
    DOCUMENTS[slot]
        .get_or_init(|| match serde_json::to_vec(&document(role)) {
            Ok(json) => json.into(),
            Err(error) => {
                tracing::error!(%error, "the OpenAPI document does not serialise");
                bytes::Bytes::from_static(b"{}")
            }
        })
        .clone()
}
