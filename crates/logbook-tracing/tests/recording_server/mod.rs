//! A small HTTP server for the delivery tests: it records every request
//! (headers, raw body, the gzip NDJSON decoded) and answers from a script.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One request as the server saw it.
#[derive(Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body as sent (compressed).
    pub body: Bytes,
    /// Its NDJSON lines, decompressed and parsed.
    pub events: Vec<Value>,
    /// The status it was answered.
    pub status: u16,
    pub at: Instant,
}

/// A scripted answer; when the script is empty the server accepts everything.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: Value,
}

pub struct RecordingServer {
    pub url: String,
    requests: mpsc::UnboundedReceiver<Recorded>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingServer {
    pub async fn start() -> RecordingServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let (record, requests) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let script = script.clone();
            let connections = connections.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let record = record.clone();
                    let script = script.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            answer(request, record.clone(), script.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        RecordingServer {
            url: format!("http://{address}"),
            requests,
            script,
            connections,
            task,
        }
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    /// The next recorded request, waiting at most 15 s.
    pub async fn next(&mut self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(15), self.requests.recv())
            .await
            .expect("no request within 15 s")
            .unwrap()
    }

    /// Every request recorded so far, without waiting.
    pub fn drain(&mut self) -> Vec<Recorded> {
        let mut all = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            all.push(request);
        }
        all
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    request: Request<Incoming>,
    record: mpsc::UnboundedSender<Recorded>,
    script: Arc<Mutex<VecDeque<Reply>>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let reply = script.lock().unwrap().pop_front().unwrap_or(Reply {
        status: 202,
        retry_after: None,
        body: json!({"accepted": events.len(), "rejected": 0}),
    });
    let mut response = Response::new(Full::new(Bytes::from(reply.body.to_string())));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.parse().unwrap());
    }
    let _ = record.send(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: parts.headers,
        body,
        events,
        status: reply.status,
        at: Instant::now(),
    });
    Ok(response)
}
