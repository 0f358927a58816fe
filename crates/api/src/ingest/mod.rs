//! The ingest front ends. `POST /v1/logs` and `POST /v1/audit` (Logbook's
//! own JSON, NDJSON and text) live here; each other protocol has a module.
//! All of them go through [`receive`], so an answer is written only after
//! the queue holds the events durably: an acknowledged event survives a
//! crash.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{BatchFormat, Rejection, Stream};
use queue::Position;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::body;
use crate::telemetry::IngestTally;
use crate::{ApiError, AppState};

pub(crate) mod elastic;
pub(crate) mod loki;
pub(crate) mod otlp;
mod receive;

pub(crate) use receive::append;
use receive::{Request, decode_error, header_str, receive};

/// The answer to an ingest request: what was accepted and, per event, what was not.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted<'a> {
    accepted: usize,
    rejected: usize,
    /// The ids of the accepted events, in request order.
    ids: &'a [String],
    /// Present when the client asked to wait: whether the events became
    /// searchable before the wait ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    searchable: Option<bool>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: Vec<RejectionBody<'a>>,
}

/// Why one event of a batch was refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct RejectionBody<'a> {
    /// The event's index in the batch, from 0.
    index: usize,
    /// Its line, for NDJSON and text bodies (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    code: &'a str,
    message: &'a str,
}

impl<'a> From<&'a Rejection> for RejectionBody<'a> {
    fn from(rejection: &'a Rejection) -> Self {
        RejectionBody {
            index: rejection.index,
            line: rejection.line,
            code: rejection.code,
            message: &rejection.message,
        }
    }
}

/// The query parameters of the ingest endpoints.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct IngestParams {
    /// `searchable`: answer only once the events can be found by a search
    /// (at most 10 s), like Elasticsearch's `refresh=wait_for`; the default
    /// (`durable`) answers once they are durable.
    #[param(pattern = "^(searchable|durable)$")]
    wait: Option<String>,
}

/// The longest an ingest request waits for its events to become searchable.
/// They are durable either way; the answer then says `"searchable": false`.
const WAIT_SEARCHABLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl IngestParams {
    fn from_query(query: Result<Query<IngestParams>, QueryRejection>) -> Result<bool, ApiError> {
        let Query(params) = query.map_err(|rejection| {
            ApiError::bad_request("invalid_parameter", rejection.body_text())
        })?;
        match params.wait.as_deref() {
            None | Some("durable") => Ok(false),
            Some("searchable") => Ok(true),
            Some(other) => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("wait must be `searchable` or `durable`, not {other:?}"),
            )
            .at(json!({"parameter": "wait"}))),
        }
    }
}

/// `POST /v1/logs`.
#[utoipa::path(
    post,
    path = "/v1/logs",
    tag = "logs",
    params(IngestParams),
    request_body(
        description = "Log events: one JSON object or an array of them, NDJSON (one object a line) or plain text (one message a line); `Content-Encoding: gzip` or `zstd` allowed",
        content(
            (serde_json::Value = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/plain"),
        ),
    ),
    responses(
        (status = 202, description = "The valid events are durable (or, with `wait=searchable`, searchable); `errors` lists the refused ones", body = Accepted),
        (status = 400, description = "No event is valid (`invalid_events`, with `errors`), the body is not valid JSON/UTF-8 or cannot be decompressed, or a parameter is wrong (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 408, description = "The body took longer than the body timeout (`body_timeout`)", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit: body, decompressed body, events per batch or queue record (`body_too_large`, `too_many_events`, `record_too_large`, `exceeds_rate_limit`)", body = crate::error::ErrorBody),
        (status = 415, description = "Unsupported `Content-Type` or `Content-Encoding` (`unsupported_media_type`, `unsupported_encoding`)", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate of requests, bytes or events (`rate_limited`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is full or cannot write, the body budget is spent, or credentials cannot be checked (`queue_full`, `queue_unavailable`, `server_busy`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn ingest_logs(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    charged: Option<Extension<body::AlreadyCharged>>,
    query: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = IngestRequest {
        stream: Stream::Logs,
        wait_searchable: IngestParams::from_query(query)?,
        already_charged: charged.is_some(),
    };
    ingest(state, peer, principal, request, headers, body).await
}

/// `POST /v1/audit`.
#[utoipa::path(
    post,
    path = "/v1/audit",
    tag = "audit",
    params(IngestParams),
    request_body(
        description = "Audit events: one JSON object or an array of them, NDJSON (one object a line) or plain text (one message a line); `Content-Encoding: gzip` or `zstd` allowed",
        content(
            (serde_json::Value = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/plain"),
        ),
    ),
    responses(
        (status = 202, description = "The valid events are durable (or, with `wait=searchable`, searchable); `errors` lists the refused ones", body = Accepted),
        (status = 400, description = "No event is valid (`invalid_events`, with `errors`), the body is not valid JSON/UTF-8 or cannot be decompressed, or a parameter is wrong (`invalid_parameter`)", body = crate::error::ErrorBody),
        (status = 408, description = "The body took longer than the body timeout (`body_timeout`)", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit: body, decompressed body, events per batch or queue record (`body_too_large`, `too_many_events`, `record_too_large`, `exceeds_rate_limit`)", body = crate::error::ErrorBody),
        (status = 415, description = "Unsupported `Content-Type` or `Content-Encoding` (`unsupported_media_type`, `unsupported_encoding`)", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate of requests, bytes or events (`rate_limited`); `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is full or cannot write, the body budget is spent, or credentials cannot be checked (`queue_full`, `queue_unavailable`, `server_busy`, `auth_unavailable`); `Retry-After` says when", body = crate::error::ErrorBody),
    ),
)]
pub(crate) async fn ingest_audit(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    charged: Option<Extension<body::AlreadyCharged>>,
    query: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = IngestRequest {
        stream: Stream::Audit,
        wait_searchable: IngestParams::from_query(query)?,
        already_charged: charged.is_some(),
    };
    ingest(state, peer, principal, request, headers, body).await
}

/// What an ingest request asks for, beyond its body.
struct IngestRequest {
    stream: Stream,
    wait_searchable: bool,
    /// The body was read (and charged) already, while a signature was checked.
    already_charged: bool,
}

/// Ingests a request and records what became of it for `/metrics`.
async fn ingest(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    request: IngestRequest,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut tally = IngestTally::new(&headers);
    let (tenant, stream) = (principal.tenant.clone(), request.stream);
    let answer = ingest_tallied(state, peer, principal, request, headers, body, &mut tally).await;
    tally.record(&tenant, stream, answer.as_ref().map(|_| ()));
    answer
}

async fn ingest_tallied(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    IngestRequest {
        stream,
        wait_searchable,
        already_charged,
    }: IngestRequest,
    headers: HeaderMap,
    body: Body,
    tally: &mut IngestTally,
) -> Result<Response, ApiError> {
    let format = body_format(header_str(&headers, header::CONTENT_TYPE.as_str())?)?;
    let request = Request {
        state: &state,
        peer,
        principal: &principal,
        stream,
        already_charged,
        headers: &headers,
    };
    let received = receive(request, body, tally, move |translation| {
        let format = format.resolve(&translation.body)?;
        let decoded = model::decode_batch(
            &translation.body,
            format,
            &translation.context,
            &translation.limits,
        )
        .map_err(decode_error)?;
        Ok((decoded, ()))
    })
    .await?;
    let (decoded, end) = (received.decoded, received.end);
    let Some(end) = end else {
        let errors: Vec<RejectionBody> = decoded.rejected.iter().map(RejectionBody::from).collect();
        let mut error = ApiError::bad_request(
            "invalid_events",
            "no event in the request is valid; see errors",
        );
        error.errors = Some(Box::new(json!(errors)));
        return Err(error);
    };
    let searchable = match wait_searchable {
        true => Some(searchable(&state, end, &principal.tenant, stream, decoded.ids.last()).await),
        false => None,
    };
    let answer = Accepted {
        accepted: decoded.ids.len(),
        rejected: decoded.rejected.len(),
        ids: &decoded.ids,
        searchable,
        errors: decoded.rejected.iter().map(RejectionBody::from).collect(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Waits until the events of a request can be found by a search; false if
/// that took longer than [`WAIT_SEARCHABLE_TIMEOUT`] or the worker stopped.
/// With a worker in this process over an unpartitioned queue, its commits
/// must cover the queue up to `end`; otherwise (an ingest node, or a Kafka
/// queue) the store is asked for the request's last event until it has it.
async fn searchable(
    state: &AppState,
    end: Position,
    tenant: &str,
    stream: Stream,
    last: Option<&String>,
) -> bool {
    // A partitioned queue's positions are per partition: the worker's
    // progress cannot say whether it covers one, so the store is asked.
    if state.role.works() && state.queue.resume() != queue::Resume::Partitions {
        let mut progress = state.progress.clone();
        let covered = progress.wait_for(|progress| progress.committed >= end);
        return matches!(
            tokio::time::timeout(WAIT_SEARCHABLE_TIMEOUT, covered).await,
            Ok(Ok(_))
        );
    }
    let Some(last) = last else { return true };
    let stored = async {
        loop {
            if let Ok(Some(_)) = state.store.get(tenant, stream, last).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT_SEARCHABLE_TIMEOUT, stored)
        .await
        .is_ok()
}

/// How to read a body, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Known(BatchFormat),
    /// `application/x-www-form-urlencoded`, what `curl -d` sends by default:
    /// read as JSON when the body is JSON, refused otherwise.
    FormEncoded,
}

impl BodyFormat {
    /// The batch format of a decompressed body.
    fn resolve(self, body: &[u8]) -> Result<BatchFormat, ApiError> {
        match self {
            BodyFormat::Known(format) => Ok(format),
            BodyFormat::FormEncoded => {
                let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
                match first {
                    Some(b'{' | b'[') | None => Ok(BatchFormat::Json),
                    Some(_) => Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "the body is form-encoded (curl -d sends that by default); send JSON \
                         with Content-Type: application/json, or NDJSON or text/plain",
                    )),
                }
            }
        }
    }
}

/// JSON (one object or an array), NDJSON or plain text lines, by content
/// type; JSON if absent.
fn body_format(content_type: Option<&str>) -> Result<BodyFormat, ApiError> {
    let Some(content_type) = content_type else {
        return Ok(BodyFormat::Known(BatchFormat::Json));
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" => Ok(BodyFormat::Known(BatchFormat::Json)),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Ok(BodyFormat::Known(BatchFormat::Ndjson)),
        "text/plain" => Ok(BodyFormat::Known(BatchFormat::Text)),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::FormEncoded),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type:?} is not supported; use application/json, application/x-ndjson or text/plain"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_the_format() {
        let json = br#"{"message":"a"}"#;
        let cases = [
            (None, Some(BatchFormat::Json)),
            (Some("application/json"), Some(BatchFormat::Json)),
            (
                Some("Application/JSON; charset=utf-8"),
                Some(BatchFormat::Json),
            ),
            (Some("application/x-ndjson"), Some(BatchFormat::Ndjson)),
            (Some("application/jsonl"), Some(BatchFormat::Ndjson)),
            (Some("text/plain; charset=utf-8"), Some(BatchFormat::Text)),
            (
                Some("application/x-www-form-urlencoded"),
                Some(BatchFormat::Json),
            ),
            (Some("text/html"), None),
        ];
        for (content_type, expected) in cases {
            let format = body_format(content_type).and_then(|format| format.resolve(json));
            assert_eq!(format.ok(), expected, "{content_type:?}");
        }
        let form = body_format(Some("application/x-www-form-urlencoded"));
        assert!(form.and_then(|format| format.resolve(b"a=1&b=2")).is_err());
    }
}
