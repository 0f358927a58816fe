//! A tail over a WebSocket: one text frame per event or notice, pings as
//! keep-alives, and a close frame with the reason when the server ends it.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;

use super::subscription::{Next, Subscription};
use super::{SUBPROTOCOL, TailConfig};

/// The largest message a client may send (it has nothing to say but pongs and a close).
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// Accepts the upgrade, selecting the `logbook` subprotocol when offered
/// (never the one carrying a token), and runs the tail on the socket.
pub(super) fn respond(
    upgrade: WebSocketUpgrade,
    subscription: Subscription,
    config: TailConfig,
) -> Response {
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(socket, subscription, config))
}

async fn run(mut socket: WebSocket, mut subscription: Subscription, config: TailConfig) {
    let stream = subscription.stream().as_str();
    loop {
        let next = tokio::select! {
            next = subscription.next(config.keepalive) => next,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pings are answered by the protocol layer; anything else is ignored.
                Some(Ok(_)) => continue,
            },
        };
        let (message, is_event, last) = match next {
            Next::Event(json) => (Message::Text(Utf8Bytes::from(&*json)), true, false),
            Next::Dropped(count) => (
                Message::Text(format!("{{\"dropped\":{count}}}").into()),
                false,
                false,
            ),
            Next::Missed => (Message::Text("{\"missed\":true}".into()), false, false),
            Next::Idle => (Message::Ping(Bytes::new()), false, false),
            Next::Closed(reason) => (
                Message::Close(Some(CloseFrame {
                    code: reason.code,
                    reason: reason.text.into(),
                })),
                false,
                true,
            ),
        };
        // A client that takes nothing for this long is gone or hopelessly behind.
        let sent = tokio::time::timeout(config.max_lag, socket.send(message)).await;
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
}
