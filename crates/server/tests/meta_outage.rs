//! Ingest goes on while the metadata database is down: a key confirmed before
//! the outage keeps writing (for the outage grace), unknown keys are refused,
//! and nothing hangs. The database sits behind a proxy the test cuts; the
//! shared PostgreSQL itself is never touched. Skips when
//! `LOGBOOK_TEST_POSTGRES_URL` is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::fault_proxy::FaultProxy;
use common::{TestServer, through, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_keys_keep_ingesting_while_the_metadata_database_is_down() {
    let Some(url) = meta::testing::postgres_url("confirmed_keys_keep_ingesting") else {
        return;
    };
    let schema_url = meta::testing::fresh_postgres_schema(&url).await.unwrap();
    let proxy = FaultProxy::start(upstream(&url).await).await.unwrap();
    let server = TestServer::start_with(|config| {
        config.database_url = Some(through(&schema_url, proxy.address()));
    })
    .await;
    let mut client = server.client().await;
    let line = |n: u32| format!("{{\"message\":\"during the outage {n}\"}}");
    let response = client
        .post("/v1/logs", "application/json", line(0))
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());

    proxy.cut();
    let started = Instant::now();
    let response = client
        .post("/v1/logs", "application/json", line(1))
        .await
        .unwrap();
    assert_eq!(
        response.status,
        202,
        "a confirmed key still writes: {:?}",
        response.json()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let mut stranger = server
        .client_with(Some("lbk_not-a-key-0123456789abcdefghijklmnopq"))
        .await;
    let refused = stranger
        .post("/v1/logs", "application/json", line(2))
        .await
        .unwrap();
    assert_eq!(refused.status, 503, "an unknown key is never let in");
    assert_eq!(refused.json().unwrap()["code"], "auth_unavailable");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let search = client.get("/v1/logs?q=outage").await.unwrap();
        if search.status == 200 && search.json().unwrap()["events"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the events did not become searchable"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}
