//! Syslog over TCP into a real server: octet-counted RFC 5424 and
//! newline-framed RFC 3164 on one connection, stored field by field; an
//! oversized message is skipped and counted while the stream goes on; a
//! missing tenant refuses the start.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Timelike as _, Utc};
use common::{TestServer, admin_token};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

/// The events of the default tenant once `expected` of them are searchable,
/// keyed by message.
async fn stored(
    client: &mut bench::HttpClient,
    expected: usize,
) -> std::collections::HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = common::search(client, &[("limit", "100")]).await;
        let events = page["events"].as_array().unwrap();
        if events.len() >= expected {
            assert_eq!(events.len(), expected, "{page}");
            return events
                .iter()
                .map(|event| (event["message"].as_str().unwrap().to_owned(), event.clone()))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {page}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn rfc3339(nanos: i64) -> String {
    model::Timestamp::from_epoch(nanos).unwrap().to_rfc3339()
}

fn octet_counted(message: &str) -> Vec<u8> {
    format!("{} {message}", message.len()).into_bytes()
}

/// The value of `logbook_ingest_events_total` with these labels (among others).
async fn ingest_counter(client: &mut bench::HttpClient, labels: &[&str]) -> u64 {
    let token = admin_token(client).await;
    let request = hyper::Request::get("/metrics")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status, 200);
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    text.lines()
        .filter(|line| line.starts_with("logbook_ingest_events_total{"))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mixes_octet_counting_and_newlines_and_skips_oversized_messages() {
    let server = TestServer::start_with(|config| {
        config.syslog.tcp = Some("127.0.0.1:0".parse().unwrap());
        config.syslog.max_message_bytes = 1024;
        config.syslog.rfc3164_timezone = "+01:00".to_owned();
    })
    .await;
    let address = server.server.as_ref().unwrap().syslog_tcp_addr().unwrap();
    assert_eq!(server.server.as_ref().unwrap().syslog_udp_addr(), None);
    let mut client = server.client().await;

    // An RFC 3164 time an hour ago, as a clock at +01:00 shows it (no year, no zone).
    let bsd_time = Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::hours(1);
    let bsd_local = bsd_time.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let bsd_stamp = bsd_local.format("%b %e %H:%M:%S");

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut bytes = Vec::new();
    bytes.extend(octet_counted(
        r#"<165>1 2026-12-07T10:00:00.250Z web-1 checkout 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App"][meta@1 ip="10.0.0.9"] card declined"#,
    ));
    bytes.extend(format!("<11>{bsd_stamp} db-2 postgres[77]: disk full\n").into_bytes());
    // Too large, counted: skipped by its count, then by its newline.
    bytes.extend(octet_counted(&format!(
        "<14>1 - h app - - - {}",
        "x".repeat(2000)
    )));
    bytes.extend(format!("<14>{}\n", "y".repeat(3000)).into_bytes());
    bytes.extend(octet_counted(
        "<13>1 2026-12-07T10:00:02+02:00 web-1 checkout - - - after the big ones",
    ));
    bytes.extend(b"<15>last line without newline");
    // Written in small pieces, so frames straddle reads.
    for piece in bytes.chunks(97) {
        stream.write_all(piece).await.unwrap();
    }
    stream.shutdown().await.unwrap();

    let events = stored(&mut client, 4).await;
    let declined = &events["card declined"];
    assert_eq!(declined["tenant"], "default");
    assert_eq!(declined["timestamp"], rfc3339(1_796_637_600_250_000_000));
    assert_eq!(declined["level"], "info", "notice is info");
    assert_eq!(declined["host"], "web-1");
    assert_eq!(declined["service"], "checkout");
    assert_eq!(declined["source_ip"], "127.0.0.1");
    assert_eq!(
        declined["attributes"]["syslog"],
        json!({"facility": "local4", "severity": "notice", "procid": "4242", "msgid": "ID47", "protocol": "rfc5424"})
    );
    assert_eq!(
        declined["attributes"]["structured_data"],
        json!({"exampleSDID@32473": {"iut": "3", "eventSource": "App"}, "meta@1": {"ip": "10.0.0.9"}})
    );

    let disk = &events["disk full"];
    let expected = bsd_time.timestamp_nanos_opt().unwrap();
    assert_eq!(
        disk["timestamp"],
        rfc3339(expected),
        "+01:00 read as configured"
    );
    assert_eq!(disk["level"], "error");
    assert_eq!(disk["host"], "db-2");
    assert_eq!(disk["service"], "postgres");
    assert_eq!(disk["source_ip"], "127.0.0.1");
    assert_eq!(
        disk["attributes"]["syslog"],
        json!({"facility": "user", "severity": "err", "procid": "77", "protocol": "rfc3164"})
    );
    assert_eq!(disk["attributes"].get("structured_data"), None);

    let after = &events["after the big ones"];
    let expected = Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 2).unwrap();
    assert_eq!(
        after["timestamp"],
        rfc3339(expected.timestamp_nanos_opt().unwrap())
    );
    assert_eq!(after["level"], "info");
    assert_eq!(after["attributes"]["syslog"]["facility"], "user");
    assert_eq!(after["attributes"]["syslog"]["severity"], "notice");

    // Unparseable as either format: kept whole, at the receive time.
    let last = &events["<15>last line without newline"];
    assert_eq!(last["level"], "info");
    assert_eq!(last["timestamp"], last["received_at"]);

    let tenant = "tenant=\"default\"";
    let syslog = "protocol=\"syslog\"";
    let too_large = ["outcome=\"rejected\"", "reason=\"event_too_large\""];
    let accepted = ["outcome=\"accepted\""];
    assert_eq!(
        ingest_counter(&mut client, &[tenant, syslog, too_large[0], too_large[1]]).await,
        2
    );
    assert_eq!(
        ingest_counter(&mut client, &[tenant, syslog, accepted[0]]).await,
        4
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_does_not_exist_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.syslog.udp = Some("127.0.0.1:0".parse().unwrap());
    config.syslog.tenant = "nobody".to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = server::start_on(config, listener).await.err().unwrap();
    assert_eq!(
        format!("{error:#}"),
        "syslog.tenant \"nobody\" does not exist; create it (logbook admin) or name another"
    );
}
