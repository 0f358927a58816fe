//! Alert rules of the caller's tenant (create, list, show, replace, change,
//! delete: tenant admins) and the alerts that fire or recently resolved
//! (readers of logs). Rule changes are audit events, written with the change.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meta::{AlertRule, AlertRuleSpec, MetaError, TenantAlert};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::access::{Permission, Principal};
use crate::auth_routes::actor_of;
use crate::json_body::{json_body, path_id, rfc3339};
use crate::security::{Outcome, SecurityEvent};
use crate::{ApiError, AppState};

/// How long a resolved alert stays in `GET /v1/alerts`.
const RECENTLY_RESOLVED_MS: i64 = 24 * 3600 * 1000;
/// The most alerts `GET /v1/alerts` lists.
const MAX_LISTED_ALERTS: i64 = 1000;

/// An alert rule as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleAnswer {
    id: String,
    name: String,
    /// A query in the search language.
    query: String,
    /// The rule fires when the count is above this.
    threshold: i64,
    /// A duration such as `5m`.
    window: String,
    /// How often the rule is evaluated, such as `30s`.
    interval: String,
    /// `service` or `level`: counted per group rather than in total.
    group_by: Option<String>,
    webhook: WebhookAnswer,
    created_at: String,
    updated_at: String,
    /// The key that signs this rule's notifications; shown only when the
    /// rule is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// Where a rule's notifications go.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct WebhookAnswer {
    url: String,
}

/// The definition of a rule (`PUT` and `POST` need every required field;
/// `PATCH` takes any of them).
#[allow(dead_code)] // Describes the body in the OpenAPI document; the body is read by `alerts::RuleInput`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RuleRequest {
    name: String,
    query: String,
    threshold: i64,
    /// A duration such as `30s`, `5m`, `1h`.
    window: String,
    /// A duration such as `30s`, `5m`, `1h`.
    interval: String,
    /// `service` or `level`.
    #[serde(default)]
    group_by: Option<String>,
    webhook: WebhookAnswer,
}

/// The rules of the caller's tenant.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleList {
    rules: Vec<RuleAnswer>,
}

/// Firing and recently resolved alerts of the caller's tenant.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertList {
    alerts: Vec<AlertAnswer>,
}

/// One rule's (or one group's) alert.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertAnswer {
    rule: RuleName,
    /// The group (`{"field": "service", "value": "payments"}`), or null.
    #[schema(value_type = Option<Object>)]
    group: Value,
    /// `firing` or `resolved`.
    state: &'static str,
    since: String,
    count: i64,
    notification: NotificationAnswer,
}

/// Which rule an alert belongs to.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleName {
    id: String,
    name: String,
}

/// What was delivered to the webhook.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationAnswer {
    /// Whether a notification of the current state is still to be delivered.
    pending: bool,
    /// The state last delivered.
    state: Option<&'static str>,
    at: Option<String>,
    /// Why the last delivery failed; shown to tenant admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Option<String>>,
}

fn rule_answer(rule: &AlertRule) -> RuleAnswer {
    let spec = &rule.spec;
    RuleAnswer {
        id: rule.id.clone(),
        name: spec.name.clone(),
        query: spec.query.clone(),
        threshold: spec.threshold,
        window: alerts::rule::format_duration(spec.window_ms),
        interval: alerts::rule::format_duration(spec.interval_ms),
        group_by: spec.group_by.clone(),
        webhook: WebhookAnswer {
            url: spec.webhook_url.clone(),
        },
        created_at: rfc3339(rule.created_at),
        updated_at: rfc3339(rule.updated_at),
        secret: None,
    }
}

fn alert_answer(alert: &TenantAlert, with_errors: bool) -> AlertAnswer {
    let state = &alert.state;
    AlertAnswer {
        rule: RuleName {
            id: state.rule_id.clone(),
            name: alert.rule_name.clone(),
        },
        group: alerts::notification::group_json(&state.group_key),
        state: state.state.name(),
        since: rfc3339(state.since),
        count: state.last_count,
        notification: NotificationAnswer {
            pending: state.pending(),
            state: state.notified_state.map(|phase| phase.name()),
            at: state.notified_at.map(rfc3339),
            error: with_errors.then(|| state.delivery_error.clone()),
        },
    }
}

fn rule_error(error: alerts::RuleError) -> ApiError {
    let mut location = json!({"field": error.field});
    if let Some(position) = error.position {
        location["position"] = json!(position);
    }
    ApiError::bad_request(error.code, error.message).at(location)
}

fn meta_error(context: &'static str) -> impl Fn(MetaError) -> ApiError {
    move |error| match error {
        MetaError::LimitReached(message) => {
            ApiError::new(StatusCode::CONFLICT, "limit_reached", message)
        }
        MetaError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
        MetaError::Conflict(message) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{message} already exists"),
        ),
        other => ApiError::internal(context, &other),
    }
}

fn no_rule(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no alert rule {id:?} in this tenant"),
    )
}

/// The rule a body makes, over `base` for a partial change.
fn spec_from(
    state: &AppState,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
    base: Option<&AlertRuleSpec>,
) -> Result<AlertRuleSpec, ApiError> {
    alerts::RuleInput::from_json(json_body(body)?)
        .and_then(|input| input.resolve(base, &state.alert_policy))
        .map_err(rule_error)
}

/// What the audit event of a rule change keeps: the rule, with only the
/// webhook's host (its path may hold a token).
fn audit_details(spec: &AlertRuleSpec) -> Map<String, Value> {
    let host = alerts::target::WebhookUrl::parse(&spec.webhook_url)
        .map(|url| url.host)
        .unwrap_or_default();
    let mut details = Map::new();
    details.insert("name".into(), json!(spec.name));
    details.insert("query".into(), json!(spec.query));
    details.insert("threshold".into(), json!(spec.threshold));
    details.insert(
        "window".into(),
        json!(alerts::rule::format_duration(spec.window_ms)),
    );
    details.insert(
        "interval".into(),
        json!(alerts::rule::format_duration(spec.interval_ms)),
    );
    details.insert("group_by".into(), json!(spec.group_by));
    details.insert("webhook_host".into(), json!(host));
    details
}

/// `GET /v1/alerts/rules`.
#[utoipa::path(
    get,
    path = "/v1/alerts/rules",
    tag = "alerts",
    responses(
        (status = 200, description = "The tenant's rules", body = RuleList),
    ),
)]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let rules = state
        .auth
        .meta
        .alert_rules(Some(&principal.tenant))
        .await
        .map_err(meta_error("listing alert rules"))?;
    let rules = rules.iter().map(rule_answer).collect();
    Ok(Json(RuleList { rules }).into_response())
}

/// `POST /v1/alerts/rules`: the answer carries the signing secret, this once.
#[utoipa::path(
    post,
    path = "/v1/alerts/rules",
    tag = "alerts",
    request_body = RuleRequest,
    responses(
        (status = 201, description = "The new rule, with its signing secret (shown only here)", body = RuleAnswer),
        (status = 400, description = "A field is missing or not valid (`invalid_json`, `invalid_rule`…); `where` names it", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 422, description = "The body is not a JSON object (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 409, description = "The tenant has as many rules as allowed (`limit_reached`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let spec = spec_from(&state, body, None)?;
    let secret = auth::webhook::new_secret()
        .map_err(|error| ApiError::internal("creating a webhook secret", &error))?;
    let now = meta::now_millis();
    let rule = AlertRule {
        id: format!("rule_{}", ulid::Ulid::new()),
        tenant: principal.tenant.clone(),
        spec,
        secret,
        created_at: now,
        updated_at: now,
    };
    let actor = actor_of(&principal, peer, &headers);
    let event = SecurityEvent {
        tenant: &principal.tenant,
        action: "alert_rule.create",
        outcome: Outcome::Success,
        actor: &actor,
        target: Some(("alert_rule", &rule.id)),
        reason: None,
        details: audit_details(&rule.spec),
    };
    state
        .auth
        .meta
        .create_alert_rule(
            &rule,
            state.alert_policy.max_rules_per_tenant,
            &[event.entry()],
        )
        .await
        .map_err(meta_error("creating an alert rule"))?;
    let mut answer = rule_answer(&rule);
    answer.secret = Some(rule.secret.clone());
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/alerts/rules/{id}`.
#[utoipa::path(
    get,
    path = "/v1/alerts/rules/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "The rule", body = RuleAnswer),
        (status = 400, description = "The id is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such rule in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn show_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let rule = state
        .auth
        .meta
        .alert_rule(&principal.tenant, &id)
        .await
        .map_err(meta_error("reading an alert rule"))?
        .ok_or_else(|| no_rule(&id))?;
    Ok(Json(rule_answer(&rule)).into_response())
}

/// `PUT /v1/alerts/rules/{id}`: a whole new definition.
#[utoipa::path(
    put,
    path = "/v1/alerts/rules/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The rule's id")),
    request_body = RuleRequest,
    responses(
        (status = 200, description = "The rule as changed", body = RuleAnswer),
        (status = 400, description = "A field is missing or not valid (`invalid_json`, `invalid_rule`…); `where` names it", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 422, description = "The body is not a JSON object (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such rule in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn replace_rule(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    change_rule(state, peer, principal, headers, id, body, false).await
}

/// `PATCH /v1/alerts/rules/{id}`: the fields given, over the stored rule.
#[utoipa::path(
    patch,
    path = "/v1/alerts/rules/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The rule's id")),
    request_body = RuleRequest,
    responses(
        (status = 200, description = "The rule as changed", body = RuleAnswer),
        (status = 400, description = "A field is missing or not valid (`invalid_json`, `invalid_rule`…); `where` names it", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too large (`body_too_large`)", body = crate::error::ErrorBody),
        (status = 422, description = "The body is not a JSON object (`invalid_json`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such rule in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn patch_rule(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    change_rule(state, peer, principal, headers, id, body, true).await
}

async fn change_rule(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
    partial: bool,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let stored = state
        .auth
        .meta
        .alert_rule(&principal.tenant, &id)
        .await
        .map_err(meta_error("reading an alert rule"))?
        .ok_or_else(|| no_rule(&id))?;
    let spec = spec_from(&state, body, partial.then_some(&stored.spec))?;
    let actor = actor_of(&principal, peer, &headers);
    let event = SecurityEvent {
        tenant: &principal.tenant,
        action: "alert_rule.update",
        outcome: Outcome::Success,
        actor: &actor,
        target: Some(("alert_rule", &id)),
        reason: None,
        details: audit_details(&spec),
    };
    let rule = state
        .auth
        .meta
        .update_alert_rule(&principal.tenant, &id, &spec, &[event.entry()])
        .await
        .map_err(meta_error("changing an alert rule"))?
        .ok_or_else(|| no_rule(&id))?;
    Ok(Json(rule_answer(&rule)).into_response())
}

/// `DELETE /v1/alerts/rules/{id}`: the rule and its alerts go, with no notification.
#[utoipa::path(
    delete,
    path = "/v1/alerts/rules/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "The rule and its alerts are gone"),
        (status = 400, description = "The id is not valid (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such rule in the caller's tenant (`not_found`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn delete_rule(
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
        action: "alert_rule.delete",
        outcome: Outcome::Success,
        actor: &actor,
        target: Some(("alert_rule", &id)),
        reason: None,
        details: Map::new(),
    };
    let deleted = state
        .auth
        .meta
        .delete_alert_rule(&principal.tenant, &id, &[event.entry()])
        .await
        .map_err(meta_error("deleting an alert rule"))?;
    if !deleted {
        return Err(no_rule(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/alerts`: what fires now and what resolved within the last day.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    responses(
        (status = 200, description = "Firing alerts and those resolved within the last day", body = AlertList),
    ),
)]
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let alerts = state
        .auth
        .meta
        .tenant_alerts(
            &principal.tenant,
            meta::now_millis() - RECENTLY_RESOLVED_MS,
            MAX_LISTED_ALERTS,
        )
        .await
        .map_err(meta_error("listing alerts"))?;
    let with_errors = principal.can(Permission::ManageTenant);
    let alerts = alerts
        .iter()
        .map(|alert| alert_answer(alert, with_errors))
        .collect();
    Ok(Json(AlertList { alerts }).into_response())
}
