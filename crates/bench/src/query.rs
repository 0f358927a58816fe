//! The query load generator behind `logbook bench query`: keep-alive connections cycling
//! through a mix of searches (plus stats and histogram requests) for a fixed time, with
//! per-query latency percentiles and the server's own `took_ms`. `--classes` runs
//! the benchmark's query classes one after the other instead (`classes.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use crate::client::{HttpClient, body_excerpt, percent_encode};
use crate::progress::progress_bar;
use crate::stats::{LatencySummary, percentile, thousands};

/// Searches of the built-in mix, chosen to match the events `bench ingest` generates
/// when given no files (a test checks each matches some): selective field and phrase
/// queries, an attribute, a prefix, and match-all.
const BUILTIN_SEARCHES: [&str; 8] = [
    r#"service:payments "card declined""#,
    "level:error",
    r#""timed out" AND service:gateway"#,
    "service:checkout slow",
    "metadata.line:42",
    "level:>=warn service:inventory",
    "retry*",
    "*",
];
/// The query of the built-in `/v1/stats` request.
const BUILTIN_STATS: &str = "level:>=warn";
/// The query of the built-in `/v1/logs/histogram` request.
const BUILTIN_HISTOGRAM: &str = "service:payments";
/// The pause after a transport error, so a dead server is not hammered.
const BACKOFF: Duration = Duration::from_millis(50);
/// Query names longer than this are shortened in the text report.
const NAME_WIDTH: usize = 44;

/// Options of `logbook bench query`.
#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    /// Base URL of the Logbook server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key to send (`logs:write` for ingest, `logs:read` for queries).
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Concurrent keep-alive connections, each sending one request at a time.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Run for this many seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// A search query (`q`) to run; repeat for a mix. A built-in mix when none is given.
    #[arg(long = "query")]
    pub queries: Vec<String>,
    /// The `limit` of each search.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Instead of a mix, time each query class of a `logbook bench dataset` load in
    /// turn (newest, rare and common word, phrase, service and word, errors of the
    /// last hour, stats, histogram), each for an equal share of --duration.
    #[arg(long, conflicts_with = "queries")]
    pub classes: bool,
    /// With --classes: time this many requests per class instead of a share of
    /// --duration.
    #[arg(long, requires = "classes")]
    pub repeat: Option<u64>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show no progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The outcome of a query run.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// The server's base URL.
    pub url: String,
    /// Concurrent connections used.
    pub connections: usize,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_secs: f64,
    /// Requests sent, all queries together.
    pub requests: u64,
    /// Requests that failed (non-200 status or transport error).
    pub errors: u64,
    /// Successful requests per second.
    pub requests_per_sec: f64,
    /// Latency of successful requests, all queries together.
    pub latency: LatencySummary,
    /// Per query of the mix, in mix order.
    pub queries: Vec<QueryStats>,
    /// The first error seen (status and body, or the transport error).
    pub first_error: Option<String>,
}

/// The results of one query of the mix.
#[derive(Debug, Clone, Serialize)]
pub struct QueryStats {
    /// A label: the `q` string, prefixed with `stats ` or `histogram ` for those endpoints.
    pub name: String,
    /// The request path and query string.
    pub path: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Hits of the last successful answer: the `events` array length, the `total` of a
    /// stats answer, or the sum of a histogram's bucket counts (`None` if none
    /// succeeded). With --classes, a search's hits are all the events it matches,
    /// counted once beforehand with `/v1/stats` and the same filter.
    pub hits: Option<u64>,
    /// Latency of successful requests, from sending to having read the answer.
    pub latency: LatencySummary,
    /// Median of the server-reported `took_ms`, when answers carry it.
    pub took_p50_ms: Option<f64>,
}

/// One request of the mix.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) name: String,
    pub(crate) path: String,
    /// The events its filter matches, when counted beforehand: reported as its hits.
    pub(crate) matching: Option<u64>,
}

/// When a connection stops sending: at the deadline, or once a shared count of
/// requests is used up.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) deadline: Option<Instant>,
    pub(crate) remaining: Option<Arc<AtomicU64>>,
}

impl Stop {
    /// Whether to stop; otherwise one request is taken from the count.
    fn now(&self) -> bool {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return true;
        }
        self.remaining.as_ref().is_some_and(|remaining| {
            remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_err()
        })
    }
}

/// The requests to cycle through.
fn query_mix(args: &QueryArgs) -> Vec<Probe> {
    let search = |q: &str| Probe {
        name: q.to_owned(),
        path: format!("/v1/logs?q={}&limit={}", percent_encode(q), args.limit),
        matching: None,
    };
    if !args.queries.is_empty() {
        return args.queries.iter().map(|q| search(q)).collect();
    }
    let mut mix: Vec<Probe> = BUILTIN_SEARCHES.iter().map(|q| search(q)).collect();
    mix.push(Probe {
        name: format!("stats {BUILTIN_STATS}"),
        path: format!("/v1/stats?q={}", percent_encode(BUILTIN_STATS)),
        matching: None,
    });
    mix.push(Probe {
        name: format!("histogram {BUILTIN_HISTOGRAM}"),
        path: format!(
            "/v1/logs/histogram?q={}&interval=1h",
            percent_encode(BUILTIN_HISTOGRAM)
        ),
        matching: None,
    });
    mix
}

/// Runs the query load described by `args` and reports what happened.
pub async fn run_query(args: &QueryArgs) -> anyhow::Result<QueryReport> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.classes {
        return crate::classes::run_classes(args).await;
    }
    let mix = query_mix(args);
    let progress = progress_bar(args.quiet, None, "requests")?;
    let start = Instant::now();
    let stop = Stop {
        deadline: Some(start + Duration::from_secs(args.duration)),
        remaining: None,
    };
    let tallies = run_mix(args, &mix, &stop, &progress).await?;
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    Ok(report(
        args,
        mix.into_iter().zip(tallies).collect(),
        elapsed,
    ))
}

/// Runs `mix` over `args.connections` new connections until `stop`; the tallies
/// follow the mix's order.
pub(crate) async fn run_mix(
    args: &QueryArgs,
    mix: &[Probe],
    stop: &Stop,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Tally>> {
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(
            HttpClient::connect(&args.url)
                .await?
                .with_token(args.key.as_deref())?,
        );
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            tokio::spawn(query_loop(
                client,
                mix.to_vec(),
                index,
                stop.clone(),
                progress.clone(),
            ))
        })
        .collect();
    let mut tallies: Vec<Tally> = mix.iter().map(|_| Tally::default()).collect();
    for task in tasks {
        let result = task.await?;
        for (total, part) in tallies.iter_mut().zip(result) {
            total.merge(part);
        }
    }
    Ok(tallies)
}

/// The report of a run that took `elapsed`, a row per request of the mix.
pub(crate) fn report(
    args: &QueryArgs,
    results: Vec<(Probe, Tally)>,
    elapsed: Duration,
) -> QueryReport {
    let tallies: Vec<&Tally> = results.iter().map(|(_, tally)| tally).collect();
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let all_latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    let requests = tallies.iter().map(|t| t.requests).sum();
    let errors = tallies.iter().map(|t| t.errors).sum();
    let queries = results
        .into_iter()
        .map(|(probe, tally)| tally.into_stats(probe))
        .collect();
    QueryReport {
        url: args.url.clone(),
        connections: args.connections,
        elapsed_secs: elapsed.as_secs_f64(),
        requests,
        errors,
        requests_per_sec: all_latencies.len() as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        latency: LatencySummary::from_durations(&all_latencies),
        queries,
        first_error,
    }
}

/// One connection's loop: the mix in order, starting at `first`, until `stop`.
async fn query_loop(
    mut client: HttpClient,
    mix: Vec<Probe>,
    first: usize,
    stop: Stop,
    progress: ProgressBar,
) -> Vec<Tally> {
    let mut tallies: Vec<Tally> = mix.iter().map(|_| Tally::default()).collect();
    let mut next = first;
    while !stop.now() {
        let index = next % mix.len();
        next += 1;
        let tally = &mut tallies[index];
        tally.requests += 1;
        let sent = Instant::now();
        let result = client.get(&mix[index].path).await;
        let latency = sent.elapsed();
        progress.inc(1);
        match result {
            Ok(response) if response.status == 200 => {
                tally.latencies.push(latency);
                match response.json() {
                    Ok(answer) => {
                        tally.hits = Some(hits_of(&answer));
                        if let Some(took) = answer.get("took_ms").and_then(Value::as_f64) {
                            tally.took_ms.push(took);
                        }
                    }
                    Err(error) => tally.error(|| format!("{error:#}")),
                }
            }
            Ok(response) => tally.error(|| {
                format!(
                    "HTTP {} for {}: {}",
                    response.status,
                    mix[index].path,
                    body_excerpt(&response.body)
                )
            }),
            Err(error) => {
                tally.error(|| format!("{error:#}"));
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
    tallies
}

/// The hit count of an answer: `events` length, else `total`, else summed bucket counts.
pub(crate) fn hits_of(answer: &Value) -> u64 {
    if let Some(events) = answer.get("events").and_then(Value::as_array) {
        return events.len() as u64;
    }
    if let Some(total) = answer.get("total").and_then(Value::as_u64) {
        return total;
    }
    answer
        .get("buckets")
        .and_then(Value::as_array)
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|bucket| bucket.get("count").and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0)
}

/// What one connection counted for one query.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    requests: u64,
    errors: u64,
    hits: Option<u64>,
    latencies: Vec<Duration>,
    took_ms: Vec<f64>,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.hits = self.hits.max(other.hits);
        self.latencies.extend(other.latencies);
        self.took_ms.extend(other.took_ms);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    fn into_stats(mut self, probe: Probe) -> QueryStats {
        self.took_ms.sort_by(f64::total_cmp);
        QueryStats {
            name: probe.name,
            path: probe.path,
            requests: self.requests,
            errors: self.errors,
            hits: probe.matching.or(self.hits),
            latency: LatencySummary::from_durations(&self.latencies),
            took_p50_ms: (!self.took_ms.is_empty()).then(|| percentile(&self.took_ms, 50.0)),
        }
    }
}

/// `name` cut to `NAME_WIDTH` characters.
fn short_name(name: &str) -> String {
    if name.chars().count() <= NAME_WIDTH {
        name.to_owned()
    } else {
        let mut short: String = name.chars().take(NAME_WIDTH - 1).collect();
        short.push('…');
        short
    }
}

impl fmt::Display for QueryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "query {}: {} connection{}, {:.2} s, {} requests ({}/s), {} errors",
            self.url,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.elapsed_secs,
            thousands(self.requests),
            thousands(self.requests_per_sec.round() as u64),
            thousands(self.errors)
        )?;
        writeln!(
            f,
            "  {:<w$} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "query",
            "requests",
            "errors",
            "hits",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "took p50",
            w = NAME_WIDTH
        )?;
        let row = |f: &mut fmt::Formatter<'_>,
                   name: &str,
                   requests: u64,
                   errors: u64,
                   hits: Option<u64>,
                   latency: &LatencySummary,
                   took: Option<f64>| {
            write!(
                f,
                "  {:<w$} {:>8} {:>6} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}",
                short_name(name),
                requests,
                errors,
                hits.map_or_else(|| "-".to_owned(), |h| h.to_string()),
                latency.p50_ms,
                latency.p90_ms,
                latency.p99_ms,
                latency.max_ms,
                took.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}")),
                w = NAME_WIDTH
            )
        };
        for query in &self.queries {
            row(
                f,
                &query.name,
                query.requests,
                query.errors,
                query.hits,
                &query.latency,
                query.took_p50_ms,
            )?;
            writeln!(f)?;
        }
        row(
            f,
            "all",
            self.requests,
            self.errors,
            None,
            &self.latency,
            None,
        )?;
        if let Some(error) = &self.first_error {
            writeln!(f)?;
            write!(f, "  first error: {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_server::{Reply, serve};

    fn args(queries: &[&str]) -> QueryArgs {
        QueryArgs {
            url: "http://127.0.0.1:1".to_owned(),
            key: None,
            connections: 1,
            duration: 1,
            queries: queries.iter().map(|q| (*q).to_owned()).collect(),
            limit: 7,
            classes: false,
            repeat: None,
            json: false,
            quiet: true,
        }
    }

    #[test]
    fn command_line_defaults_and_repeats() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            query: QueryArgs,
        }
        let args = Cli::try_parse_from(["bench"]).unwrap().query;
        assert_eq!(args.url, "http://127.0.0.1:8080");
        assert_eq!((args.connections, args.duration, args.limit), (2, 10, 100));
        assert!(args.queries.is_empty() && !args.json && !args.quiet);
        let args = Cli::try_parse_from(["bench", "--query", "a b", "--query", "level:error"])
            .unwrap()
            .query;
        assert_eq!(args.queries, ["a b", "level:error"]);
        let args = Cli::try_parse_from(["bench", "--classes", "--repeat", "20"])
            .unwrap()
            .query;
        assert!(args.classes && args.queries.is_empty());
        assert_eq!(args.repeat, Some(20));
        assert!(Cli::try_parse_from(["bench", "--repeat", "20"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--classes", "--query", "x"]).is_err());
    }

    /// Whether a generated event (as sent) matches a query of the built-in mix; knows
    /// just the parts of the language the mix uses.
    fn matches(query: &::query::Query, event: &serde_json::Value) -> bool {
        use ::query::{Comparison, Predicate, Query};
        let message = event["message"].as_str().unwrap().to_lowercase();
        let rank = |level: &str| {
            ["trace", "debug", "info", "warn", "error", "fatal"]
                .iter()
                .position(|l| *l == level)
                .unwrap()
        };
        match query {
            Query::All => true,
            Query::And(items) => items.iter().all(|item| matches(item, event)),
            Query::Or(items) => items.iter().any(|item| matches(item, event)),
            Query::Text(word) | Query::Phrase(word) => message.contains(&word.to_lowercase()),
            Query::TextPrefix { prefix, .. } => message
                .split(|c: char| !c.is_alphanumeric())
                .any(|word| word.starts_with(&prefix.to_lowercase())),
            Query::Field {
                field, predicate, ..
            } => match (field.as_str(), predicate) {
                ("service", Predicate::Equals(value)) => event["service"] == value.as_str(),
                ("level", Predicate::Equals(value)) => event["level"] == value.as_str(),
                ("level", Predicate::Compare(Comparison::Ge, value)) => {
                    rank(event["level"].as_str().unwrap()) >= rank(value)
                }
                ("metadata.line", Predicate::Equals(value)) => {
                    value.parse::<u64>().ok() == event["metadata"]["line"].as_u64()
                }
                other => panic!("the test does not know {other:?}"),
            },
            Query::Not(_) => panic!("the test does not know NOT"),
        }
    }

    #[test]
    fn builtin_queries_match_generated_events() {
        let sources = crate::events::Source::generated(20_000, 1);
        let pool = crate::events::build_pool(
            &sources,
            1000,
            usize::MAX,
            usize::MAX,
            1_700_000_000_000,
            crate::events::Shape::Log,
        )
        .unwrap();
        let events: Vec<serde_json::Value> = pool
            .iter()
            .flat_map(|batch| {
                String::from_utf8(batch.prefix(usize::MAX).to_vec())
                    .unwrap()
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        let all = BUILTIN_SEARCHES
            .iter()
            .chain([&BUILTIN_STATS, &BUILTIN_HISTOGRAM]);
        for q in all {
            let query = ::query::parse(q).unwrap();
            let hits = events.iter().filter(|e| matches(&query, e)).count();
            assert!(hits > 0, "{q:?} matches no generated event");
            if *q != "*" {
                assert!(hits < events.len(), "{q:?} matches every event");
            }
        }
    }

    #[test]
    fn builtin_mix_has_searches_stats_and_histogram() {
        let mix = query_mix(&args(&[]));
        assert_eq!(mix.len(), BUILTIN_SEARCHES.len() + 2);
        assert_eq!(
            mix[0].path,
            "/v1/logs?q=service%3Apayments%20%22card%20declined%22&limit=7"
        );
        assert!(mix.iter().any(|p| p.path.starts_with("/v1/stats?q=")));
        assert!(mix.iter().any(
            |p| p.path.starts_with("/v1/logs/histogram?q=") && p.path.ends_with("&interval=1h")
        ));
        let custom = query_mix(&args(&["a b"]));
        assert_eq!(custom.len(), 1);
        assert_eq!(custom[0].name, "a b");
        assert_eq!(custom[0].path, "/v1/logs?q=a%20b&limit=7");
    }

    #[tokio::test]
    async fn runs_the_mix_against_a_server() {
        let server = serve(|request, _| match request.uri.path() {
            "/v1/logs" if request.uri.query().is_some_and(|q| q.contains("q=bad")) => {
                Reply::new(400, r#"{"code":"invalid_query"}"#)
            }
            "/v1/logs" => Reply::new(
                200,
                r#"{"events":[{},{}],"next_cursor":null,"took_ms":0.5}"#,
            ),
            "/v1/stats" => Reply::new(200, r#"{"total":9,"took_ms":0.25}"#),
            "/v1/logs/histogram" => Reply::new(200, r#"{"buckets":[{"count":4}],"took_ms":1}"#),
            _ => Reply::new(404, ""),
        })
        .await;
        let mix_args = QueryArgs {
            url: format!("http://{}", server.addr),
            connections: 2,
            ..args(&[])
        };
        let failing_args = QueryArgs {
            url: format!("http://{}", server.addr),
            ..args(&["bad"])
        };
        let (report, failing) = tokio::join!(run_query(&mix_args), run_query(&failing_args));
        let (report, failing) = (report.unwrap(), failing.unwrap());
        assert_eq!(report.errors, 0);
        assert!(report.requests >= 10, "{report}");
        assert_eq!(report.queries.len(), BUILTIN_SEARCHES.len() + 2);
        let hits: Vec<Option<u64>> = report.queries.iter().map(|q| q.hits).collect();
        assert_eq!(&hits[BUILTIN_SEARCHES.len()..], [Some(9), Some(4)]);
        assert!(hits[..BUILTIN_SEARCHES.len()].iter().all(|&h| h == Some(2)));
        assert_eq!(failing.queries[0].hits, None);
        assert_eq!(report.queries[0].took_p50_ms, Some(0.5));
        assert_eq!(report.latency.count as u64, report.requests);

        assert_eq!(failing.errors, failing.requests);
        assert!(
            failing
                .first_error
                .as_deref()
                .is_some_and(|e| e.starts_with("HTTP 400 for /v1/logs?q=bad&limit=7: "))
        );
    }

    #[test]
    fn hits_from_each_answer_shape() {
        let search =
            serde_json::json!({"events": [{}, {}, {}], "next_cursor": null, "took_ms": 1.5});
        assert_eq!(hits_of(&search), 3);
        let stats = serde_json::json!({"total": 42, "took_ms": 0.3});
        assert_eq!(hits_of(&stats), 42);
        let histogram = serde_json::json!({"buckets": [{"count": 2}, {"count": 5}]});
        assert_eq!(hits_of(&histogram), 7);
        assert_eq!(hits_of(&serde_json::json!({})), 0);
    }

    #[test]
    fn report_renders_a_row_per_query() {
        let tally = Tally {
            requests: 3,
            latencies: vec![Duration::from_millis(2); 3],
            took_ms: vec![0.5, 0.1, 0.9],
            hits: Some(100),
            ..Tally::default()
        };
        let stats = tally.into_stats(Probe {
            name: "x".repeat(60),
            path: "/v1/logs?q=x".to_owned(),
            matching: None,
        });
        assert_eq!(stats.took_p50_ms, Some(0.5));
        let report = QueryReport {
            url: "http://h:1".to_owned(),
            connections: 1,
            elapsed_secs: 1.0,
            requests: 3,
            errors: 0,
            requests_per_sec: 3.0,
            latency: stats.latency,
            queries: vec![stats],
            first_error: None,
        };
        let text = report.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains('…'));
        assert!(text.lines().last().unwrap().trim_start().starts_with("all"));
    }
}
