//! `/metrics`: who may scrape it, that its figures move as traffic flows, that
//! its text is valid Prometheus exposition, and that the Grafana dashboard
//! asks only for what it exposes.
//!
//! The metrics recorder is global to the process, so every server of this
//! binary records into the same figures: the tests take turns (`TURN`) and
//! compare figures before and after their own traffic.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bench::client::{HttpClient, Response};
use common::{TEST_KEY, TestServer, admin_token, post_json};
use serde_json::{Value, json};

/// One test at a time: they share the process's figures.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Metrics the dashboard shows that parts not on this server's paths record:
/// the live tail (only while someone tails) and alerting (only once an alert
/// rule exists). Every other name the dashboard asks for must be scraped.
const RECORDED_ON_DEMAND: &[&str] = &[
    "logbook_tail_subscribers",
    "logbook_tail_delivered_events_total",
    "logbook_tail_dropped_events_total",
    "logbook_alerts_firing",
    "logbook_alert_notifications_total",
    // Counted by brokers only (Redis); the embedded queue knows bytes, not records.
    "logbook_queue_pending_records",
];

/// A server that samples every 50 ms, signs a checkpoint for every audit
/// event, and serves `/metrics` without credentials on a second address.
async fn start_metrics_server(adjust: impl FnOnce(&mut server::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
        config.metrics.sample_interval_ms = 50;
        config.audit.checkpoint_every_events = 1;
        config.audit.checkpoint_interval_ms = 50;
        adjust(config);
    })
    .await
}

fn metrics_url(server: &TestServer) -> String {
    let address = server.server.as_ref().unwrap().metrics_addr().unwrap();
    format!("http://{address}")
}

/// Scrapes the metrics listener and parses the text strictly.
async fn scrape(server: &TestServer) -> Exposition {
    let mut client = HttpClient::connect(&metrics_url(server)).await.unwrap();
    let response = client.get("/metrics").await.unwrap();
    assert_eq!(response.status, 200);
    let content_type = response.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Exposition::parse(std::str::from_utf8(&response.body).unwrap())
}

/// Scrapes until `ready` holds (the sampler and the worker run on their own
/// clocks), for at most 20 s.
async fn scrape_until(server: &TestServer, ready: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exposition = scrape(server).await;
        if ready(&exposition) {
            return exposition;
        }
        assert!(
            Instant::now() < deadline,
            "the figures never got there:\n{}",
            exposition.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Prometheus text exposition, read strictly: every line is a `# HELP`, a
/// `# TYPE` or a sample of a family whose type was declared before it.
struct Exposition {
    text: String,
    /// Family name to type.
    families: HashMap<String, String>,
    samples: Vec<Sample>,
}

struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut families = HashMap::new();
        let mut helped = std::collections::HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(valid_name(name), "{line}");
                assert!(!help.trim().is_empty(), "no help text: {line}");
                assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect(line);
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(
                    families.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "TYPE twice: {line}"
                );
            } else {
                assert!(!line.starts_with('#'), "unexpected comment: {line}");
                let sample = parse_sample(line);
                let family = family_of(&sample.name, &families)
                    .unwrap_or_else(|| panic!("sample of no declared family: {line}"));
                assert!(helped.contains(family), "no HELP for {family}");
                if families[family] == "counter" {
                    assert!(
                        family.ends_with("_total"),
                        "counter {family} without _total"
                    );
                }
                samples.push(sample);
            }
        }
        Exposition {
            text: text.to_owned(),
            families,
            samples,
        }
    }

    /// The sum of the samples of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    /// Whether a name used in a query is exposed: a family, or a histogram's
    /// `_bucket`, `_sum` or `_count` series.
    fn exposes(&self, name: &str) -> bool {
        family_of(name, &self.families).is_some()
    }
}

/// The family a sample or series name belongs to.
fn family_of<'a>(name: &str, families: &'a HashMap<String, String>) -> Option<&'a str> {
    if let Some((family, _)) = families.get_key_value(name) {
        return Some(family);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let (family, kind) = families.get_key_value(base)?;
        (kind == "histogram" || kind == "summary").then_some(family.as_str())
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{key="value",…} value`, with escaped quotes and backslashes in values.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect(line);
    let name = &line[..name_end];
    assert!(valid_name(name), "{line}");
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (at, c) = chars.next().expect(line);
            match c {
                '}' => break at,
                ',' if key.is_empty() => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().expect(line).1 {
                            '"' => break,
                            '\\' => match chars.next().expect(line).1 {
                                'n' => value.push('\n'),
                                escaped @ ('\\' | '"') => value.push(escaped),
                                other => panic!("bad escape \\{other}: {line}"),
                            },
                            c => value.push(c),
                        }
                    }
                    assert!(valid_name(&key), "label {key:?}: {line}");
                    assert!(
                        labels.insert(std::mem::take(&mut key), value).is_none(),
                        "{line}"
                    );
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.trim();
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

async fn send(
    client: &mut HttpClient,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = hyper::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body
        .map(|body| serde_json::to_vec(&body).unwrap())
        .unwrap_or_default();
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    client.send(request).await.unwrap()
}

fn code(response: &Response) -> String {
    response
        .json()
        .map(|body| body["code"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn only_the_operator_scrapes_the_api_and_the_metrics_listener_needs_no_credentials() {
    let _turn = TURN.lock().await;
    let server = start_metrics_server(|_| {}).await;
    let mut client = server.client_with(None).await;

    let anonymous = send(&mut client, "GET", "/metrics", None, None).await;
    assert_eq!(
        (anonymous.status, code(&anonymous).as_str()),
        (401, "missing_credentials")
    );
    // The bootstrap key holds every scope of its tenant, not the operator's.
    let tenant_key = send(&mut client, "GET", "/metrics", Some(TEST_KEY), None).await;
    assert_eq!(
        (tenant_key.status, code(&tenant_key).as_str()),
        (403, "forbidden")
    );

    let admin = admin_token(&mut client).await;
    let session = send(&mut client, "GET", "/metrics", Some(&admin), None).await;
    assert_eq!(session.status, 200, "{:?}", session.json());
    assert!(
        String::from_utf8_lossy(&session.body).contains("# TYPE process_cpu_seconds_total counter")
    );

    let created = send(
        &mut client,
        "POST",
        "/v1/keys",
        Some(&admin),
        Some(json!({"name": "prometheus", "scopes": ["metrics:read"]})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    let scraper_key = created.json().unwrap()["key"].as_str().unwrap().to_owned();
    let scraper = send(&mut client, "GET", "/metrics", Some(&scraper_key), None).await;
    assert_eq!(scraper.status, 200);
    // The scope reads metrics, nothing else.
    let search = send(&mut client, "GET", "/v1/logs", Some(&scraper_key), None).await;
    assert_eq!(search.status, 403);

    // A tenant's own admin cannot hand out every tenant's figures.
    let tenant = send(
        &mut client,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(tenant.status, 201, "{:?}", tenant.json());
    let password = "tenant-boss-passphrase-long";
    let user = send(
        &mut client,
        "POST",
        "/v1/users",
        Some(&admin),
        Some(json!({"tenant": "acme", "username": "acme-admin", "password": password, "role": "admin"})),
    )
    .await;
    assert_eq!(user.status, 201, "{:?}", user.json());
    let login = send(
        &mut client,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"username": "acme-admin", "password": password})),
    )
    .await;
    assert_eq!(login.status, 200, "{:?}", login.json());
    let acme_admin = login.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = send(
        &mut client,
        "POST",
        "/v1/keys",
        Some(&acme_admin),
        Some(json!({"name": "sneaky", "scopes": ["logs:read", "metrics:read"]})),
    )
    .await;
    assert_eq!(
        (refused.status, code(&refused).as_str()),
        (403, "forbidden")
    );
    let own_scrape = send(&mut client, "GET", "/metrics", Some(&acme_admin), None).await;
    assert_eq!(own_scrape.status, 403);
    // Its ordinary keys are still its to create.
    let ordinary = send(
        &mut client,
        "POST",
        "/v1/keys",
        Some(&acme_admin),
        Some(json!({"name": "app", "scopes": ["logs:write"]})),
    )
    .await;
    assert_eq!(ordinary.status, 201, "{:?}", ordinary.json());

    // The metrics listener: no credentials, and nothing but /metrics.
    let mut private = HttpClient::connect(&metrics_url(&server)).await.unwrap();
    let open = private.get("/metrics").await.unwrap();
    assert_eq!(open.status, 200);
    assert!(String::from_utf8_lossy(&open.body).contains("logbook_auth_failures_total"));
    let other = private.get("/v1/logs").await.unwrap();
    assert_eq!((other.status, code(&other).as_str()), (404, "not_found"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let _turn = TURN.lock().await;
    let server = start_metrics_server(|config| config.metrics.enabled = false).await;
    assert!(server.server.as_ref().unwrap().metrics_addr().is_none());
    let mut client = server.client_with(None).await;
    let admin = admin_token(&mut client).await;
    let answer = send(&mut client, "GET", "/metrics", Some(&admin), None).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (404, "metrics_disabled")
    );
    server.stop().await;
}

#[tokio::test]
async fn figures_move_with_traffic_and_the_dashboard_finds_all_it_shows() {
    let _turn = TURN.lock().await;
    // A caller may send 10 events, then must wait (practically for ever).
    let server = start_metrics_server(|config| {
        config.limits.caller_event_burst = 10.0;
        config.limits.caller_events_per_second = 0.001;
    })
    .await;
    let before = scrape(&server).await;
    let mut client = server.client().await;
    let default_logs = [
        ("tenant", "default"),
        ("stream", "logs"),
        ("protocol", "json"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut labels = default_logs.to_vec();
        labels.extend_from_slice(extra);
        labels
    };

    // Three events accepted, one refused on its own.
    let accepted = post_json(
        &mut client,
        &json!([{"message": "one"}, {"message": "two"}, {"message": "three"}, 42]),
    )
    .await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.json());
    let audit = client
        .post(
            "/v1/audit",
            "application/json",
            serde_json::to_vec(&json!({"action": "user.login", "userId": "u1", "message": "in"}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(audit.status, 202, "{:?}", audit.json());
    // Seven more events are over the caller's remaining six.
    let events: Vec<Value> = (0..7)
        .map(|i| json!({"message": format!("burst {i}")}))
        .collect();
    let limited = post_json(&mut client, &json!(events)).await;
    assert_eq!(limited.status, 429, "{:?}", limited.json());
    // A request refused as a whole.
    let malformed = client
        .post("/v1/logs", "application/json", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(malformed.status, 400);
    // Authentication failures of two kinds.
    let mut stranger = server.client_with(None).await;
    assert_eq!(
        send(&mut stranger, "GET", "/v1/logs", None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        send(
            &mut stranger,
            "GET",
            "/v1/logs",
            Some("lbk_not-a-key-at-all-0123456789abcdef"),
            None
        )
        .await
        .status,
        401
    );

    // Searches, once the events are stored.
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::count(&mut client, "one OR two OR three").await < 3 {
        assert!(Instant::now() < deadline, "events never became searchable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = common::search(&mut client, &[("q", "two")]).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);

    let after = scrape_until(&server, |scrape| {
        scrape.value(
            "logbook_audit_trail_signed_events",
            &[("tenant", "default")],
        ) >= 1.0
            && scrape.value("logbook_store_events", &[]) >= 4.0
            && scrape.value("logbook_queue_syncs_total", &[]) >= 2.0
    })
    .await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    // Ingest, by outcome.
    assert_eq!(
        delta(
            "logbook_ingest_events_total",
            &with(&[("outcome", "accepted")])
        ),
        3.0
    );
    assert_eq!(
        delta(
            "logbook_ingest_events_total",
            &with(&[("outcome", "rejected")])
        ),
        1.0
    );
    assert_eq!(
        delta(
            "logbook_ingest_events_total",
            &with(&[("outcome", "rate_limited"), ("reason", "rate_limited")])
        ),
        7.0
    );
    assert_eq!(
        delta(
            "logbook_ingest_requests_total",
            &with(&[("outcome", "rejected"), ("reason", "malformed_json")])
        ),
        1.0
    );
    assert_eq!(
        delta(
            "logbook_ingest_requests_total",
            &[("stream", "audit"), ("outcome", "accepted")]
        ),
        1.0
    );
    assert!(
        delta(
            "logbook_ingest_bytes_total",
            &with(&[("outcome", "accepted")])
        ) > 20.0
    );
    assert_eq!(
        delta("logbook_ingest_ack_seconds_count", &[("stream", "logs")]),
        1.0
    );
    assert_eq!(
        delta("logbook_ingest_ack_seconds_count", &[("stream", "audit")]),
        1.0
    );
    assert!(after.value("logbook_ingest_ack_seconds_sum", &[]) > 0.0);
    // Queries, by endpoint.
    assert!(
        delta(
            "logbook_query_duration_seconds_count",
            &[("endpoint", "/v1/stats")]
        ) >= 1.0
    );
    assert_eq!(
        delta(
            "logbook_query_duration_seconds_count",
            &[("endpoint", "/v1/logs")]
        ),
        1.0
    );
    // Authentication failures, by kind.
    assert_eq!(
        delta(
            "logbook_auth_failures_total",
            &[("kind", "missing_credentials")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "logbook_auth_failures_total",
            &[("kind", "invalid_credentials")]
        ),
        1.0
    );
    // The worker, the queue, the store and the trail.
    assert!(delta("logbook_worker_batches_total", &[]) >= 1.0);
    assert!(delta("logbook_worker_events_committed_total", &[]) >= 4.0);
    assert!(delta("logbook_worker_commit_seconds_count", &[]) >= 1.0);
    assert!(delta("logbook_worker_batch_seconds_count", &[]) >= 1.0);
    assert_eq!(after.value("logbook_worker_running", &[]), 1.0);
    assert!(after.exposes("logbook_queue_pending_bytes"));
    assert!(after.value("logbook_store_bytes", &[]) > 0.0);
    assert!(
        after.value(
            "logbook_audit_checkpoint_age_seconds",
            &[("tenant", "default")]
        ) < 60.0
    );
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.value("process_open_fds", &[]) > 0.0);

    dashboard_asks_only_for_what_is_exposed(&after);
    promtool_accepts(&after.text);
    server.stop().await;
}

/// Every `logbook_…`/`process_…` name in an `expr` of the dashboard is exposed.
fn dashboard_asks_only_for_what_is_exposed(exposition: &Exposition) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/dashboards/logbook.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    collect_exprs(&dashboard, &mut expressions);
    assert!(
        expressions.len() >= 20,
        "the dashboard has {} queries",
        expressions.len()
    );
    let mut missing = Vec::new();
    let mut checked = 0;
    for expr in &expressions {
        for name in metric_names(expr) {
            checked += 1;
            if !exposition.exposes(&name) && !RECORDED_ON_DEMAND.contains(&name.as_str()) {
                missing.push(name);
            }
        }
    }
    assert!(checked >= 30, "only {checked} names found in the dashboard");
    assert!(
        missing.is_empty(),
        "the dashboard asks for what /metrics does not expose: {missing:?}"
    );
}

fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, into)),
        _ => {}
    }
}

/// The `logbook_…` and `process_…` words of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("logbook_") || word.starts_with("process_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// `promtool check metrics` on the text, where promtool is installed
/// (Debian's `prometheus` package; `.ci/run` installs it).
fn promtool_accepts(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped promtool check metrics: promtool is not on the PATH (the strict parse above still ran)"
            );
            return;
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused the exposition:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
