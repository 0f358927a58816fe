//! Metrics in Prometheus's text format: the process's one recorder, the
//! sampler that measures what is costly to compute, the process figures, and
//! the optional listener that serves `/metrics` without credentials.
//!
//! The recorder is global to the process (the `metrics` facade has one), so
//! the first server a process starts installs it and every later one renders
//! from the same handle: several servers in one test binary share their
//! figures, as they share the process.

mod describe;
mod process;
mod sampler;

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) use sampler::Sampler;

/// Bucket bounds of every `_seconds` histogram: from half a millisecond (an
/// acknowledgement under group commit) to half a minute (a query at its
/// deadline).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The recorder installed by the first server of this process.
static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The handle of the process's Prometheus recorder, installing it on first use.
pub(crate) fn recorder() -> anyhow::Result<PrometheusHandle> {
    let mut installed = RECORDER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder (another one is installed)")?;
    describe::describe_all();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The `/metrics` endpoint over `handle`: the recorder's series, then the
/// process's own figures read at the scrape.
pub(crate) fn endpoint(handle: PrometheusHandle) -> Arc<api::telemetry::MetricsEndpoint> {
    Arc::new(api::telemetry::MetricsEndpoint::new(move || {
        let mut text = handle.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        process::append_exposition(&mut text);
        text
    }))
}
