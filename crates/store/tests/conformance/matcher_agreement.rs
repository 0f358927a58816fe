//! The live tail's matcher against the stores: for every query form and for
//! queries drawn from the data, the events `Matcher::matches` accepts are
//! exactly the events a search finds (every page of it), and `Matcher::new`
//! refuses exactly what a search refuses, with the same error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use model::{Event, Source, Stream};
use serde_json::json;
use store::matcher::Matcher;
use store::{EventStore, Order, QueryLimits, SearchRequest};

use crate::backends::{Backend, Settings};
use crate::events::{id_of, incoming, incoming_to, stream_filter};
use crate::matcher_data::{drawn_queries, events};

/// Every form of the query language, on the Loghub lines and the awkward set.
const TABLE: &[&str] = &[
    // Everything.
    "",
    "*",
    "* AND block",
    "block OR *",
    // Words: case, digits, dots, hyphens, underscores, unicode, keywords as words.
    "block",
    "BLOCK",
    "Block",
    "failed",
    "error",
    "exception",
    "root",
    "192",
    "ssh2",
    "jk2_init",
    "user_id",
    "workerEnv.init",
    "dfs.DataNode",
    "173.234.31.186",
    "10.0.0.1",
    "v1.2.3-beta_4",
    "camelCaseWord",
    "camelcaseword",
    "straße",
    "STRASSE",
    "ошибка",
    "ОШИБКА",
    "日本語のログ",
    "σας",
    "ΣΑΣ",
    "🚀",
    "and",
    "\"AND\"",
    "x",
    "...",
    "tail",
    // Prefixes.
    "Packet*",
    "recei*",
    "blk*",
    "1*",
    "10*",
    "conn*",
    "jk*",
    "ошиб*",
    "ΣΑ*",
    "user_*",
    "日本*",
    "w*",
    "a*",
    "camelC*",
    // Phrases, with punctuation, gaps and escapes.
    "\"Received block\"",
    "\"authentication failure\"",
    "\"user root\"",
    "\"block for\"",
    "\"for block\"",
    "\"session opened for user\"",
    "\"Failed password for\"",
    "\"10.0.0.1:8080\"",
    "\"10.0.0.1:8080 -> 10.0.0.2\"",
    "\"user_id=42 path=/a/b\"",
    "\"jk2_init() Found child\"",
    "\"ΣΑΣ ΟΔΟΣ\"",
    "\"quotes \\\"inside\\\"\"",
    "\"back\\\\slash\"",
    "\"12:30\"",
    "\"...\"",
    // The message by name.
    "message:recei*",
    "msg:\"Received block\"",
    "message:block",
    "message:\"separated new\"",
    // Exact fields, equality and prefixes.
    "service:hdfs",
    "service:HDFS",
    "service:ha*",
    "service:open*",
    "service:Order-Service",
    "service:order-service",
    "service:Ord*",
    "service:\"a\u{0}b\"",
    "service:a*",
    "service:日本",
    "host:RecvWorker",
    "host:Recv*",
    "host:web-1",
    "hostname:web-1",
    "host:web*",
    "host:x*",
    "trace_id:trace-3",
    "traceId:trace-3",
    "trace_id:0000000000000001",
    "trace_id:000*",
    "span_id:s3",
    "spanId:s*",
    "user_id:user-1",
    "userId:user-1*",
    "userId:12",
    "user_id:1*",
    "source_ip:10.0.1.3",
    "source_ip:10.0.*",
    "id:v-3",
    "id:v-999",
    // Attributes: nested, dotted keys, arrays, numbers, booleans, dates, unicode.
    "metadata.event:E5",
    "metadata.event:e5",
    "metadata.event:E1*",
    "attributes.metadata.event:E10",
    "metadata.component:dfs.DataNode$PacketResponder",
    "metadata.component:dfs.*",
    "metadata.template:\"<*>\"",
    "metadata.pid:>=20000",
    "metadata.pid:[100 TO 1000]",
    "metadata.pid:<100",
    "metadata.line:<=10",
    "metadata.line:1",
    "metadata.line:>1990",
    "metadata.duration:>240.5",
    "metadata.duration:[10 TO 10.5]",
    "metadata.duration:12.5",
    "metadata.duration:<0.2",
    "http.status:500",
    "http.status:>=500",
    "http.status:[400 TO 499]",
    "http.status:[* TO 299]",
    "http.status:[500 TO *]",
    "http.status:[* TO *]",
    "http.status:5*",
    "http.latency_ms:>100.5",
    "http.latency_ms:<=0.5",
    "http.latency_ms:[10.25 TO 20.75]",
    "http.retry:true",
    "http.retry:TRUE",
    "http.path:/api/v1/orders/3",
    "http.path:/API/V1/ORD*",
    "k8s.pod:pod-3",
    "k8s.pod:POD-3",
    "attributes.k8s.pod:Pod-1",
    "k8s.pod:po*",
    "tags:block",
    "tags:Block",
    "tags:bl*",
    "when:\"2026-02-18T12:00:00Z\"",
    "when:2026*",
    "when:2026-02-16",
    "date:2026*",
    "count:18446744073709551615",
    "count:>10000000000000000000",
    "count:>=9223372036854775807",
    "count:9223372036854775807",
    "count:>1e19",
    "count:<0",
    "count:-5",
    "count:0",
    "count:-0",
    "count:2",
    "count:2.0",
    "count:2.5",
    "count:[2 TO 2.5]",
    "count:[-0.5 TO 0.5]",
    "count:>2",
    "count:<2.5",
    "float:2",
    "float:2.0",
    "float:[1.5 TO 2]",
    "float:>=2",
    "float:2.25",
    "float:<0",
    "big:18446744073709551615",
    "big:>18446744073709551614",
    "big:<10000000000000000000",
    "negative:-5",
    "negative:>=-5",
    "negative:<0",
    "digits:12345",
    "digits:123*",
    "digits:>100",
    "a.b:dotted",
    "a.b:DOTTED",
    "nested.a.b:DEEP",
    "nested.k:\"hello world\"",
    "nested.k:hello",
    "nested.k:hel*",
    "nested.k:\"hello w*\"",
    "nested:x",
    "list:1",
    "list:two",
    "list:3.5",
    "list.deep:true",
    "list:[0 TO 2]",
    "mixed.deep:true",
    "umlaut:äöü",
    "umlaut:ÄÖÜ",
    "umlaut:äö*",
    "sigma:σασ",
    "sigma:ΣΑΣ",
    "sigma:ΣΑ*",
    "note:\"ünïcödé straße\"",
    "note:ÜNÏ*",
    "note:日本語",
    "note:\"emoji 🚀\"",
    "flag:false",
    "flag:FALSE",
    "flag:f*",
    "flag:true",
    "nothing:null",
    "empty:x",
    "long:x*",
    "weird.sp:x",
    "weird.key:hidden",
    "missing.path:x",
    "missing:>1",
    // Levels.
    "level:warn",
    "level:WARN",
    "level:warning",
    "level:err",
    "level:5",
    "level:>=warn",
    "level:<info",
    "level:[debug TO info]",
    "level:[* TO debug]",
    "level:[error TO *]",
    "level:fatal",
    "level:>error",
    "level:<=debug",
    "level:>=trace",
    // Timestamps.
    "timestamp:>=2026-02-17T00:00:00Z",
    "timestamp:[2026-02-16T12:00:00Z TO 2026-02-16T18:00:00Z]",
    "timestamp:<2026-02-16T01:00:00Z",
    "timestamp:[* TO 2026-02-16T05:00:00Z]",
    "timestamp:[2026-02-18T00:00:00Z TO *]",
    "timestamp:>1771286400000",
    "timestamp:<=1771286400.5",
    // AND, OR, NOT, -, grouping.
    "NOT service:hdfs",
    "-service:hdfs",
    "level:error OR level:fatal",
    "failed -service:openssh",
    "(service:hdfs OR service:hadoop) AND level:>=warn",
    "-(level:info)",
    "NOT (failed OR error)",
    "block AND NOT \"Received block\"",
    "NOT level:info NOT level:warn",
    "service:hdfs OR terminating block",
    "NOT block failed",
    "NOT NOT block",
    "((block))",
    "-block -failed",
    "(recei* OR sent) -service:hdfs",
    "NOT metadata.pid:>=20000",
    "NOT float:>=2",
    "-nested.k:hello",
    "http.status:500 OR (http.retry:true AND -level:info)",
    "timestamp:>2026-02-18T00:00:00Z level:>=warn",
];

/// Queries every store refuses as invalid, after a valid first term.
const REFUSED: &[&str] = &[
    "level:loud",
    "level:war*",
    "level:[debug TO loud]",
    "service:>3",
    "host:[a TO b]",
    "message:>3",
    "timestamp:yesterday",
    "timestamp:>soon",
    "timestamp:2026*",
    "timestamp:[2026-02-16T00:00:00Z TO later]",
    "metadata.x:>abc",
    "metadata.x:[1 TO abc]",
    "metadata.x:>inf",
    "metadata.x:<NaN",
    "id:abc*",
    "id:>3",
    "tenant:other",
    "received_at:>1",
    "attributes:x",
];

/// The ids of every event a search finds, all pages of it.
async fn searched(
    store: &dyn EventStore,
    stream: Stream,
    query: &str,
) -> Result<BTreeSet<String>, store::StoreError> {
    let mut found = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .search(SearchRequest {
                filter: stream_filter("default", stream, query),
                limit: 1_000,
                cursor,
                order: Order::Descending,
            })
            .await?;
        found.extend(page.events.iter().map(|raw| id_of(raw.get())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(found),
        }
    }
}

/// What comparing one query found.
#[derive(Default)]
struct Tally {
    compared: usize,
    /// Queries that found some events but not all.
    selective: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Compares the store's answer to `query` with the matcher's, on `events`.
    async fn compare(
        &mut self,
        store: &dyn EventStore,
        stream: Stream,
        events: &[Event],
        query: &str,
    ) {
        let parsed = query::parse(query).unwrap_or_else(|error| panic!("{query:?}: {error}"));
        let matcher = Matcher::for_stream(stream, &parsed);
        let found = searched(store, stream, query).await;
        self.compared += 1;
        let (matcher, found) = match (matcher, found) {
            (Ok(matcher), Ok(found)) => (matcher, found),
            (Err(refused), Err(error)) if refused.to_string() == error.to_string() => return,
            (matcher, found) => {
                self.failures.push(format!(
                    "{query:?}: the matcher says {:?}, the store {:?}",
                    matcher.err().map(|e| e.to_string()),
                    found.err().map(|e| e.to_string())
                ));
                return;
            }
        };
        let matched: BTreeSet<String> = events
            .iter()
            .filter(|event| matcher.matches(event))
            .map(|event| event.id.clone())
            .collect();
        if !matched.is_empty() && matched.len() < events.len() {
            self.selective += 1;
        }
        if matched == found {
            return;
        }
        let show = |ids: Vec<&String>| {
            ids.into_iter()
                .take(3)
                .map(|id| {
                    let event = events.iter().find(|event| event.id == *id).unwrap();
                    let mut json = serde_json::to_string(event).unwrap();
                    if json.len() > 400 {
                        let mut end = 400;
                        while !json.is_char_boundary(end) {
                            end -= 1;
                        }
                        json.truncate(end);
                        json.push('…');
                    }
                    format!("\n    {json}")
                })
                .collect::<String>()
        };
        self.failures.push(format!(
            "{query:?}: the store finds {}, the matcher {}; only the store:{}\n  only the matcher:{}",
            found.len(),
            matched.len(),
            show(found.difference(&matched).collect()),
            show(matched.difference(&found).collect()),
        ));
    }
}

/// Limits that let every prefix of the table run, and slow stores finish.
fn settings() -> Settings {
    Settings {
        limits: QueryLimits {
            max_prefix_terms: 1_000_000,
            timeout: Duration::from_secs(120),
            ..QueryLimits::default()
        },
        ..Settings::default()
    }
}

pub async fn the_matcher_finds_exactly_what_search_finds(backend: &dyn Backend) {
    let store = backend.open_with(settings()).await;
    let store = &*store;
    let sent = events();
    let mut events = Vec::with_capacity(sent.len());
    for chunk in sent.chunks(500) {
        let queued = incoming("default", chunk);
        events.extend(queued.iter().map(|queued| queued.event.clone()));
        store.stage(queued).await.unwrap();
        store.commit(None).await.unwrap();
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    for query in TABLE {
        tally.compare(store, Stream::Logs, &events, query).await;
    }
    let drawn = drawn_queries(&events, 400, 0xa11ce);
    for query in &drawn {
        tally.compare(store, Stream::Logs, &events, query).await;
    }
    assert!(
        tally.failures.is_empty(),
        "{} of {} queries differ:\n{}",
        tally.failures.len(),
        tally.compared,
        tally.failures.join("\n")
    );
    // A comparison of empty answers proves nothing: most must select.
    assert!(
        tally.selective * 2 > tally.compared,
        "only {} of {} queries found some but not all events",
        tally.selective,
        tally.compared
    );
    eprintln!(
        "{} queries over {} events agree ({} selective) in {:?}",
        tally.compared,
        events.len(),
        tally.selective,
        started.elapsed()
    );

    // On the audit stream `source` is the server's field.
    let mut audit = incoming_to(
        "default",
        Stream::Audit,
        &[
            json!({"id": "own", "message": "key.create", "actor": "admin"}),
            json!({"id": "client", "message": "refund issued", "source": "logbook"}),
            json!({"id": "none", "message": "refund denied"}),
        ],
    );
    for (queued, source) in audit.iter_mut().zip([Source::Logbook, Source::Client]) {
        queued.event.source = Some(source);
        queued.json = serde_json::to_string(&queued.event).unwrap();
    }
    let audit_events: Vec<Event> = audit.iter().map(|queued| queued.event.clone()).collect();
    store.stage(audit).await.unwrap();
    store.commit(None).await.unwrap();
    let mut tally = Tally::default();
    for query in [
        "source:logbook",
        "source:client",
        "source:log*",
        "attributes.source:logbook",
        "refund -source:client",
        "actor:ADMIN",
        "",
    ] {
        tally
            .compare(store, Stream::Audit, &audit_events, query)
            .await;
    }
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
    let first = Matcher::new(&query::parse("").unwrap()).unwrap();
    assert!(
        !audit_events.iter().any(|event| first.matches(event)),
        "a logs matcher never matches an audit event"
    );
}

pub async fn the_matcher_refuses_what_search_refuses(backend: &dyn Backend) {
    let store = backend.open().await;
    let store = &*store;
    store
        .stage(incoming(
            "default",
            &[json!({"message": "ok", "metadata": {"x": 1}})],
        ))
        .await
        .unwrap();
    store.commit(None).await.unwrap();
    for refused in REFUSED {
        let query = format!("ok {refused}");
        let parsed = query::parse(&query).unwrap();
        let from_store = searched(store, Stream::Logs, &query)
            .await
            .expect_err(&query);
        let from_matcher = Matcher::new(&parsed).expect_err(&query);
        assert!(
            matches!(
                from_store,
                store::StoreError::InvalidTerm { position: 3, .. }
            ),
            "{query}: {from_store}"
        );
        assert!(
            matches!(
                from_matcher,
                store::StoreError::InvalidTerm { position: 3, .. }
            ),
            "{query}: {from_matcher}"
        );
        assert_eq!(from_matcher.to_string(), from_store.to_string(), "{query}");
    }
    for accepted in TABLE {
        let parsed = query::parse(accepted).unwrap();
        assert!(Matcher::new(&parsed).is_ok(), "{accepted:?}");
        searched(store, Stream::Logs, accepted)
            .await
            .unwrap_or_else(|error| panic!("{accepted:?}: {error}"));
    }
}

/// How many events a second `Matcher::matches` judges, per query, on the
/// events of the agreement case (a measure to read, not a test that times):
/// `cargo test -p store --release --test conformance matcher_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measure, run by hand"]
fn matcher_throughput() {
    let events: Vec<Event> = events()
        .chunks(500)
        .flat_map(|chunk| incoming("default", chunk))
        .map(|queued| queued.event)
        .collect();
    for query in [
        "*",
        "level:>=warn",
        "service:hdfs",
        "block",
        "\"Received block\"",
        "recei*",
        "http.status:>=500",
        "metadata.component:dfs.*",
        "(service:hdfs OR service:openssh) failed -level:info",
    ] {
        let matcher = Matcher::new(&query::parse(query).unwrap()).unwrap();
        let rounds = 50;
        let started = Instant::now();
        let mut matched = 0usize;
        for _ in 0..rounds {
            matched += events.iter().filter(|event| matcher.matches(event)).count();
        }
        let elapsed = started.elapsed();
        let per_second = (rounds * events.len()) as f64 / elapsed.as_secs_f64();
        eprintln!(
            "{query:<60} {:>12.0} events/s ({} of {} match)",
            per_second,
            matched / rounds,
            events.len()
        );
    }
}
