//! Sends one notification to its webhook: resolve, check every address,
//! connect to the checked one, POST the signed body, and retry with backoff
//! within a bounded number of attempts and a bounded total time. Redirects
//! are never followed; only a 2xx answer counts as delivered.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::{WebhookUrl, choose};

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Attempts of one delivery, at least 1.
    pub attempts: u32,
    /// The bound on each of: resolving, connecting, and waiting for the answer's headers.
    pub timeout: Duration,
    /// The pause after the first failed attempt; it doubles after each.
    pub retry_base: Duration,
    /// The bound on one delivery, all attempts and pauses together.
    pub max_total: Duration,
    /// Whether internal addresses may be targets (tests, trusted networks).
    pub allow_private_targets: bool,
    /// Certificates trusted for `https` webhooks besides the Mozilla roots
    /// compiled in (a private authority, a test's own certificate).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 5,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            max_total: Duration::from_secs(120),
            allow_private_targets: false,
            extra_roots: Vec::new(),
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The target may not be contacted (an internal address, a bad URL):
    /// retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// The webhook answered with a status that is not 2xx.
    #[error("the webhook answered {0}")]
    Status(u16),
    /// Resolving, connecting or sending failed, or took too long.
    #[error("{0}")]
    Transport(String),
}

impl DeliveryError {
    /// Whether another attempt may succeed.
    fn retryable(&self) -> bool {
        match self {
            DeliveryError::Refused(_) => false,
            // A request the receiver refuses will be refused again; 408 and
            // 429 ask for a later try, 5xx may be passing.
            DeliveryError::Status(status) => matches!(status, 408 | 429) || *status >= 500,
            DeliveryError::Transport(_) => true,
        }
    }
}

/// Delivers `body` to `url`, signed with `secret`, trying as the policy allows.
pub async fn deliver(
    url: &str,
    secret: &str,
    body: Bytes,
    policy: &DeliveryPolicy,
) -> Result<(), DeliveryError> {
    let target = WebhookUrl::parse(url).map_err(DeliveryError::Refused)?;
    let deadline = Instant::now() + policy.max_total;
    let mut pause = policy.retry_base;
    let mut attempt = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let tried =
            match tokio::time::timeout(left, post(&target, secret, body.clone(), policy)).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::Transport(format!(
                    "no answer within the delivery's {} s",
                    policy.max_total.as_secs()
                ))),
            };
        let error = match tried {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if !error.retryable() || attempt >= policy.attempts.max(1) || left <= pause {
            return Err(error);
        }
        metrics::counter!("logbook_alert_notifications_total", "outcome" => "retried").increment(1);
        tracing::debug!(%error, attempt, "webhook delivery failed; retrying");
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2);
        attempt += 1;
    }
}

/// An HTTP/1.1 connection over `io`, driven in the background for no longer
/// than one attempt may take.
async fn handshake<T>(
    io: T,
    timeout: Duration,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, DeliveryError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| DeliveryError::Transport(format!("HTTP handshake: {error}")))?;
    tokio::spawn(tokio::time::timeout(timeout.saturating_mul(2), connection));
    Ok(sender)
}

/// The TLS client for `https` webhooks: the Mozilla roots and the policy's
/// own, ring's algorithms (see `server::syslog` for why ring), TLS 1.2 and 1.3.
fn tls(
    target: &WebhookUrl,
    policy: &DeliveryPolicy,
) -> Result<tokio_rustls::TlsConnector, DeliveryError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for certificate in &policy.extra_roots {
        roots.add(certificate.clone()).map_err(|error| {
            DeliveryError::Refused(format!("a trusted certificate is unusable: {error}"))
        })?;
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| DeliveryError::Refused(format!("TLS for {}: {error}", target.host)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// The name a webhook's certificate must be for: its URL's host.
fn server_name(
    target: &WebhookUrl,
) -> Result<rustls::pki_types::ServerName<'static>, DeliveryError> {
    rustls::pki_types::ServerName::try_from(target.host.trim_matches(['[', ']']).to_owned())
        .map_err(|error| {
            DeliveryError::Refused(format!("{} is not a TLS server name: {error}", target.host))
        })
}

/// One attempt: resolve, choose an allowed address, connect to it, POST.
async fn post(
    target: &WebhookUrl,
    secret: &str,
    body: Bytes,
    policy: &DeliveryPolicy,
) -> Result<(), DeliveryError> {
    let timeout = policy.timeout;
    let transport = |what: &str| {
        let what = what.to_owned();
        move |error: std::io::Error| DeliveryError::Transport(format!("{what}: {error}"))
    };
    let resolved = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| DeliveryError::Transport(format!("resolving {} timed out", target.host)))?
    .map_err(transport(&format!("cannot resolve {}", target.host)))?;
    let address = choose(&target.host, resolved, policy.allow_private_targets)
        .map_err(DeliveryError::Refused)?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| DeliveryError::Transport(format!("connecting to {address} timed out")))?
        .map_err(transport(&format!("cannot connect to {address}")))?;
    let mut sender = match target.https {
        // TLS to the checked address, verified for the URL's host name.
        true => {
            let stream = tokio::time::timeout(
                timeout,
                tls(target, policy)?.connect(server_name(target)?, stream),
            )
            .await
            .map_err(|_| DeliveryError::Transport(format!("TLS with {address} timed out")))?
            .map_err(transport(&format!("TLS with {}", target.host)))?;
            handshake(TokioIo::new(stream), timeout).await?
        }
        false => handshake(TokioIo::new(stream), timeout).await?,
    };
    let unix_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let request = Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("Logbook-Alerts/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            auth::webhook::SIGNATURE_HEADER,
            auth::webhook::signature_header(secret, unix_seconds, &body),
        )
        .body(Full::new(body))
        .map_err(|error| DeliveryError::Refused(format!("cannot build the request: {error}")))?;
    let response = tokio::time::timeout(timeout, sender.send_request(request))
        .await
        .map_err(|_| DeliveryError::Transport(format!("{address} did not answer in time")))?
        .map_err(|error| DeliveryError::Transport(format!("sending to {address}: {error}")))?;
    // Only the status matters; the body is never read (nor is a redirect followed).
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}
