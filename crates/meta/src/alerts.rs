//! Alert rules of tenants and the state the evaluator keeps of each rule and
//! group, so that a restarted (or another) evaluator resumes where the last
//! one stopped and never sends a delivered notification again.
//!
//! A state row says what is true (`state`, `since`) and what was last
//! notified (`notified_state`, `notified_since`); a notification is pending
//! while the two differ. Only a delivery that the webhook acknowledged (or the
//! evaluator deciding there is nothing to send) moves `notified_*`, and only
//! for the transition it was about.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use crate::{AuditEntry, Lease, MetaError, MetaStore, now_millis, outbox, query_failed};

/// The advisory lock of the alert evaluator (see [`crate::Lease`]); the
/// outbox uses `0x6c6f_6710`, the PostgreSQL store `0x6c6f_6701` to `0x6c6f_6703`.
const ALERT_LOCK: i32 = 0x6c6f_6711;

/// What a tenant chooses about a rule (everything but its id, owner and secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRuleSpec {
    pub name: String,
    /// A query in the search language.
    pub query: String,
    /// The rule fires when the count is above this.
    pub threshold: i64,
    pub window_ms: i64,
    pub interval_ms: i64,
    /// `service` or `level`: counted per group rather than in total.
    pub group_by: Option<String>,
    pub webhook_url: String,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub id: String,
    pub tenant: String,
    pub spec: AlertRuleSpec,
    /// The key notifications are signed with; shown to the tenant once, at creation.
    pub secret: String,
    /// Unix milliseconds, like the other times.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whether a rule (or one of its groups) is over its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertPhase {
    Firing,
    Resolved,
}

impl AlertPhase {
    /// The name stored and shown: `firing` or `resolved`.
    pub fn name(self) -> &'static str {
        match self {
            AlertPhase::Firing => "firing",
            AlertPhase::Resolved => "resolved",
        }
    }

    fn parse(name: &str) -> Option<AlertPhase> {
        match name {
            "firing" => Some(AlertPhase::Firing),
            "resolved" => Some(AlertPhase::Resolved),
            _ => None,
        }
    }
}

/// What the evaluator knows of one rule and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    pub rule_id: String,
    pub tenant: String,
    /// `""` for a rule without `group_by`, else `field=value`.
    pub group_key: String,
    pub state: AlertPhase,
    /// When the current state began (Unix ms).
    pub since: i64,
    /// The count of the last evaluation that changed it.
    pub last_count: i64,
    /// When the state or the count last changed (Unix ms).
    pub changed_at: i64,
    /// The transition last delivered (or found not worth sending), if any.
    pub notified_state: Option<AlertPhase>,
    pub notified_since: Option<i64>,
    /// When the webhook acknowledged it; `None` when nothing was sent.
    pub notified_at: Option<i64>,
    /// Why the last delivery of the pending notification failed.
    pub delivery_error: Option<String>,
}

impl AlertState {
    /// Whether the current state still has to be notified.
    pub fn pending(&self) -> bool {
        self.notified_state != Some(self.state) || self.notified_since != Some(self.since)
    }
}

/// The outcome of one evaluation of one rule and group, as the evaluator saves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'a> {
    pub rule_id: &'a str,
    pub tenant: &'a str,
    pub group_key: &'a str,
    pub state: AlertPhase,
    pub since: i64,
    pub count: i64,
    pub at: i64,
}

/// An alert as `GET /v1/alerts` lists it: a state and the rule's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAlert {
    pub rule_name: String,
    pub group_by: Option<String>,
    pub state: AlertState,
}

const RULE_COLUMNS: &str = "id, tenant_id, name, query, threshold, window_ms, interval_ms, \
     group_by, webhook_url, secret, created_at, updated_at";

const STATE_COLUMNS: &str = "s.rule_id, s.tenant_id, s.group_key, s.state, s.since, \
     s.last_count, s.changed_at, s.notified_state, s.notified_since, s.notified_at, \
     s.delivery_error";

fn rule_from_row(row: &AnyRow) -> Result<AlertRule, sqlx::Error> {
    Ok(AlertRule {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        spec: AlertRuleSpec {
            name: row.try_get("name")?,
            query: row.try_get("query")?,
            threshold: row.try_get("threshold")?,
            window_ms: row.try_get("window_ms")?,
            interval_ms: row.try_get("interval_ms")?,
            group_by: row.try_get("group_by")?,
            webhook_url: row.try_get("webhook_url")?,
        },
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn phase(name: &str) -> Result<AlertPhase, sqlx::Error> {
    AlertPhase::parse(name)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown alert state {name:?}").into()))
}

fn state_from_row(row: &AnyRow) -> Result<AlertState, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let notified: Option<String> = row.try_get("notified_state")?;
    Ok(AlertState {
        rule_id: row.try_get("rule_id")?,
        tenant: row.try_get("tenant_id")?,
        group_key: row.try_get("group_key")?,
        state: phase(&state)?,
        since: row.try_get("since")?,
        last_count: row.try_get("last_count")?,
        changed_at: row.try_get("changed_at")?,
        notified_state: notified.as_deref().map(phase).transpose()?,
        notified_since: row.try_get("notified_since")?,
        notified_at: row.try_get("notified_at")?,
        delivery_error: row.try_get("delivery_error")?,
    })
}

impl MetaStore {
    /// Stores a new rule of `tenant`, unless the tenant already has
    /// `max_rules` ([`MetaError::LimitReached`]) or does not exist
    /// ([`MetaError::NotFound`]).
    pub async fn create_alert_rule(
        &self,
        rule: &AlertRule,
        max_rules: usize,
        audit: &[AuditEntry],
    ) -> Result<(), MetaError> {
        let failed = query_failed("creating an alert rule");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        // Writing the tenant's row first serialises the rule creations of one
        // tenant, so two at once cannot both pass the cap.
        let tenant = sqlx::query("UPDATE tenants SET name = name WHERE id = $1")
            .bind(&rule.tenant)
            .execute(&mut *transaction)
            .await
            .map_err(&failed)?;
        if tenant.rows_affected() == 0 {
            return Err(MetaError::NotFound(format!("no tenant {:?}", rule.tenant)));
        }
        let existing: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_rules WHERE tenant_id = $1")
                .bind(&rule.tenant)
                .fetch_one(&mut *transaction)
                .await
                .map_err(&failed)?;
        if usize::try_from(existing).unwrap_or(usize::MAX) >= max_rules {
            return Err(MetaError::LimitReached(format!(
                "this tenant already has {existing} alert rules, the most it may have (alerts.max_rules_per_tenant)"
            )));
        }
        let spec = &rule.spec;
        sqlx::query(
            "INSERT INTO alert_rules (id, tenant_id, name, query, threshold, window_ms, interval_ms,
             group_by, webhook_url, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&rule.id)
        .bind(&rule.tenant)
        .bind(&spec.name)
        .bind(&spec.query)
        .bind(spec.threshold)
        .bind(spec.window_ms)
        .bind(spec.interval_ms)
        .bind(spec.group_by.as_deref())
        .bind(&spec.webhook_url)
        .bind(&rule.secret)
        .bind(rule.created_at)
        .bind(rule.updated_at)
        .execute(&mut *transaction)
        .await
        .map_err(|error| {
            if crate::is_unique_violation(&error) {
                MetaError::Conflict(format!("alert rule {:?}", rule.id))
            } else {
                failed(error)
            }
        })?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)
    }

    /// The rule `id` of `tenant`; `None` when the tenant has no such rule.
    pub async fn alert_rule(&self, tenant: &str, id: &str) -> Result<Option<AlertRule>, MetaError> {
        let failed = query_failed("reading an alert rule");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref().map(rule_from_row).transpose().map_err(failed)
    }

    /// The rules of `tenant`, oldest first; every tenant's when `None`.
    pub async fn alert_rules(&self, tenant: Option<&str>) -> Result<Vec<AlertRule>, MetaError> {
        let failed = query_failed("listing alert rules");
        let rows = match tenant {
            Some(tenant) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 ORDER BY created_at, id"
            )))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY created_at, id"
            )))
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(&failed)?;
        rows.iter()
            .map(rule_from_row)
            .collect::<Result<_, _>>()
            .map_err(failed)
    }

    /// Replaces what the tenant chose about rule `id` (its secret stays);
    /// `None` when the tenant has no such rule, and then nothing is recorded.
    pub async fn update_alert_rule(
        &self,
        tenant: &str,
        id: &str,
        spec: &AlertRuleSpec,
        audit: &[AuditEntry],
    ) -> Result<Option<AlertRule>, MetaError> {
        let failed = query_failed("changing an alert rule");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let updated = sqlx::query(
            "UPDATE alert_rules SET name = $1, query = $2, threshold = $3, window_ms = $4,
             interval_ms = $5, group_by = $6, webhook_url = $7, updated_at = $8
             WHERE id = $9 AND tenant_id = $10",
        )
        .bind(&spec.name)
        .bind(&spec.query)
        .bind(spec.threshold)
        .bind(spec.window_ms)
        .bind(spec.interval_ms)
        .bind(spec.group_by.as_deref())
        .bind(&spec.webhook_url)
        .bind(now_millis())
        .bind(id)
        .bind(tenant)
        .execute(&mut *transaction)
        .await
        .map_err(&failed)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id)
        .bind(tenant)
        .fetch_one(&mut *transaction)
        .await
        .map_err(&failed)?;
        let rule = rule_from_row(&row).map_err(&failed)?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(Some(rule))
    }

    /// Deletes rule `id` of `tenant` and its states (no notification follows);
    /// `false` when the tenant has no such rule, and then nothing is recorded.
    pub async fn delete_alert_rule(
        &self,
        tenant: &str,
        id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, MetaError> {
        let failed = query_failed("deleting an alert rule");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *transaction)
            .await
            .map_err(&failed)?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM alert_states WHERE rule_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *transaction)
            .await
            .map_err(&failed)?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(true)
    }

    /// Takes the alert evaluator's lease if no other process holds it; always
    /// granted over SQLite, which one process uses at a time.
    pub async fn try_alert_lease(&self) -> Result<Option<Lease>, MetaError> {
        self.try_lease(ALERT_LOCK, "taking the alert lease").await
    }

    /// The states of one rule, by group.
    pub async fn alert_states(&self, rule_id: &str) -> Result<Vec<AlertState>, MetaError> {
        let failed = query_failed("reading alert states");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM alert_states s WHERE s.rule_id = $1 ORDER BY s.group_key"
        )))
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await
        .map_err(&failed)?;
        rows.iter()
            .map(state_from_row)
            .collect::<Result<_, _>>()
            .map_err(failed)
    }

    /// Saves an evaluation's state and count; what was notified is left as it is.
    pub async fn save_alert_evaluation(
        &self,
        evaluation: &Evaluation<'_>,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO alert_states (rule_id, group_key, tenant_id, state, since, last_count, changed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (rule_id, group_key) DO UPDATE
             SET state = $4, since = $5, last_count = $6, changed_at = $7",
        )
        .bind(evaluation.rule_id)
        .bind(evaluation.group_key)
        .bind(evaluation.tenant)
        .bind(evaluation.state.name())
        .bind(evaluation.since)
        .bind(evaluation.count)
        .bind(evaluation.at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_failed("saving an alert state"))
    }

    /// Records that the transition to `state` at `since` was notified: the
    /// webhook acknowledged it at `at`, or (`at` `None`) there was nothing to
    /// send. Does nothing when the row has moved on to another transition
    /// meanwhile; returns whether it matched.
    pub async fn mark_alert_notified(
        &self,
        rule_id: &str,
        group_key: &str,
        state: AlertPhase,
        since: i64,
        at: Option<i64>,
    ) -> Result<bool, MetaError> {
        let updated = sqlx::query(
            "UPDATE alert_states SET notified_state = $1, notified_since = $2, notified_at = $3,
             delivery_error = NULL
             WHERE rule_id = $4 AND group_key = $5 AND state = $1 AND since = $2",
        )
        .bind(state.name())
        .bind(since)
        .bind(at)
        .bind(rule_id)
        .bind(group_key)
        .execute(&self.pool)
        .await
        .map_err(query_failed("recording a delivered notification"))?;
        Ok(updated.rows_affected() > 0)
    }

    /// Records why the latest delivery of a rule and group's notification failed.
    pub async fn record_alert_delivery_error(
        &self,
        rule_id: &str,
        group_key: &str,
        error: &str,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE alert_states SET delivery_error = $1 WHERE rule_id = $2 AND group_key = $3",
        )
        .bind(error)
        .bind(rule_id)
        .bind(group_key)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_failed("recording a failed delivery"))
    }

    /// The alerts of `tenant` that fire, or resolved at or after `resolved_after`
    /// (Unix ms), newest change first, at most `limit`.
    pub async fn tenant_alerts(
        &self,
        tenant: &str,
        resolved_after: i64,
        limit: i64,
    ) -> Result<Vec<TenantAlert>, MetaError> {
        let failed = query_failed("listing alerts");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS}, r.name AS rule_name, r.group_by AS rule_group_by
             FROM alert_states s JOIN alert_rules r ON r.id = s.rule_id AND r.tenant_id = s.tenant_id
             WHERE s.tenant_id = $1 AND (s.state = 'firing' OR s.since >= $2)
             ORDER BY s.since DESC, s.rule_id, s.group_key LIMIT $3"
        )))
        .bind(tenant)
        .bind(resolved_after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(&failed)?;
        rows.iter()
            .map(|row| {
                Ok(TenantAlert {
                    rule_name: row.try_get("rule_name")?,
                    group_by: row.try_get("rule_group_by")?,
                    state: state_from_row(row)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed)
    }

    /// How many rules and groups fire, over every tenant.
    pub async fn firing_alerts(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM alert_states WHERE state = 'firing'")
            .fetch_one(&self.pool)
            .await
            .map_err(query_failed("counting firing alerts"))
    }

    /// Forgets resolved states older than `before` (Unix ms) with nothing
    /// left to notify, and states of rules that no longer exist.
    pub async fn prune_alert_states(&self, before: i64) -> Result<(), MetaError> {
        let failed = query_failed("pruning alert states");
        sqlx::query(
            "DELETE FROM alert_states WHERE state = 'resolved' AND since < $1
             AND notified_state = 'resolved' AND notified_since = since",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(&failed)?;
        sqlx::query(
            "DELETE FROM alert_states WHERE NOT EXISTS
             (SELECT 1 FROM alert_rules r WHERE r.id = alert_states.rule_id)",
        )
        .execute(&self.pool)
        .await
        .map_err(&failed)?;
        Ok(())
    }
}
