//! Events and queries for the matcher agreement case: Loghub lines dressed
//! with attributes of every shape (or generated lines where the samples are
//! absent), a set of awkward values, and queries drawn from the events with
//! a fixed seed.
#![allow(clippy::unwrap_used)]

use model::Event;
use serde_json::{Map, Value, json};

use crate::loghub::{SYSTEMS, events_of, loghub};

/// A small deterministic generator (xorshift64*), so every run asks the same.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Every event the case loads into the logs stream: a share of each Loghub
/// sample (or generated lines) with attributes added, then the awkward set.
pub fn events() -> Vec<Value> {
    let mut rng = Rng::new(0x5eed);
    let mut events = match loghub() {
        Some(root) => SYSTEMS
            .iter()
            .enumerate()
            .flat_map(|(index, system)| events_of(&root, index, system).into_iter().step_by(7))
            .collect(),
        None => {
            eprintln!("the Loghub samples are not beside the repository: matching generated lines");
            generated_lines(&mut rng, 2_000)
        }
    };
    for (index, event) in events.iter_mut().enumerate() {
        dress(event, index, &mut rng);
    }
    events.extend(awkward());
    events
}

/// Attributes of every shape, some shared by many events and some rare.
fn dress(event: &mut Value, index: usize, rng: &mut Rng) {
    let object = event.as_object_mut().unwrap();
    let words: Vec<String> = object["message"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if index.is_multiple_of(3) {
        object.insert("trace_id".into(), json!(format!("{:016x}", index / 6)));
        object.insert("span_id".into(), json!(format!("s{}", index % 11)));
    }
    if index % 4 == 1 {
        let user = if index % 8 == 1 {
            format!("user-{}", index % 37)
        } else {
            (index % 50).to_string()
        };
        object.insert("userId".into(), json!(user));
    }
    if index % 5 == 2 {
        object.insert(
            "source_ip".into(),
            json!(format!("10.0.{}.{}", index % 3, index % 7)),
        );
    }
    if !object.contains_key("host") && index.is_multiple_of(2) {
        object.insert("host".into(), json!(format!("web-{}", index % 6)));
    }
    let status = *rng.pick(&[200, 200, 201, 301, 404, 500, 503]);
    let mut http = Map::new();
    http.insert("status".into(), json!(status));
    http.insert(
        "path".into(),
        json!(format!("/api/v1/orders/{}", index % 20)),
    );
    http.insert("latency_ms".into(), json!(rng.below(40_000) as f64 / 100.0));
    http.insert("retry".into(), json!(index.is_multiple_of(9)));
    object.insert("http".into(), Value::Object(http));
    let tags: Vec<Value> = if words.is_empty() {
        Vec::new()
    } else {
        (0..1 + rng.below(3))
            .map(|_| json!(rng.pick(&words).clone()))
            .collect()
    };
    object.insert("tags".into(), Value::Array(tags));
    object.insert("k8s.pod".into(), json!(format!("Pod-{}", index % 9)));
    match index % 10 {
        0 => object.insert("when".into(), json!("2026-02-18T12:00:00Z")),
        1 => object.insert("when".into(), json!("2026-02-16")),
        2 => object.insert("count".into(), json!(18_446_744_073_709_551_615u64)),
        3 => object.insert("count".into(), json!(-5)),
        4 => object.insert("count".into(), json!(2.0)),
        5 => object.insert("count".into(), json!(-0.0)),
        6 => object.insert("count".into(), json!(i64::MAX)),
        7 => object.insert("count".into(), json!(2.5)),
        8 => object.insert("flag".into(), json!("false")),
        _ => object.insert("flag".into(), json!(false)),
    };
    if index.is_multiple_of(13) {
        object.insert(
            "mixed".into(),
            json!([1, "Two", {"deep": true}, [3.5], null]),
        );
    }
}

/// Values and messages where a matcher would most easily differ from an index.
fn awkward() -> Vec<Value> {
    let long_word = "w".repeat(300);
    let long_value = "x".repeat(1_100);
    let messages = [
        "Ошибка соединения с базой",
        "日本語のログ メッセージ",
        "Straße geschlossen STRASSE",
        "ΣΑΣ ΟΔΟΣ σας",
        "user_id=42 path=/a/b?x=1&y=2",
        "10.0.0.1:8080 -> 10.0.0.2:443 refused",
        "release v1.2.3-beta_4 deployed",
        "camelCaseWord and UPPER lower MiXeD",
        "tab\tseparated\nnew line",
        "quotes \"inside\" and 'single' and back\\slash",
        "emoji 🚀 launch",
        "AND OR NOT and or not",
        "Payment failed for order ORD-98765",
        "Payment retry interrupted",
        "interrupt received",
        "x",
        "...",
    ];
    let services = ["Order-Service", "payment-api", "auth", "a\u{0}b", "日本"];
    let levels = ["trace", "debug", "info", "warn", "error", "fatal"];
    let mut events = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        for variant in 0..3 {
            let n = index * 3 + variant;
            let mut event = json!({
                "id": format!("v-{n}"),
                "timestamp": format!("2026-02-17T{:02}:{:02}:00Z", n % 24, n % 60),
                "message": if variant == 2 { format!("{message} {long_word} tail") } else { (*message).to_owned() },
                "service": services[n % services.len()],
                "level": levels[n % levels.len()],
                "a.b": if variant == 0 { "Dotted" } else { "other" },
                "nested": {"k": (["Hello World", "hello", "HELLO"][variant]), "a": {"b": "Deep"}},
                "list": [1, "Two", {"deep": true}, [3.5]],
                "float": ([2.0, 2.25, -0.5][variant]),
                "big": 18_446_744_073_709_551_615u64 - variant as u64,
                "negative": -5 + 6 * variant as i64,
                "date": "2026-02-18T12:00:00Z",
                "digits": if variant == 0 { json!("12345") } else { json!(12345) },
                "umlaut": "ÄÖÜ",
                "sigma": "ΣΑΣ",
                "note": (["Ünïcödé Straße", "日本語", "emoji 🚀"][variant]),
                "nothing": null,
                "empty": "",
                "flag": ([json!(false), json!("false"), json!(true)][variant].clone()),
                "weird": {"": "blank key", "key\u{0}": "hidden", "sp ace": "spaced"},
            });
            if variant == 1 {
                event["long"] = json!(long_value);
                event["host"] = json!(long_value);
            } else {
                event["host"] = json!(format!("web-{variant}"));
                event["trace_id"] = json!(format!("trace-{index}"));
            }
            events.push(event);
        }
    }
    events
}

/// Lines in the manner of service logs, for when the samples are absent.
fn generated_lines(rng: &mut Rng, count: usize) -> Vec<Value> {
    let subjects = [
        "block",
        "session",
        "request",
        "user root",
        "connection",
        "job",
    ];
    let verbs = [
        "received",
        "failed",
        "terminating",
        "opened",
        "closed",
        "retrying",
    ];
    let tails = [
        "from 10.250.19.102:54106",
        "for user admin",
        "after 3 attempts",
        "with status=500",
        "in workerEnv.init()",
        "blk_-1608999687919862906 of size 67108864",
    ];
    let services = ["hdfs", "openssh", "apache", "hadoop"];
    let levels = ["info", "info", "warn", "error", "debug", "trace", "fatal"];
    (0..count)
        .map(|n| {
            let message = format!(
                "{} {} {}",
                rng.pick(&subjects),
                rng.pick(&verbs),
                rng.pick(&tails)
            );
            json!({
                "timestamp": 1_771_200_000_000i64 + n as i64 * 113_000,
                "service": rng.pick(&services),
                "level": rng.pick(&levels),
                "message": message,
                "metadata": {"line": n + 1, "duration": (n + 1) as f64 / 8.0,
                             "component": format!("dfs.DataNode${}", rng.pick(&["PacketResponder", "DataXceiver"])),
                             "pid": 100 + rng.below(30_000)},
            })
        })
        .collect()
}

/// `count` queries built from what the events hold: their words, phrases,
/// word prefixes, field and attribute values and numbers, alone and combined.
pub fn drawn_queries(events: &[Event], count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut queries = Vec::with_capacity(count);
    while queries.len() < count {
        let query = match rng.below(6) {
            0..=2 => atom(events, &mut rng),
            3 => format!("{} {}", atom(events, &mut rng), atom(events, &mut rng)),
            4 => format!("{} OR -{}", atom(events, &mut rng), atom(events, &mut rng)),
            _ => format!(
                "({} OR {}) AND NOT {}",
                atom(events, &mut rng),
                atom(events, &mut rng),
                atom(events, &mut rng)
            ),
        };
        queries.push(query);
    }
    queries
}

/// One term drawn from a random event.
fn atom(events: &[Event], rng: &mut Rng) -> String {
    let event = rng.pick(events);
    let words: Vec<&str> = event.message.split_whitespace().collect();
    match rng.below(7) {
        0 | 1 if !words.is_empty() => text_term(words[rng.below(words.len())]),
        2 if words.len() > 1 => {
            let start = rng.below(words.len() - 1);
            let end = (start + 2 + rng.below(2)).min(words.len());
            quoted(&words[start..end].join(" "))
        }
        3 => {
            let runs: Vec<&str> = event
                .message
                .split(|c: char| !c.is_alphanumeric())
                .filter(|run| run.chars().count() >= 2)
                .collect();
            if runs.is_empty() {
                return "*".into();
            }
            let run = rng.pick(&runs);
            let stem: String = run.chars().take(2 + rng.below(3)).collect();
            if rng.below(2) == 0 {
                format!("{}*", stem.to_uppercase())
            } else {
                format!("{stem}*")
            }
        }
        4 => field_term(event, rng),
        _ => attribute_term(event, rng),
    }
}

/// A message word as a bare word when it lexes as one, quoted otherwise.
fn text_term(word: &str) -> String {
    let bare = !word.contains(['"', '(', ')', ':', '*', '\\'])
        && !word.starts_with(['-'])
        && !matches!(word, "AND" | "OR" | "NOT");
    if bare { word.to_owned() } else { quoted(word) }
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A bare prefix stem of `value` (`None` if it would not lex as one).
fn stem(value: &str, rng: &mut Rng) -> Option<String> {
    let stem: String = value.chars().take(1 + rng.below(4)).collect();
    let bare = !stem.is_empty()
        && !stem.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '*' | '['))
        && !stem.starts_with(['>', '<']);
    bare.then_some(stem)
}

fn field_term(event: &Event, rng: &mut Rng) -> String {
    let fields = [
        ("service", event.service.as_deref()),
        ("host", event.host.as_deref()),
        ("trace_id", event.trace_id.as_deref()),
        ("spanId", event.span_id.as_deref()),
        ("userId", event.user_id.as_deref()),
        ("source_ip", event.source_ip.as_deref()),
    ];
    let (name, value) = *rng.pick(&fields);
    let Some(value) = value.filter(|value| value.len() < 200) else {
        let comparison = rng.pick(&["", ">", ">=", "<", "<="]);
        return format!("level:{comparison}{}", event.level);
    };
    match rng.below(3) {
        0 => {
            stem(value, rng).map_or_else(|| format!("id:{}", event.id), |s| format!("{name}:{s}*"))
        }
        _ => format!("{name}:{}", quoted(value)),
    }
}

/// A term on one of the event's attribute values, found by walking them.
fn attribute_term(event: &Event, rng: &mut Rng) -> String {
    let mut leaves = Vec::new();
    for (key, value) in &event.attributes {
        collect_leaves(key.clone(), value, &mut leaves);
    }
    leaves.retain(|(path, _)| valid_field_name(path));
    if leaves.is_empty() {
        return format!("id:{}", event.id);
    }
    let (path, value) = rng.pick(&leaves).clone();
    match value {
        Value::String(text) if !text.is_empty() && text.len() < 200 => match rng.below(3) {
            0 => stem(&text, rng).map_or_else(
                || format!("{path}:{}", quoted(&text)),
                |s| format!("{path}:{s}*"),
            ),
            1 => format!("{path}:{}", quoted(&text.to_uppercase())),
            _ => format!("{path}:{}", quoted(&text)),
        },
        Value::Number(number) => {
            let number = number.to_string();
            match rng.below(6) {
                0 => format!("{path}:{number}"),
                1 => format!("{path}:>{number}"),
                2 => format!("{path}:<={number}"),
                3 => format!("{path}:[{number} TO *]"),
                4 => format!("{path}:[* TO {number}]"),
                _ => format!("{path}:[-1 TO {number}]"),
            }
        }
        Value::Bool(flag) => format!("{path}:{flag}"),
        Value::String(text) if text.is_empty() => format!("{path}:\"\\\"\""),
        other => format!("{path}:{}", quoted(&other.to_string())),
    }
}

fn collect_leaves(path: String, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(entries) => {
            for (key, item) in entries {
                collect_leaves(format!("{path}.{key}"), item, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_leaves(path.clone(), item, out);
            }
        }
        leaf => out.push((path, leaf.clone())),
    }
}

/// Whether the query language takes `name` as a field name.
fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
