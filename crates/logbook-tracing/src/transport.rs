//! One HTTP/1.1 connection to the server, reused while it stays open, and the
//! request for one compressed batch: headers, credentials, and what the
//! answer means for the batch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use crate::signing::Signer;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, from connecting to the answer's last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an answer's body that is read (answers are small JSON).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The wait for a 429 or 503 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

const KEY_ID: HeaderName = HeaderName::from_static("x-logbook-key-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-logbook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("x-logbook-signature");

/// How requests prove who sends them.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// `Authorization: Bearer <key>`, marked sensitive.
    Bearer(HeaderValue),
    /// The signature headers, computed per request.
    Signed(Signer),
}

/// What the server's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 2xx. The counts come from the answer's body when it has them.
    Accepted {
        accepted: Option<u64>,
        rejected: Option<u64>,
    },
    /// 429 or 503: send the same batch again after this long.
    RetryAfter(Duration),
    /// Another 4xx (or an unexpected status): sending again will not help.
    Refused { status: StatusCode, code: String },
    /// Another 5xx: the server failed; worth a few more tries.
    ServerError(StatusCode),
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("the request timed out after {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("the request could not be built: {0}")]
    Request(#[from] hyper::http::Error),
}

/// Posts batches to one endpoint over a kept-alive connection.
pub(crate) struct Transport {
    endpoint: Endpoint,
    uri: Uri,
    credentials: Credentials,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl Transport {
    pub fn new(endpoint: Endpoint, uri: Uri, credentials: Credentials) -> Transport {
        Transport {
            endpoint,
            uri,
            credentials,
            connection: None,
        }
    }

    /// Posts one gzip-compressed NDJSON batch and reads the answer.
    pub async fn post(&mut self, body: Bytes) -> Result<Answer, TransportError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.post_once(body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.connection = None;
                Err(error)
            }
            Err(_) => {
                self.connection = None;
                Err(TransportError::Timeout)
            }
        }
    }

    async fn post_once(&mut self, body: Bytes) -> Result<Answer, TransportError> {
        let request = self.request(body)?;
        let reused = self.connection.is_some();
        let mut sender = self.ready_connection().await?;
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => match error.take_message() {
                // A kept-alive connection the server closed meanwhile: the
                // request was never written (its signature never seen), so it
                // goes once more, unchanged, on a fresh connection.
                Some(unsent) if reused => {
                    sender = self.connect().await?;
                    sender.send_request(unsent).await?
                }
                _ => return Err(error.into_error().into()),
            },
        };
        let (parts, body) = response.into_parts();
        // Reading the whole answer lets the connection carry the next request.
        let answer_body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        self.connection = Some(sender);
        Ok(classify(parts.status, &parts.headers, &answer_body))
    }

    async fn ready_connection(&mut self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        if let Some(mut sender) = self.connection.take()
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let address = &self.endpoint.address;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address.as_str()))
            .await
            .map_err(|_| TransportError::ConnectTimeout(address.clone()))?
            .map_err(|source| TransportError::Connect {
                address: address.clone(),
                source,
            })?;
        // Batches are written whole; waiting for more bytes only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; its errors surface on the requests.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::HOST, self.endpoint.authority.as_str())
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::CONTENT_ENCODING, "gzip")
            .header(
                header::USER_AGENT,
                concat!("logbook-tracing/", env!("CARGO_PKG_VERSION")),
            );
        match &self.credentials {
            Credentials::Bearer(value) => {
                builder = builder.header(header::AUTHORIZATION, value.clone())
            }
            Credentials::Signed(signer) => {
                let timestamp = unix_seconds().to_string();
                let signature = signer.sign(&timestamp, "POST", &self.endpoint.path, &body);
                builder = builder
                    .header(KEY_ID, signer.key_id())
                    .header(TIMESTAMP, timestamp)
                    .header(SIGNATURE, signature);
            }
        }
        Ok(builder.body(Full::new(body))?)
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What a status, its headers and body mean for the batch.
fn classify(status: StatusCode, headers: &hyper::HeaderMap, body: &[u8]) -> Answer {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let count = |name: &str| json.as_ref().and_then(|json| json.get(name)?.as_u64());
    if status.is_success() {
        return Answer::Accepted {
            accepted: count("accepted"),
            rejected: count("rejected"),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let wait = headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
        return Answer::RetryAfter(wait.min(MAX_RETRY_AFTER));
    }
    if status.is_server_error() {
        return Answer::ServerError(status);
    }
    let code = json
        .as_ref()
        .and_then(|json| json.get("code")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    Answer::Refused { status, code }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: Option<&'static str>) -> hyper::HeaderMap {
        let mut headers = hyper::HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn answers_are_classified_by_status() {
        assert_eq!(
            classify(
                StatusCode::ACCEPTED,
                &headers(None),
                br#"{"accepted":3,"rejected":1,"ids":[]}"#
            ),
            Answer::Accepted {
                accepted: Some(3),
                rejected: Some(1)
            }
        );
        assert_eq!(
            classify(StatusCode::OK, &headers(None), b"not json"),
            Answer::Accepted {
                accepted: None,
                rejected: None
            }
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &headers(Some("7")), b""),
            Answer::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers(Some("3600")), b""),
            Answer::RetryAfter(MAX_RETRY_AFTER)
        );
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
                b""
            ),
            Answer::RetryAfter(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            classify(
                StatusCode::UNAUTHORIZED,
                &headers(None),
                br#"{"status":401,"code":"invalid_credentials"}"#
            ),
            Answer::Refused {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_credentials".into()
            }
        );
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, &headers(Some("1")), b""),
            Answer::ServerError(StatusCode::BAD_GATEWAY)
        );
    }
}
