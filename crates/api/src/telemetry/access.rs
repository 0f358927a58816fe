//! Authentication failures by kind and the latency of queries by endpoint.

use std::time::Duration;

use axum::http::StatusCode;

use crate::ApiError;

/// Counts a refused caller by the refusal's code (`missing_credentials`,
/// `invalid_token`, `forbidden`, `invalid_login`…). Answers that are not the
/// caller's fault (the metadata store is down) are not failures.
pub(crate) fn auth_refused(refusal: &ApiError) {
    let refused = matches!(
        refusal.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    );
    if refused {
        metrics::counter!("logbook_auth_failures_total", "kind" => refusal.code).increment(1);
    }
}

/// Records how long a read endpoint (searches, stats, histograms, events by
/// id, the audit trail's proofs and exports) took to answer; `route` is the
/// route's template, so the label takes one value per endpoint.
pub(crate) fn query_answered(route: String, took: Duration) {
    metrics::histogram!("logbook_query_duration_seconds", "endpoint" => route)
        .record(took.as_secs_f64());
}
