//! Credentials of a tail a browser opens: browsers cannot set `Authorization`
//! on a WebSocket, so a tail also accepts the token as a subprotocol
//! (`logbook.bearer.<token>`) or a single-use ticket from
//! `POST /v1/tail/ticket` in the URL (`?ticket=…`). Tickets live in the
//! metadata store, so any query node redeems what another issued; each is
//! bound to its issuer's tenant and permissions and lives `tail.ticket_ttl`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::access::authenticate::{self, unauthorized};
use crate::access::{Principal, PrincipalKind, Role, Scope};
use crate::search::NoParams;
use crate::{ApiError, AppState};

/// The routes whose credentials may come as a subprotocol token or a ticket.
const TAIL_ROUTES: [&str; 2] = ["/v1/tail", "/v1/audit/tail"];

/// The subprotocol prefix carrying a token.
const BEARER_PROTOCOL: &str = "logbook.bearer.";

/// What a ticket makes its redeemer: the issuer as the ticket was issued.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    kind: HolderKind,
    id: String,
    name: String,
    permissions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HolderKind {
    User {
        role: String,
        super_admin: bool,
        session: String,
    },
    Key,
}

impl Holder {
    fn of(principal: &Principal) -> Holder {
        let permissions = principal
            .permission_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        match &principal.kind {
            PrincipalKind::User {
                id,
                username,
                role,
                super_admin,
                session,
            } => Holder {
                kind: HolderKind::User {
                    role: role.name().to_owned(),
                    super_admin: *super_admin,
                    session: session.clone(),
                },
                id: id.clone(),
                name: username.clone(),
                permissions,
            },
            PrincipalKind::Key { id, name } => Holder {
                kind: HolderKind::Key,
                id: id.clone(),
                name: name.clone(),
                permissions,
            },
        }
    }

    fn into_principal(self, tenant: String) -> Option<Principal> {
        Some(match self.kind {
            HolderKind::User {
                role,
                super_admin,
                session,
            } => Principal::user(
                tenant,
                self.id,
                self.name,
                Role::parse(&role)?,
                super_admin,
                session,
            ),
            HolderKind::Key => {
                let scopes: Vec<Scope> = self
                    .permissions
                    .iter()
                    .filter_map(|name| Scope::parse(name))
                    .collect();
                Principal::key(tenant, self.id, self.name, &scopes)
            }
        })
    }
}

/// A single-use ticket for one tail.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Issued {
    ticket: String,
    expires_in_seconds: u64,
}

/// `POST /v1/tail/ticket`: a ticket for one tail, carrying the caller's
/// tenant and permissions (the tail checks them as for any caller).
#[utoipa::path(
    post,
    path = "/v1/tail/ticket",
    tag = "logs",
    responses(
        (status = 201, description = "A ticket for `GET /v1/tail?ticket=` or `/v1/audit/tail?ticket=`, valid once and briefly", body = Issued),
        (status = 400, description = "A query parameter was given (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 429, description = "The caller holds as many unused tickets as allowed (`too_many_tickets`)", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<NoParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    query.map_err(crate::search::parameter_error)?;
    let config = state.tail.config();
    let secret: [u8; 32] = auth::random_bytes()
        .map_err(|error| ApiError::internal("generating a tail ticket", &error))?;
    let ticket: String = std::iter::once("lbt_".to_owned())
        .chain(secret.iter().map(|byte| format!("{byte:02x}")))
        .collect();
    let now = meta::now_millis();
    let ttl = config.ticket_ttl;
    let stored = state
        .auth
        .meta()
        .issue_ticket(
            &meta::NewTicket {
                hash: auth::apikey::hash_key(&ticket),
                tenant: principal.tenant.clone(),
                owner: principal.limit_key(),
                principal: serde_json::to_string(&Holder::of(&principal))
                    .map_err(|error| ApiError::internal("writing a tail ticket", &error))?,
                expires_at: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            },
            config.max_tickets_per_principal,
            now,
        )
        .await
        .map_err(meta_failed)?;
    if !stored {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tickets",
            format!(
                "this caller already holds {} unused tail tickets; use or let them expire",
                config.max_tickets_per_principal
            ),
        );
        error.retry_after_seconds = Some(ttl.as_secs().max(1));
        return Err(error);
    }
    let issued = Issued {
        ticket,
        expires_in_seconds: ttl.as_secs(),
    };
    Ok((StatusCode::CREATED, axum::Json(issued)).into_response())
}

fn meta_failed(error: meta::MetaError) -> ApiError {
    if error.is_unavailable() {
        let mut refusal = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
            "the metadata database is unavailable; retry later",
        );
        refusal.retry_after_seconds = Some(2);
        return refusal;
    }
    ApiError::internal("using a tail ticket", &error)
}

#[derive(Deserialize)]
struct TicketParam {
    ticket: Option<String>,
}

/// The caller of a tail route who sent no `Authorization` header: from the
/// `ticket` parameter or a `logbook.bearer.<token>` subprotocol. `None` when
/// the route is not a tail or neither is present (the usual checks follow).
pub(crate) async fn tail_credentials(
    state: &AppState,
    route: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    if !TAIL_ROUTES.contains(&route)
        || headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(authenticate::KEY_ID_HEADER)
    {
        return Ok(None);
    }
    let ticket = Query::<TicketParam>::try_from_uri(uri)
        .ok()
        .and_then(|Query(param)| param.ticket);
    if let Some(ticket) = ticket {
        let redeemed = state
            .auth
            .meta()
            .redeem_ticket(&auth::apikey::hash_key(&ticket), meta::now_millis())
            .await
            .map_err(meta_failed)?;
        let principal = redeemed.and_then(|redeemed| {
            serde_json::from_str::<Holder>(&redeemed.principal)
                .ok()?
                .into_principal(redeemed.tenant)
        });
        return match principal {
            Some(principal) => Ok(Some(principal)),
            None => Err(unauthorized(
                "invalid_ticket",
                "the ticket is unknown, used or expired; ask POST /v1/tail/ticket for a new one",
            )),
        };
    }
    let token = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(BEARER_PROTOCOL));
    match token {
        Some(token) => authenticate::bearer(state, token).await.map(Some),
        None => Ok(None),
    }
}
