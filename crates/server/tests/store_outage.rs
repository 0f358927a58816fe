//! A PostgreSQL outage (a proxy the test cuts, never the shared server):
//! queries answer 503 store_unavailable at once, ingest goes on into the queue,
//! and once the database is back the backlog is stored, each event once.
//! Skips when `LOGBOOK_TEST_POSTGRES_URL` is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::fault_proxy::FaultProxy;
use common::{TestServer, count, through, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_queries_fast_and_loses_nothing() {
    let Some(url) = meta::testing::postgres_url("a_database_outage_fails_queries_fast") else {
        return;
    };
    let schema_url = meta::testing::fresh_postgres_schema(&url).await.unwrap();
    let proxy = FaultProxy::start(upstream(&url).await).await.unwrap();
    let server = TestServer::start_with(|config| {
        config.store.url = Some(through(&schema_url, proxy.address()));
    })
    .await;
    let mut client = server.client().await;
    let batch = |n: usize| -> Vec<u8> {
        (0..20)
            .map(|i| format!("{{\"message\":\"outage batch {n} line {i}\"}}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let first = client
        .post("/v1/logs?wait=searchable", "application/x-ndjson", batch(0))
        .await
        .unwrap();
    assert_eq!(first.status, 202, "{:?}", first.json());
    assert_eq!(count(&mut client, "outage").await, 20);

    proxy.cut();
    // Ingest goes on into the (embedded) queue while the database is down.
    for n in 1..4 {
        let response = client
            .post("/v1/logs", "application/x-ndjson", batch(n))
            .await
            .unwrap();
        assert_eq!(response.status, 202, "{:?}", response.json());
    }
    // Queries fail, and once the circuit is open they fail at once.
    for _ in 0..3 {
        let _ = client.get("/v1/stats?q=outage").await.unwrap();
    }
    let started = Instant::now();
    let refused = client.get("/v1/stats?q=outage").await.unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.json());
    assert_eq!(refused.json().unwrap()["code"], "store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        started.elapsed()
    );
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 503);

    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = client.get("/v1/stats?q=outage").await.unwrap();
        if stats.status == 200 && stats.json().unwrap()["total"] == 80 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog was not stored: {:?}",
            stats.json()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.stop().await;
}
