//! The Loghub samples (`shared/data/loghub`, 2,000 lines per system) loaded
//! into a store: exact counts for every form of the query language, paging
//! through thousands of events both ways, stats and histograms. The counts
//! are the embedded store's; every backend must find exactly the same.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use model::Timestamp;
use serde_json::{Map, Value, json};
use store::{EventStore, Filter, HistogramRequest, Order, SearchRequest, Stats};

use crate::backends::Backend;
use crate::events::{filter, id_of, incoming, total};

/// The systems loaded, in order.
pub const SYSTEMS: &[&str] = &[
    "HDFS",
    "Apache",
    "Zookeeper",
    "Hadoop",
    "Android",
    "OpenStack",
    "OpenSSH",
    "Linux",
];

/// Where the samples are, if they are there.
pub fn loghub() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    path.exists().then_some(path)
}

/// The fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// One system's sample as events: its name is the service, its level column
/// the level, its other columns attributes, and lines are 113 s apart from a
/// base time (Apache's come four at a time, so ties are many).
pub fn events_of(root: &std::path::Path, index: usize, system: &str) -> Vec<Value> {
    let path = root
        .join(system)
        .join(format!("{system}_2k.log_structured.csv"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap());
    let base = Timestamp::parse("2026-02-16T00:00:00Z").unwrap().nanos();
    lines
        .map(|line| {
            let row: BTreeMap<&str, String> = header
                .iter()
                .map(String::as_str)
                .zip(csv_fields(line.trim_end_matches('\r')))
                .collect();
            let number: i64 = row["LineId"].parse().unwrap();
            let step = if system == "Apache" {
                (number - 1) / 4
            } else {
                number - 1
            };
            let timestamp = base + step * 113_000_000_000 + index as i64 * 17_000_000_000;
            let mut metadata = Map::new();
            metadata.insert("line".into(), json!(number));
            metadata.insert("duration".into(), json!(number as f64 / 8.0));
            for (column, key) in [
                ("Component", "component"),
                ("EventId", "event"),
                ("EventTemplate", "template"),
            ] {
                if let Some(value) = row.get(column) {
                    metadata.insert(key.into(), json!(value));
                }
            }
            if let Some(pid) = row.get("Pid").or(row.get("PID")) {
                let value = pid
                    .parse::<i64>()
                    .map_or_else(|_| json!(pid), |pid| json!(pid));
                metadata.insert("pid".into(), value);
            }
            let mut event = json!({
                "timestamp": timestamp,
                "service": system.to_lowercase(),
                "message": row["Content"],
                "metadata": metadata,
            });
            let level = row.get("Level").and_then(|level| match level.as_str() {
                "V" => Some("trace"),
                "D" => Some("debug"),
                "I" => Some("info"),
                "W" => Some("warn"),
                "E" => Some("error"),
                "combo" => None,
                other => Some(other),
            });
            if let Some(level) = level {
                event["level"] = json!(level);
            }
            if let Some(node) = row.get("Node") {
                event["host"] = json!(node);
            }
            event
        })
        .collect()
}

/// Loads every system into the store, a few hundred events per commit.
async fn load(store: &dyn EventStore, root: &std::path::Path) {
    for (index, system) in SYSTEMS.iter().enumerate() {
        let events = events_of(root, index, system);
        assert_eq!(events.len(), 2_000, "{system}");
        for chunk in events.chunks(500) {
            store.stage(incoming("default", chunk)).await.unwrap();
            store.commit(None).await.unwrap();
        }
    }
}

/// Every form of the query language with the number of events it finds.
const COUNTS: &[(&str, u64)] = &[
    ("terminating", 333),
    ("PacketResponder", 311),
    ("packetresponder", 311),
    ("block", 1929),
    ("session", 438),
    ("failed", 995),
    ("exception", 164),
    ("error", 1032),
    ("jk2_init", 848),
    ("root", 1221),
    ("192", 43),
    ("user", 1821),
    ("Connection", 1687),
    ("ssh2", 525),
    ("dfs.DataNode", 0),
    ("workerEnv.init", 569),
    ("173.234.31.186", 10),
    ("org.apache.hadoop.mapred.TaskAttemptListenerImpl", 0),
    ("\"Received block\"", 294),
    ("\"authentication failure\"", 986),
    ("\"Failed password for\"", 520),
    ("\"user root\"", 839),
    ("\"for block\"", 313),
    ("\"block for\"", 0),
    ("\"session opened for user\"", 124),
    ("\"invalid user\"", 365),
    ("Packet*", 312),
    ("recei*", 1373),
    ("authenticat*", 1089),
    ("blk*", 2002),
    ("10*", 4696),
    ("1*", 9649),
    ("conn*", 1838),
    ("jk*", 1399),
    ("hado*", 289),
    ("message:recei*", 1373),
    ("msg:\"Received block\"", 294),
    ("service:hdfs", 2000),
    ("service:HDFS", 0),
    ("service:ha*", 2000),
    ("service:open*", 4000),
    ("host:RecvWorker", 557),
    ("host:Recv*", 557),
    ("metadata.event:E5", 125),
    ("metadata.event:e5", 125),
    ("metadata.component:dfs.DataNode$PacketResponder", 603),
    ("metadata.component:dfs.*", 2000),
    ("metadata.component:LABSZ", 2000),
    ("metadata.pid:>=20000", 4399),
    ("metadata.pid:[100 TO 1000]", 42),
    ("metadata.pid:<100", 943),
    ("metadata.line:<=10", 80),
    ("metadata.line:1", 8),
    ("metadata.line:>1990", 80),
    ("metadata.duration:>240.5", 608),
    ("metadata.duration:[10 TO 10.5]", 40),
    ("metadata.duration:12.5", 8),
    ("metadata.duration:<0.2", 8),
    ("metadata.template:\"<*>\"", 0),
    ("attributes.metadata.event:E10", 1014),
    ("metadata.event:E1*", 5652),
    ("level:warn", 2407),
    ("level:>=warn", 3170),
    ("level:<info", 907),
    ("level:[debug TO info]", 12573),
    ("level:fatal", 2),
    ("level:>error", 2),
    ("level:trace", 257),
    ("level:>=trace", 16000),
    ("level:<=debug", 907),
    ("NOT service:hdfs", 14000),
    ("-service:hdfs", 14000),
    ("level:error OR level:fatal", 763),
    ("failed -service:openssh", 385),
    ("(service:hdfs OR service:hadoop) AND level:>=warn", 1040),
    ("-(level:info)", 4077),
    ("NOT (failed OR error)", 13977),
    ("block AND NOT \"Received block\"", 1635),
    ("service:hdfs terminating", 311),
    ("service:hdfs OR terminating", 2022),
    ("(recei* OR sent) -service:hdfs", 787),
    ("NOT metadata.pid:>=20000", 11601),
    ("NOT level:info NOT level:warn", 1670),
    ("timestamp:>=2026-02-17T00:00:00Z", 8649),
    (
        "timestamp:[2026-02-16T12:00:00Z TO 2026-02-16T18:00:00Z]",
        1807,
    ),
    ("timestamp:<2026-02-16T01:00:00Z", 350),
    ("timestamp:>2026-02-18T00:00:00Z level:>=warn", 756),
];

pub async fn loghub_samples_give_the_same_answers(backend: &dyn Backend) {
    let Some(root) = loghub() else {
        eprintln!("SKIPPED loghub_samples_give_the_same_answers: no shared/data/loghub");
        return;
    };
    let store = backend.open().await;
    let store = &*store;
    load(store, &root).await;
    let mut wrong = Vec::new();
    for (q, expected) in COUNTS {
        let found = total(store, filter("default", q)).await;
        if found != *expected {
            wrong.push(format!("{q:?}: {found} (expected {expected})"));
        }
    }
    assert!(wrong.is_empty(), "wrong counts:\n{}", wrong.join("\n"));

    assert_eq!(
        store
            .warnings(&filter(
                "default",
                "metadata.evnt:E5 metadata.event:E5 metadata.pid:>1"
            ))
            .await
            .unwrap(),
        [
            "field \"metadata.evnt\" is not a known field and no stored event has the attribute \"metadata.evnt\""
        ]
    );

    for (q, limit) in [("level:>=warn", 97), ("", 1_000), ("\"Received block\"", 7)] {
        pages_agree(store, q, limit).await;
    }

    let by_level = [
        ("debug", 650),
        ("error", 761),
        ("fatal", 2),
        ("info", 11_923),
        ("trace", 257),
        ("warn", 2_407),
    ];
    let by_service = SYSTEMS.iter().map(|system| (system.to_lowercase(), 2_000));
    assert_eq!(
        store.stats(filter("default", "")).await.unwrap(),
        stats(16_000, by_service, by_level)
    );
    assert_eq!(
        store
            .stats(filter("default", "failed OR level:fatal"))
            .await
            .unwrap(),
        stats(
            995,
            [("hadoop", 338), ("linux", 47), ("openssh", 610)],
            [("fatal", 2), ("info", 665), ("warn", 328)]
        )
    );

    let day = 86_400_000_000_000;
    assert_eq!(
        histogram(store, filter("default", ""), day).await,
        [
            ("2026-02-16T00:00:00Z".to_owned(), 7_351),
            ("2026-02-17T00:00:00Z".to_owned(), 5_353),
            ("2026-02-18T00:00:00Z".to_owned(), 3_296),
        ]
    );
    let hours = histogram(store, filter("default", "level:>=warn"), day / 24).await;
    assert_eq!(hours.len(), 63);
    assert_eq!(hours.iter().map(|(_, count)| count).sum::<u64>(), 3_170);
    let from = Timestamp::parse("2026-02-17T06:30:00Z").unwrap();
    let to = Timestamp::parse("2026-02-17T09:00:00Z").unwrap();
    let bounded = Filter {
        from: Some(from),
        to: Some(to),
        ..filter("default", "service:hdfs OR service:apache")
    };
    assert_eq!(
        histogram(store, bounded.clone(), day / 24).await,
        [
            ("2026-02-17T06:00:00Z".to_owned(), 16),
            ("2026-02-17T07:00:00Z".to_owned(), 32),
            ("2026-02-17T08:00:00Z".to_owned(), 32),
        ]
    );
    assert_eq!(total(store, bounded).await, 80);
}

fn stats<'a>(
    total: u64,
    by_service: impl IntoIterator<Item = (impl Into<String>, u64)>,
    by_level: impl IntoIterator<Item = (&'a str, u64)>,
) -> Stats {
    Stats {
        total,
        by_service: by_service
            .into_iter()
            .map(|(name, count)| (name.into(), count))
            .collect(),
        by_level: by_level
            .into_iter()
            .map(|(name, count)| (name.to_owned(), count))
            .collect(),
    }
}

async fn histogram(store: &dyn EventStore, filter: Filter, interval: i64) -> Vec<(String, u64)> {
    store
        .histogram(HistogramRequest {
            filter,
            interval_nanos: interval,
        })
        .await
        .unwrap()
        .iter()
        .map(|bucket| (bucket.start.to_rfc3339(), bucket.count))
        .collect()
}

/// Pages through `q` both ways: every event once, in time order, and the
/// oldest-first pages are the newest-first pages reversed (ties included).
async fn pages_agree(store: &dyn EventStore, q: &str, limit: usize) {
    let expected = total(store, filter("default", q)).await as usize;
    let mut orders = Vec::new();
    for order in [Order::Descending, Order::Ascending] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .search(SearchRequest {
                    filter: filter("default", q),
                    limit,
                    cursor,
                    order,
                })
                .await
                .unwrap();
            assert!(page.events.len() <= limit);
            for raw in &page.events {
                let event: Value = serde_json::from_str(raw.get()).unwrap();
                let at = Timestamp::parse(event["timestamp"].as_str().unwrap()).unwrap();
                seen.push((at.nanos(), id_of(raw.get())));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected, "{q:?} {order:?}: every event");
        let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), expected, "{q:?} {order:?}: no repeats");
        let mut sorted = seen.clone();
        sorted.sort_by_key(|(at, _)| *at);
        if order == Order::Descending {
            sorted.reverse();
        }
        let times = |events: &[(i64, String)]| events.iter().map(|(at, _)| *at).collect::<Vec<_>>();
        assert_eq!(times(&seen), times(&sorted), "{q:?} {order:?}: time order");
        orders.push(seen);
    }
    let mut ascending = orders.pop().unwrap();
    ascending.reverse();
    assert_eq!(
        orders.pop().unwrap(),
        ascending,
        "{q:?}: one order, both ways"
    );
}
