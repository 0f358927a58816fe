//! The `tracing_subscriber::Layer`: on the application's thread it only
//! records fields, serializes one JSON line and offers it to the bounded
//! buffer — it never blocks and never waits for the network.

use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::record::{JsonFields, Origin, SpanContext, event_object};
use crate::stats::Stats;
use crate::timestamp::rfc3339_nanos;

/// Ships every event it sees to Logbook. Built by [`crate::Builder::build`]
/// together with the [`crate::Guard`] that flushes it on shutdown.
///
/// Filter it like any layer (`layer.with_filter(LevelFilter::INFO)`) to choose
/// what is shipped.
pub struct LogbookLayer {
    buffer: mpsc::Sender<Vec<u8>>,
    origin: Origin,
    stats: Stats,
}

impl std::fmt::Debug for LogbookLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogbookLayer")
            .field("service", &self.origin.service)
            .finish_non_exhaustive()
    }
}

/// A span's fields as recorded so far, kept in the span's extensions.
struct SpanFields(Map<String, Value>);

impl LogbookLayer {
    pub(crate) fn new(buffer: mpsc::Sender<Vec<u8>>, origin: Origin, stats: Stats) -> Self {
        LogbookLayer {
            buffer,
            origin,
            stats,
        }
    }

    /// The counters of this layer's deliveries.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

impl<S> tracing_subscriber::Layer<S> for LogbookLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attributes.record(&mut JsonFields(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let timestamp = rfc3339_nanos(SystemTime::now());
        let mut fields = Map::new();
        event.record(&mut JsonFields(&mut fields));
        let mut spans = SpanContext::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let empty = Map::new();
                let span_fields = extensions.get::<SpanFields>().map_or(&empty, |f| &f.0);
                spans.enter(span.name(), span_fields);
            }
        }
        let object = event_object(timestamp, event.metadata(), fields, spans, &self.origin);
        let Ok(line) = serde_json::to_vec(&Value::Object(object)) else {
            // A map of JSON values always serializes; counted rather than assumed.
            self.stats.add_dropped();
            return;
        };
        if self.buffer.try_send(line).is_err() {
            self.stats.add_dropped();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Runs `body` under a subscriber with only the layer; returns the lines
    /// it buffered and the stats.
    fn capture(capacity: usize, host: Option<&str>, body: impl FnOnce()) -> (Vec<Value>, Stats) {
        let (sender, mut receiver) = mpsc::channel(capacity);
        let origin = Origin {
            service: "checkout".into(),
            host: host.map(str::to_owned),
        };
        let layer = LogbookLayer::new(sender, origin, Stats::default());
        let stats = layer.stats();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, body);
        let mut lines = Vec::new();
        while let Ok(line) = receiver.try_recv() {
            lines.push(serde_json::from_slice(&line).unwrap());
        }
        (lines, stats)
    }

    #[test]
    fn an_event_carries_typed_fields_span_fields_and_trace_context() {
        let (lines, stats) = capture(16, Some("web-1"), || {
            let outer = tracing::info_span!(
                "request",
                trace_id = "4bf92f3577b34da6",
                user = "ann",
                attempt = 1
            );
            let _outer = outer.enter();
            let inner = tracing::debug_span!(
                "charge",
                span_id = "00f067aa0ba902b7",
                attempt = 2,
                late = tracing::field::Empty
            );
            let _inner = inner.enter();
            inner.record("late", true);
            tracing::warn!(amount = 12.5, count = 3u64, delta = -4i64, ok = false, card = %"visa", "card declined");
        });
        assert_eq!(stats.dropped(), 0);
        assert_eq!(lines.len(), 1);
        let event = lines[0].as_object().unwrap();
        let timestamp = event["timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2026-02-18T12:00:00.123456789Z".len(),
            "{timestamp}"
        );
        assert!(
            timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.',
            "{timestamp}"
        );
        assert_eq!(event["level"], json!("warn"));
        assert_eq!(event["message"], json!("card declined"));
        assert_eq!(event["service"], json!("checkout"));
        assert_eq!(event["host"], json!("web-1"));
        assert_eq!(event["trace_id"], json!("4bf92f3577b34da6"));
        assert_eq!(event["span_id"], json!("00f067aa0ba902b7"));
        assert_eq!(event["amount"], json!(12.5));
        assert_eq!(event["count"], json!(3));
        assert_eq!(event["delta"], json!(-4));
        assert_eq!(event["ok"], json!(false));
        assert_eq!(event["card"], json!("visa"));
        assert_eq!(event["target"], json!(module_path!()));
        assert_eq!(event["location"]["module"], json!(module_path!()));
        assert_eq!(event["location"]["file"], json!(file!()));
        assert!(event["location"]["line"].as_u64().unwrap() > 0);
        // Outermost first, the inner span wins; the trace context is lifted out.
        assert_eq!(
            event["span"],
            json!({"name": "charge", "fields": {"user": "ann", "attempt": 2, "late": true}})
        );
        assert!(!event.contains_key("fields"), "{event:?}");
    }

    #[test]
    fn event_fields_win_over_span_trace_context_and_clashing_names_are_nested() {
        let (lines, _) = capture(16, None, || {
            let span = tracing::info_span!("job", trace_id = 7u64);
            let _span = span.enter();
            tracing::error!(
                trace_id = "abc",
                id = 5,
                time = "noon",
                level = "x",
                user_id = 42,
                "boom"
            );
            tracing::trace!(retries = 3, reason = "timeout");
            tracing::info!(user_id = true, "flag");
        });
        assert_eq!(lines.len(), 3);
        let first = &lines[0];
        assert_eq!(first["level"], json!("error"));
        assert_eq!(first["trace_id"], json!("abc"));
        assert_eq!(first["user_id"], json!(42));
        assert_eq!(
            first["fields"],
            json!({"id": 5, "time": "noon", "level": "x"})
        );
        assert!(first.get("id").is_none() && first.get("host").is_none());
        assert_eq!(first["span"], json!({"name": "job", "fields": {}}));
        // No message: the fields stand in; a numeric trace id becomes text.
        assert_eq!(lines[1]["message"], json!("reason=timeout retries=3"));
        assert_eq!(lines[1]["level"], json!("trace"));
        assert_eq!(lines[1]["trace_id"], json!("7"));
        assert_eq!(lines[2]["fields"], json!({"user_id": true}));
        assert!(lines[2].get("user_id").is_none());
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let (lines, stats) = capture(2, None, || {
            for n in 0..5 {
                tracing::info!(n, "event");
            }
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["n"], json!(1));
        assert_eq!(stats.dropped(), 3);
    }

    #[test]
    fn levels_map_to_logbook_names() {
        let (lines, _) = capture(8, None, || {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["trace", "debug", "info", "warn", "error"]);
    }
}
