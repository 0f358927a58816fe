//! The cases every store must pass, each a function of the backend it runs on.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use model::Stream;
use serde_json::{Value, json};
use store::{HistogramRequest, Order, QueryLimits, SearchRequest};

use crate::backends::{Backend, Settings};
use crate::events::{filter, ids, incoming, incoming_to, stored, stream_filter, stream_ids, total};

fn sample() -> Vec<Value> {
    vec![
        json!({"id": "e1", "timestamp": "2026-02-18T12:00:00Z", "service": "order-service", "level": "ERROR",
               "message": "Payment failed", "userId": "123", "metadata": {"orderId": "ORD-98765", "retryCount": 1}}),
        json!({"id": "e2", "timestamp": "2026-02-18T12:01:00Z", "service": "payment-api", "level": "warn",
               "message": "Payment retry interrupted", "metadata": {"orderId": "ORD-1", "retryCount": 3, "latency": 12.5}}),
        json!({"id": "e3", "timestamp": "2026-02-18T12:02:00Z", "service": "auth", "level": "info",
               "message": "interrupt received", "host": "web-1", "metadata": {"ok": true}}),
        json!({"id": "e4", "timestamp": "2026-02-18T12:03:00Z", "userId": "12345", "action": "User_Login",
               "metadata": {"ip": "192.168.1.1", "bytes": 18446744073709551615u64}}),
    ]
}

pub async fn queries_find_exactly_what_they_describe(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store.stage(incoming("default", &sample())).await.unwrap();
    store.commit(Some(7)).await.unwrap();

    let cases: &[(&str, &[&str])] = &[
        ("", &["e4", "e3", "e2", "e1"]),
        ("payment", &["e2", "e1"]),
        ("PAYMENT failed", &["e1"]),
        ("\"payment failed\"", &["e1"]),
        ("\"failed payment\"", &[]),
        ("interrupted", &["e2"]),
        ("interrupt", &["e3"]),
        ("interr*", &["e3", "e2"]),
        ("service:order-service", &["e1"]),
        ("service:pay*", &["e2"]),
        ("service:Order-service", &[]),
        ("level:error", &["e1"]),
        ("level:>=warn", &["e2", "e1"]),
        ("level:<warn", &["e4", "e3"]),
        ("metadata.orderId:ORD-98765", &["e1"]),
        ("metadata.orderId:ord-98765", &["e1"]),
        ("attributes.metadata.orderId:ORD-98765", &["e1"]),
        ("metadata.orderId:ORD*", &["e2", "e1"]),
        ("metadata.retryCount:>1", &["e2"]),
        ("metadata.retryCount:>=1", &["e2", "e1"]),
        ("metadata.retryCount:1", &["e1"]),
        ("metadata.latency:>12", &["e2"]),
        ("metadata.latency:[10 TO 13]", &["e2"]),
        ("metadata.latency:<12.5", &[]),
        ("metadata.ok:true", &["e3"]),
        ("metadata.ip:192.168.1.1", &["e4"]),
        ("metadata.bytes:18446744073709551615", &["e4"]),
        ("metadata.bytes:>1", &["e4"]),
        ("metadata.bytes:<100", &[]),
        ("action:User_Login", &["e4"]),
        ("user_id:123", &["e1"]),
        ("userId:12345", &["e4"]),
        ("host:web-1", &["e3"]),
        ("id:e2", &["e2"]),
        ("timestamp:>=2026-02-18T12:02:00Z", &["e4", "e3"]),
        ("payment OR host:web-1", &["e3", "e2", "e1"]),
        ("NOT payment", &["e4", "e3"]),
        ("payment -level:error", &["e2"]),
        (
            "(service:auth OR service:payment-api) AND NOT interrupt",
            &["e2"],
        ),
    ];
    for (q, expected) in cases {
        assert_eq!(ids(store, "default", q).await, *expected, "query {q:?}");
    }
}

pub async fn tenants_never_see_each_other(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store.stage(incoming("a", &sample())).await.unwrap();
    store
        .stage(incoming(
            "b",
            &[json!({"id": "e1", "message": "secret of b"})],
        ))
        .await
        .unwrap();
    store.commit(Some(1)).await.unwrap();
    assert_eq!(ids(store, "b", "").await, ["e1"]);
    assert_eq!(ids(store, "a", "secret").await, Vec::<String>::new());
    assert!(
        store
            .get("a", Stream::Logs, "e1")
            .await
            .unwrap()
            .unwrap()
            .get()
            .contains("Payment failed")
    );
    assert!(
        store
            .get("b", Stream::Logs, "e1")
            .await
            .unwrap()
            .unwrap()
            .get()
            .contains("secret of b")
    );
    assert!(store.get("c", Stream::Logs, "e1").await.unwrap().is_none());
    assert_eq!(store.stats(filter("b", "")).await.unwrap().total, 1);
}

pub async fn pages_follow_the_cursor_without_gaps_or_repeats(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    // Many events share a timestamp, so the tiebreak decides their order.
    let events: Vec<Value> = (0..250)
        .map(|i| json!({"id": format!("id-{i}"), "timestamp": 1_000 + (i / 10), "message": "tick"}))
        .collect();
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(Some(1)).await.unwrap();
    for order in [Order::Descending, Order::Ascending] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let request = SearchRequest {
                filter: filter("default", "tick"),
                limit: 7,
                cursor,
                order,
            };
            let page = store.search(request).await.unwrap();
            for raw in &page.events {
                let value: Value = serde_json::from_str(raw.get()).unwrap();
                seen.push((
                    value["timestamp"].as_str().unwrap().to_owned(),
                    value["id"].as_str().unwrap().to_owned(),
                ));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut unique: Vec<String> = seen.iter().map(|(_, id)| id.clone()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 250, "{order:?}: every event exactly once");
        let times: Vec<&String> = seen.iter().map(|(t, _)| t).collect();
        let mut sorted = times.clone();
        sorted.sort();
        if order == Order::Descending {
            sorted.reverse();
        }
        assert_eq!(times, sorted, "{order:?}: ordered by time");
        let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
        let mut sent: Vec<String> = (0..250).map(|i| format!("id-{i}")).collect();
        if order == Order::Descending {
            sent.reverse();
        }
        assert_eq!(
            ids,
            sent.iter().collect::<Vec<_>>(),
            "{order:?}: ties in sent order"
        );
    }
}

pub async fn stats_histogram_and_replacement(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store.stage(incoming("default", &sample())).await.unwrap();
    store.commit(Some(3)).await.unwrap();
    let stats = store.stats(filter("default", "")).await.unwrap();
    assert_eq!(stats.total, 4);
    assert_eq!(stats.by_service.get("order-service"), Some(&1));
    assert_eq!(
        stats.by_service.get(""),
        Some(&1),
        "the activity event has no service"
    );
    assert_eq!(stats.by_level.get("info"), Some(&2));
    assert_eq!(stats.by_level.get("error"), Some(&1));

    let buckets = store
        .histogram(HistogramRequest {
            filter: filter("default", ""),
            interval_nanos: 120_000_000_000,
        })
        .await
        .unwrap();
    let counts: Vec<(String, u64)> = buckets
        .iter()
        .map(|b| (b.start.to_rfc3339(), b.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("2026-02-18T12:00:00Z".to_owned(), 2),
            ("2026-02-18T12:02:00Z".to_owned(), 2)
        ]
    );

    // The same client id sent again replaces the first copy.
    store
        .stage(incoming(
            "default",
            &[json!({"id": "e1", "message": "Payment failed again"})],
        ))
        .await
        .unwrap();
    store.commit(Some(4)).await.unwrap();
    assert_eq!(store.stats(filter("default", "")).await.unwrap().total, 4);
    assert!(
        store
            .get("default", Stream::Logs, "e1")
            .await
            .unwrap()
            .unwrap()
            .get()
            .contains("again")
    );
}

pub async fn commits_carry_the_queue_position_across_reopen(backend: &dyn Backend) {
    {
        let store = backend.open().await;
        assert_eq!(store.committed_position().await.unwrap(), None);
        store.stage(incoming("default", &sample())).await.unwrap();
        store.commit(Some(42)).await.unwrap();
        // Staged but never committed: gone after a restart, the queue replays it.
        store
            .stage(incoming(
                "default",
                &[json!({"id": "lost", "message": "m"})],
            ))
            .await
            .unwrap();
    }
    let store = backend.open().await;
    let store = &*store;
    assert_eq!(store.committed_position().await.unwrap(), Some(42));
    assert_eq!(total(store, filter("default", "")).await, 4);
    assert!(
        store
            .get("default", Stream::Logs, "lost")
            .await
            .unwrap()
            .is_none()
    );
    // A commit that covers no queue position keeps the last one.
    store.commit(None).await.unwrap();
    assert_eq!(store.committed_position().await.unwrap(), Some(42));
}

pub async fn commits_carry_partition_offsets_that_never_move_back(backend: &dyn Backend) {
    let offsets = |pairs: &[(u32, u64)]| pairs.iter().copied().collect::<BTreeMap<u32, u64>>();
    {
        let store = backend.open().await;
        assert!(store.committed_offsets("events").await.unwrap().is_empty());
        store.stage(incoming("default", &sample())).await.unwrap();
        store
            .commit_offsets("events", &[(0, 7), (1, 3)])
            .await
            .unwrap();
        // Staged but never committed: gone after a restart, with its offsets.
        store
            .stage(incoming(
                "default",
                &[json!({"id": "lost", "message": "m"})],
            ))
            .await
            .unwrap();
    }
    let store = backend.open().await;
    let store = &*store;
    assert_eq!(
        store.committed_offsets("events").await.unwrap(),
        offsets(&[(0, 7), (1, 3)])
    );
    assert_eq!(total(store, filter("default", "")).await, 4);
    assert!(
        store
            .get("default", Stream::Logs, "lost")
            .await
            .unwrap()
            .is_none()
    );
    // A late commit of a worker that lost partition 0 leaves its newer offset;
    // partition 1 moves on, a new partition joins, other topics are apart.
    store
        .commit_offsets("events", &[(0, 5), (1, 9), (2, 1)])
        .await
        .unwrap();
    store.commit_offsets("other", &[(0, 100)]).await.unwrap();
    assert_eq!(
        store.committed_offsets("events").await.unwrap(),
        offsets(&[(0, 7), (1, 9), (2, 1)])
    );
    assert_eq!(
        store.committed_offsets("other").await.unwrap(),
        offsets(&[(0, 100)])
    );
    // Plain commits keep the offsets, and offsets keep the queue position.
    store.commit(Some(11)).await.unwrap();
    store.commit(None).await.unwrap();
    store.commit_offsets("events", &[(1, 10)]).await.unwrap();
    assert_eq!(store.committed_position().await.unwrap(), Some(11));
    assert_eq!(
        store.committed_offsets("events").await.unwrap(),
        offsets(&[(0, 7), (1, 10), (2, 1)])
    );
}

pub async fn semantic_query_errors_are_invalid_queries(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    for q in [
        "level:loud",
        "service:>3",
        "timestamp:yesterday",
        "metadata.x:>abc",
        "tenant:other",
        "timestamp:>soon",
    ] {
        let error = store
            .stats(filter("default", &format!("ok {q}")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, store::StoreError::InvalidTerm { position: 3, .. }),
            "{q}: {error}"
        );
    }
}

pub async fn a_prefix_matching_too_many_terms_is_refused_where_it_stands(backend: &dyn Backend) {
    let store = backend
        .open_with(Settings {
            limits: QueryLimits {
                max_prefix_terms: 3,
                ..QueryLimits::default()
            },
            ..Settings::default()
        })
        .await;
    let store = &*store;
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"message": format!("word{i}"), "service": format!("svc{i}")}))
        .collect();
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(Some(1)).await.unwrap();
    for q in ["x OR word*", "x OR message:wor*", "x OR service:svc*"] {
        let error = store.stats(filter("default", q)).await.unwrap_err();
        assert!(
            matches!(
                error,
                store::StoreError::QueryTooComplex {
                    position: Some(5),
                    ..
                }
            ),
            "{q}: {error}"
        );
    }
    for q in ["word1*", "word*3", "service:svc1*"] {
        store.stats(filter("default", q)).await.unwrap();
    }
    assert_eq!(
        store
            .stats(filter("default", "word1*"))
            .await
            .unwrap()
            .total,
        1
    );
}

pub async fn a_histogram_with_too_many_buckets_is_refused(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let events: Vec<Value> = (0..10_001)
        .map(|i| json!({"timestamp": 1_000 + i, "message": "m"}))
        .collect();
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(Some(1)).await.unwrap();
    let second = 1_000_000_000;
    let fine = HistogramRequest {
        filter: filter("default", ""),
        interval_nanos: second,
    };
    let error = store.histogram(fine).await.unwrap_err();
    assert!(
        matches!(error, store::StoreError::InvalidQuery(_)),
        "{error}"
    );
    let coarse = HistogramRequest {
        filter: filter("default", ""),
        interval_nanos: 2 * second,
    };
    assert_eq!(store.histogram(coarse).await.unwrap().len(), 5_001);
}

pub async fn the_same_id_in_both_streams_is_two_events_each_in_its_own_stream(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    let store = &*store;
    store
        .stage(incoming_to(
            "default",
            Stream::Logs,
            &[
                json!({"id": "same", "timestamp": 1_000, "service": "web", "level": "warn",
                     "message": "log line"}),
            ],
        ))
        .await
        .unwrap();
    store
        .stage(incoming_to(
            "default",
            Stream::Audit,
            &[
                json!({"id": "same", "timestamp": 1_000, "service": "auth", "level": "info",
                       "message": "audit entry"}),
                json!({"id": "only-audit", "timestamp": 2_000, "message": "audit only",
                       "stream": "logs"}),
            ],
        ))
        .await
        .unwrap();
    store.commit(Some(1)).await.unwrap();

    // Search: every query sees its own stream only, `*` and `id:` included.
    for q in ["", "*", "id:same"] {
        assert_eq!(
            stream_ids(store, "default", Stream::Logs, q).await,
            ["same"],
            "logs {q:?}"
        );
    }
    assert_eq!(
        stream_ids(store, "default", Stream::Audit, "").await,
        ["only-audit", "same"]
    );
    assert_eq!(
        stream_ids(store, "default", Stream::Audit, "id:same").await,
        ["same"]
    );
    assert_eq!(ids(store, "default", "audit").await, Vec::<String>::new());
    assert_eq!(
        ids(store, "default", "id:only-audit").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(store, "default", "stream:audit OR stream:logs").await,
        Vec::<String>::new(),
        "a client's `stream` field is an attribute, not the stream"
    );
    assert_eq!(
        stream_ids(store, "default", Stream::Audit, "log").await,
        Vec::<String>::new()
    );

    // Get: by id, each stream returns its own event and never the other's.
    let log = stored(store, "default", Stream::Logs, "same")
        .await
        .unwrap();
    assert_eq!(log["message"], "log line");
    assert_eq!(log.get("stream"), None, "log events are stored as before");
    let audit = stored(store, "default", Stream::Audit, "same")
        .await
        .unwrap();
    assert_eq!(audit["message"], "audit entry");
    assert_eq!(audit["stream"], "audit");
    assert_eq!(
        audit["tenant"], "default",
        "the stored event keeps its real tenant"
    );
    assert!(
        stored(store, "default", Stream::Logs, "only-audit")
            .await
            .is_none()
    );
    let only = stored(store, "default", Stream::Audit, "only-audit")
        .await
        .unwrap();
    assert_eq!(only["stream"], "audit");
    assert_eq!(only["attributes"]["stream"], "logs");

    // Stats and histograms count their own stream only.
    let logs = store.stats(filter("default", "")).await.unwrap();
    assert_eq!(logs.total, 1);
    assert_eq!(logs.by_service.get("web"), Some(&1));
    assert_eq!(logs.by_service.get("auth"), None);
    assert_eq!(logs.by_level.get("warn"), Some(&1));
    let audits = store
        .stats(stream_filter("default", Stream::Audit, ""))
        .await
        .unwrap();
    assert_eq!(audits.total, 2);
    assert_eq!(audits.by_service.get("auth"), Some(&1));
    assert_eq!(audits.by_service.get("web"), None);
    for (stream, count) in [(Stream::Logs, 1), (Stream::Audit, 2)] {
        let buckets = store
            .histogram(HistogramRequest {
                filter: stream_filter("default", stream, ""),
                interval_nanos: 1_000_000_000,
            })
            .await
            .unwrap();
        assert_eq!(
            buckets.iter().map(|b| b.count).sum::<u64>(),
            count,
            "{stream:?}"
        );
    }
}

pub async fn replacing_by_client_id_stays_within_the_stream(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store
        .stage(incoming_to(
            "default",
            Stream::Audit,
            &[json!({"id": "x", "message": "original audit"})],
        ))
        .await
        .unwrap();
    store
        .stage(incoming_to(
            "default",
            Stream::Logs,
            &[json!({"id": "x", "message": "original log"})],
        ))
        .await
        .unwrap();
    store.commit(Some(1)).await.unwrap();

    // A log event with the audit event's id replaces the log event only…
    store
        .stage(incoming_to(
            "default",
            Stream::Logs,
            &[json!({"id": "x", "message": "replaced log"})],
        ))
        .await
        .unwrap();
    store.commit(Some(2)).await.unwrap();
    let message = |event: Option<Value>| event.unwrap()["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message(stored(store, "default", Stream::Logs, "x").await),
        "replaced log"
    );
    assert_eq!(
        message(stored(store, "default", Stream::Audit, "x").await),
        "original audit"
    );

    // …and an audit event with that id again changes nothing: the trail is
    // append-only, so the store keeps the first and skips the repeat.
    store
        .stage(incoming_to(
            "default",
            Stream::Audit,
            &[json!({"id": "x", "message": "replaced audit"})],
        ))
        .await
        .unwrap();
    store.commit(Some(3)).await.unwrap();
    assert_eq!(
        message(stored(store, "default", Stream::Logs, "x").await),
        "replaced log"
    );
    assert_eq!(
        message(stored(store, "default", Stream::Audit, "x").await),
        "original audit"
    );
    for stream in [Stream::Logs, Stream::Audit] {
        assert_eq!(
            store
                .stats(stream_filter("default", stream, ""))
                .await
                .unwrap()
                .total,
            1,
            "{stream:?}"
        );
    }
    assert_eq!(store.footprint().await.unwrap().events, 2);
}

pub async fn two_tenants_by_two_streams_are_four_partitions(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let cells = [
        ("a", Stream::Logs),
        ("a", Stream::Audit),
        ("b", Stream::Logs),
        ("b", Stream::Audit),
    ];
    for (tenant, stream) in cells {
        let label = format!("{tenant}-{stream}");
        store
            .stage(incoming_to(
                tenant,
                stream,
                &[
                    json!({"id": "shared", "message": format!("shared {label}")}),
                    json!({"id": label, "message": format!("own {label}")}),
                ],
            ))
            .await
            .unwrap();
    }
    store.commit(Some(1)).await.unwrap();
    for (tenant, stream) in cells {
        let label = format!("{tenant}-{stream}");
        assert_eq!(
            stream_ids(store, tenant, stream, "").await.len(),
            2,
            "{label}"
        );
        assert_eq!(
            store
                .stats(stream_filter(tenant, stream, ""))
                .await
                .unwrap()
                .total,
            2,
            "{label}"
        );
        let shared = stored(store, tenant, stream, "shared").await.unwrap();
        assert_eq!(shared["message"], format!("shared {label}"));
        assert_eq!(shared["tenant"], tenant);
        for (other_tenant, other_stream) in cells {
            let other = format!("{other_tenant}-{other_stream}");
            let visible = other == label;
            assert_eq!(
                stored(store, tenant, stream, &other).await.is_some(),
                visible,
                "get {other} from {label}"
            );
            assert_eq!(
                stream_ids(store, tenant, stream, &format!("id:{other}"))
                    .await
                    .len(),
                usize::from(visible),
                "search id:{other} in {label}"
            );
            assert_eq!(
                stream_ids(store, tenant, stream, &format!("\"own {other}\""))
                    .await
                    .len(),
                usize::from(visible),
                "search own {other} in {label}"
            );
        }
    }
    assert_eq!(store.footprint().await.unwrap().events, 8);
}

pub async fn source_is_the_servers_field_on_audit_and_an_attribute_on_logs(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store
        .stage(incoming(
            "default",
            &[json!({"id": "log", "message": "m", "source": "logbook"})],
        ))
        .await
        .unwrap();
    let mut audit = incoming_to(
        "default",
        Stream::Audit,
        &[
            json!({"id": "own", "message": "key.create"}),
            json!({"id": "client", "message": "refund", "source": "logbook"}),
        ],
    );
    for (queued, source) in audit
        .iter_mut()
        .zip([model::Source::Logbook, model::Source::Client])
    {
        queued.event.source = Some(source);
        queued.json = serde_json::to_string(&queued.event).unwrap();
    }
    store.stage(audit).await.unwrap();
    store.commit(Some(1)).await.unwrap();

    let audit_ids = |q: &'static str| stream_ids(store, "default", Stream::Audit, q);
    assert_eq!(audit_ids("source:logbook").await, ["own"]);
    assert_eq!(audit_ids("source:client").await, ["client"]);
    assert_eq!(audit_ids("attributes.source:logbook").await, ["client"]);
    assert_eq!(
        ids(store, "default", "source:logbook").await,
        ["log"],
        "on logs, `source` is still an attribute"
    );
}
