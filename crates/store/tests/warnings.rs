//! `warnings` answers from the caller's own events: which attributes other
//! tenants have, or how many values, never changes a tenant's answer.
#![allow(clippy::unwrap_used)]

use model::{BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch};
use model::{decode_record, encode_record};
use serde_json::{Value, json};
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{EventStore, Filter};

fn incoming(tenant: &str, events: &[Value], position: u64) -> Vec<QueuedEvent> {
    let body = serde_json::to_vec(events).unwrap();
    let context = IngestContext::new(
        tenant,
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        None,
    );
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    decode_record(&encode_record(&batch), position).unwrap()
}

async fn warnings(store: &EmbeddedStore, tenant: &str, q: &str) -> Vec<String> {
    let filter = Filter {
        tenant: tenant.into(),
        stream: Stream::Logs,
        query: query::parse(q).unwrap(),
        from: None,
        to: None,
    };
    store.warnings(&filter).await.unwrap()
}

#[tokio::test]
async fn another_tenants_fields_do_not_change_a_tenants_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path())).unwrap();
    // acme has many values under `secret` and `shared`; globex has no `secret`,
    // and its one `shared` value sorts after all of acme's.
    let acme: Vec<Value> = (0..600)
        .map(
            |i| json!({"message": "m", "secret": format!("s{i:04}"), "shared": format!("a{i:04}")}),
        )
        .collect();
    let globex = [json!({
        "message": "m",
        "shared": "zzz",
        "nested": {"a.b": [1, null]},
        "nulled": null,
    })];
    store.stage(incoming("acme", &acme, 0)).await.unwrap();
    store
        .stage(incoming("globex", &globex, 1 << 20))
        .await
        .unwrap();
    store.commit(Some(2 << 20)).await.unwrap();

    // globex is told it has no `secret`, however many values acme holds there.
    let secret = warnings(&store, "globex", "secret:x").await;
    assert_eq!(
        secret,
        ["field \"secret\" is not a known field and no stored event has the attribute \"secret\""]
    );
    assert_eq!(
        warnings(&store, "globex", "secret:x").await,
        warnings(&store, "initech", "secret:x").await,
        "a tenant with nothing stored gets the same answer"
    );
    // What globex has is found, behind acme's values or not.
    for q in ["shared:zzz", "nested.a.b:1", "attributes.nested.a.b:>0"] {
        assert!(warnings(&store, "globex", q).await.is_empty(), "{q}");
    }
    assert_eq!(warnings(&store, "globex", "nulled:x").await.len(), 1);
    // acme is not told about globex's fields either.
    assert!(
        warnings(&store, "acme", "secret:x shared:x")
            .await
            .is_empty()
    );
    assert_eq!(warnings(&store, "acme", "nested.a.b:1").await.len(), 1);
}
