//! Sends a few events to a running Logbook server through the layer.
//!
//! ```sh
//! LOGBOOK_URL=http://127.0.0.1:8080 LOGBOOK_KEY=lbk_… \
//!   cargo run -p logbook-tracing --example send_logs
//! ```
//!
//! Then search them back: `GET /v1/logs?q=service:tracing-example`.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("LOGBOOK_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("LOGBOOK_KEY")
        .map_err(|_| "set LOGBOOK_KEY to an API key with logs:write")?;

    let (layer, guard) = logbook_tracing::Builder::new(url, "tracing-example")
        .api_key(key)
        .flush_interval(Duration::from_millis(200))
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    for order in 1..=3 {
        let span =
            tracing::info_span!("order", trace_id = %format!("trace-{order:04}"), order_id = order);
        let _entered = span.enter();
        tracing::info!(items = order * 2, "order received");
        if order == 2 {
            tracing::warn!(amount = 99.5, declined = true, "card declined");
        }
    }

    let stats = guard.shutdown();
    println!(
        "sent {}, dropped {}, rejected {}, failed {}",
        stats.sent(),
        stats.dropped(),
        stats.rejected(),
        stats.failed()
    );
    Ok(())
}
