//! What an ingest request records: requests, events and bytes by tenant,
//! stream, protocol and outcome, and how long the acknowledgement took.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use metrics::Label;
use model::{Rejection, Stream};

use crate::ApiError;

/// What one ingest request did, filled in as it goes and recorded once when
/// it is answered.
pub(crate) struct IngestTally {
    started: Instant,
    /// The body's format as its content type says: `json`, `ndjson`, `text`.
    protocol: &'static str,
    /// Body bytes as sent (compressed or not), once read.
    pub(crate) bytes: u64,
    /// Valid events, which share the request's outcome.
    pub(crate) events: u64,
    /// Events refused on their own, by reason; a handful of reasons at most.
    rejected: Vec<(&'static str, u64)>,
    /// How long it took until the queue held the events durably.
    durable_after: Option<Duration>,
}

impl IngestTally {
    /// A tally started now, for a request with these headers.
    pub(crate) fn new(headers: &HeaderMap) -> IngestTally {
        IngestTally {
            started: Instant::now(),
            protocol: protocol(headers),
            bytes: 0,
            events: 0,
            rejected: Vec::new(),
            durable_after: None,
        }
    }

    /// The same tally for a protocol of its own (`otlp`, `loki`, `elasticsearch`).
    pub(crate) fn with_protocol(self, protocol: &'static str) -> IngestTally {
        IngestTally { protocol, ..self }
    }

    /// Counts the events of a batch that were refused on their own.
    pub(crate) fn reject_events(&mut self, rejections: &[Rejection]) {
        for rejection in rejections {
            match self
                .rejected
                .iter_mut()
                .find(|(code, _)| *code == rejection.code)
            {
                Some((_, count)) => *count += 1,
                None => self.rejected.push((rejection.code, 1)),
            }
        }
    }

    /// The events are durable: the acknowledgement can be sent from now on.
    pub(crate) fn durable(&mut self) {
        self.durable_after = Some(self.started.elapsed());
    }

    /// Records the request's outcome: `Ok` for an accepted batch, or the
    /// error it was answered with.
    pub(crate) fn record(&self, tenant: &str, stream: Stream, answer: Result<(), &ApiError>) {
        let (outcome, reason) = match answer {
            Ok(()) => ("accepted", "none"),
            Err(error) => (outcome_of(error), error.code),
        };
        let labels = |outcome: &'static str, reason: &'static str| {
            vec![
                Label::new("tenant", tenant.to_owned()),
                Label::from_static_parts("stream", stream.as_str()),
                Label::from_static_parts("protocol", self.protocol),
                Label::from_static_parts("outcome", outcome),
                Label::from_static_parts("reason", reason),
            ]
        };
        metrics::counter!("logbook_ingest_requests_total", labels(outcome, reason)).increment(1);
        if self.events > 0 {
            metrics::counter!("logbook_ingest_events_total", labels(outcome, reason))
                .increment(self.events);
        }
        for (code, count) in &self.rejected {
            metrics::counter!("logbook_ingest_events_total", labels("rejected", code))
                .increment(*count);
        }
        if self.bytes > 0 {
            metrics::counter!(
                "logbook_ingest_bytes_total",
                "tenant" => tenant.to_owned(),
                "stream" => stream.as_str(),
                "protocol" => self.protocol,
                "outcome" => outcome,
            )
            .increment(self.bytes);
        }
        if let (Ok(()), Some(took)) = (answer, self.durable_after) {
            metrics::histogram!("logbook_ingest_ack_seconds", "stream" => stream.as_str())
                .record(took.as_secs_f64());
        }
    }
}

/// Records an ingest request the access guard refused after authenticating
/// it (over its caller's request rate), before the handler ran.
pub(crate) fn ingest_refused_at_the_door(
    tenant: &str,
    route: &str,
    headers: &HeaderMap,
    refusal: &ApiError,
) {
    let stream = match route {
        "/v1/audit" => Stream::Audit,
        _ => Stream::Logs,
    };
    IngestTally::new(headers).record(tenant, stream, Err(refusal));
}

/// `accepted`, `rejected` (the client's request is wrong), `rate_limited`,
/// `queue_full` or `failed` (the server could not take it).
fn outcome_of(error: &ApiError) -> &'static str {
    match error.status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ if error.code == "queue_full" => "queue_full",
        status if status.is_client_error() => "rejected",
        _ => "failed",
    }
}

/// The protocol label of a request, from its content type, without
/// allocating: the same essences the ingest handler accepts.
fn protocol(headers: &HeaderMap) -> &'static str {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return "json";
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let is = |name: &str| essence.eq_ignore_ascii_case(name);
    if is("application/json") || is("text/json") || is("application/x-www-form-urlencoded") {
        "json"
    } else if is("application/x-ndjson")
        || is("application/ndjson")
        || is("application/jsonl")
        || is("application/x-jsonlines")
        || is("application/jsonlines")
    {
        "ndjson"
    } else if is("text/plain") {
        "text"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_answer() {
        let error = |status, code| ApiError::new(status, code, "x");
        let cases = [
            (
                error(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                "rate_limited",
            ),
            (
                error(StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
                "queue_full",
            ),
            (error(StatusCode::BAD_REQUEST, "invalid_events"), "rejected"),
            (
                error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
                "rejected",
            ),
            (
                error(StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable"),
                "failed",
            ),
        ];
        for (error, outcome) in cases {
            assert_eq!(outcome_of(&error), outcome, "{}", error.code);
        }
    }

    #[test]
    fn protocols_follow_the_content_type() {
        let cases = [
            (None, "json"),
            (Some("Application/JSON; charset=utf-8"), "json"),
            (Some("application/x-ndjson"), "ndjson"),
            (Some("text/plain"), "text"),
            (Some("text/html"), "other"),
        ];
        for (content_type, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(content_type) = content_type {
                headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header"));
            }
            assert_eq!(protocol(&headers), expected, "{content_type:?}");
        }
    }
}
