//! A tail as Server-Sent Events: `data: <event>` per event, `event: dropped`
//! and `event: missed` notices, a final `event: close` with the reason, and
//! comments as keep-alives.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::TailConfig;
use super::subscription::{Next, Subscription};

/// Frames written ahead of a client that is reading.
const FRAMES_AHEAD: usize = 16;

/// Answers with an event stream fed by `subscription` until the client
/// leaves, stops reading for `max_lag`, or the hub closes the tail.
pub(super) fn respond(mut subscription: Subscription, config: TailConfig) -> Response {
    let (sender, receiver) = mpsc::channel::<Bytes>(FRAMES_AHEAD);
    tokio::spawn(async move {
        let stream = subscription.stream().as_str();
        loop {
            let next = tokio::select! {
                next = subscription.next(config.keepalive) => next,
                () = sender.closed() => return,
            };
            let (frame, is_event, last) = match next {
                Next::Event(json) => (format!("data: {json}\n\n"), true, false),
                Next::Dropped(count) => (
                    format!("event: dropped\ndata: {{\"dropped\":{count}}}\n\n"),
                    false,
                    false,
                ),
                Next::Missed => (
                    "event: missed\ndata: {\"missed\":true}\n\n".to_owned(),
                    false,
                    false,
                ),
                Next::Idle => (": keep-alive\n\n".to_owned(), false, false),
                Next::Closed(reason) => (
                    format!(
                        "event: close\ndata: {}\n\n",
                        serde_json::json!({"reason": reason.text})
                    ),
                    false,
                    true,
                ),
            };
            let sent = tokio::time::timeout(config.max_lag, sender.send(Bytes::from(frame))).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
            if is_event {
                metrics::counter!("logbook_tail_delivered_events_total", "stream" => stream)
                    .increment(1);
            }
            if last {
                return;
            }
        }
    });
    let mut response = Response::new(Body::new(EventBody { receiver }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The response body: the frames the tail's task writes, until it ends.
struct EventBody {
    receiver: mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
