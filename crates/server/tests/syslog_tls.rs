//! Syslog over TLS (RFC 5425) into a real server: a client that trusts the
//! server's certificate sends octet-counted messages; one that does not is
//! refused at the handshake and nothing of it is stored.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_messages_are_stored_and_untrusting_clients_are_refused() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(|config| {
        config.syslog.tls = Some("127.0.0.1:0".parse().unwrap());
        config.syslog.tls_cert = Some(cert_path.clone());
        config.syslog.tls_key = Some(key_path.clone());
    })
    .await;
    let address = server.server.as_ref().unwrap().syslog_tls_addr().unwrap();
    let mut client = server.client().await;

    // The provider the server uses (see `server::syslog`).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let connect = |roots: rustls::RootCertStore| {
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };

    // Not trusted: the handshake fails on the client's side.
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let refused = connect(rustls::RootCertStore::empty())
        .connect(name.clone(), stream)
        .await;
    assert!(refused.is_err(), "an untrusted certificate is refused");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut tls = connect(roots).connect(name, stream).await.unwrap();
    for text in [
        "<11>1 2026-12-07T10:00:00Z vault-1 secrets 7 AUDIT [sd@1 k=\"v\"] sealed",
        "<14>1 2026-12-07T10:00:01Z vault-1 secrets 7 - - unsealed",
    ] {
        tls.write_all(format!("{} {text}", text.len()).as_bytes())
            .await
            .unwrap();
    }
    tls.flush().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let page = common::search(&mut client, &[("q", "service:secrets"), ("order", "asc")]).await;
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= 2 {
            break events;
        }
        assert!(Instant::now() < deadline, "only {} events", events.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["message"], "sealed");
    assert_eq!(events[0]["level"], "error");
    assert_eq!(events[0]["host"], "vault-1");
    assert_eq!(events[0]["attributes"]["structured_data"]["sd@1"]["k"], "v");
    assert_eq!(events[1]["message"], "unsealed");
    assert_eq!(events[1]["timestamp"], "2026-12-07T10:00:01Z");
    drop(tls);
    server.stop().await;
}

#[tokio::test]
async fn tls_without_a_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.syslog.tls = Some("127.0.0.1:0".parse().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = server::start_on(config, listener).await.err().unwrap();
    assert!(
        format!("{error:#}").contains("syslog.tls needs syslog.tls_cert and syslog.tls_key"),
        "{error:#}"
    );
}
