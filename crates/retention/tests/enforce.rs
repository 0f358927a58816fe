//! The enforcer over a real metadata store and embedded store, with the clock
//! given to each round: ages by tenant setting and by default, a size limit,
//! and tenants left alone. Events are Loghub's OpenSSH sample where many are
//! needed.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meta::MetaStore;
use model::{
    BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch,
    decode_record, encode_record,
};
use retention::{Enforcer, EnforcerConfig, Policy};
use serde_json::{Value, json};
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{AuditLog, EventStore, Filter};

const HOUR: i64 = 3_600_000_000_000;
/// 2026-02-16T00:00:00Z.
const START: i64 = 1_771_200_000 * 1_000_000_000;

fn queued(tenant: &str, events: &[Value], position: u64) -> Vec<QueuedEvent> {
    received_at(tenant, events, position, START)
}

/// Events as the pipeline hands them over, received at `received` (nanos).
fn received_at(tenant: &str, events: &[Value], position: u64, received: i64) -> Vec<QueuedEvent> {
    let body = serde_json::to_vec(events).unwrap();
    let context = IngestContext::new(tenant, Timestamp::from_nanos(received), None);
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    decode_record(&encode_record(&batch), position).unwrap()
}

/// One event per hour over three days, `hours` of them.
fn hourly(tenant: &str, hours: i64, position: u64) -> Vec<QueuedEvent> {
    let events: Vec<Value> = (0..hours)
        .map(|hour| json!({"timestamp": START + hour * HOUR, "message": format!("tick {hour}")}))
        .collect();
    queued(tenant, &events, position)
}

fn openssh(tenant: &str, position: u64) -> Option<Vec<QueuedEvent>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/loghub/OpenSSH/OpenSSH_2k.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipped the size limit: no Loghub sample at {}",
            path.display()
        );
        return None;
    };
    let events: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, line)| json!({"timestamp": START + i as i64 * 60_000_000_000, "service": "sshd", "message": line}))
        .collect();
    Some(queued(tenant, &events, position))
}

async fn count(store: &dyn EventStore, tenant: &str) -> u64 {
    let filter = Filter {
        tenant: tenant.into(),
        stream: Stream::Logs,
        query: query::Query::All,
        from: None,
        to: None,
    };
    store.stats(filter).await.unwrap().total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_keeps_what_its_policy_says_as_of_the_given_time() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaStore::open_sqlite(dir.path()).await.unwrap();
    let mut config = EmbeddedStoreConfig::new(dir.path().join("index"));
    config.writer_memory_bytes = 32 * 1024 * 1024;
    let embedded = Arc::new(EmbeddedStore::open(&config).unwrap());
    let store: Arc<dyn EventStore> = embedded.clone();
    let audit: Arc<dyn AuditLog> = embedded;
    for tenant in ["acme", "globex", "initech", "umbrella"] {
        meta.create_tenant(tenant, tenant, &[]).await.unwrap();
    }
    let set = |name: &str, value: &str| (name.to_owned(), Some(value.to_owned()));
    meta.set_settings(
        "acme",
        &[set("logs_retention", "1d"), set("audit_retention", "30d")],
        &[],
    )
    .await
    .unwrap();
    // Kept forever, whatever the default says, until an admin sets an age:
    // an explicit age overrides the default both ways.
    for tenant in ["umbrella", "globex"] {
        meta.set_settings(tenant, &[set("logs_retention", "100d")], &[])
            .await
            .unwrap();
    }
    // A stored value that no longer validates falls back to the default.
    meta.set_settings("initech", &[set("logs_retention", "soon")], &[])
        .await
        .unwrap();
    let three_days = 72;
    for (i, tenant) in ["acme", "initech", "umbrella"].into_iter().enumerate() {
        store
            .stage(hourly(tenant, three_days, (i as u64) << 20))
            .await
            .unwrap();
    }
    // Audit events of acme and initech, received 31 days before START
    // (audit retention goes by when Logbook received an event, which a
    // client cannot set).
    for (i, tenant) in ["acme", "initech"].into_iter().enumerate() {
        let actions: Vec<Value> = (0..3)
            .map(|n| json!({"timestamp": START, "action": format!("role.change {n}")}))
            .collect();
        let mut events = received_at(
            tenant,
            &actions,
            (5 + i as u64) << 20,
            START - 31 * 24 * HOUR,
        );
        for queued in &mut events {
            queued.event.stream = Stream::Audit;
            queued.json = serde_json::to_string(&queued.event).unwrap();
        }
        store.stage(events).await.unwrap();
    }
    let sized = openssh("globex", 3 << 20);
    if let Some(events) = &sized {
        store.stage(events.clone()).await.unwrap();
    }
    store.commit(Some(1)).await.unwrap();

    let enforcer = Enforcer {
        meta: meta.clone(),
        store: Arc::clone(&store),
        audit: Arc::clone(&audit),
        config: EnforcerConfig {
            check_interval: Duration::from_secs(300),
            lease_retry: Duration::from_secs(1),
            defaults: Policy {
                logs_max_age: Some("2d".parse().unwrap()),
                ..Policy::default()
            },
            ceiling: Policy::default(),
        },
    };
    // Noon of the third day: acme keeps one day, initech the default two.
    let now = Timestamp::from_nanos(START + 60 * HOUR);
    let report = enforcer.round(now).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.tenants, 4);
    assert_eq!(count(&*store, "acme").await, (three_days - 36) as u64);
    assert_eq!(count(&*store, "initech").await, (three_days - 12) as u64);
    assert_eq!(count(&*store, "umbrella").await, three_days as u64);
    let cut: Vec<&str> = report
        .logs_cut
        .iter()
        .map(|(tenant, _)| tenant.as_str())
        .collect();
    assert!(cut.contains(&"acme") && cut.contains(&"initech"), "{cut:?}");
    // Received 31 days before START: older than acme's 30 days of audit retention; initech
    // keeps its audit events forever (no default).
    assert_eq!(report.audit_pruned, [("acme".to_owned(), 3)]);
    assert_eq!(audit.pruned("acme").await.unwrap(), 3);
    assert_eq!(audit.pruned("initech").await.unwrap(), 0);

    // A day later, without a new event, the same policies cut a day more,
    // and no audit event is left to prune.
    let report = enforcer
        .round(Timestamp::from_nanos(START + 84 * HOUR))
        .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.audit_pruned.is_empty(), "{:?}", report.audit_pruned);
    assert_eq!(count(&*store, "acme").await, 12);
    assert_eq!(count(&*store, "initech").await, (three_days - 36) as u64);

    // A size limit keeps the newest events that fit, each counted at the
    // average length of the tenant's newest 100 stored events. (Set as a
    // default here: the API refuses limits under 1 MiB, more than this
    // sample takes.)
    if let Some(events) = sized {
        let total = events.len() as u64;
        assert_eq!(count(&*store, "globex").await, total);
        let per_event = newest_average(&*store, "globex").await;
        let max_bytes = (per_event * 500.5) as u64;
        let fits = (max_bytes as f64 / per_event) as u64;
        let sizing = Enforcer {
            meta: meta.clone(),
            store: Arc::clone(&store),
            audit: Arc::clone(&audit),
            config: EnforcerConfig {
                defaults: Policy {
                    logs_max_bytes: Some(max_bytes),
                    ..enforcer.config.defaults
                },
                ..enforcer.config.clone()
            },
        };
        let later = Timestamp::from_nanos(START + 84 * HOUR);
        let report = sizing.round(later).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // One event a minute and a cut to the second: exactly what fits stays.
        assert_eq!(count(&*store, "globex").await, fits);
        // Nothing new arrived: the next round deletes nothing more.
        sizing.round(later).await;
        assert_eq!(count(&*store, "globex").await, fits);
        // The other tenants hold fewer events than the limit: untouched.
        assert_eq!(count(&*store, "umbrella").await, three_days as u64);

        // An event from 1970 does not widen the cut to the whole history: it
        // alone is the excess, and it alone goes.
        let outlier = json!({"timestamp": 0, "service": "sshd", "message": "clock reset"});
        store
            .stage(queued("globex", &[outlier], 9 << 20))
            .await
            .unwrap();
        store.commit(Some(2)).await.unwrap();
        assert_eq!(count(&*store, "globex").await, fits + 1);
        let report = sizing.round(later).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(count(&*store, "globex").await, fits);
        assert_eq!(newest_average(&*store, "globex").await, per_event);
    }

    // The operator's ceiling caps umbrella's own 100 days to one.
    let capped = Enforcer {
        meta: meta.clone(),
        store: Arc::clone(&store),
        audit: Arc::clone(&audit),
        config: EnforcerConfig {
            ceiling: Policy {
                logs_max_age: Some("1d".parse().unwrap()),
                ..Policy::default()
            },
            ..enforcer.config.clone()
        },
    };
    let report = capped.round(Timestamp::from_nanos(START + 84 * HOUR)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(count(&*store, "umbrella").await, 12);
}

/// The average length of the stored JSON of a tenant's newest 100 events.
async fn newest_average(store: &dyn EventStore, tenant: &str) -> f64 {
    let page = store
        .search(store::SearchRequest {
            filter: Filter {
                tenant: tenant.into(),
                stream: Stream::Logs,
                query: query::Query::All,
                from: None,
                to: None,
            },
            limit: 100,
            cursor: None,
            order: store::Order::Descending,
        })
        .await
        .unwrap();
    let bytes: usize = page.events.iter().map(|event| event.get().len()).sum();
    bytes as f64 / page.events.len() as f64
}
