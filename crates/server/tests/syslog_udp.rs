//! Syslog over UDP into a real server: one message per datagram, stored
//! field by field; an oversized datagram is dropped and the next one arrives.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_are_stored_field_by_field() {
    let server = TestServer::start_with(|config| {
        config.syslog.udp = Some("127.0.0.1:0".parse().unwrap());
        config.syslog.max_message_bytes = 512;
    })
    .await;
    let address = server.server.as_ref().unwrap().syslog_udp_addr().unwrap();
    assert_eq!(server.server.as_ref().unwrap().syslog_tcp_addr(), None);
    let mut client = server.client().await;

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagrams = [
        r#"<134>1 2026-12-07T10:00:00.000001Z edge-3 nginx 900 ACCESS [req@1 path="/pay" status="502"] upstream timed out"#.to_owned(),
        format!("<12>1 - - big - - - {}", "z".repeat(600)),
        "<28>1 2026-12-07T10:00:01Z edge-3 nginx - - - after the big one".to_owned(),
    ];
    for datagram in &datagrams {
        socket.send_to(datagram.as_bytes(), address).await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let page = common::search(&mut client, &[("limit", "100"), ("order", "asc")]).await;
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= 2 {
            assert_eq!(events.len(), 2, "{page}");
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {page}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    let first = &events[0];
    assert_eq!(first["message"], "upstream timed out");
    assert_eq!(first["timestamp"], "2026-12-07T10:00:00.000001Z");
    assert_eq!(first["level"], "info");
    assert_eq!(first["host"], "edge-3");
    assert_eq!(first["service"], "nginx");
    assert_eq!(first["source_ip"], "127.0.0.1");
    assert_eq!(first["tenant"], "default");
    assert_eq!(
        first["attributes"]["syslog"],
        json!({"facility": "local0", "severity": "info", "procid": "900", "msgid": "ACCESS", "protocol": "rfc5424"})
    );
    assert_eq!(
        first["attributes"]["structured_data"],
        json!({"req@1": {"path": "/pay", "status": "502"}})
    );

    let second = &events[1];
    assert_eq!(second["message"], "after the big one");
    assert_eq!(second["timestamp"], "2026-12-07T10:00:01Z");
    assert_eq!(second["level"], "warn");
    assert_eq!(second["attributes"]["syslog"]["facility"], "daemon");
    assert_eq!(second["attributes"]["syslog"]["severity"], "warning");
    assert_eq!(second["attributes"].get("structured_data"), None);
    server.stop().await;
}

/// Two senders taking turns: each message keeps its own sender's address,
/// though their messages wait together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_senders_keep_their_addresses() {
    let server = TestServer::start_with(|config| {
        config.syslog.udp = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let address = server.server.as_ref().unwrap().syslog_udp_addr().unwrap();
    let mut client = server.client().await;
    let one = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Linux routes all of 127.0.0.0/8 to the loopback interface.
    let two = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for n in 0..20 {
        let (socket, host) = if n % 2 == 0 {
            (&one, "one")
        } else {
            (&two, "two")
        };
        let message = format!("<14>1 - {host} app - - - turn {n}");
        socket.send_to(message.as_bytes(), address).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let page = common::search(&mut client, &[("q", "turn"), ("limit", "100")]).await;
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= 20 {
            break events;
        }
        assert!(Instant::now() < deadline, "only {} events", events.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(events.len(), 20);
    for event in &events {
        let expected = match event["host"].as_str() {
            Some("one") => "127.0.0.1",
            Some("two") => "127.0.0.2",
            other => panic!("unexpected host {other:?}"),
        };
        assert_eq!(event["source_ip"], expected, "{event}");
    }
    server.stop().await;
}
