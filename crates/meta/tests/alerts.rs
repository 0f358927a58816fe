//! Alert rules and states in the metadata store, on SQLite always and on
//! PostgreSQL when `LOGBOOK_TEST_POSTGRES_URL` is set: the per-tenant cap,
//! tenant scoping, what counts as pending, and the one-holder lease.

#![allow(clippy::unwrap_used)]

use meta::{AlertPhase, AlertRule, AlertRuleSpec, Evaluation, MetaError, MetaStore};

async fn stores(test: &str) -> Vec<(&'static str, MetaStore, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        "sqlite",
        MetaStore::open_sqlite(dir.path()).await.unwrap(),
        Some(dir),
    )];
    if let Some(url) = meta::testing::postgres_url(test) {
        let schema = meta::testing::fresh_postgres_schema(&url).await.unwrap();
        stores.push(("postgres", MetaStore::open(&schema).await.unwrap(), None));
    }
    stores
}

fn rule(id: &str, tenant: &str) -> AlertRule {
    AlertRule {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        spec: AlertRuleSpec {
            name: format!("rule {id}"),
            query: "level:error".to_owned(),
            threshold: 5,
            window_ms: 300_000,
            interval_ms: 30_000,
            group_by: Some("service".to_owned()),
            webhook_url: "https://hooks.example/x".to_owned(),
        },
        secret: "whsec_test".to_owned(),
        created_at: 1,
        updated_at: 1,
    }
}

fn evaluation<'a>(rule: &'a str, group: &'a str, state: AlertPhase, since: i64) -> Evaluation<'a> {
    Evaluation {
        rule_id: rule,
        tenant: "acme",
        group_key: group,
        state,
        since,
        count: 7,
        at: since,
    }
}

#[tokio::test]
async fn rules_are_capped_and_kept_to_their_tenant() {
    for (engine, store, _guard) in stores("rules_are_capped_and_kept_to_their_tenant").await {
        store.create_tenant("acme", "Acme", &[]).await.unwrap();
        store.create_tenant("globex", "Globex", &[]).await.unwrap();
        store
            .create_alert_rule(&rule("r1", "acme"), 2, &[])
            .await
            .unwrap();
        store
            .create_alert_rule(&rule("r2", "acme"), 2, &[])
            .await
            .unwrap();
        let over = store.create_alert_rule(&rule("r3", "acme"), 2, &[]).await;
        assert!(
            matches!(over, Err(MetaError::LimitReached(_))),
            "{engine}: {over:?}"
        );
        store
            .create_alert_rule(&rule("g1", "globex"), 2, &[])
            .await
            .unwrap();
        let unknown = store.create_alert_rule(&rule("x", "nobody"), 2, &[]).await;
        assert!(
            matches!(unknown, Err(MetaError::NotFound(_))),
            "{engine}: {unknown:?}"
        );

        assert_eq!(
            store.alert_rules(Some("acme")).await.unwrap().len(),
            2,
            "{engine}"
        );
        assert_eq!(store.alert_rules(None).await.unwrap().len(), 3, "{engine}");
        assert_eq!(
            store.alert_rule("globex", "r1").await.unwrap(),
            None,
            "{engine}"
        );
        let mut spec = rule("r1", "acme").spec;
        spec.threshold = 9;
        assert_eq!(
            store
                .update_alert_rule("globex", "r1", &spec, &[])
                .await
                .unwrap(),
            None
        );
        let updated = store
            .update_alert_rule("acme", "r1", &spec, &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (updated.spec.threshold, updated.secret.as_str()),
            (9, "whsec_test")
        );
        assert!(
            !store.delete_alert_rule("globex", "r1", &[]).await.unwrap(),
            "{engine}"
        );
        assert!(
            store.delete_alert_rule("acme", "r1", &[]).await.unwrap(),
            "{engine}"
        );
        assert_eq!(
            store.alert_rule("acme", "r1").await.unwrap(),
            None,
            "{engine}"
        );
    }
}

#[tokio::test]
async fn a_transition_is_pending_until_its_own_delivery_is_recorded() {
    for (engine, store, _guard) in
        stores("a_transition_is_pending_until_its_own_delivery_is_recorded").await
    {
        store.create_tenant("acme", "Acme", &[]).await.unwrap();
        store
            .create_alert_rule(&rule("r1", "acme"), 10, &[])
            .await
            .unwrap();
        store
            .save_alert_evaluation(&evaluation("r1", "service=pay", AlertPhase::Firing, 100))
            .await
            .unwrap();
        let states = store.alert_states("r1").await.unwrap();
        assert!(states[0].pending(), "{engine}");

        // It resolved meanwhile: the firing delivery may not mark the new transition.
        store
            .save_alert_evaluation(&evaluation("r1", "service=pay", AlertPhase::Resolved, 200))
            .await
            .unwrap();
        let stale = store
            .mark_alert_notified("r1", "service=pay", AlertPhase::Firing, 100, Some(150))
            .await
            .unwrap();
        assert!(!stale, "{engine}");
        assert!(
            store.alert_states("r1").await.unwrap()[0].pending(),
            "{engine}"
        );
        let marked = store
            .mark_alert_notified("r1", "service=pay", AlertPhase::Resolved, 200, Some(250))
            .await
            .unwrap();
        assert!(marked, "{engine}");
        let state = &store.alert_states("r1").await.unwrap()[0];
        assert!(!state.pending(), "{engine}: {state:?}");
        assert_eq!(state.notified_at, Some(250));

        // A listing shows it while it is recent; pruning forgets it once old.
        let listed = store.tenant_alerts("acme", 150, 10).await.unwrap();
        assert_eq!(listed.len(), 1, "{engine}");
        assert_eq!(listed[0].rule_name, "rule r1");
        assert!(
            store
                .tenant_alerts("acme", 300, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .tenant_alerts("globex", 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.prune_alert_states(300).await.unwrap();
        assert!(
            store.alert_states("r1").await.unwrap().is_empty(),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn one_process_at_a_time_holds_the_alert_lease() {
    let Some(url) = meta::testing::postgres_url("one_process_at_a_time_holds_the_alert_lease")
    else {
        return;
    };
    let schema = meta::testing::fresh_postgres_schema(&url).await.unwrap();
    let first = MetaStore::open(&schema).await.unwrap();
    let second = MetaStore::open(&schema).await.unwrap();
    let held = first.try_alert_lease().await.unwrap();
    assert!(held.is_some());
    assert!(second.try_alert_lease().await.unwrap().is_none());
    // The outbox's lease is another lock.
    assert!(second.try_outbox_lease().await.unwrap().is_some());
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while second.try_alert_lease().await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
