//! The Elasticsearch-compatible endpoints under `/es` that log shippers
//! need: `_bulk` (with or without an index in the path), the version and
//! licence they probe at start, and empty successes for the template, ILM
//! and pipeline set-up they attempt. Every answer under `/es` carries
//! `X-Elastic-Product: Elasticsearch` (see [`product_header`]).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ingest::elastic;
use model::Stream;
use serde_json::json;

use super::receive::{Request, ingest_error, receive};
use crate::AppState;
use crate::access::Principal;
use crate::body::AlreadyCharged;
use crate::telemetry::IngestTally;

/// The Elasticsearch version Logbook answers probes with: shippers choose
/// their request format by its major version.
const VERSION: &str = "8.17.0";

/// The first path segments of the set-up calls shippers make at start,
/// answered with an empty success.
const SETUP_PREFIXES: &[&str] = &[
    "_index_template",
    "_template",
    "_component_template",
    "_ilm",
    "_ingest",
    "_data_stream",
    "_nodes",
    "_cluster",
    "_xpack",
];

const PRODUCT: HeaderName = HeaderName::from_static("x-elastic-product");

/// Adds `X-Elastic-Product: Elasticsearch` to every answer under `/es`,
/// errors included: official clients refuse an answer without it.
pub(crate) async fn product_header(request: HttpRequest, next: Next) -> Response {
    let under_es = request.uri().path() == "/es" || request.uri().path().starts_with("/es/");
    let mut response = next.run(request).await;
    if under_es {
        response
            .headers_mut()
            .insert(PRODUCT, HeaderValue::from_static("Elasticsearch"));
    }
    response
}

/// `GET /es/`: the cluster's name and version.
#[utoipa::path(get, path = "/es/", tag = "protocols",
    responses((status = 200, description = "Version information, as Elasticsearch gives it", body = serde_json::Value)))]
pub(crate) async fn info() -> Response {
    axum::Json(json!({
        "name": "logbook",
        "cluster_name": "logbook",
        "cluster_uuid": "logbook",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "logbook",
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }))
    .into_response()
}

/// `GET /es/_license`: an active basic licence.
#[utoipa::path(get, path = "/es/_license", tag = "protocols",
    responses((status = 200, description = "An active basic licence", body = serde_json::Value)))]
pub(crate) async fn license() -> Response {
    axum::Json(json!({
        "license": {"status": "active", "uid": "logbook", "type": "basic", "issue_date_in_millis": 0}
    }))
    .into_response()
}

/// `GET`/`PUT`/`POST /es/{*path}`: the set-up calls shippers make at start
/// (templates, ILM policies, pipelines) succeed and change nothing; any
/// other path is not served.
#[utoipa::path(get, path = "/es/{path}", tag = "protocols",
    params(("path" = String, Path, description = "`_index_template/…`, `_ilm/policy/…`, `_ingest/pipeline/…`…")),
    responses(
        (status = 200, description = "`{}`: a set-up call, accepted and ignored", body = serde_json::Value),
        (status = 404, description = "Not an endpoint Logbook serves under `/es`", body = serde_json::Value),
    ))]
pub(crate) async fn setup(Path(path): Path<String>) -> Response {
    let first = path.split('/').next().unwrap_or("");
    if SETUP_PREFIXES.contains(&first) {
        return axum::Json(json!({})).into_response();
    }
    es_error(
        StatusCode::NOT_FOUND,
        "unsupported_operation_exception",
        &format!("Logbook serves _bulk under /es, not /{path}"),
        None,
    )
}

/// `POST /es/_bulk`.
#[utoipa::path(
    post,
    path = "/es/_bulk",
    tag = "protocols",
    request_body(
        description = "NDJSON: an action line (`create` or `index`, with `_index` and `_id` optional) followed by its document, repeated; gzip allowed",
        content(
            (String = "application/x-ndjson"),
            (String = "application/json"),
            (String = "application/vnd.elasticsearch+x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One item per action, in order; the valid documents are durable, `errors` says whether any item failed", body = serde_json::Value),
        (status = 400, description = "An action line is unreadable, or the body is empty", body = serde_json::Value),
        (status = 401, description = "No or unusable credentials", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit", body = serde_json::Value),
        (status = 429, description = "Over a rate, or the queue full or unavailable; `Retry-After` says when (shippers retry 429)", body = serde_json::Value),
    ),
)]
pub(crate) async fn bulk(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk_into(
        state,
        peer,
        principal,
        charged.is_some(),
        None,
        headers,
        body,
    )
    .await
}

/// `PUT /es/_bulk`: as `POST` (the official clients send `PUT`).
#[utoipa::path(
    put,
    path = "/es/_bulk",
    tag = "protocols",
    request_body(
        description = "As `POST /es/_bulk`",
        content(
            (String = "application/x-ndjson"),
            (String = "application/json"),
            (String = "application/vnd.elasticsearch+x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One item per action, in order", body = serde_json::Value),
        (status = 400, description = "An action line is unreadable, or the body is empty", body = serde_json::Value),
        (status = 401, description = "No or unusable credentials", body = crate::error::ErrorBody),
        (status = 413, description = "Over a size limit", body = serde_json::Value),
        (status = 429, description = "Over a rate, or the queue full or unavailable; `Retry-After` says when", body = serde_json::Value),
    ),
)]
pub(crate) async fn bulk_put(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk(state, peer, principal, charged, headers, body).await
}

/// `PUT /es/{*path}`: as `POST`.
#[utoipa::path(
    put,
    path = "/es/{path}",
    tag = "protocols",
    params(("path" = String, Path, description = "`{index}/_bulk`, or a set-up call (`_index_template/…`, `_ilm/policy/…`)")),
    request_body(
        description = "For `{index}/_bulk`: as `POST /es/_bulk`",
        content(
            (String = "application/x-ndjson"),
            (String = "application/json"),
            (String = "application/vnd.elasticsearch+x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One item per action, in order (or `{}` for a set-up call)", body = serde_json::Value),
        (status = 400, description = "An action line is unreadable, or the body is empty", body = serde_json::Value),
        (status = 401, description = "No or unusable credentials", body = crate::error::ErrorBody),
        (status = 404, description = "Not an endpoint Logbook serves under `/es`", body = serde_json::Value),
        (status = 413, description = "Over a size limit", body = serde_json::Value),
        (status = 429, description = "Over a rate, or the queue full or unavailable; `Retry-After` says when", body = serde_json::Value),
    ),
)]
pub(crate) async fn put_path(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    principal: Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    path: Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post_path(state, peer, principal, charged, path, headers, body).await
}

/// `POST /es/{*path}`: `{index}/_bulk` is a bulk request whose actions
/// default to that index; the set-up calls answer as with `GET`.
#[utoipa::path(
    post,
    path = "/es/{path}",
    tag = "protocols",
    params(("path" = String, Path, description = "`{index}/_bulk`: the index of actions that name none, kept as the `index` attribute; or a set-up call (`_index_template/…`, `_ingest/pipeline/…`)")),
    request_body(
        description = "For `{index}/_bulk`: NDJSON, an action line (`create` or `index`) followed by its document, repeated; gzip allowed",
        content(
            (String = "application/x-ndjson"),
            (String = "application/json"),
            (String = "application/vnd.elasticsearch+x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One item per action, in order (or `{}` for a set-up call)", body = serde_json::Value),
        (status = 400, description = "An action line is unreadable, or the body is empty", body = serde_json::Value),
        (status = 401, description = "No or unusable credentials", body = crate::error::ErrorBody),
        (status = 404, description = "Not an endpoint Logbook serves under `/es`", body = serde_json::Value),
        (status = 413, description = "Over a size limit", body = serde_json::Value),
        (status = 429, description = "Over a rate, or the queue full or unavailable; `Retry-After` says when", body = serde_json::Value),
    ),
)]
pub(crate) async fn post_path(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    charged: Option<Extension<AlreadyCharged>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match path.strip_suffix("/_bulk") {
        Some(index) if !index.is_empty() && !index.contains('/') => {
            let index = Some(index.to_owned());
            bulk_into(
                state,
                peer,
                principal,
                charged.is_some(),
                index,
                headers,
                body,
            )
            .await
        }
        _ => setup(Path(path)).await,
    }
}

async fn bulk_into(
    state: AppState,
    peer: SocketAddr,
    principal: Principal,
    already_charged: bool,
    index: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut tally = IngestTally::new(&headers).with_protocol("elasticsearch");
    let request = Request {
        state: &state,
        peer,
        principal: &principal,
        stream: Stream::Logs,
        already_charged,
        headers: &headers,
    };
    let received = receive(request, body, &mut tally, move |translation| {
        let mut batch = ingest::Batch::new(
            &translation.context,
            &translation.limits,
            translation.body.len() * 2,
        );
        let actions = elastic::decode(&translation.body, index.as_deref(), &mut batch)
            .map_err(ingest_error)?;
        // Only unsupported actions: nothing to store, each answered on its own.
        let decoded = match batch.is_empty() {
            true => model::DecodedBatch::default(),
            false => batch.finish().map_err(|error| ingest_error(error.into()))?,
        };
        Ok((decoded, actions))
    })
    .await;
    tally.record(
        &principal.tenant,
        Stream::Logs,
        received.as_ref().map(|_| ()),
    );
    match received {
        Ok(received) => {
            let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let body = elastic::bulk_response(&received.extra, &received.decoded, took);
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            // Shippers retry 429, not always 503: backpressure is a 429 here.
            let status = match error.status {
                StatusCode::SERVICE_UNAVAILABLE => StatusCode::TOO_MANY_REQUESTS,
                status => status,
            };
            let kind = match status {
                StatusCode::TOO_MANY_REQUESTS => "es_rejected_execution_exception",
                StatusCode::PAYLOAD_TOO_LARGE => "content_too_long_exception",
                _ => "illegal_argument_exception",
            };
            es_error(status, kind, &error.message, error.retry_after_seconds)
        }
    }
}

/// An answer in Elasticsearch's error shape.
fn es_error(status: StatusCode, kind: &str, reason: &str, retry_after: Option<u64>) -> Response {
    let body = elastic::error_body(status.as_u16(), kind, reason);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
