//! What only a shared database can show: several workers committing the same
//! events at once, processes migrating at once, and the engine's failures
//! reported as the kinds callers branch on. Skipped without a database.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use model::Stream;
use serde_json::{Value, json};
use store::postgres::{PostgresStore, PostgresStoreOptions};
use store::{QueryLimits, StoreError};

use crate::audit_trails::{actions, audit_events};
use crate::backends::{Backend, Postgres, Settings, Store};
use crate::events::{filter, incoming, stored, total};

async fn database(case: &str) -> Option<Postgres> {
    Postgres::new(case).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_committing_the_same_records_at_once_store_each_event_once() {
    let Some(backend) = database("workers_committing_the_same_records_at_once").await else {
        return;
    };
    let (first, second) = tokio::join!(backend.open(), backend.open());
    let shared: Vec<Vec<model::QueuedEvent>> = (0..6)
        .map(|round| {
            let events: Vec<Value> = (0..300)
                .map(|i| json!({"message": format!("shared {round} {i}"), "timestamp": 1_000 + i}))
                .collect();
            incoming("default", &events)
        })
        .collect();
    for (round, records) in shared.iter().enumerate() {
        let own = |worker: &str| {
            incoming(
                "default",
                &[json!({"message": format!("own {worker} {round}")})],
            )
        };
        // Both workers got the same record (a redelivery) and one of their own.
        first.stage(records.clone()).await.unwrap();
        first.stage(own("first")).await.unwrap();
        second.stage(own("second")).await.unwrap();
        second
            .stage(records.iter().rev().cloned().collect())
            .await
            .unwrap();
        let (a, b) = tokio::join!(first.commit(None), second.commit(None));
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(total(&*first, filter("default", "shared")).await, 1_800);
    assert_eq!(total(&*second, filter("default", "own")).await, 12);
    assert_eq!(first.footprint().await.unwrap().events, 1_812);

    // Two workers replacing one client id at once leave one event.
    for round in 0..5 {
        let version = |worker: &str| {
            incoming(
                "default",
                &[json!({"id": "chosen", "message": format!("{worker} {round}")})],
            )
        };
        first.stage(version("first")).await.unwrap();
        second.stage(version("second")).await.unwrap();
        let (a, b) = tokio::join!(first.commit(None), second.commit(None));
        a.unwrap();
        b.unwrap();
        assert_eq!(total(&*first, filter("default", "id:chosen")).await, 1);
    }
    let kept = stored(&*first, "default", Stream::Logs, "chosen")
        .await
        .unwrap();
    assert!(kept["message"].as_str().unwrap().ends_with(" 4"), "{kept}");
    assert_eq!(second.footprint().await.unwrap().events, 1_813);
    drop((first, second));
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_at_once_migrate_once() {
    let Some(backend) = database("processes_opening_at_once_migrate_once").await else {
        return;
    };
    let stores = open_at_once(&backend, 4).await;
    stores[0]
        .stage(incoming("default", &[json!({"message": "hello"})]))
        .await
        .unwrap();
    stores[0].commit(Some(9)).await.unwrap();
    for store in &stores {
        assert_eq!(store.committed_position().await.unwrap(), Some(9));
        assert_eq!(total(&**store, filter("default", "hello")).await, 1);
    }
    drop(stores);
    backend.cleanup().await;
}

/// `count` stores of `backend` opened at the same time.
async fn open_at_once(backend: &Postgres, count: usize) -> Vec<std::sync::Arc<dyn Store>> {
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..count {
        let backend = backend.clone_handle();
        opening.spawn(async move { backend.open().await });
    }
    let mut stores = Vec::new();
    while let Some(store) = opening.join_next().await {
        stores.push(store.unwrap());
    }
    stores
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_unavailable() {
    let keys = tempfile::tempdir().unwrap();
    let options = PostgresStoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..PostgresStoreOptions::new(keys.path().join("checkpoint.key"))
    };
    // Nothing listens on port 9 (discard) of this machine.
    let error = PostgresStore::open("postgres://postgres@127.0.0.1:9/none", &options)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_deadline_is_stopped_by_the_database() {
    let Some(backend) = database("a_query_past_its_deadline_is_stopped").await else {
        return;
    };
    let store = backend.open().await;
    let events: Vec<Value> = (0..20_000)
        .map(|i| json!({"message": format!("word{} filler text of a line {i}", i % 97), "timestamp": i}))
        .collect();
    store.stage(incoming("default", &events)).await.unwrap();
    store.commit(None).await.unwrap();
    drop(store);
    let store = backend
        .open_with(Settings {
            limits: QueryLimits {
                timeout: Duration::from_millis(3),
                ..QueryLimits::default()
            },
            ..Settings::default()
        })
        .await;
    let mut stopped = 0;
    for _ in 0..5 {
        match store
            .stats(filter("default", "NOT \"line 5\" NOT text*"))
            .await
        {
            Err(StoreError::QueryTimeout(timeout)) => {
                assert_eq!(timeout, Duration::from_millis(3));
                stopped += 1;
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert_eq!(stopped, 5);
    drop(store);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_appending_to_one_trail_at_once_number_it_without_gaps() {
    let Some(backend) = database("workers_appending_to_one_trail_at_once").await else {
        return;
    };
    let (first, second) = tokio::join!(backend.open(), backend.open());
    let mut ids = Vec::new();
    for round in 0..8 {
        let mine = audit_events("acme", &actions(7, &format!("first{round}")), false);
        let theirs = audit_events("acme", &actions(5, &format!("second{round}")), false);
        // The server's outbox drained by both workers: the same events twice.
        let shared = audit_events("acme", &actions(2, &format!("both{round}")), true);
        ids.extend(
            mine.iter()
                .chain(&theirs)
                .chain(&shared)
                .map(|e| e.event.id.clone()),
        );
        first.stage(mine).await.unwrap();
        first.stage(shared.clone()).await.unwrap();
        second.stage(shared).await.unwrap();
        second.stage(theirs).await.unwrap();
        let (a, b) = tokio::join!(first.commit(None), second.commit(None));
        a.unwrap();
        b.unwrap();
    }
    let mut seqs = Vec::new();
    for id in &ids {
        let event = stored(&*first, "acme", Stream::Audit, id).await.unwrap();
        seqs.push(event["seq"].as_u64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..ids.len() as u64).collect::<Vec<_>>());
    let key = audit::VerifyingKey::from_text(&second.public_key()).unwrap();
    let note = second.checkpoint("acme", None).await.unwrap().unwrap();
    let checkpoint = audit::Checkpoint::verify(&note, &key).unwrap();
    assert!(
        checkpoint.size + 10 > ids.len() as u64,
        "{}",
        checkpoint.size
    );
    let leaves = first.leaves("acme", 0, checkpoint.size).await.unwrap();
    let hashes: Vec<audit::Hash> = leaves.iter().map(|leaf| audit::leaf_hash(leaf)).collect();
    assert_eq!(
        audit::root(&hashes, checkpoint.size).unwrap(),
        checkpoint.root
    );
    drop((first, second));
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_refuses_changes_another_key_and_altered_hashes() {
    let Some(backend) = database("the_trail_refuses_changes").await else {
        return;
    };
    let store = backend.open().await;
    store
        .stage(audit_events("acme", &actions(10, "a"), false))
        .await
        .unwrap();
    store.commit(None).await.unwrap();
    drop(store);
    let mut connection = backend.connect().await;
    for statement in [
        "UPDATE store_audit_leaves SET leaf = 'x' WHERE seq = 3",
        "DELETE FROM store_audit_leaves WHERE seq = 9",
        "TRUNCATE store_audit_leaves",
        "DELETE FROM store_audit_checkpoints",
        "UPDATE store_audit_nodes SET hash = hash",
    ] {
        let error = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }

    // Another signing key: refused, the database remembers the first one.
    let keys = tempfile::tempdir().unwrap();
    let other = PostgresStoreOptions::new(keys.path().join("other.key"));
    let error = PostgresStore::open(backend.url(), &other)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, StoreError::Corrupt(message) if message.contains("signed with the key")),
        "{error}"
    );

    // A subtree hash altered behind the trigger's back: the newest checkpoint
    // no longer matches, and the store refuses to append to the trail.
    for statement in [
        "ALTER TABLE store_audit_nodes DISABLE TRIGGER store_audit_nodes_append_only",
        "UPDATE store_audit_nodes SET hash = sha256(hash) WHERE level = 3 AND index = 0",
    ] {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let error = PostgresStore::open(backend.url(), &backend.options())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, StoreError::Corrupt(message) if message.contains("does not match")),
        "{error}"
    );
    drop(connection);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_filled_by_a_bulk_load_gets_planner_statistics() {
    let Some(backend) = database("a_partition_filled_by_a_bulk_load").await else {
        return;
    };
    let options = PostgresStoreOptions {
        analyze_after_rows: 500,
        ..backend.options()
    };
    let store = PostgresStore::open(backend.url(), &options).await.unwrap();
    // Timestamps of 1970-01-01, so the rows land in one known partition.
    let events: Vec<Value> = (0..600)
        .map(|i| json!({"message": format!("line {i}"), "timestamp": i}))
        .collect();
    store::EventStore::stage(&store, incoming("default", &events))
        .await
        .unwrap();
    store::EventStore::commit(&store, None).await.unwrap();
    let mut connection = backend.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let analysed: Option<bool> = sqlx::query_scalar(
            // `last_analyze` is the store's own ANALYZE; autovacuum's is another column.
            "SELECT last_analyze IS NOT NULL \
             FROM pg_stat_user_tables WHERE relname = 'store_events_19700101' \
               AND schemaname = current_schema()",
        )
        .fetch_optional(&mut connection)
        .await
        .unwrap();
        if analysed == Some(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the partition was never analysed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_emptied_by_every_tenants_retention_is_dropped_and_comes_back_when_written() {
    let Some(backend) = database("a_day_emptied_by_retention_is_dropped").await else {
        return;
    };
    let store = backend.open().await;
    // A second process, which writes into the day before it is dropped and
    // so believes in its partition afterwards.
    let other = backend.open().await;
    let day = |d: u32| format!("2026-02-{d:02}T10:00:00Z");
    let event = |id: &str, d: u32| json!({"id": id, "timestamp": day(d), "message": "m"});
    store
        .stage(incoming("acme", &[event("a1", 16), event("a2", 17)]))
        .await
        .unwrap();
    store.commit(None).await.unwrap();
    other
        .stage(incoming("globex", &[event("g1", 16)]))
        .await
        .unwrap();
    other.commit(None).await.unwrap();
    let mut connection = backend.connect().await;
    let exists = |table: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL").bind(table)
    };
    let cutoff = model::Timestamp::parse("2026-02-17T00:00:00Z").unwrap();
    store.expire_logs("acme", cutoff).await.unwrap();
    // globex still has an event that day.
    assert!(
        exists("store_events_20260216")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    );
    store.expire_logs("globex", cutoff).await.unwrap();
    assert!(
        !exists("store_events_20260216")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    );
    assert!(
        exists("store_events_20260217")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    );
    assert_eq!(store.footprint().await.unwrap().events, 1);

    // The other process commits into the dropped day: the commit fails as
    // retryable, and its retry creates the day again.
    let late = || incoming("globex", &[event("late", 16)]);
    other.stage(late()).await.unwrap();
    let error = other.commit(None).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    other.stage(late()).await.unwrap();
    other.commit(None).await.unwrap();
    assert_eq!(total(&*other, filter("globex", "")).await, 1);
    assert!(
        exists("store_events_20260216")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    );
}
