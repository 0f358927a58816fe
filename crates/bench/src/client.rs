//! A minimal keep-alive HTTP/1.1 client over one connection, so load generators measure
//! the server rather than connection setup, and integration tests can talk to a server
//! without pulling in a full HTTP client crate.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bodies quoted in error messages are cut to this many bytes.
const MAX_ERROR_BODY: usize = 1024;

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole response body.
    pub body: Bytes,
}

impl Response {
    /// Parses the body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response body (status {}) is not JSON: {}",
                self.status,
                body_excerpt(&self.body)
            )
        })
    }
}

/// An HTTP/1.1 client holding one keep-alive connection to one server.
///
/// Requests are sent one at a time. If the server closed the connection (for example
/// after an error response), the next request transparently reconnects once.
pub struct HttpClient {
    /// `host:port`, used to connect and as the default `Host` header.
    authority: String,
    sender: SendRequest<Full<Bytes>>,
    /// Sent as `Authorization: Bearer …` when a request carries no Authorization.
    token: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Connects to `base_url`, e.g. `http://127.0.0.1:8080` (plain `http` only; any path
    /// in the URL is ignored, and the port defaults to 80).
    pub async fn connect(base_url: &str) -> anyhow::Result<Self> {
        let authority = authority_of(base_url)?;
        let sender = open(&authority).await?;
        Ok(HttpClient {
            authority,
            sender,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request that has none.
    pub fn with_token(mut self, token: Option<&str>) -> anyhow::Result<Self> {
        self.token = token
            .map(|token| HeaderValue::from_str(&format!("Bearer {token}")))
            .transpose()
            .context("the API key is not a valid header value")?;
        Ok(self)
    }

    /// Logs in with a username and password (`POST /v1/auth/login`) and
    /// sends the access token it gets with every later request.
    pub async fn log_in(mut self, username: &str, password: &str) -> anyhow::Result<Self> {
        let body = serde_json::json!({"username": username, "password": password});
        let answer = self
            .post(
                "/v1/auth/login",
                "application/json",
                serde_json::to_vec(&body)?,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            bail!(
                "cannot log in as {username}: HTTP {}: {}",
                answer.status,
                body_excerpt(&answer.body)
            );
        }
        let answer = answer.json()?;
        let token = answer["access_token"]
            .as_str()
            .context("the login answer has no access_token")?;
        self.with_token(Some(token))
    }

    /// Sends `GET path_and_query` (e.g. `/v1/logs?q=level%3Aerror`).
    pub async fn get(&mut self, path_and_query: &str) -> anyhow::Result<Response> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("invalid request path {path_and_query:?}"))?;
        self.send(request).await
    }

    /// Sends `POST path` with `body` of type `content_type`.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Response> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(body.into()))
            .with_context(|| format!("invalid request path {path:?} or content type"))?;
        self.send(request).await
    }

    /// Sends `DELETE path`.
    pub async fn delete(&mut self, path: &str) -> anyhow::Result<Response> {
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("invalid request path {path:?}"))?;
        self.send(request).await
    }

    /// Sends any request and reads the whole response. A `Host` header is added if
    /// absent. If the connection turns out to be closed before the request was sent (or,
    /// for `GET`/`HEAD`, before any response arrived), it reconnects once and retries.
    pub async fn send(&mut self, mut request: Request<Full<Bytes>>) -> anyhow::Result<Response> {
        if !request.headers().contains_key(HOST) {
            let host = HeaderValue::from_str(&self.authority)
                .with_context(|| format!("invalid host {:?}", self.authority))?;
            request.headers_mut().insert(HOST, host);
        }
        if let Some(token) = &self.token
            && !request.headers().contains_key(AUTHORIZATION)
        {
            request.headers_mut().insert(AUTHORIZATION, token.clone());
        }
        let mut reconnected = false;
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.reconnect().await?;
            reconnected = true;
        }
        // Full<Bytes> clones cheaply; only requests safe to repeat are kept for a retry
        // after the server may already have seen them.
        let idempotent_copy = match *request.method() {
            Method::GET | Method::HEAD => Some(copy_request(&request)?),
            _ => None,
        };
        let mut error = match self.sender.try_send_request(request).await {
            Ok(response) => return read_response(response).await,
            Err(error) => error,
        };
        let retry = match error.take_message() {
            Some(unsent) => Some(unsent),
            None if connection_dropped(error.error()) => idempotent_copy,
            None => None,
        };
        let Some(retry) = retry.filter(|_| !reconnected) else {
            return Err(anyhow::Error::new(error.into_error()))
                .with_context(|| format!("request to {} failed", self.authority));
        };
        self.reconnect().await?;
        let response = self
            .sender
            .send_request(retry)
            .await
            .with_context(|| format!("request to {} failed", self.authority))?;
        read_response(response).await
    }

    /// Sends `GET path_and_query` and returns as soon as the response head arrives; the
    /// body is read chunk by chunk with [`StreamingResponse::chunk`], so downloads larger
    /// than memory can be processed as they arrive. No retry: the request is sent once.
    pub async fn get_streaming(self, path_and_query: &str) -> anyhow::Result<StreamingResponse> {
        self.get_streaming_with(path_and_query, &[]).await
    }

    /// Like [`HttpClient::get_streaming`], with extra request headers (`Accept`).
    pub async fn get_streaming_with(
        self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<StreamingResponse> {
        self.streaming(Method::GET, path_and_query, headers).await
    }

    /// Sends `POST path_and_query` with an empty body and returns once the
    /// response head arrives, like [`HttpClient::get_streaming`].
    pub async fn post_streaming(self, path_and_query: &str) -> anyhow::Result<StreamingResponse> {
        self.streaming(Method::POST, path_and_query, &[]).await
    }

    async fn streaming(
        mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<StreamingResponse> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, &self.authority);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("invalid request path {path_and_query:?} or header"))?;
        if let Some(token) = &self.token {
            request.headers_mut().insert(AUTHORIZATION, token.clone());
        }
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.reconnect().await?;
        }
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {} failed", self.authority))?;
        let (parts, body) = response.into_parts();
        Ok(StreamingResponse {
            status: parts.status.as_u16(),
            body,
            _client: self,
        })
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.sender = open(&self.authority).await?;
        Ok(())
    }
}

/// A response whose body is read as it arrives ([`HttpClient::get_streaming`]).
pub struct StreamingResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    body: hyper::body::Incoming,
    /// Keeps the connection for as long as the body is read.
    _client: HttpClient,
}

impl StreamingResponse {
    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        while let Some(frame) = self.body.frame().await {
            // Trailers, the only other kind of frame, are skipped.
            if let Ok(data) = frame.context("reading response body")?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

/// Opens a connection and spawns its driver task.
async fn open(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP handshake with {authority} failed"))?;
    tokio::spawn(async move {
        // A connection error surfaces on the request that was in flight.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
) -> anyhow::Result<Response> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .context("reading response body")?
        .to_bytes();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Whether `error` means the connection went away before a response arrived.
fn connection_dropped(error: &hyper::Error) -> bool {
    error.is_incomplete_message() || error.is_closed() || error.is_canceled()
}

fn copy_request(request: &Request<Full<Bytes>>) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut copy = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version())
        .body(request.body().clone())?;
    *copy.headers_mut() = request.headers().clone();
    Ok(copy)
}

/// The start of a response body, for error messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
    let text = text.trim();
    if body.len() > MAX_ERROR_BODY {
        format!("{text}…")
    } else {
        text.to_owned()
    }
}

/// Extracts `host:port` from an `http://` URL.
fn authority_of(base_url: &str) -> anyhow::Result<String> {
    let Some(rest) = base_url.strip_prefix("http://") else {
        bail!("unsupported URL {base_url:?}: expected http://host:port");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        bail!("URL {base_url:?} has no host");
    }
    let has_port = match authority.rfind(':') {
        // An IPv6 literal like [::1] has colons but no port unless one follows `]`.
        Some(colon) => !authority[colon..].contains(']'),
        None => false,
    };
    Ok(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// Percent-encodes `s` for use in a query string: every byte except the unreserved
/// characters `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_server::{Reply, serve};
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn requests_and_reconnects_after_close() {
        let server = serve(|request, body| {
            let host = request.headers["host"].to_str().unwrap().to_owned();
            match request.uri.path() {
                "/echo" => Reply::new(
                    200,
                    serde_json::json!({
                        "method": request.method.as_str(),
                        "query": request.uri.query(),
                        "host": host,
                        "type": request.headers.get("content-type").map(|v| v.to_str().unwrap()),
                        "body": String::from_utf8_lossy(&body),
                    })
                    .to_string(),
                ),
                _ => {
                    let mut reply = Reply::new(400, "bad");
                    reply.headers.push(("connection", "close".to_owned()));
                    reply
                }
            }
        })
        .await;
        let addr = server.addr;
        let mut client = HttpClient::connect(&format!("http://{addr}/ignored"))
            .await
            .unwrap();

        let response = client.get("/echo?q=a%20b").await.unwrap();
        assert_eq!(response.status, 200);
        let echo = response.json().unwrap();
        assert_eq!(echo["method"], "GET");
        assert_eq!(echo["query"], "q=a%20b");
        assert_eq!(echo["host"], addr.to_string());

        for round in 0..3 {
            let failed = client.post("/fail", "text/plain", "x").await.unwrap();
            assert_eq!((failed.status, &failed.body[..]), (400, &b"bad"[..]));
            let response = client
                .post("/echo", "application/x-ndjson", format!("{{}}\n{round}"))
                .await
                .unwrap();
            let echo = response.json().unwrap();
            assert_eq!(echo["method"], "POST");
            assert_eq!(echo["type"], "application/x-ndjson");
            assert_eq!(echo["body"], format!("{{}}\n{round}"));
        }
        // The first connection, then one more after each close.
        assert_eq!(server.connections.load(Ordering::SeqCst), 4);
        assert!(client.get("/fail").await.unwrap().json().is_err());
    }

    #[tokio::test]
    async fn connect_fails_cleanly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(
            HttpClient::connect(&format!("http://{addr}"))
                .await
                .is_err()
        );
        assert!(HttpClient::connect("https://example.com").await.is_err());
    }

    #[test]
    fn percent_encode_keeps_only_unreserved() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            percent_encode(r#"service:openssh "Failed password""#),
            "service%3Aopenssh%20%22Failed%20password%22"
        );
        assert_eq!(percent_encode("level:>=warn *"), "level%3A%3E%3Dwarn%20%2A");
        assert_eq!(percent_encode("é/+&"), "%C3%A9%2F%2B%26");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn authority_parsing() {
        assert_eq!(
            authority_of("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            authority_of("http://localhost:9/v1?x").unwrap(),
            "localhost:9"
        );
        assert_eq!(
            authority_of("http://example.com/").unwrap(),
            "example.com:80"
        );
        assert_eq!(authority_of("http://[::1]").unwrap(), "[::1]:80");
        assert_eq!(authority_of("http://[::1]:81").unwrap(), "[::1]:81");
        assert!(authority_of("https://x:1").is_err());
        assert!(authority_of("http://").is_err());
    }
}
