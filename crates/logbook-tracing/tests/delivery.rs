//! The layer against a recording HTTP server: what goes over the wire (gzip
//! NDJSON, credentials, signatures), batching, retries, drops and shutdown.
#![allow(clippy::unwrap_used)]

mod recording_server;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit as _, Mac as _};
use logbook_tracing::{Builder, LogbookLayer};
use recording_server::{RecordingServer, Reply};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

const KEY: &str = "lbk_delivery-test-key-0123456789abcdefghij";

/// Runs `body` with `layer` as the only subscriber of this thread.
fn with_layer(layer: LogbookLayer, body: impl FnOnce()) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
}

fn header<'a>(request: &'a recording_server::Recorded, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_gzip_ndjson_field_by_field_with_the_api_key() {
    let mut server = RecordingServer::start().await;
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .host("web-1")
        .build()
        .unwrap();
    with_layer(layer, || {
        let request = tracing::info_span!(
            "request",
            trace_id = "4bf92f3577b34da6",
            user = "ann",
            attempt = 1
        );
        let _request = request.enter();
        let charge = tracing::info_span!("charge", span_id = "00f067aa0ba902b7", attempt = 2);
        let _charge = charge.enter();
        tracing::error!(amount = 12.5, retries = 3, declined = true, card = %"visa", "card declined");
        tracing::debug!("outside nothing");
    });
    let stats = guard.shutdown();

    let request = server.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/logs");
    assert_eq!(header(&request, "authorization"), format!("Bearer {KEY}"));
    assert_eq!(header(&request, "content-type"), "application/x-ndjson");
    assert_eq!(header(&request, "content-encoding"), "gzip");
    assert_eq!(request.body[..2], [0x1f, 0x8b], "a gzip stream");
    assert_eq!(request.events.len(), 2);
    let event = request.events[0].as_object().unwrap();
    assert_eq!(event["level"], json!("error"));
    assert_eq!(event["message"], json!("card declined"));
    assert_eq!(event["service"], json!("checkout"));
    assert_eq!(event["host"], json!("web-1"));
    assert_eq!(event["trace_id"], json!("4bf92f3577b34da6"));
    assert_eq!(event["span_id"], json!("00f067aa0ba902b7"));
    assert_eq!(event["amount"], json!(12.5));
    assert_eq!(event["retries"], json!(3));
    assert_eq!(event["declined"], json!(true));
    assert_eq!(event["card"], json!("visa"));
    assert_eq!(event["target"], json!("delivery"));
    assert_eq!(event["location"]["file"], json!(file!()));
    assert_eq!(
        event["span"],
        json!({"name": "charge", "fields": {"user": "ann", "attempt": 2}})
    );
    assert_eq!(request.events[1]["level"], json!("debug"));
    assert_eq!(request.events[1]["message"], json!("outside nothing"));
    assert_eq!(stats.sent(), 2);
    assert_eq!(
        (stats.dropped(), stats.rejected(), stats.failed()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_carry_the_key_id_a_fresh_timestamp_and_a_valid_hmac() {
    let mut server = RecordingServer::start().await;
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .signing_key("key_signed1", KEY)
        .build()
        .unwrap();
    with_layer(layer, || tracing::info!(order = "ORD-1", "paid"));
    guard.shutdown();

    let request = server.next().await;
    assert_eq!(header(&request, "authorization"), "");
    assert_eq!(header(&request, "x-logbook-key-id"), "key_signed1");
    let timestamp = header(&request, "x-logbook-timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp.parse().unwrap()) <= 5, "{timestamp}");
    // Recomputed over the body exactly as it crossed the wire (compressed).
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\nPOST\n/v1/logs\n").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(header(&request, "x-logbook-signature"), expected);
    assert_eq!(request.events[0]["order"], json!("ORD-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_waited_out_and_the_batch_arrives_once() {
    // Two seconds: longer than the first backoff after other errors (1 s),
    // so only a client that reads Retry-After waits this long.
    let mut server = RecordingServer::start().await;
    server.script([Reply {
        status: 503,
        retry_after: Some("2"),
        body: json!({"status": 503, "code": "queue_full"}),
    }]);
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .flush_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    with_layer(layer, || {
        tracing::info!(n = 1, "first");
        tracing::info!(n = 2, "second");
    });

    let refused = server.next().await;
    let accepted = server.next().await;
    assert_eq!((refused.status, accepted.status), (503, 202));
    assert!(
        accepted.at - refused.at >= Duration::from_millis(1950),
        "retried after {:?}",
        accepted.at - refused.at
    );
    // The same batch, not a new one.
    assert_eq!(accepted.events, refused.events);
    let messages: Vec<_> = accepted
        .events
        .iter()
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(messages, [json!("first"), json!("second")]);
    let stats = guard.shutdown();
    assert!(
        server.drain().is_empty(),
        "sent again after it was accepted"
    );
    assert_eq!((stats.sent(), stats.failed(), stats.rejected()), (2, 0, 0));
    // Both requests went over the one kept-alive connection.
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_counted_and_not_sent_again() {
    let mut server = RecordingServer::start().await;
    server.script([
        Reply {
            status: 401,
            retry_after: None,
            body: json!({"status": 401, "code": "invalid_credentials"}),
        },
        Reply {
            status: 202,
            retry_after: None,
            body: json!({"accepted": 1, "rejected": 1}),
        },
    ]);
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .batch_size(3)
        .build()
        .unwrap();
    with_layer(layer, || {
        for n in 0..5 {
            tracing::info!(n, "event");
        }
    });
    let stats = guard.shutdown();
    let requests = server.drain();
    let sizes: Vec<usize> = requests.iter().map(|r| r.events.len()).collect();
    assert_eq!(
        sizes,
        [3, 2],
        "batches of at most 3, the refused one not resent"
    );
    assert_eq!(requests[1].events[0]["n"], json!(3));
    // 3 refused with the batch, 1 listed as rejected in the 202.
    assert_eq!((stats.sent(), stats.rejected(), stats.failed()), (1, 4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_goes_when_its_flush_interval_ends() {
    let mut server = RecordingServer::start().await;
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .flush_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    // The subscriber (and so the layer) stays alive: its end would flush.
    let subscriber = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let emitted = Instant::now();
    tracing::dispatcher::with_default(&subscriber, || tracing::warn!("lonely"));
    // No shutdown: the timer alone sends it.
    let request = server.next().await;
    assert!(
        emitted.elapsed() >= Duration::from_millis(190),
        "{:?}",
        emitted.elapsed()
    );
    assert_eq!(request.events[0]["message"], json!("lonely"));
    let stats = guard.shutdown();
    assert_eq!(stats.sent(), 1);
    assert!(server.drain().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_the_application_never_blocks_and_drops_are_counted() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (layer, guard) = Builder::new(format!("http://127.0.0.1:{port}"), "checkout")
        .api_key(KEY)
        .batch_size(10)
        .max_buffered_events(100)
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    with_layer(layer, || {
        for n in 0..5_000 {
            tracing::info!(n, "into the void");
        }
    });
    let logging = started.elapsed();
    assert!(logging < Duration::from_secs(2), "logging took {logging:?}");
    let stats = guard.stats();
    // At most the buffer and one batch in the sender's hands are kept.
    assert!(
        stats.dropped() >= 5_000 - 110,
        "dropped {}",
        stats.dropped()
    );

    let stopping = Instant::now();
    let stats = guard.shutdown();
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(stats.sent(), 0);
    // What was kept could not be sent before the shutdown timeout.
    assert_eq!(stats.dropped() + stats.failed(), 5_000);
    assert!(stats.failed() >= 100, "failed {}", stats.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_the_tail_at_once() {
    let mut server = RecordingServer::start().await;
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .batch_size(1000)
        .flush_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    with_layer(layer, || {
        for n in 0..5 {
            tracing::info!(n, "tail");
        }
    });
    let stopping = Instant::now();
    let stats = guard.shutdown();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    let requests = server.drain();
    assert_eq!(requests.len(), 1);
    let numbers: Vec<_> = requests[0].events.iter().map(|e| e["n"].clone()).collect();
    assert_eq!(numbers, [json!(0), json!(1), json!(2), json!(3), json!(4)]);
    assert_eq!(stats.sent(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_shutdown_are_dropped_not_queued() {
    let server = RecordingServer::start().await;
    let (layer, guard) = Builder::new(&server.url, "checkout")
        .api_key(KEY)
        .build()
        .unwrap();
    let stats = guard.shutdown();
    with_layer(layer, || tracing::info!("too late"));
    assert_eq!((stats.sent(), stats.dropped()), (0, 1));
}
