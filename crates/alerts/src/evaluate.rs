//! The evaluator: while this process holds the alert lease, counts each
//! rule's matches over its window on the rule's own interval, records the
//! transitions in the metadata store, and hands pending notifications to
//! deliveries that run beside it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use meta::{AlertPhase, AlertRule, AlertState, Evaluation, MetaStore};
use model::{Stream, Timestamp};
use store::{EventStore, Filter};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::deliver::{DeliveryPolicy, deliver};
use crate::notification::{group_key, notification};

/// How the evaluator runs.
#[derive(Debug, Clone)]
pub struct EvaluatorConfig {
    /// How often due rules are looked for (and how often the lease is checked).
    pub tick: Duration,
    /// How often a process without the lease asks for it.
    pub lease_retry: Duration,
    /// The most groups of one rule that may fire at once (the largest counts win).
    pub max_groups_per_rule: usize,
    /// Deliveries running at once.
    pub max_concurrent_deliveries: usize,
    /// How long resolved alerts are kept (and listed) once notified.
    pub resolved_retention: Duration,
    /// Bounds on rule queries, as at creation.
    pub query_limits: query::Limits,
    pub delivery: DeliveryPolicy,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        EvaluatorConfig {
            tick: Duration::from_secs(1),
            lease_retry: Duration::from_secs(2),
            max_groups_per_rule: 100,
            max_concurrent_deliveries: 8,
            resolved_retention: Duration::from_secs(24 * 3600),
            query_limits: query::Limits::default(),
            delivery: DeliveryPolicy::default(),
        }
    }
}

/// How often resolved states past their retention are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Runs until `stop` turns true. Deliveries still running then are dropped:
/// their notifications stay pending and are sent by the next evaluator.
pub async fn run(
    meta: MetaStore,
    store: Arc<dyn EventStore>,
    config: EvaluatorConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut evaluator = Evaluator {
        deliveries: Deliveries::new(meta.clone(), &config),
        meta,
        store,
        due: HashMap::new(),
        pruned: None,
        config,
    };
    let mut lease: Option<meta::Lease> = None;
    while !*stop.borrow() {
        if let Some(held) = &mut lease
            && !held.holds().await
        {
            tracing::warn!("lost the alert lease (its database connection died)");
            lease = None;
        }
        if lease.is_none() {
            lease = match evaluator.meta.try_alert_lease().await {
                Ok(granted) => granted,
                Err(error) => {
                    tracing::warn!(%error, "cannot ask for the alert lease; will retry");
                    None
                }
            };
            if lease.is_some() {
                tracing::info!("this process evaluates the alert rules");
                evaluator.due.clear();
            }
        }
        let pause = if lease.is_some() {
            evaluator.round().await;
            evaluator.config.tick
        } else {
            metrics::gauge!("logbook_alerts_firing").set(0.0);
            evaluator.config.lease_retry
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

struct Evaluator {
    meta: MetaStore,
    store: Arc<dyn EventStore>,
    config: EvaluatorConfig,
    /// When each rule is next due; a rule not in it is due now.
    due: HashMap<String, Instant>,
    pruned: Option<Instant>,
    deliveries: Deliveries,
}

impl Evaluator {
    /// Evaluates every rule that is due.
    async fn round(&mut self) {
        self.deliveries.reap();
        let rules = match self.meta.alert_rules(None).await {
            Ok(rules) => rules,
            Err(error) => {
                tracing::warn!(%error, "cannot read the alert rules; will retry");
                return;
            }
        };
        let ids: HashSet<&str> = rules.iter().map(|rule| rule.id.as_str()).collect();
        self.due.retain(|id, _| ids.contains(id.as_str()));
        let mut evaluated = false;
        for rule in &rules {
            let now = Instant::now();
            if self.due.get(&rule.id).is_some_and(|due| *due > now) {
                continue;
            }
            let interval = Duration::from_millis(u64::try_from(rule.spec.interval_ms).unwrap_or(1));
            self.due.insert(rule.id.clone(), now + interval);
            if let Err(error) = self.evaluate(rule).await {
                tracing::warn!(rule = rule.id, tenant = rule.tenant, %error, "cannot evaluate an alert rule");
            }
            evaluated = true;
        }
        if evaluated {
            match self.meta.firing_alerts().await {
                Ok(firing) => metrics::gauge!("logbook_alerts_firing").set(firing as f64),
                Err(error) => tracing::warn!(%error, "cannot count firing alerts"),
            }
        }
        if self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.pruned = Some(Instant::now());
            let retention =
                i64::try_from(self.config.resolved_retention.as_millis()).unwrap_or(i64::MAX);
            if let Err(error) = self
                .meta
                .prune_alert_states(meta::now_millis() - retention)
                .await
            {
                tracing::warn!(%error, "cannot prune old alert states");
            }
        }
    }

    /// Counts one rule's matches, saves the transitions, and starts the
    /// deliveries of whatever is pending.
    async fn evaluate(&mut self, rule: &AlertRule) -> Result<(), crate::AlertError> {
        let spec = &rule.spec;
        let query = query::parse_within(&spec.query, &self.config.query_limits)
            .map_err(|error| crate::AlertError::Query(error.to_string()))?;
        let now_ms = meta::now_millis();
        let now = Timestamp::from_nanos(now_ms.saturating_mul(1_000_000));
        let from = Timestamp::from_nanos(
            now.nanos()
                .saturating_sub(spec.window_ms.saturating_mul(1_000_000)),
        );
        let stats = self
            .store
            .stats(Filter {
                tenant: rule.tenant.clone(),
                stream: Stream::Logs,
                query,
                from: Some(from),
                to: Some(now),
            })
            .await?;
        let counts: Vec<(String, i64)> = match spec.group_by.as_deref() {
            None => vec![(group_key(None, ""), saturating(stats.total))],
            Some(field) => {
                let by = if field == "level" {
                    &stats.by_level
                } else {
                    &stats.by_service
                };
                by.iter()
                    .map(|(value, count)| (group_key(Some(field), value), saturating(*count)))
                    .collect()
            }
        };
        let mut over: Vec<&(String, i64)> = counts
            .iter()
            .filter(|(_, count)| *count > spec.threshold)
            .collect();
        over.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        over.truncate(self.config.max_groups_per_rule.max(1));

        let states: HashMap<String, AlertState> = self
            .meta
            .alert_states(&rule.id)
            .await?
            .into_iter()
            .map(|state| (state.group_key.clone(), state))
            .collect();
        let save = |group_key, state, since, count| {
            Saved {
                group_key,
                state,
                since,
                count,
            }
            .of(rule, now_ms)
        };
        let firing_now: HashSet<&str> = over.iter().map(|(key, _)| key.as_str()).collect();
        for (key, count) in &over {
            match states.get(key) {
                Some(known) if known.state == AlertPhase::Firing => {
                    if known.last_count != *count {
                        self.meta
                            .save_alert_evaluation(&save(
                                key.as_str(),
                                AlertPhase::Firing,
                                known.since,
                                *count,
                            ))
                            .await?;
                    }
                }
                _ => {
                    self.meta
                        .save_alert_evaluation(&save(
                            key.as_str(),
                            AlertPhase::Firing,
                            now_ms,
                            *count,
                        ))
                        .await?;
                }
            }
        }
        for known in states.values() {
            if known.state != AlertPhase::Firing || firing_now.contains(known.group_key.as_str()) {
                continue;
            }
            let count = counts
                .iter()
                .find(|(key, _)| *key == known.group_key)
                .map_or(0, |(_, count)| *count);
            let firing_was_notified = known.notified_state == Some(AlertPhase::Firing)
                && known.notified_since == Some(known.since);
            self.meta
                .save_alert_evaluation(&save(
                    known.group_key.as_str(),
                    AlertPhase::Resolved,
                    now_ms,
                    count,
                ))
                .await?;
            if !firing_was_notified {
                // Nobody heard it fire, so there is nothing to resolve for them.
                self.meta
                    .mark_alert_notified(
                        &rule.id,
                        &known.group_key,
                        AlertPhase::Resolved,
                        now_ms,
                        None,
                    )
                    .await?;
            }
        }
        for state in self.meta.alert_states(&rule.id).await? {
            if state.pending() {
                self.deliveries.start(rule, state);
            }
        }
        Ok(())
    }
}

/// One group's new state, before it is tied to its rule.
struct Saved<'a> {
    group_key: &'a str,
    state: AlertPhase,
    since: i64,
    count: i64,
}

impl<'a> Saved<'a> {
    fn of(self, rule: &'a AlertRule, at: i64) -> Evaluation<'a> {
        Evaluation {
            rule_id: &rule.id,
            tenant: &rule.tenant,
            group_key: self.group_key,
            state: self.state,
            since: self.since,
            count: self.count,
            at,
        }
    }
}

fn saturating(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Deliveries in flight: at most one per rule and group, so notifications
/// of one group go out in order, and at most `max_concurrent_deliveries` at once.
struct Deliveries {
    meta: MetaStore,
    policy: Arc<DeliveryPolicy>,
    permits: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    tasks: JoinSet<()>,
}

impl Deliveries {
    fn new(meta: MetaStore, config: &EvaluatorConfig) -> Deliveries {
        Deliveries {
            meta,
            policy: Arc::new(config.delivery.clone()),
            permits: Arc::new(Semaphore::new(config.max_concurrent_deliveries.max(1))),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            tasks: JoinSet::new(),
        }
    }

    /// Forgets finished tasks.
    fn reap(&mut self) {
        while let Some(finished) = self.tasks.try_join_next() {
            if let Err(error) = finished {
                tracing::error!(%error, "a webhook delivery panicked");
            }
        }
    }

    /// Starts delivering `state`'s notification unless one of its group is in flight.
    fn start(&mut self, rule: &AlertRule, state: AlertState) {
        let key = (state.rule_id.clone(), state.group_key.clone());
        {
            let Ok(mut in_flight) = self.in_flight.lock() else {
                return;
            };
            if !in_flight.insert(key.clone()) {
                return;
            }
        }
        let body = Bytes::from(notification(rule, &state).to_string());
        let url = rule.spec.webhook_url.clone();
        let secret = rule.secret.clone();
        let meta = self.meta.clone();
        let policy = Arc::clone(&self.policy);
        let permits = Arc::clone(&self.permits);
        let in_flight = Arc::clone(&self.in_flight);
        self.tasks.spawn(async move {
            if let Ok(_permit) = permits.acquire_owned().await {
                let outcome = deliver(&url, &secret, body, &policy).await;
                record(&meta, &state, outcome).await;
            }
            if let Ok(mut in_flight) = in_flight.lock() {
                in_flight.remove(&key);
            }
        });
    }
}

/// Marks a delivered notification as sent, or keeps why it failed.
async fn record(
    meta: &MetaStore,
    state: &AlertState,
    outcome: Result<(), crate::deliver::DeliveryError>,
) {
    match outcome {
        Ok(()) => {
            metrics::counter!("logbook_alert_notifications_total", "outcome" => "delivered")
                .increment(1);
            let marked = meta
                .mark_alert_notified(
                    &state.rule_id,
                    &state.group_key,
                    state.state,
                    state.since,
                    Some(meta::now_millis()),
                )
                .await;
            if let Err(error) = marked {
                // The notification will be sent again: at least once, not exactly once.
                tracing::warn!(%error, rule = state.rule_id, "cannot record a delivered notification");
            }
        }
        Err(error) => {
            metrics::counter!("logbook_alert_notifications_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(rule = state.rule_id, group = state.group_key, %error, "cannot deliver an alert notification");
            let message = error.to_string();
            if let Err(error) = meta
                .record_alert_delivery_error(&state.rule_id, &state.group_key, &message)
                .await
            {
                tracing::warn!(%error, "cannot record a failed delivery");
            }
        }
    }
}
