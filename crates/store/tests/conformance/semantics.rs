//! Cases that pin the finer points of matching, where a backend built on
//! another engine would most easily differ: how attribute values are cut and
//! typed, phrases around words too long to index, characters PostgreSQL text
//! cannot hold, ids seen twice, far-away days and remarks about unknown fields.
#![allow(clippy::unwrap_used)]

use model::Stream;
use serde_json::{Value, json};
use store::{Filter, HistogramRequest, Order, SearchRequest};

use crate::backends::Backend;
use crate::events::{filter, ids, incoming, stored, total};

/// Asserts what each query finds, as (query, ids newest first).
async fn expect(store: &dyn store::EventStore, cases: &[(&str, &[&str])]) {
    for (q, expected) in cases {
        assert_eq!(ids(store, "default", q).await, *expected, "query {q:?}");
    }
}

pub async fn attribute_values_are_cut_and_typed_as_the_embedded_index_does(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let long = "x".repeat(1100);
    let events = [
        json!({"id": "a", "timestamp": 1_000, "message": "attributes",
               "a.b": "Dotted", "nested": {"k": "Hello World", "a": {"b": "Deep"}},
               "list": [1, "Two", {"deep": true}, [3.5]], "float": 2.0, "fraction": 2.5,
               "big": 18446744073709551615u64, "negative": -5, "date": "2026-02-18T12:00:00Z",
               "digits": "12345", "long": long, "empty": "", "umlaut": "ÄÖÜ", "sigma": "ΣΑΣ",
               "nothing": null, "flag": false}),
        json!({"id": "b", "timestamp": 2_000, "message": "others", "nested": {"k": "hello"},
               "float": 2.25, "fraction": -0.5, "negative": 7, "digits": 12345, "flag": "false"}),
    ];
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(None).await.unwrap();
    expect(
        store,
        &[
            ("a.b:dotted", &["a"]),
            ("nested.a.b:DEEP", &["a"]),
            ("nested.k:\"hello world\"", &["a"]),
            ("nested.k:hello", &["b"]),
            ("nested.k:hel*", &["b", "a"]),
            ("nested.k:\"hello w*\"", &[]),
            ("list:1", &["a"]),
            ("list:two", &["a"]),
            ("list:3.5", &["a"]),
            ("list.deep:true", &["a"]),
            ("float:2", &["a"]),
            ("float:2.0", &["a"]),
            ("float:[1.5 TO 2]", &["a"]),
            ("float:>2", &["b"]),
            ("float:>=2", &["b", "a"]),
            ("fraction:2.5", &["a"]),
            ("fraction:>2.4", &["a"]),
            ("fraction:<2.5", &["b"]),
            ("fraction:[-1 TO 0]", &["b"]),
            ("fraction:[* TO *]", &["b", "a"]),
            ("big:18446744073709551615", &["a"]),
            ("big:>10000000000000000000", &["a"]),
            ("big:<10000000000000000000", &[]),
            ("negative:<0", &["a"]),
            ("negative:-5", &["a"]),
            ("negative:>=-5", &["b", "a"]),
            ("date:\"2026-02-18T12:00:00Z\"", &[]),
            ("date:2026*", &[]),
            ("digits:12345", &["b", "a"]),
            ("digits:123*", &["a"]),
            ("digits:>100", &["b"]),
            ("long:x*", &[]),
            ("umlaut:äöü", &["a"]),
            ("umlaut:ÄÖÜ", &["a"]),
            ("umlaut:äö*", &["a"]),
            ("sigma:σασ", &["a"]),
            ("flag:false", &["b", "a"]),
            ("flag:FALSE", &["b"]),
            ("flag:f*", &["b"]),
            ("nothing:null", &[]),
            ("attributes.nested.k:hello", &["b"]),
            ("nested.k:hello OR fraction:2.5", &["b", "a"]),
            ("-nested.k:hello", &["a"]),
            ("NOT float:>=2", &[]),
            ("NOT fraction:>0", &["b"]),
        ],
    )
    .await;
    let warnings = store
        .warnings(&filter(
            "default",
            "nested.k:x missing.path:y date:z long:y nothing:n list.deep:t nested:x",
        ))
        .await
        .unwrap();
    assert_eq!(
        warnings,
        [
            "field \"missing.path\" is not a known field and no stored event has the attribute \"missing.path\"",
            "field \"nested\" is not a known field and no stored event has the attribute \"nested\"",
            "field \"nothing\" is not a known field and no stored event has the attribute \"nothing\"",
        ]
    );
    let other_stream = Filter {
        stream: Stream::Audit,
        ..filter("default", "nested.k:x")
    };
    assert_eq!(store.warnings(&other_stream).await.unwrap().len(), 1);
    assert!(
        store
            .warnings(&filter("default", "service:x level:info \"a b\""))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn phrases_keep_the_gap_of_a_word_too_long_to_index(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let long = "y".repeat(300);
    let events = [
        json!({"id": "gap", "timestamp": 1_000, "message": format!("alpha {long} beta gamma alpha")}),
        json!({"id": "near", "timestamp": 2_000, "message": "alpha beta, gamma.delta beta"}),
    ];
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(None).await.unwrap();
    expect(
        store,
        &[
            ("\"alpha beta\"", &["near"]),
            (&format!("\"alpha {long} beta\""), &["gap"]),
            (&format!("\"alpha {}z beta\"", "q".repeat(260)), &["gap"]),
            ("\"delta beta\"", &["near"]),
            ("gamma.delta", &["near"]),
            ("\"gamma alpha\"", &["gap"]),
            ("\"alpha gamma\"", &[]),
            (&long, &[]),
            ("y*", &[]),
            ("ALPHA", &["near", "gap"]),
            ("message:\"beta gamma\"", &["near", "gap"]),
            ("msg:alph*", &["near", "gap"]),
        ],
    )
    .await;
}

pub async fn text_postgresql_cannot_hold_is_kept_as_sent(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let events = [
        json!({"id": "nul", "timestamp": 1_000, "service": "a\u{0}b", "host": "h\u{1}\u{2}\u{3}",
               "message": "zero\u{0}byte \\ 'quoted' word", "metadata": {"k": "v\u{0}W", "key\u{0}": "hidden"}}),
        json!({"id": "plain", "timestamp": 2_000, "service": "a", "message": "byte"}),
    ];
    let queued = incoming("default", &events);
    let sent: Vec<String> = queued.iter().map(|event| event.json.clone()).collect();
    store.stage(queued).await.unwrap();
    store.commit(None).await.unwrap();
    let raw = store
        .get("default", Stream::Logs, "nul")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.get(), sent[0], "the event comes back byte for byte");
    expect(
        store,
        &[
            ("service:\"a\u{0}b\"", &["nul"]),
            ("service:a*", &["plain", "nul"]),
            ("service:a\u{0}*", &["nul"]),
            ("service:b*", &[]),
            ("host:\"h\u{1}\u{2}\u{3}\"", &["nul"]),
            ("zero", &["nul"]),
            ("\"zero byte\"", &["nul"]),
            ("byte", &["plain", "nul"]),
            ("quoted", &["nul"]),
            ("\"'quoted'\"", &["nul"]),
            ("metadata.k:\"V\u{0}w\"", &["nul"]),
            ("metadata.k:v*", &["nul"]),
        ],
    )
    .await;
    let stats = store.stats(filter("default", "")).await.unwrap();
    assert_eq!(stats.by_service.get("a\u{0}b"), Some(&1));
    assert_eq!(stats.by_service.get("a"), Some(&1));
}

pub async fn an_id_seen_again_is_stored_once(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    // Server ids: a record delivered twice, in one commit and in the next.
    let record = incoming(
        "default",
        &[json!({"message": "one"}), json!({"message": "two"})],
    );
    store.stage(record.clone()).await.unwrap();
    store.stage(record.clone()).await.unwrap();
    store.commit(None).await.unwrap();
    assert_eq!(total(store, filter("default", "")).await, 2);
    store.stage(record.clone()).await.unwrap();
    store.commit(None).await.unwrap();
    assert_eq!(total(store, filter("default", "")).await, 2);
    assert_eq!(total(store, filter("default", "one OR two")).await, 2);

    // A client's id replaces, even within one commit, and a replay of the
    // replacing record changes nothing.
    let first = incoming("default", &[json!({"id": "c", "message": "version one"})]);
    let second = incoming("default", &[json!({"id": "c", "message": "version two"})]);
    let third = incoming("default", &[json!({"id": "c", "message": "version three"})]);
    store.stage(first).await.unwrap();
    store.commit(None).await.unwrap();
    store.stage(second.clone()).await.unwrap();
    store.stage(third.clone()).await.unwrap();
    store.commit(None).await.unwrap();
    store.stage(third).await.unwrap();
    store.commit(None).await.unwrap();
    assert_eq!(total(store, filter("default", "")).await, 3);
    assert_eq!(ids(store, "default", "version").await, ["c"]);
    assert_eq!(ids(store, "default", "three").await, ["c"]);
    assert_eq!(ids(store, "default", "one OR two").await.len(), 2);
    let event = stored(store, "default", Stream::Logs, "c").await.unwrap();
    assert_eq!(event["message"], "version three");
    assert_eq!(store.footprint().await.unwrap().events, 3);

    // A replaced event stays replaced when its first version comes again
    // from a server id path (not chosen by the client): it is skipped.
    let mut replay = second;
    replay[0].replace_existing = false;
    store.stage(replay).await.unwrap();
    store.commit(None).await.unwrap();
    let event = stored(store, "default", Stream::Logs, "c").await.unwrap();
    assert_eq!(event["message"], "version three");
}

pub async fn any_day_a_timestamp_holds_is_stored_and_bounded(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    let days = [
        ("first", "1677-09-22T00:00:00Z"),
        ("before-epoch", "1969-12-31T23:59:59.999999999Z"),
        ("epoch", "1970-01-01T00:00:00Z"),
        ("leap", "2000-02-29T12:00:00Z"),
        ("now", "2026-02-18T12:00:00Z"),
        ("late", "2262-04-11T00:00:00Z"),
    ];
    let events: Vec<Value> = days
        .iter()
        .map(|(id, at)| json!({"id": id, "timestamp": at, "message": "tick"}))
        .collect();
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(None).await.unwrap();
    assert_eq!(
        ids(store, "default", "tick").await,
        ["late", "now", "leap", "epoch", "before-epoch", "first"]
    );
    let at = |text: &str| model::Timestamp::parse(text).unwrap();
    let bounded = |from: &str, to: &str| Filter {
        from: Some(at(from)),
        to: Some(at(to)),
        ..filter("default", "tick")
    };
    let page = store
        .search(SearchRequest {
            filter: bounded("1969-12-31T23:59:59.999999999Z", "2000-02-29T12:00:00Z"),
            limit: 10,
            cursor: None,
            order: Order::Ascending,
        })
        .await
        .unwrap();
    let found: Vec<String> = page
        .events
        .iter()
        .map(|raw| crate::events::id_of(raw.get()))
        .collect();
    assert_eq!(
        found,
        ["before-epoch", "epoch"],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        ids(
            store,
            "default",
            "timestamp:[1970-01-01T00:00:00Z TO 2000-02-29T12:00:00Z]"
        )
        .await,
        ["leap", "epoch"]
    );
    assert_eq!(
        ids(store, "default", "timestamp:<1970-01-01T00:00:00Z").await,
        ["before-epoch", "first"]
    );
    let buckets = store
        .histogram(HistogramRequest {
            filter: filter("default", ""),
            interval_nanos: 86_400_000_000_000,
        })
        .await
        .unwrap();
    let starts: Vec<(String, u64)> = buckets
        .iter()
        .map(|bucket| (bucket.start.to_rfc3339(), bucket.count))
        .collect();
    assert_eq!(
        starts,
        [
            ("1677-09-22T00:00:00Z".to_owned(), 1),
            ("1969-12-31T00:00:00Z".to_owned(), 1),
            ("1970-01-01T00:00:00Z".to_owned(), 1),
            ("2000-02-29T00:00:00Z".to_owned(), 1),
            ("2026-02-18T00:00:00Z".to_owned(), 1),
            ("2262-04-11T00:00:00Z".to_owned(), 1),
        ]
    );
}
