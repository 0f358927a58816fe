//! Retention: what `expire_logs` deletes, and everything it must leave alone.
#![allow(clippy::unwrap_used)]

use model::{Stream, Timestamp};
use serde_json::{Value, json};
use store::HistogramRequest;

use crate::backends::Backend;
use crate::events::{filter, ids, incoming, incoming_to, stream_ids, total};

fn at(time: &str) -> Timestamp {
    Timestamp::parse(time).unwrap()
}

fn log(id: &str, time: &str) -> Value {
    json!({"id": id, "timestamp": time, "service": "billing", "level": "info", "message": format!("invoice {id}")})
}

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

pub async fn expired_logs_leave_every_read_and_nothing_else_does(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let acme = [
        log("a1", "2026-02-16T10:00:00Z"),
        log("a2", "2026-02-17T10:00:00Z"),
        log("a3", "2026-02-18T10:00:00Z"),
    ];
    store.stage(incoming("acme", &acme)).await.unwrap();
    let globex = [
        log("g1", "2026-02-16T10:00:00Z"),
        log("g3", "2026-02-18T10:00:00Z"),
    ];
    store.stage(incoming("globex", &globex)).await.unwrap();
    let audit =
        [json!({"id": "au1", "timestamp": "2026-02-16T09:00:00Z", "action": "role.change"})];
    store
        .stage(incoming_to("acme", Stream::Audit, &audit))
        .await
        .unwrap();
    store.commit(None).await.unwrap();

    let cutoff = at("2026-02-17T12:00:00Z");
    for _ in 0..2 {
        // A second call finds nothing left to delete.
        store.expire_logs("acme", cutoff).await.unwrap();
        assert_eq!(ids(store, "acme", "").await, ["a3"]);
        assert_eq!(ids(store, "acme", "invoice").await, ["a3"]);
        let stats = store.stats(filter("acme", "")).await.unwrap();
        assert_eq!(
            (stats.total, stats.by_service.get("billing")),
            (1, Some(&1))
        );
        let buckets = store
            .histogram(HistogramRequest {
                filter: filter("acme", ""),
                interval_nanos: 24 * NANOS_PER_HOUR,
            })
            .await
            .unwrap();
        let counted: Vec<(String, u64)> = buckets
            .iter()
            .filter(|bucket| bucket.count > 0)
            .map(|bucket| (bucket.start.to_rfc3339(), bucket.count))
            .collect();
        assert_eq!(counted, [("2026-02-18T00:00:00Z".to_owned(), 1)]);
        assert!(
            store
                .get("acme", Stream::Logs, "a1")
                .await
                .unwrap()
                .is_none()
        );
        // The other tenant and the tenant's audit trail are untouched.
        assert_eq!(ids(store, "globex", "").await, ["g3", "g1"]);
        assert_eq!(stream_ids(store, "acme", Stream::Audit, "").await, ["au1"]);
    }

    // What the pipeline staged is neither committed nor lost by an expiry.
    store
        .stage(incoming("acme", &[log("a4", "2026-02-18T11:00:00Z")]))
        .await
        .unwrap();
    store
        .expire_logs("acme", at("2026-02-18T10:30:00Z"))
        .await
        .unwrap();
    let staged_hidden = ids(store, "acme", "").await;
    assert!(
        staged_hidden.is_empty() || staged_hidden == ["a3"],
        "the expiry committed staged events: {staged_hidden:?}"
    );
    store.commit(None).await.unwrap();
    assert_eq!(ids(store, "acme", "").await, ["a4"]);
    assert_eq!(total(store, filter("acme", "")).await, 1);
    assert_eq!(total(store, filter("globex", "")).await, 2);
}
