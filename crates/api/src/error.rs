//! The one error type of the API and its JSON body:
//! `{"status", "code", "message", "where"?, "errors"?}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// An error answer. Server-side failures are logged and answered without internals.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Where in the request the problem is (`{"line": 2, "column": 3}`, `{"parameter": "q", "position": 4}`…).
    pub location: Option<Box<Value>>,
    /// Per-event errors of a batch.
    pub errors: Option<Box<Value>>,
    pub retry_after_seconds: Option<u64>,
    /// Extra headers (`WWW-Authenticate`, `RateLimit-*`).
    pub headers: Option<Box<axum::http::HeaderMap>>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
pub(crate) struct ErrorBody<'a> {
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// A stable code to branch on (`invalid_parameter`, `unauthorized`, `queue_full`…).
    code: &'a str,
    /// What went wrong and what to do, for people.
    message: &'a str,
    /// Where in the request the problem is: `{"parameter": "q", "position": 4}`,
    /// `{"field": "password"}`, `{"line": 2, "column": 3}`, `{"byte": 17}`.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    location: Option<&'a Value>,
    /// A batch whose every event was refused: why, per event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::ingest::RejectionBody>>)]
    errors: Option<&'a Value>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            location: None,
            errors: None,
            retry_after_seconds: None,
            headers: None,
        }
    }

    /// A 400 for the client's request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 500 whose cause is logged but not shown.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(%error, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error while {context}; see the server log"),
        )
    }

    /// Says where the problem is.
    pub fn at(mut self, location: Value) -> Self {
        self.location = Some(Box::new(location));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: self.status.as_u16(),
            code: self.code,
            message: &self.message,
            location: self.location.as_deref(),
            errors: self.errors.as_deref(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        match error {
            store::StoreError::InvalidQuery(message) => {
                ApiError::bad_request("invalid_query", message)
                    .at(serde_json::json!({"parameter": "q"}))
            }
            store::StoreError::InvalidTerm { position, message } => ApiError::bad_request(
                "invalid_query",
                format!("{message} (in q at byte {position})"),
            )
            .at(serde_json::json!({"parameter": "q", "position": position})),
            store::StoreError::QueryTooComplex { position, message } => {
                let location = match position {
                    Some(position) => serde_json::json!({"parameter": "q", "position": position}),
                    None => serde_json::json!({"parameter": "q"}),
                };
                ApiError::bad_request("query_too_complex", message).at(location)
            }
            store::StoreError::QueryTimeout(limit) => {
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "query_timeout",
                    format!(
                        "the query was stopped after {} ms (query.timeout_ms); narrow it with a time range or more specific terms",
                        limit.as_millis()
                    ),
                );
                error.retry_after_seconds = Some(1);
                error
            }
            store::StoreError::TooManyQueries(limit) => {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_queries",
                    format!(
                        "this tenant already runs {limit} queries (query.max_concurrent_per_tenant); retry when one has finished"
                    ),
                );
                error.retry_after_seconds = Some(1);
                error
            }
            store::StoreError::Cancelled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "query_cancelled",
                "the query was cancelled",
            ),
            store::StoreError::OutOfRange(message) => {
                ApiError::bad_request("out_of_range", message)
            }
            store::StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "the store is unavailable");
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the event store cannot be reached; retry later",
                );
                error.retry_after_seconds = Some(2);
                error
            }
            other => ApiError::internal("reading the store", &other),
        }
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
