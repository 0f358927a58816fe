//! Logbook over a RabbitMQ queue: ingest is stored once and answers queries,
//! and an outage (a proxy the test cuts) answers 503 queue_unavailable at
//! once and heals by itself, every acknowledged event stored exactly once.
//! Skips when `LOGBOOK_TEST_RABBITMQ_URL` is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bench::client::percent_encode;
use bench::fault_proxy::FaultProxy;
use common::{TestServer, count, get, loghub, service_url, unique_prefix};

/// Removes the queues and the exchange the server declared (default retry stages).
async fn delete_topology(url: &str, prefix: &str) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let stages = server::Config::default().queue.retry_delays_ms.len();
    let retries = (1..=stages).map(|n| format!("{prefix}.retry.{n}"));
    for queue in std::iter::once(format!("{prefix}.work")).chain(retries) {
        channel
            .queue_delete(queue.into(), Default::default())
            .await
            .unwrap();
    }
    channel
        .exchange_delete(format!("{prefix}.events").into(), Default::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loghub_lines_go_through_rabbitmq_once_and_answer_queries() {
    let Some(url) = service_url(
        "LOGBOOK_TEST_RABBITMQ_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "loghub_lines_go_through_rabbitmq_once",
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
    assert_eq!(response.json().unwrap()["searchable"], true);
    assert_eq!(count(&mut client, "*").await, expected);
    let found = count(&mut client, "\"jk2_init() Found child\"").await;
    assert_eq!(found, 836, "phrases work over the RabbitMQ path too");

    let ready = get(&mut client, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());
    server.stop().await;
    delete_topology(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_outage_answers_503_at_once_and_heals_by_itself() {
    let Some(url) = service_url(
        "LOGBOOK_TEST_RABBITMQ_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "a_rabbitmq_outage_answers_503_at_once",
    ) else {
        return;
    };
    let uri: lapin::uri::AMQPUri = url.parse().unwrap();
    let upstream = tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let proxied = {
        let mut uri = uri.clone();
        uri.authority.host = proxy.address().ip().to_string();
        uri.authority.port = proxy.address().port();
        let user = &uri.authority.userinfo;
        format!(
            "amqp://{}:{}@{}:{}/{}",
            user.username,
            user.password,
            uri.authority.host,
            uri.authority.port,
            percent_encode(&uri.vhost)
        )
    };
    let prefix = unique_prefix("outage");
    let server = TestServer::start_with(|config| {
        config.queue.url = Some(proxied.clone());
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
    let mut acknowledged = HashSet::new();
    let ingest = async |client: &mut bench::client::HttpClient, n: usize| {
        let response = client
            .post("/v1/logs", "application/x-ndjson", batch(n))
            .await
            .unwrap();
        (response.status, response.json())
    };
    let (status, body) = ingest(&mut client, 0).await;
    assert_eq!(status, 202, "{body:?}");
    acknowledged.insert(0);

    proxy.cut();
    let started = Instant::now();
    let (status, body) = ingest(&mut client, 1).await;
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(body.unwrap()["code"], "queue_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        started.elapsed()
    );
    let ready = get(&mut client, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "{:?}", ready.json());

    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 2;
    while acknowledged.len() < 5 {
        assert!(Instant::now() < deadline, "ingest did not come back");
        let (status, body) = ingest(&mut client, n).await;
        match status {
            202 => {
                acknowledged.insert(n);
            }
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("unexpected {other}: {body:?}"),
        }
        n += 1;
    }
    let expected = 50 * acknowledged.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut client, "outage").await < expected {
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged batch once; the refused ones may be stored too (a
    // 503 after the broker took the record is possible), but never twice.
    for batch in &acknowledged {
        let found = count(&mut client, &format!("\"outage batch {batch} line 7\"")).await;
        assert_eq!(found, 1, "batch {batch} stored exactly once");
    }
    for batch in (0..n).filter(|b| !acknowledged.contains(b)) {
        let found = count(&mut client, &format!("\"outage batch {batch} line 7\"")).await;
        assert!(found <= 1, "refused batch {batch} stored {found} times");
    }
    server.stop().await;
    delete_topology(&url, &prefix).await;
}
