//! Logbook over a Redis Streams queue: every acknowledged event is stored
//! once, Redis's persistence settings are reported, and an outage (a proxy
//! the test cuts) answers 503 at once and heals by itself. Skips when
//! `LOGBOOK_TEST_REDIS_URL` is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::fault_proxy::FaultProxy;
use common::{TestServer, count, get, loghub, service_url, unique_prefix};

async fn delete_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:events"))
        .arg(format!("{{{prefix}}}:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
}

/// Whether Redis keeps acknowledged records across its own crash.
async fn redis_is_durable(url: &str) -> bool {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let settings: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("append*")
        .query_async(&mut connection)
        .await
        .unwrap();
    settings.chunks(2).any(|p| p == ["appendonly", "yes"])
        && settings.chunks(2).any(|p| p == ["appendfsync", "always"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loghub_lines_go_through_redis_once_and_persistence_is_reported() {
    let Some(url) = service_url(
        "LOGBOOK_TEST_REDIS_URL",
        "redis://127.0.0.1:6379",
        "loghub_lines_go_through_redis_once",
    ) else {
        return;
    };
    let Some(apache) = loghub("Apache/Apache_2k.log") else {
        eprintln!("SKIPPED: the Loghub samples are not beside the repository");
        return;
    };
    let prefix = unique_prefix("loghub");
    let server = TestServer::start_with(|config| {
        config.queue.url = Some(url.clone());
        config.queue.prefix = prefix.clone();
    })
    .await;
    let mut client = server.client().await;
    let lines = std::fs::read(&apache).unwrap();
    let expected = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let response = client
        .post("/v1/logs?wait=searchable", "text/plain", lines)
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    assert_eq!(
        response.json().unwrap()["searchable"],
        true,
        "{:?}",
        response.json()
    );
    assert_eq!(count(&mut client, "*").await, expected);
    let found = count(&mut client, "\"jk2_init() Found child\"").await;
    assert_eq!(found, 836, "phrases work over the Redis path too");

    let ready = get(&mut client, "/readyz", &[]).await;
    assert_eq!(ready.status, 200);
    let ready = ready.json().unwrap();
    let warned = ready["warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w.as_str().unwrap().contains("redis")));
    assert_eq!(
        warned,
        !redis_is_durable(&url).await,
        "readyz warns exactly when Redis can lose acknowledged events: {ready}"
    );
    server.stop().await;
    delete_keys(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_at_once_and_heals_by_itself() {
    let Some(url) = service_url(
        "LOGBOOK_TEST_REDIS_URL",
        "redis://127.0.0.1:6379",
        "a_redis_outage_answers_503_at_once",
    ) else {
        return;
    };
    let upstream = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let upstream = tokio::net::lookup_host(&upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let prefix = unique_prefix("outage");
    let server = TestServer::start_with(|config| {
        config.queue.url = Some(format!("redis://{}", proxy.address()));
        config.queue.prefix = prefix.clone();
    })
    .await;
    let mut client = server.client().await;
    let batch = |n: usize| -> Vec<u8> {
        (0..50)
            .map(|i| format!("{{\"message\":\"outage batch {n} line {i}\"}}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let mut acknowledged = 0;
    let response = client
        .post("/v1/logs", "application/x-ndjson", batch(0))
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    acknowledged += 50;

    proxy.cut();
    let started = Instant::now();
    let response = client
        .post("/v1/logs", "application/x-ndjson", batch(1))
        .await
        .unwrap();
    assert_eq!(response.status, 503, "{:?}", response.json());
    assert_eq!(response.json().unwrap()["code"], "queue_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    let ready = get(&mut client, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "{:?}", ready.json());

    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 2;
    while acknowledged < 200 {
        assert!(Instant::now() < deadline, "ingest did not come back");
        let response = client
            .post("/v1/logs", "application/x-ndjson", batch(n))
            .await
            .unwrap();
        n += 1;
        match response.status {
            202 => acknowledged += 50,
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("unexpected {other}: {:?}", response.json()),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut client, "outage").await < acknowledged {
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&mut client, "outage").await,
        acknowledged,
        "every acknowledged event once, nothing else"
    );
    server.stop().await;
    delete_keys(&url, &prefix).await;
}
