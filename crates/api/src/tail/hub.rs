//! The tail hub: one per process. While anyone subscribes, one task follows
//! the queue, decodes each record and offers every event to the subscribers
//! of its tenant and stream whose query it matches. Offering never waits: a
//! full buffer drops the event for that subscriber alone, so ingest never
//! waits for a subscriber.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use model::Stream;
use queue::{Followed, Queue, QueueError, Record};
use store::matcher::Matcher;
use tokio::sync::mpsc;

use super::TailConfig;
use super::subscription::{CloseReason, Shared, Subscription};
use crate::ApiError;

/// How long the follower waits for a record before checking whether anyone still listens.
const FOLLOW_WAIT: Duration = Duration::from_millis(500);

/// The longest pause between retries after the queue failed to answer.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Fans acknowledged events out to live subscribers; see the module documentation.
pub struct TailHub {
    queue: Arc<dyn Queue>,
    config: TailConfig,
    inner: Mutex<Inner>,
    /// Held while a follower starts, so a subscriber is answered only once
    /// the queue is followed (no event acknowledged after the answer is missed).
    starting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TailHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailHub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, TenantSubscribers>,
    /// A task follows the queue.
    following: bool,
    shut_down: bool,
    next_id: u64,
}

#[derive(Default)]
struct TenantSubscribers {
    logs: Vec<Entry>,
    audit: Vec<Entry>,
}

impl TenantSubscribers {
    fn of(&mut self, stream: Stream) -> &mut Vec<Entry> {
        match stream {
            Stream::Logs => &mut self.logs,
            Stream::Audit => &mut self.audit,
        }
    }

    fn len(&self) -> usize {
        self.logs.len() + self.audit.len()
    }
}

/// The hub's side of one subscriber.
struct Entry {
    id: u64,
    matcher: Matcher,
    sender: mpsc::Sender<Arc<str>>,
    shared: Arc<Shared>,
    /// Events offered in the current lag window, and how many were dropped.
    window_started: Instant,
    delivered: u64,
    dropped: u64,
}

impl Entry {
    /// Offers one event; returns false if the subscriber is hopelessly behind
    /// and must be closed.
    fn offer(&mut self, json: &Arc<str>, stream: Stream, now: Instant, max_lag: Duration) -> bool {
        match self.sender.try_send(Arc::clone(json)) {
            Ok(()) => self.delivered += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                self.shared.dropped.fetch_add(1, Ordering::AcqRel);
                metrics::counter!("logbook_tail_dropped_events_total", "stream" => stream.as_str())
                    .increment(1);
            }
            // The connection is gone; its subscription removes the entry.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
        if now.duration_since(self.window_started) < max_lag {
            return true;
        }
        let behind = self.dropped > self.delivered;
        self.window_started = now;
        self.delivered = 0;
        self.dropped = 0;
        !behind
    }
}

impl TailHub {
    /// A hub over `queue`; nothing runs until someone subscribes.
    pub fn new(queue: Arc<dyn Queue>, config: TailConfig) -> TailHub {
        TailHub {
            queue,
            config,
            inner: Mutex::new(Inner::default()),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    /// The tail's settings.
    pub fn config(&self) -> &TailConfig {
        &self.config
    }

    /// Every update is a few map operations that cannot be left half done, so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber to `tenant`'s `stream`; it receives the matching
    /// events acknowledged from the moment this returns.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        tenant: &str,
        stream: Stream,
        matcher: Matcher,
    ) -> Result<Subscription, ApiError> {
        let _starting = self.starting.lock().await;
        let (sender, receiver) = mpsc::channel(self.config.buffer_events.max(1));
        let shared = Arc::new(Shared::default());
        let (id, start) = {
            let mut inner = self.lock();
            if inner.shut_down {
                return Err(shutting_down());
            }
            let max = self.config.max_subscribers_per_tenant;
            let held = inner.tenants.get(tenant).map_or(0, TenantSubscribers::len);
            if held >= max {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_tails",
                    format!(
                        "this tenant already has {max} live tails (tail.max_subscribers_per_tenant); close one first"
                    ),
                );
                error.retry_after_seconds = Some(5);
                return Err(error);
            }
            inner.next_id += 1;
            let id = inner.next_id;
            let entry = Entry {
                id,
                matcher,
                sender,
                shared: Arc::clone(&shared),
                window_started: Instant::now(),
                delivered: 0,
                dropped: 0,
            };
            inner
                .tenants
                .entry(tenant.to_owned())
                .or_default()
                .of(stream)
                .push(entry);
            let start = !inner.following;
            inner.following = true;
            (id, start)
        };
        metrics::gauge!("logbook_tail_subscribers", "stream" => stream.as_str()).increment(1.0);
        let subscription = Subscription::new(
            Arc::clone(self),
            id,
            tenant.to_owned(),
            stream,
            receiver,
            shared,
        );
        if start {
            match self.queue.follow().await {
                Ok(follower) => {
                    tokio::spawn(Arc::clone(self).follow(follower));
                }
                Err(error) => {
                    self.lock().following = false;
                    tracing::warn!(%error, "cannot follow the queue for a live tail");
                    let mut refusal = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "queue_unavailable",
                        "the queue cannot be followed now; retry later",
                    );
                    refusal.retry_after_seconds = Some(2);
                    return Err(refusal);
                }
            }
        }
        Ok(subscription)
    }

    /// Removes a subscriber (its connection ended).
    pub(crate) fn unsubscribe(&self, tenant: &str, stream: Stream, id: u64) {
        let mut inner = self.lock();
        let Some(subscribers) = inner.tenants.get_mut(tenant) else {
            return;
        };
        let entries = subscribers.of(stream);
        let before = entries.len();
        entries.retain(|entry| entry.id != id);
        if entries.len() < before {
            metrics::gauge!("logbook_tail_subscribers", "stream" => stream.as_str()).decrement(1.0);
        }
        if subscribers.len() == 0 {
            inner.tenants.remove(tenant);
        }
    }

    /// Closes every subscriber ("the server is shutting down") and refuses new ones.
    pub fn shut_down(&self) {
        let mut inner = self.lock();
        inner.shut_down = true;
        close_all(&mut inner, CloseReason::shutting_down());
    }

    /// Follows the queue until no one subscribes any more.
    async fn follow(self: Arc<Self>, mut follower: Box<dyn queue::Follower>) {
        let mut pause = Duration::from_millis(100);
        loop {
            match follower.next(FOLLOW_WAIT).await {
                Ok(Some(Followed::Record(record))) => {
                    pause = Duration::from_millis(100);
                    self.fan_out(&record);
                }
                Ok(Some(Followed::Missed { from, to })) => {
                    tracing::warn!(
                        from = from.0,
                        to = to.0,
                        "the live tail fell behind the queue and missed records"
                    );
                    for subscribers in self.lock().tenants.values() {
                        for entry in subscribers.logs.iter().chain(&subscribers.audit) {
                            entry.shared.missed.store(true, Ordering::Release);
                        }
                    }
                }
                Ok(None) => {}
                Err(QueueError::Closed) => {
                    let mut inner = self.lock();
                    inner.following = false;
                    close_all(&mut inner, CloseReason::shutting_down());
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "the live tail cannot follow the queue; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
            let mut inner = self.lock();
            if inner.tenants.is_empty() {
                inner.following = false;
                return;
            }
        }
    }

    /// Offers each event of a record to the subscribers it matches.
    fn fan_out(&self, record: &Record) {
        let mut inner = self.lock();
        if inner.tenants.is_empty() {
            return;
        }
        let events = match model::decode_record(&record.payload, record.position.0) {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, position = record.position.0, "the live tail skips an unreadable record");
                return;
            }
        };
        let now = Instant::now();
        let max_lag = self.config.max_lag;
        let mut behind = Vec::new();
        for queued in events {
            let event = &queued.event;
            let Some(subscribers) = inner.tenants.get_mut(&event.tenant) else {
                continue;
            };
            let mut json: Option<Arc<str>> = None;
            for entry in subscribers.of(event.stream).iter_mut() {
                if !entry.matcher.matches(event) {
                    continue;
                }
                let json = json.get_or_insert_with(|| Arc::from(queued.json.as_str()));
                if !entry.offer(json, event.stream, now, max_lag) {
                    behind.push((event.tenant.clone(), event.stream, entry.id));
                }
            }
        }
        for (tenant, stream, id) in behind {
            close_one(&mut inner, &tenant, stream, id, self.config.max_lag);
        }
    }
}

/// Closes a subscriber that dropped more events than it received over a lag window.
fn close_one(inner: &mut Inner, tenant: &str, stream: Stream, id: u64, max_lag: Duration) {
    let Some(subscribers) = inner.tenants.get_mut(tenant) else {
        return;
    };
    let entries = subscribers.of(stream);
    let Some(index) = entries.iter().position(|entry| entry.id == id) else {
        return;
    };
    let entry = entries.swap_remove(index);
    entry.shared.close(CloseReason::too_slow(max_lag));
    metrics::gauge!("logbook_tail_subscribers", "stream" => stream.as_str()).decrement(1.0);
    if subscribers.len() == 0 {
        inner.tenants.remove(tenant);
    }
}

fn close_all(inner: &mut Inner, reason: CloseReason) {
    for (_, subscribers) in inner.tenants.drain() {
        for (stream, entries) in [
            (Stream::Logs, subscribers.logs),
            (Stream::Audit, subscribers.audit),
        ] {
            for entry in entries {
                entry.shared.close(reason.clone());
                metrics::gauge!("logbook_tail_subscribers", "stream" => stream.as_str())
                    .decrement(1.0);
            }
        }
    }
}

fn shutting_down() -> ApiError {
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the server is shutting down",
    );
    error.retry_after_seconds = Some(2);
    error
}
