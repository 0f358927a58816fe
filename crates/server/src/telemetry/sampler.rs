//! Figures that cost something to compute (the store's footprint, every
//! tenant's newest checkpoint) or live in other components (the queue's
//! stats, the worker's progress), measured at an interval by one task and
//! kept as gauges, so a scrape costs the same however often it comes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use pipeline::Progress;
use queue::Queue;
use store::{AuditLog, EventStore};
use tokio::sync::watch;

/// The most tenants whose checkpoints one sample reads; the rest are left
/// out (and a warning says so) rather than letting a sample grow without end.
const MAX_TENANTS_SAMPLED: usize = 10_000;

/// What the sampler measures, and how often.
pub(crate) struct Sampler {
    pub(crate) handle: PrometheusHandle,
    pub(crate) interval: Duration,
    pub(crate) role: api::Role,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) meta: meta::MetaStore,
    pub(crate) progress: watch::Receiver<Progress>,
}

impl Sampler {
    /// Samples at once, then every interval, until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.sample().await,
                changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                    return;
                },
            }
        }
    }

    async fn sample(&self) {
        let started = Instant::now();
        // Drains the histograms' pending observations, bounding their memory.
        self.handle.run_upkeep();
        self.sample_queue();
        if self.role.works() {
            self.sample_worker();
        }
        if self.role.queries() {
            self.sample_store().await;
            self.sample_audit().await;
        }
        metrics::histogram!("logbook_metrics_sample_seconds")
            .record(started.elapsed().as_secs_f64());
    }

    fn sample_queue(&self) {
        let stats = self.queue.stats();
        metrics::gauge!("logbook_queue_pending_bytes").set(stats.pending_bytes as f64);
        metrics::gauge!("logbook_queue_max_bytes").set(stats.max_bytes as f64);
        metrics::gauge!("logbook_queue_segments").set(stats.segments as f64);
        metrics::gauge!("logbook_queue_failed").set(f64::from(u8::from(stats.failed)));
        metrics::counter!("logbook_queue_syncs_total").absolute(stats.syncs);
        if let Some(records) = stats.pending_records {
            metrics::gauge!("logbook_queue_pending_records").set(records as f64);
        }
    }

    fn sample_worker(&self) {
        let progress = *self.progress.borrow();
        metrics::gauge!("logbook_worker_running").set(f64::from(u8::from(progress.running)));
        metrics::gauge!("logbook_worker_store_failing")
            .set(f64::from(u8::from(progress.store_failing)));
        let age = progress.oldest_pending.map_or(0.0, |received| {
            let nanos = model::Timestamp::now()
                .nanos()
                .saturating_sub(received.nanos());
            (nanos.max(0) as f64) / 1e9
        });
        metrics::gauge!("logbook_queue_oldest_unprocessed_age_seconds").set(age);
    }

    async fn sample_store(&self) {
        match self.store.footprint().await {
            Ok(footprint) => {
                metrics::gauge!("logbook_store_events").set(footprint.events as f64);
                metrics::gauge!("logbook_store_bytes").set(footprint.bytes as f64);
            }
            Err(error) => tracing::debug!(%error, "cannot measure the store for metrics"),
        }
    }

    /// Each tenant's newest checkpoint: how many events it covers and how
    /// old it is. Its signature is checked, so a figure is never read from a
    /// note the store's key did not sign.
    async fn sample_audit(&self) {
        let key = match audit::VerifyingKey::from_text(&self.audit.public_key()) {
            Ok(key) => key,
            Err(error) => {
                tracing::debug!(%error, "cannot read the checkpoint key for metrics");
                return;
            }
        };
        let tenants = match self.meta.tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::debug!(%error, "cannot list tenants for metrics");
                return;
            }
        };
        if tenants.len() > MAX_TENANTS_SAMPLED {
            tracing::warn!(
                tenants = tenants.len(),
                sampled = MAX_TENANTS_SAMPLED,
                "only some tenants' audit checkpoints are in the metrics"
            );
        }
        let now = model::Timestamp::now().nanos() / 1_000_000_000;
        for tenant in tenants.into_iter().take(MAX_TENANTS_SAMPLED) {
            let note = match self.audit.checkpoint(&tenant.id, None).await {
                Ok(Some(note)) => note,
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(%error, tenant = tenant.id, "cannot read a checkpoint for metrics");
                    continue;
                }
            };
            let Ok(checkpoint) = audit::Checkpoint::verify(&note, &key) else {
                tracing::warn!(tenant = tenant.id, "a stored checkpoint does not verify");
                continue;
            };
            metrics::gauge!("logbook_audit_trail_signed_events", "tenant" => tenant.id.clone())
                .set(checkpoint.size as f64);
            metrics::gauge!("logbook_audit_checkpoint_age_seconds", "tenant" => tenant.id)
                .set(now.saturating_sub(checkpoint.time).max(0) as f64);
        }
    }
}
