//! The name, type and help text of every metric Logbook records, including
//! those recorded by parts that only use the `metrics` macros (the live tail,
//! alerts), so each has its `# HELP` and `# TYPE` lines.

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// How a metric behaves.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric: name (base units, `_total` for counters), kind, help.
const METRICS: &[(&str, Kind, &str)] = &[
    // Ingest (api).
    (
        "logbook_ingest_requests_total",
        Counter,
        "Ingest requests by tenant, stream, protocol, outcome (accepted, rejected, rate_limited, queue_full, failed) and reason (the error code; none when accepted).",
    ),
    (
        "logbook_ingest_events_total",
        Counter,
        "Events of ingest requests by tenant, stream, protocol, outcome and reason; an event refused on its own is rejected with its own reason.",
    ),
    (
        "logbook_ingest_bytes_total",
        Counter,
        "Request-body bytes of ingest requests as sent, by tenant, stream, protocol and outcome.",
    ),
    (
        "logbook_ingest_ack_seconds",
        Histogram,
        "Time from an accepted ingest request's arrival until its events were durable in the queue and the acknowledgement could be sent.",
    ),
    // Queries and access (api).
    (
        "logbook_query_duration_seconds",
        Histogram,
        "Time to answer a read endpoint (search, stats, histogram, event by id, audit proofs and exports), by endpoint.",
    ),
    (
        "logbook_auth_failures_total",
        Counter,
        "Refused callers by kind: the error code of the refusal (missing_credentials, invalid_credentials, invalid_token, token_expired, forbidden, invalid_login…).",
    ),
    // Queue (sampled).
    (
        "logbook_queue_pending_bytes",
        Gauge,
        "Bytes appended to the queue and not yet released by the workers.",
    ),
    (
        "logbook_queue_max_bytes",
        Gauge,
        "Pending bytes at which the queue refuses appends (ingest answers queue_full).",
    ),
    (
        "logbook_queue_pending_records",
        Gauge,
        "Records appended and not yet acknowledged, where the queue counts them (Redis).",
    ),
    (
        "logbook_queue_segments",
        Gauge,
        "Segment files of the embedded queue on disk.",
    ),
    (
        "logbook_queue_syncs_total",
        Counter,
        "Data syncs (fdatasync) of the embedded queue since this process opened it; many appends share one.",
    ),
    (
        "logbook_queue_failed",
        Gauge,
        "1 while the queue cannot take appends (a failed write, an unreachable broker), else 0.",
    ),
    (
        "logbook_queue_oldest_unprocessed_age_seconds",
        Gauge,
        "Age of the oldest event a worker of this process has read and not yet committed; 0 when it has none.",
    ),
    // Worker (pipeline).
    (
        "logbook_worker_running",
        Gauge,
        "1 while this process's pipeline worker runs.",
    ),
    (
        "logbook_worker_store_failing",
        Gauge,
        "1 while the worker's last commit failed because the store was unavailable.",
    ),
    (
        "logbook_worker_batches_total",
        Counter,
        "Batches the worker committed and acknowledged.",
    ),
    (
        "logbook_worker_batch_seconds",
        Histogram,
        "Time from reading a batch's first record to acknowledging the batch.",
    ),
    (
        "logbook_worker_commit_seconds",
        Histogram,
        "Time of a successful store commit.",
    ),
    (
        "logbook_worker_events_committed_total",
        Counter,
        "Events the worker committed to the store.",
    ),
    (
        "logbook_worker_retries_total",
        Counter,
        "Operations the worker tried again after a failure, by operation (read, commit, ack, dead_letter, refused_record: a record sent through the queue's retry queues).",
    ),
    (
        "logbook_worker_dead_letters_total",
        Counter,
        "Dead letters written, by reason (unreadable record, event refused by the store).",
    ),
    // Store and audit trails (sampled).
    (
        "logbook_store_events",
        Gauge,
        "Events the store holds, over every tenant.",
    ),
    (
        "logbook_store_bytes",
        Gauge,
        "Bytes the store takes, over every tenant.",
    ),
    (
        "logbook_audit_trail_signed_events",
        Gauge,
        "Events of a tenant's audit trail covered by its newest signed checkpoint.",
    ),
    (
        "logbook_audit_checkpoint_age_seconds",
        Gauge,
        "Age of a tenant's newest signed audit checkpoint.",
    ),
    (
        "logbook_metrics_sample_seconds",
        Histogram,
        "Time the sampler took to measure the queue, the store and the audit trails.",
    ),
    // Live tail (recorded by the tail).
    (
        "logbook_tail_subscribers",
        Gauge,
        "Live-tail subscribers connected, by stream.",
    ),
    (
        "logbook_tail_dropped_events_total",
        Counter,
        "Events a live-tail subscriber missed because it read too slowly, by stream.",
    ),
    (
        "logbook_tail_delivered_events_total",
        Counter,
        "Events delivered to live-tail subscribers, by stream.",
    ),
    // Alerts (recorded by the alerting).
    (
        "logbook_alert_notifications_total",
        Counter,
        "Alert notifications sent, by outcome.",
    ),
    ("logbook_alerts_firing", Gauge, "Alerts firing now."),
];

/// Gives every metric its help text and type.
pub(super) fn describe_all() {
    for &(name, kind, help) in METRICS {
        match kind {
            Counter => describe_counter!(name, help),
            Gauge => describe_gauge!(name, help),
            Histogram => describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for &(name, kind, help) in METRICS {
            assert!(seen.insert(name), "{name} is described twice");
            assert!(name.starts_with("logbook_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(!help.is_empty(), "{name}");
            match kind {
                Counter => assert!(name.ends_with("_total"), "{name}"),
                Gauge | Histogram => assert!(!name.ends_with("_total"), "{name}"),
            }
            if let Histogram = kind {
                assert!(name.ends_with("_seconds"), "{name} gets no latency buckets");
            }
        }
    }
}
