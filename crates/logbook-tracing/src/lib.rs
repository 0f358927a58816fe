//! Ships a Rust application's [`tracing`] events to a Logbook server.
//!
//! [`LogbookLayer`] is a `tracing_subscriber` layer. On the application's
//! thread it only turns each event into one JSON line and offers it to a
//! bounded buffer: it never blocks and never touches the network. A
//! background thread, with its own small tokio runtime (the application needs
//! none), posts the lines in batches as gzip-compressed NDJSON to
//! `<endpoint>/v1/logs`, reusing one kept-alive HTTP/1.1 connection.
//!
//! # Quick start
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! # fn main() -> Result<(), logbook_tracing::Error> {
//! let (layer, guard) = logbook_tracing::Builder::new("http://127.0.0.1:8080", "checkout")
//!     .api_key(std::env::var("LOGBOOK_KEY").unwrap_or_default())
//!     .build()?;
//! tracing_subscriber::registry().with(layer).init();
//!
//! let span = tracing::info_span!("request", trace_id = "4bf92f3577b34da6", user = "ann");
//! let _entered = span.enter();
//! tracing::warn!(amount = 12.5, retries = 2, "card declined");
//!
//! // At exit: send what is buffered (at most 5 s by default) and stop.
//! let stats = guard.shutdown();
//! eprintln!("sent {}, dropped {}", stats.sent(), stats.dropped());
//! # Ok(())
//! # }
//! ```
//!
//! Only `http://` endpoints work: there is no TLS client in this crate yet,
//! and an `https://` URL is refused by [`Builder::build`]. Put a
//! TLS-terminating proxy next to the application to cross an untrusted network.
//!
//! # What is sent for each event
//!
//! `info!(target: "db", rows = 3, ok = true, "query done")` inside the spans
//! `request{trace_id="t1", user="ann"}` and `query{table="orders"}` becomes:
//!
//! ```json
//! {"timestamp": "2026-02-18T12:00:00.123456789Z", "level": "info",
//!  "message": "query done", "service": "checkout", "host": "web-1",
//!  "trace_id": "t1", "target": "db",
//!  "location": {"module": "app::db", "file": "src/db.rs", "line": 42},
//!  "span": {"name": "query", "fields": {"user": "ann", "table": "orders"}},
//!  "rows": 3, "ok": true}
//! ```
//!
//! - `timestamp` is when the event happened, RFC 3339 in UTC with nanoseconds.
//! - `level`: tracing's TRACE, DEBUG, INFO, WARN and ERROR as `trace` … `error`.
//! - `message` is the event's message; an event without one gets its fields
//!   as `name=value` text (the server requires a message).
//! - The event's fields are kept flat, typed: integers and floats stay
//!   numbers, bools stay bools, everything else is text (`Display` for `%x`,
//!   `Debug` for `?x`). The server keeps them as attributes. A field named like
//!   a field the server reads itself (`id`, `time`, `ts`, `@timestamp`,
//!   `severity`, `lvl`, `msg`, `service_name`, `serviceName`, `hostname`,
//!   `traceId`, `spanId`) or like one this crate writes (`timestamp`, `level`,
//!   `service`, `host`, `target`, `location`, `span`, `fields`) goes under
//!   `fields` instead, so it cannot change the event's id, time or level.
//!   `user_id` passes through as the server's user id when it is a string or
//!   a number.
//! - `span`: the name of the innermost span and the fields of every enclosing
//!   span, merged from the outermost inwards (an inner span's field replaces
//!   an outer one of the same name). Absent outside spans.
//! - Trace context: `trace_id` and `span_id` are read from fields of those
//!   names, on the event or its spans; the innermost wins (the event's own
//!   before its spans). They are sent as text. There is no OpenTelemetry
//!   dependency: record the ids yourself (for example from your
//!   propagation headers) as span fields.
//!
//! # Delivery
//!
//! A batch is sent when it holds [`Builder::batch_size`] events (1,000) or
//! its first event has waited [`Builder::flush_interval`] (1 s). While the
//! server is unreachable or busy, events wait in the buffer, up to
//! [`Builder::max_buffered_events`] (10,000); beyond that new events are
//! dropped. The same batch is sent again:
//!
//! - after a 429 or 503, once `Retry-After` seconds have passed (1 s without
//!   one, 30 s at most);
//! - after a connection error or a timeout (30 s per request), with a backoff
//!   from 1 s doubling to 30 s, as long as it takes;
//! - after another 5xx, with the same backoff, 5 times at most (then the
//!   batch counts as failed).
//!
//! Any other 4xx (a wrong key, a body too large) drops the batch: it counts
//! as rejected, as do the events a `202` lists as rejected one by one. The
//! layer never logs through `tracing` (that would loop); it writes one line
//! to stderr the first time each kind of trouble happens. [`Stats`] counts
//! everything: [`Guard::stats`] or [`LogbookLayer::stats`].
//!
//! Events are sent at least once: a batch whose answer was lost (the
//! connection broke after the server took it) is sent again and stored twice.
//!
//! Dropping the [`Guard`] — or [`Guard::shutdown`] — sends what is buffered
//! within [`Builder::shutdown_timeout`] (5 s) and joins the thread. An
//! application that exits without dropping it (`std::process::exit`, a panic
//! with `panic = "abort"`) loses what is buffered.

mod builder;
mod endpoint;
mod error;
mod guard;
mod layer;
mod record;
mod signing;
mod stats;
mod timestamp;
mod transport;
mod worker;

pub use builder::Builder;
pub use error::Error;
pub use guard::Guard;
pub use layer::LogbookLayer;
pub use stats::Stats;
