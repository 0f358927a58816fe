//! A circuit breaker in front of any store: after consecutive failures to
//! reach the engine, calls fail at once for a cool-down instead of each
//! waiting out a timeout and adding load to an engine that is struggling;
//! then one call probes (half-open), and its success closes the breaker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use model::{QueuedEvent, Stream, Timestamp};

use crate::{
    Bucket, EventStore, Filter, Footprint, HistogramRequest, SearchPage, SearchRequest, Stats,
    StoreError, StoredEvent,
};

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive `Unavailable` answers that open the breaker.
    pub failures_to_open: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures_to_open: 3,
            cool_down: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        since: Instant,
        reason: String,
    },
    /// One probe is on its way; other calls are refused until it answers.
    Probing {
        reason: String,
    },
}

/// Wraps a store with a circuit breaker; see the module documentation.
pub struct Breaker<S> {
    inner: S,
    policy: BreakerPolicy,
    state: Mutex<State>,
}

impl<S> Breaker<S> {
    pub fn new(inner: S, policy: BreakerPolicy) -> Self {
        Breaker {
            inner,
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go to the engine now; refuses with the reason the
    /// breaker opened otherwise.
    fn admit(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        match &*state {
            State::Closed { .. } => Ok(()),
            State::Open { since, reason } if since.elapsed() >= self.policy.cool_down => {
                *state = State::Probing {
                    reason: reason.clone(),
                };
                Ok(())
            }
            State::Open { reason, .. } | State::Probing { reason } => Err(StoreError::Unavailable(
                format!("{reason} (circuit open: not retried until the store answers a probe)"),
            )),
        }
    }

    fn record<T>(&self, result: &Result<T, StoreError>) {
        let mut state = self.lock();
        match result {
            Err(StoreError::Unavailable(reason)) => {
                let failures = match &*state {
                    State::Closed { failures } => failures + 1,
                    _ => self.policy.failures_to_open,
                };
                *state = if failures >= self.policy.failures_to_open {
                    if !matches!(&*state, State::Open { .. }) {
                        tracing::warn!(%reason, "the store is unavailable; its circuit opens");
                    }
                    State::Open {
                        since: Instant::now(),
                        reason: reason.clone(),
                    }
                } else {
                    State::Closed { failures }
                };
            }
            // Any answer from the engine, even a refusal, shows it is reachable.
            _ => {
                if !matches!(&*state, State::Closed { .. }) {
                    tracing::info!("the store answers again; its circuit closes");
                }
                *state = State::Closed { failures: 0 };
            }
        }
    }

    async fn call<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.admit()?;
        let result = work.await;
        self.record(&result);
        result
    }
}

#[async_trait]
impl<S: EventStore> EventStore for Breaker<S> {
    async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
        self.call(self.inner.committed_position()).await
    }

    async fn stage(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        // Staging only buffers; it must not be refused while a commit retries.
        self.inner.stage(events).await
    }

    async fn commit(&self, position: Option<u64>) -> Result<(), StoreError> {
        self.call(self.inner.commit(position)).await
    }

    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError> {
        self.call(self.inner.commit_offsets(topic, next)).await
    }

    async fn committed_offsets(
        &self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        self.call(self.inner.committed_offsets(topic)).await
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchPage, StoreError> {
        self.call(self.inner.search(request)).await
    }

    async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.call(self.inner.get(tenant, stream, id)).await
    }

    async fn stats(&self, filter: Filter) -> Result<Stats, StoreError> {
        self.call(self.inner.stats(filter)).await
    }

    async fn histogram(&self, request: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
        self.call(self.inner.histogram(request)).await
    }

    async fn warnings(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        self.call(self.inner.warnings(filter)).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // Readiness reports the breaker's view without spending a probe.
        if let State::Open { reason, .. } | State::Probing { reason } = &*self.lock() {
            return Err(StoreError::Unavailable(reason.clone()));
        }
        self.inner.ready().await
    }

    async fn expire_logs(&self, tenant: &str, before: Timestamp) -> Result<(), StoreError> {
        self.call(self.inner.expire_logs(tenant, before)).await
    }

    async fn footprint(&self) -> Result<Footprint, StoreError> {
        self.call(self.inner.footprint()).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    /// A store whose `footprint` fails while `down` is set, counting the calls
    /// that reached it.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        reached: AtomicU32,
    }

    #[async_trait]
    impl EventStore for Flaky {
        async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
            Ok(None)
        }
        async fn stage(&self, _: Vec<QueuedEvent>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn commit(&self, _: Option<u64>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn commit_offsets(&self, _: &str, _: &[(u32, u64)]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn committed_offsets(
            &self,
            _: &str,
        ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
            Ok(std::collections::BTreeMap::new())
        }
        async fn search(&self, _: SearchRequest) -> Result<SearchPage, StoreError> {
            Err(StoreError::InvalidQuery("not here".into()))
        }
        async fn get(
            &self,
            _: &str,
            _: Stream,
            _: &str,
        ) -> Result<Option<StoredEvent>, StoreError> {
            Ok(None)
        }
        async fn stats(&self, _: Filter) -> Result<Stats, StoreError> {
            Ok(Stats::default())
        }
        async fn histogram(&self, _: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
            Ok(Vec::new())
        }
        async fn ready(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn expire_logs(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
            Ok(())
        }
        async fn footprint(&self) -> Result<Footprint, StoreError> {
            self.reached.fetch_add(1, Ordering::SeqCst);
            match self.down.load(Ordering::SeqCst) {
                true => Err(StoreError::Unavailable("connection refused".into())),
                false => Ok(Footprint::default()),
            }
        }
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_refuses_fast_then_probes_and_closes() {
        let policy = BreakerPolicy {
            failures_to_open: 2,
            cool_down: Duration::from_millis(100),
        };
        let breaker = Breaker::new(Flaky::default(), policy);
        breaker.inner.down.store(true, Ordering::SeqCst);
        for _ in 0..2 {
            assert!(breaker.footprint().await.is_err());
        }
        assert_eq!(breaker.inner.reached.load(Ordering::SeqCst), 2);
        // Open: refused without reaching the engine, and not ready.
        for _ in 0..5 {
            let refusal = breaker.footprint().await.unwrap_err();
            assert!(refusal.to_string().contains("circuit open"), "{refusal}");
        }
        assert_eq!(breaker.inner.reached.load(Ordering::SeqCst), 2);
        assert!(breaker.ready().await.is_err());
        // After the cool-down one probe goes through; it fails, so it reopens.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(breaker.footprint().await.is_err());
        assert_eq!(breaker.inner.reached.load(Ordering::SeqCst), 3);
        assert!(breaker.footprint().await.is_err());
        assert_eq!(breaker.inner.reached.load(Ordering::SeqCst), 3);
        // The engine is back: the next probe succeeds and closes the circuit.
        breaker.inner.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(120)).await;
        breaker.footprint().await.unwrap();
        breaker.footprint().await.unwrap();
        assert_eq!(breaker.inner.reached.load(Ordering::SeqCst), 5);
        assert!(breaker.ready().await.is_ok());
    }

    #[tokio::test]
    async fn a_refusal_from_a_reachable_engine_does_not_count() {
        let breaker = Breaker::new(Flaky::default(), BreakerPolicy::default());
        for _ in 0..10 {
            let _ = breaker.search_request_that_fails().await;
        }
        assert!(breaker.ready().await.is_ok());
    }

    impl Breaker<Flaky> {
        async fn search_request_that_fails(&self) -> Result<Stats, StoreError> {
            self.call(async { Err(StoreError::InvalidQuery("bad".into())) })
                .await
        }
    }
}
