//! `logbook bench query --classes`: the query classes the benchmark reports latency
//! for, run one after the other against a server loaded with `logbook bench dataset`
//! events (built from the 16 Loghub samples): newest events, a rare and a common word,
//! a phrase, a service and a word, the errors of the last hour, counts by service and
//! by level, and a histogram of everything.
//!
//! The words were picked by counting, over the 32,000 Loghub lines, the lines each
//! lowercased alphanumeric token (the store's tokenizer) appears in. A dataset event
//! takes its line from a uniformly chosen service, so every line appears about
//! N / 32,000 times in N events (31 times in 1M); digits are randomised but words are
//! not, so the counts carry over. The hits column of a run shows what they match.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::client::{HttpClient, body_excerpt, percent_encode};
use crate::ingest::retry_after;
use crate::progress::progress_bar;
use crate::query::{Probe, QueryArgs, QueryReport, Stop, Tally, hits_of, report, run_mix};

/// Rare: `panic` is in 3 of the 32,000 lines (two BGL `rts panic!`, one HPC
/// `domain panic`), so about 94 of 1M events (1M: 10 to 200 was asked).
const RARE_WORD: &str = "panic";
/// Common: `connection` is in 1,929 lines (6.0 %) of 8 services (Linux, Zookeeper,
/// HPC, Proxifier, Mac, OpenSSH, Thunderbird, BGL): about 60,000 of 1M events.
const COMMON_WORD: &str = "connection";
/// A phrase of two frequent words: `authentication failure` is in 986 lines (3.1 %,
/// Linux and OpenSSH), while `authentication` and `failure` are each in about 1,000:
/// the positions decide, not the posting lists. About 31,000 of 1M events.
const PHRASE: &str = "\"authentication failure\"";
/// A service and a word that other services also use: `invalid` is in 365 OpenSSH
/// lines, but also in 468 Windows and 60 BGL ones. About 11,400 of 1M events.
const SERVICE_AND_WORD: &str = "service:openssh AND invalid";
/// The level of the last-hour class.
const LAST_HOUR_QUERY: &str = "level:error";
/// The service whose events are counted by level: Hadoop has info, warn, error
/// and fatal lines.
const ONE_SERVICE: &str = "service:hadoop";
/// The histogram's buckets over the dataset's time range.
const HISTOGRAM_BUCKETS: u64 = 100;
const HOUR_NANOS: i64 = 3_600_000_000_000;
/// How often an untimed request the server asks to wait for is tried again.
const UNTIMED_RETRIES: u32 = 5;

/// The time range the server's log events cover, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) oldest: i64,
    pub(crate) newest: i64,
}

/// The classes' requests over `span`, with searches of `limit` events.
pub(crate) fn class_probes(span: Span, limit: usize) -> Vec<(Probe, Option<String>)> {
    let search = |name: &str, q: Option<&str>, range: Option<(i64, i64)>| {
        let mut filter = Vec::new();
        if let Some(q) = q {
            filter.push(format!("q={}", percent_encode(q)));
        }
        if let Some((from, to)) = range {
            filter.push(format!("from={from}&to={to}"));
        }
        let filter = filter.join("&");
        let separator = if filter.is_empty() { "" } else { "&" };
        let probe = Probe {
            name: match q {
                Some(q) => format!("{name}: {q}"),
                None => name.to_owned(),
            },
            path: format!("/v1/logs?{filter}{separator}limit={limit}"),
            matching: None,
        };
        let count = match filter.is_empty() {
            true => "/v1/stats".to_owned(),
            false => format!("/v1/stats?{filter}"),
        };
        (probe, Some(count))
    };
    let stats = |name: &str, q: Option<&str>| {
        let probe = Probe {
            name: name.to_owned(),
            path: match q {
                Some(q) => format!("/v1/stats?q={}", percent_encode(q)),
                None => "/v1/stats".to_owned(),
            },
            matching: None,
        };
        (probe, None)
    };
    // `to` is exclusive: one nanosecond past the newest event takes it in.
    let end = span.newest.saturating_add(1);
    let bucket_nanos = span.newest.saturating_sub(span.oldest).max(0) as u64 / HISTOGRAM_BUCKETS;
    let interval_secs = bucket_nanos.div_ceil(1_000_000_000).max(1);
    vec![
        search("newest", None, None),
        search("rare word", Some(RARE_WORD), None),
        search("common word", Some(COMMON_WORD), None),
        search("phrase", Some(PHRASE), None),
        search("service + word", Some(SERVICE_AND_WORD), None),
        search(
            "level in 1 h",
            Some(LAST_HOUR_QUERY),
            Some((end - HOUR_NANOS, end)),
        ),
        stats("count by service, all", None),
        stats(
            &format!("count by level, one service: {ONE_SERVICE}"),
            Some(ONE_SERVICE),
        ),
        (
            Probe {
                name: format!("histogram, all: {interval_secs}s buckets"),
                path: format!(
                    "/v1/logs/histogram?from={}&to={end}&interval={interval_secs}s",
                    span.oldest
                ),
                matching: None,
            },
            None,
        ),
    ]
}

/// Runs every class in turn and reports a row per class.
pub(crate) async fn run_classes(args: &QueryArgs) -> anyhow::Result<QueryReport> {
    let mut client = HttpClient::connect(&args.url)
        .await?
        .with_token(args.key.as_deref())?;
    let span = find_span(&mut client).await?;
    let classes = class_probes(span, args.limit);
    let share = Duration::from_secs(args.duration) / classes.len() as u32;
    let total = args.repeat.map(|n| n * classes.len() as u64);
    let progress = progress_bar(args.quiet, total, "requests")?;
    let start = Instant::now();
    let mut results = Vec::with_capacity(classes.len());
    for (mut probe, count) in classes {
        // Untimed: the events the class matches, and one request to warm up.
        if let Some(count) = &count {
            probe.matching = Some(hits_of(&get_json(&mut client, count).await?));
        }
        get_json(&mut client, &probe.path).await?;
        let stop = match args.repeat {
            Some(repeat) => Stop {
                deadline: None,
                remaining: Some(Arc::new(AtomicU64::new(repeat))),
            },
            None => Stop {
                deadline: Some(Instant::now() + share),
                remaining: None,
            },
        };
        let mix = [probe];
        let [tally] = <[Tally; 1]>::try_from(run_mix(args, &mix, &stop, &progress).await?)
            .map_err(|_| anyhow::anyhow!("one class gave several tallies"))?;
        let [probe] = mix;
        results.push((probe, tally));
    }
    progress.finish_and_clear();
    Ok(report(args, results, start.elapsed()))
}

/// The oldest and newest log event times, from two one-event searches.
async fn find_span(client: &mut HttpClient) -> anyhow::Result<Span> {
    let newest = first_timestamp(client, "/v1/logs?limit=1").await?;
    let oldest = first_timestamp(client, "/v1/logs?limit=1&order=asc").await?;
    Ok(Span { oldest, newest })
}

/// The timestamp of the first event a search returns, in nanoseconds.
async fn first_timestamp(client: &mut HttpClient, path: &str) -> anyhow::Result<i64> {
    let answer = get_json(client, path).await?;
    let Some(timestamp) = answer.pointer("/events/0/timestamp") else {
        bail!(
            "the server holds no log events: load a dataset with `logbook bench ingest --ndjson` first"
        );
    };
    let text = match timestamp {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let timestamp = model::Timestamp::parse(&text)
        .with_context(|| format!("the newest event's timestamp {text} cannot be read"))?;
    Ok(timestamp.nanos())
}

/// A GET answered 200, as JSON. An answer to wait (429 or 503, with the server's
/// `Retry-After` or a second) is retried a few times: these requests are not timed.
async fn get_json(client: &mut HttpClient, path: &str) -> anyhow::Result<Value> {
    let mut attempts = 0;
    loop {
        let response = client.get(path).await?;
        match response.status {
            200 => return response.json(),
            429 | 503 if attempts < UNTIMED_RETRIES => {
                attempts += 1;
                let pause = retry_after(&response).unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(pause).await;
            }
            status => bail!("HTTP {status} for {path}: {}", body_excerpt(&response.body)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_server::{Reply, serve};

    /// A day ending at 2023-11-14T22:13:20Z.
    const SPAN: Span = Span {
        oldest: 1_699_913_600_000_000_000,
        newest: 1_700_000_000_000_000_000,
    };

    #[test]
    fn classes_ask_for_what_the_issue_names() {
        let classes = class_probes(SPAN, 100);
        let paths: Vec<&str> = classes.iter().map(|(p, _)| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/v1/logs?limit=100",
                "/v1/logs?q=panic&limit=100",
                "/v1/logs?q=connection&limit=100",
                "/v1/logs?q=%22authentication%20failure%22&limit=100",
                "/v1/logs?q=service%3Aopenssh%20AND%20invalid&limit=100",
                "/v1/logs?q=level%3Aerror&from=1699996400000000001&to=1700000000000000001&limit=100",
                "/v1/stats",
                "/v1/stats?q=service%3Ahadoop",
                "/v1/logs/histogram?from=1699913600000000000&to=1700000000000000001&interval=864s",
            ]
        );
        // Searches are counted with the same filter; stats and histograms count themselves.
        let counts: Vec<Option<&str>> = classes.iter().map(|(_, c)| c.as_deref()).collect();
        assert_eq!(counts[0], Some("/v1/stats"));
        assert_eq!(
            counts[5],
            Some("/v1/stats?q=level%3Aerror&from=1699996400000000001&to=1700000000000000001")
        );
        assert!(counts[6..].iter().all(Option::is_none));
        let names: Vec<&str> = classes.iter().map(|(p, _)| p.name.as_str()).collect();
        assert_eq!(names[1], "rare word: panic");
        assert_eq!(names[8], "histogram, all: 864s buckets");
        // Every query parses, and a short span still has one-second buckets.
        for q in [
            RARE_WORD,
            COMMON_WORD,
            PHRASE,
            SERVICE_AND_WORD,
            LAST_HOUR_QUERY,
            ONE_SERVICE,
        ] {
            ::query::parse(q).unwrap();
        }
        let short = class_probes(
            Span {
                oldest: 5,
                newest: 9,
            },
            10,
        );
        assert!(
            short[8].0.path.ends_with("&interval=1s"),
            "{}",
            short[8].0.path
        );
    }

    #[tokio::test]
    async fn runs_every_class_a_set_number_of_times() {
        // The first count is asked to wait (and retried); the rest are answered.
        let limited = std::sync::atomic::AtomicBool::new(true);
        let server = serve(move |request, _| {
            let query = request.uri.query().unwrap_or_default();
            if request.uri.path() == "/v1/stats"
                && limited.swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                let mut reply = Reply::new(429, r#"{"code":"rate_limited"}"#);
                reply.headers.push(("retry-after", "0".to_owned()));
                return reply;
            }
            match request.uri.path() {
                "/v1/logs" if query == "limit=1" => Reply::new(
                    200,
                    r#"{"events":[{"timestamp":"2023-11-14T22:13:20Z"}],"next_cursor":null}"#,
                ),
                "/v1/logs" if query == "limit=1&order=asc" => Reply::new(
                    200,
                    r#"{"events":[{"timestamp":"2023-11-13T22:13:20Z"}],"next_cursor":null}"#,
                ),
                "/v1/logs" => Reply::new(200, r#"{"events":[{}],"took_ms":0.5}"#),
                "/v1/stats" if query.contains("panic") => Reply::new(200, r#"{"total":94}"#),
                "/v1/stats" => Reply::new(200, r#"{"total":1000}"#),
                "/v1/logs/histogram" => Reply::new(200, r#"{"buckets":[{"count":7}]}"#),
                _ => Reply::new(404, ""),
            }
        })
        .await;
        let args = QueryArgs {
            url: format!("http://{}", server.addr),
            key: None,
            connections: 2,
            duration: 1,
            queries: Vec::new(),
            limit: 100,
            classes: true,
            repeat: Some(5),
            json: false,
            quiet: true,
        };
        let report = crate::run_query(&args).await.unwrap();
        assert_eq!(report.queries.len(), 9);
        assert!(report.queries.iter().all(|q| q.requests == 5), "{report}");
        assert_eq!((report.requests, report.errors), (45, 0));
        let hits: Vec<Option<u64>> = report.queries.iter().map(|q| q.hits).collect();
        assert_eq!(hits[1], Some(94));
        assert_eq!(hits[0], Some(1000));
        assert_eq!(hits[8], Some(7));
        assert!(report.queries[8].path.contains("interval=864s"));
        let text = report.to_string();
        assert_eq!(text.lines().count(), 12, "{text}");
    }

    #[tokio::test]
    async fn an_empty_server_is_an_error() {
        let server = serve(|_, _| Reply::new(200, r#"{"events":[],"next_cursor":null}"#)).await;
        let mut client = HttpClient::connect(&format!("http://{}", server.addr))
            .await
            .unwrap();
        let error = find_span(&mut client).await.unwrap_err().to_string();
        assert!(error.contains("no log events"), "{error}");
    }
}
