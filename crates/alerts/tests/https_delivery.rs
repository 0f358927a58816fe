//! Webhooks over https: a receiver whose certificate is trusted gets the
//! signed POST; one whose certificate is not trusted gets nothing, and the
//! delivery fails with a TLS error.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use alerts::{DeliveryError, DeliveryPolicy, deliver};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A TLS receiver for `localhost` on a free port: answers 204 to one request
/// and hands back what it read.
async fn receiver() -> (
    u16,
    rcgen::CertifiedKey<rcgen::KeyPair>,
    tokio::task::JoinHandle<String>,
) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(stream).await else {
            return String::new();
        };
        let mut request = Vec::new();
        let mut chunk = [0; 4096];
        // Headers, then the body its Content-Length announces.
        loop {
            let read = tls.read(&mut chunk).await.unwrap();
            request.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if read == 0 {
                break;
            }
        }
        tls.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        String::from_utf8_lossy(&request).to_string()
    });
    (port, certified, received)
}

fn policy(extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>) -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 1,
        timeout: Duration::from_secs(5),
        allow_private_targets: true,
        extra_roots,
        ..DeliveryPolicy::default()
    }
}

#[tokio::test]
async fn a_trusted_receiver_gets_the_signed_post() {
    let (port, certified, received) = receiver().await;
    let url = format!("https://localhost:{port}/hooks/logbook");
    let trusted = policy(vec![certified.cert.der().clone()]);
    deliver(
        &url,
        "whsec_test",
        bytes::Bytes::from_static(b"{\"alert\":1}"),
        &trusted,
    )
    .await
    .unwrap();
    let request = received.await.unwrap();
    assert!(
        request.starts_with("POST /hooks/logbook HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("logbook-signature:"),
        "{request}"
    );
    assert!(request.ends_with("{\"alert\":1}"), "{request}");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_delivery() {
    let (port, _, received) = receiver().await;
    let url = format!("https://localhost:{port}/hooks/logbook");
    let error = deliver(
        &url,
        "whsec_test",
        bytes::Bytes::from_static(b"{}"),
        &policy(Vec::new()),
    )
    .await
    .unwrap_err();
    match error {
        DeliveryError::Transport(message) => {
            assert!(message.starts_with("TLS with localhost"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(received.await.unwrap(), "", "nothing was sent");
}
