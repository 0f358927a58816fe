//! The metadata store through its public API, on SQLite always and on
//! PostgreSQL when `LOGBOOK_TEST_POSTGRES_URL` is set (each test in a schema of its own).

#![allow(clippy::unwrap_used)]

use meta::{
    AuditEntry, MetaError, MetaStore, NewApiKey, NewSession, NewUser, RefreshOutcome, Tenant,
};

/// A fresh store on each engine available: `(engine name, store, guard)`.
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

fn audit(id: &str, tenant: &str) -> AuditEntry {
    AuditEntry {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        event: format!(r#"{{"id":"{id}"}}"#),
    }
}

fn user(id: &str, tenant: &str, username: &str) -> NewUser {
    NewUser {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        username: username.to_owned(),
        password_hash: "$argon2id$stub".to_owned(),
        role: "developer".to_owned(),
        super_admin: false,
    }
}

fn key(id: &str, tenant: &str, hash: &str) -> NewApiKey {
    NewApiKey {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        name: "ci".to_owned(),
        token_hash: hash.to_owned(),
        scopes: vec!["logs:write".to_owned(), "logs:read".to_owned()],
        signed: false,
        created_by: None,
    }
}

#[tokio::test]
async fn bootstrap_happens_once_and_writes_its_audit_events() {
    for (engine, store, _guard) in
        stores("bootstrap_happens_once_and_writes_its_audit_events").await
    {
        let tenant = Tenant {
            id: "default".into(),
            name: "Default".into(),
            created_at: 1,
        };
        let mut admin = user("u1", "default", "admin");
        admin.super_admin = true;
        admin.role = "admin".into();
        let first = store
            .bootstrap(
                &tenant,
                &admin,
                &key("k1", "default", "h1"),
                &[audit("01A", "default")],
            )
            .await
            .unwrap();
        assert!(first, "{engine}");
        let again = store
            .bootstrap(
                &tenant,
                &user("u2", "default", "other"),
                &key("k2", "default", "h2"),
                &[],
            )
            .await
            .unwrap();
        assert!(!again, "{engine}: a second bootstrap changes nothing");
        let stored = store.user_by_username("admin").await.unwrap().unwrap();
        assert!(
            stored.user.super_admin && stored.user.role == "admin",
            "{engine}"
        );
        assert!(
            store.user_by_username("other").await.unwrap().is_none(),
            "{engine}"
        );
        assert_eq!(
            store.outbox_batch(10).await.unwrap(),
            vec![audit("01A", "default")]
        );
        store.outbox_remove(&["01A".into()]).await.unwrap();
        assert!(store.outbox_batch(10).await.unwrap().is_empty(), "{engine}");
    }
}

#[tokio::test]
async fn tenants_users_and_keys_stay_in_their_tenant() {
    for (engine, store, _guard) in stores("tenants_users_and_keys_stay_in_their_tenant").await {
        store.create_tenant("acme", "Acme", &[]).await.unwrap();
        store.create_tenant("globex", "Globex", &[]).await.unwrap();
        assert!(matches!(
            store.create_tenant("acme", "again", &[]).await,
            Err(MetaError::Conflict(_))
        ));
        assert!(matches!(
            store.create_user(&user("u0", "nope", "ghost"), &[]).await,
            Err(MetaError::NotFound(_))
        ));
        store
            .create_user(&user("u1", "acme", "alice"), &[audit("01B", "acme")])
            .await
            .unwrap();
        assert!(
            matches!(
                store.create_user(&user("u2", "globex", "alice"), &[]).await,
                Err(MetaError::Conflict(_))
            ),
            "{engine}: usernames are unique across tenants"
        );
        assert_eq!(store.users("acme").await.unwrap().len(), 1);
        assert!(store.users("globex").await.unwrap().is_empty());

        // Another tenant's admin cannot change or revoke what is not theirs.
        assert!(
            store
                .update_user("globex", "u1", Some("admin"), None, &[])
                .await
                .unwrap()
                .is_none()
        );
        let changed = store
            .update_user("acme", "u1", Some("auditor"), None, &[])
            .await
            .unwrap();
        assert_eq!(changed.unwrap().role, "auditor");

        store
            .create_key(&key("k1", "acme", "hash-1"), &[])
            .await
            .unwrap();
        assert!(matches!(
            store.create_key(&key("k2", "acme", "hash-1"), &[]).await,
            Err(MetaError::Conflict(_))
        ));
        let found = store.key_by_token_hash("hash-1").await.unwrap().unwrap();
        assert_eq!(found.scopes, vec!["logs:write", "logs:read"]);
        assert!(
            store
                .revoke_key("globex", "k1", &[])
                .await
                .unwrap()
                .is_none(),
            "{engine}"
        );
        let revoked = store
            .revoke_key("acme", "k1", &[audit("01C", "acme")])
            .await
            .unwrap()
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        // Revoking twice records the revocation once.
        store
            .revoke_key("acme", "k1", &[audit("01D", "acme")])
            .await
            .unwrap();
        let ids: Vec<String> = store
            .outbox_batch(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec!["01B", "01C"], "{engine}");
        store.touch_key("k1", 42).await.unwrap();
        assert_eq!(
            store.key("k1").await.unwrap().unwrap().last_used_at,
            Some(42)
        );

        store
            .set_settings(
                "acme",
                &[("self_registration".into(), Some("true".into()))],
                &[],
            )
            .await
            .unwrap();
        store
            .set_settings(
                "acme",
                &[("self_registration".into(), Some("false".into()))],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            store.settings("acme").await.unwrap(),
            vec![("self_registration".to_owned(), "false".to_owned())]
        );
        assert!(store.settings("globex").await.unwrap().is_empty());
        store
            .set_settings("acme", &[("self_registration".into(), None)], &[])
            .await
            .unwrap();
        assert!(store.settings("acme").await.unwrap().is_empty(), "{engine}");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    for (engine, store, _guard) in
        stores("refresh_tokens_rotate_and_a_reused_one_revokes_the_session").await
    {
        store.create_tenant("acme", "Acme", &[]).await.unwrap();
        store
            .create_user(&user("u1", "acme", "alice"), &[])
            .await
            .unwrap();
        let session = |id: &str, hash: &str| NewSession {
            id: id.into(),
            user_id: "u1".into(),
            refresh_hash: hash.into(),
            expires_at: 1_000,
        };
        store.create_session(&session("s1", "r1"), 0).await.unwrap();
        store.create_session(&session("s2", "x1"), 0).await.unwrap();

        let RefreshOutcome::Rotated(rotated) =
            store.rotate_refresh("r1", "r2", 2_000, 10).await.unwrap()
        else {
            panic!("{engine}: the current token rotates");
        };
        assert_eq!(
            (rotated.id.as_str(), rotated.user.username.as_str()),
            ("s1", "alice")
        );
        assert!(matches!(
            store.rotate_refresh("nope", "r9", 2_000, 10).await.unwrap(),
            RefreshOutcome::Invalid
        ));
        // r1 again: a replay. The session dies, so r2 stops working too.
        assert!(matches!(
            store.rotate_refresh("r1", "r3", 2_000, 20).await.unwrap(),
            RefreshOutcome::Reused(_)
        ));
        assert!(
            store
                .session("s1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert!(matches!(
            store.rotate_refresh("r2", "r4", 2_000, 30).await.unwrap(),
            RefreshOutcome::Invalid
        ));
        // Expired tokens do not rotate.
        assert!(matches!(
            store
                .rotate_refresh("x1", "x2", 2_000, 5_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));

        // A password change keeps the current session and ends the others.
        store.create_session(&session("s3", "y1"), 0).await.unwrap();
        store.create_session(&session("s4", "z1"), 0).await.unwrap();
        store
            .set_password("u1", "$argon2id$new", Some("s3"), &[])
            .await
            .unwrap();
        assert!(
            store
                .session("s3")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none(),
            "{engine}"
        );
        assert!(
            store
                .session("s4")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some(),
            "{engine}"
        );
        // Disabling a user ends all its sessions; logout ends one.
        store
            .update_user("acme", "u1", None, Some(true), &[])
            .await
            .unwrap();
        assert!(
            store
                .session("s3")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert!(!store.revoke_session("s3", 99).await.unwrap());
    }
}

#[tokio::test]
async fn secrets_are_shared_by_whoever_stores_first() {
    for (_engine, store, _guard) in stores("secrets_are_shared_by_whoever_stores_first").await {
        assert_eq!(store.secret_or_insert("jwt", "aa").await.unwrap(), "aa");
        assert_eq!(store.secret_or_insert("jwt", "bb").await.unwrap(), "aa");
    }
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MetaStore::open_sqlite(dir.path()).await.unwrap();
        store.create_tenant("acme", "Acme", &[]).await.unwrap();
        store.close().await;
    }
    let store = MetaStore::open_sqlite(dir.path()).await.unwrap();
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_outbox_drains_in_the_order_changes_committed_not_by_id() {
    for (engine, store, _guard) in
        stores("the_outbox_drains_in_the_order_changes_committed_not_by_id").await
    {
        let ids = |entries: Vec<AuditEntry>| -> Vec<String> {
            entries.into_iter().map(|entry| entry.id).collect()
        };
        // Ids minted in one millisecond sort in any order; the drain must not.
        store
            .create_tenant(
                "acme",
                "Acme",
                &[audit("03C", "acme"), audit("01A", "acme")],
            )
            .await
            .unwrap();
        store.record_audit(&[audit("02B", "acme")]).await.unwrap();
        store.record_audit(&[audit("00Z", "acme")]).await.unwrap();
        assert_eq!(
            ids(store.outbox_batch(10).await.unwrap()),
            ["03C", "01A", "02B", "00Z"],
            "{engine}"
        );
        assert_eq!(
            ids(store.outbox_batch(2).await.unwrap()),
            ["03C", "01A"],
            "{engine}: a batch is the oldest entries"
        );
        store
            .outbox_remove(&["03C".into(), "01A".into(), "02B".into(), "00Z".into()])
            .await
            .unwrap();
        // The numbering goes on after the outbox was emptied.
        store.record_audit(&[audit("09Y", "acme")]).await.unwrap();
        store.record_audit(&[audit("00A", "acme")]).await.unwrap();
        assert_eq!(
            ids(store.outbox_batch(10).await.unwrap()),
            ["09Y", "00A"],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn one_process_at_a_time_drains_a_shared_outbox() {
    let Some(url) = meta::testing::postgres_url("one_process_at_a_time_drains") else {
        return;
    };
    let schema = meta::testing::fresh_postgres_schema(&url).await.unwrap();
    let first = MetaStore::open(&schema).await.unwrap();
    let second = MetaStore::open(&schema).await.unwrap();
    let mut lease = first.try_outbox_lease().await.unwrap().expect("free");
    assert!(lease.holds().await);
    assert!(second.try_outbox_lease().await.unwrap().is_none(), "taken");
    // Another deployment, in another schema, is not in the way.
    let elsewhere = MetaStore::open(&meta::testing::fresh_postgres_schema(&url).await.unwrap())
        .await
        .unwrap();
    assert!(elsewhere.try_outbox_lease().await.unwrap().is_some());
    drop(lease);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while second.try_outbox_lease().await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn ticket(hash: &str, owner: &str, expires_at: i64) -> meta::NewTicket {
    meta::NewTicket {
        hash: hash.to_owned(),
        tenant: "acme".to_owned(),
        owner: owner.to_owned(),
        principal: r#"{"kind":"key"}"#.to_owned(),
        expires_at,
    }
}

#[tokio::test]
async fn tail_tickets_are_redeemed_once_expire_and_are_bounded_per_owner() {
    for (engine, store, _guard) in stores("tail_tickets").await {
        let now = 1_000_000;
        assert!(
            store
                .issue_ticket(&ticket("a", "key:1", now + 30_000), 2, now)
                .await
                .unwrap()
        );
        let redeemed = store.redeem_ticket("a", now + 1).await.unwrap();
        assert_eq!(
            redeemed,
            Some(meta::RedeemedTicket {
                tenant: "acme".to_owned(),
                principal: r#"{"kind":"key"}"#.to_owned(),
            }),
            "{engine}"
        );
        assert_eq!(
            store.redeem_ticket("a", now + 2).await.unwrap(),
            None,
            "{engine}: used twice"
        );

        assert!(
            store
                .issue_ticket(&ticket("b", "key:1", now + 30_000), 2, now)
                .await
                .unwrap()
        );
        assert_eq!(
            store.redeem_ticket("b", now + 30_000).await.unwrap(),
            None,
            "{engine}: expired"
        );

        assert!(
            store
                .issue_ticket(&ticket("c", "key:1", now + 30_000), 2, now)
                .await
                .unwrap()
        );
        assert!(
            store
                .issue_ticket(&ticket("d", "key:1", now + 30_000), 2, now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .issue_ticket(&ticket("e", "key:1", now + 30_000), 2, now)
                .await
                .unwrap(),
            "{engine}: a third live ticket of one owner"
        );
        assert!(
            store
                .issue_ticket(&ticket("f", "key:2", now + 30_000), 2, now)
                .await
                .unwrap()
        );
        // Once the first ones expire, the owner may have new ones.
        let later = now + 31_000;
        assert!(
            store
                .issue_ticket(&ticket("g", "key:1", later + 30_000), 2, later)
                .await
                .unwrap()
        );
    }
}
