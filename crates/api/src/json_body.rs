//! Reading small JSON request bodies (credentials, admin requests) and path
//! ids with the API's error shape.

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;

use crate::ApiError;

/// The body as `T`, or a 400/415 that says what is wrong with it.
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_json"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// The `{id}` of a path, or a 400 `invalid_parameter`.
pub(crate) fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
}

/// Unix milliseconds as RFC 3339.
pub(crate) fn rfc3339(millis: i64) -> String {
    model::Timestamp::from_nanos(millis.saturating_mul(1_000_000)).to_rfc3339()
}
