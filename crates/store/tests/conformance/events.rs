//! Events as the pipeline hands them to a store, and small readers of what a
//! store answers.

use model::{
    BatchFormat, IngestContext, Limits, QueuedEvent, Stream, Timestamp, decode_batch,
    decode_record, encode_record,
};
use serde_json::Value;
use store::{EventStore, Filter, Order, SearchRequest};

/// A fresh queue position for each record, as the queue would give them, so
/// that arrival numbers never repeat within a test.
pub fn next_position() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1 << 20, std::sync::atomic::Ordering::Relaxed)
}

pub fn incoming(tenant: &str, events: &[Value]) -> Vec<QueuedEvent> {
    incoming_to(tenant, Stream::Logs, events)
}

/// Events of `stream` as the worker hands them over. They are decoded as logs and
/// moved to the stream afterwards: HTTP ingest refuses client ids on the audit
/// stream, but the store must keep streams apart whatever ids it is given (the
/// server's own audit events carry ids it chose).
pub fn incoming_to(tenant: &str, stream: Stream, events: &[Value]) -> Vec<QueuedEvent> {
    let body = serde_json::to_vec(events).expect("events serialise");
    let context = IngestContext::new(
        tenant,
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        None,
    );
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default())
        .expect("the batch decodes");
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let mut queued =
        decode_record(&encode_record(&batch), next_position()).expect("the record decodes");
    for event in &mut queued {
        event.event.stream = stream;
        event.json = serde_json::to_string(&event.event).expect("the event serialises");
    }
    queued
}

pub fn filter(tenant: &str, q: &str) -> Filter {
    stream_filter(tenant, Stream::Logs, q)
}

pub fn stream_filter(tenant: &str, stream: Stream, q: &str) -> Filter {
    Filter {
        tenant: tenant.into(),
        stream,
        query: query::parse(q).expect("the query parses"),
        from: None,
        to: None,
    }
}

pub async fn ids(store: &dyn EventStore, tenant: &str, q: &str) -> Vec<String> {
    stream_ids(store, tenant, Stream::Logs, q).await
}

/// The ids of the first 100 events `q` finds, newest first.
pub async fn stream_ids(
    store: &dyn EventStore,
    tenant: &str,
    stream: Stream,
    q: &str,
) -> Vec<String> {
    let page = store
        .search(SearchRequest {
            filter: stream_filter(tenant, stream, q),
            limit: 100,
            cursor: None,
            order: Order::Descending,
        })
        .await
        .unwrap_or_else(|error| panic!("{q:?}: {error}"));
    page.events.iter().map(|raw| id_of(raw.get())).collect()
}

pub fn id_of(json: &str) -> String {
    serde_json::from_str::<Value>(json).expect("a stored event is JSON")["id"]
        .as_str()
        .expect("a stored event has an id")
        .to_owned()
}

/// The stored event of `tenant`'s `stream` with this id, as JSON.
pub async fn stored(
    store: &dyn EventStore,
    tenant: &str,
    stream: Stream,
    id: &str,
) -> Option<Value> {
    store
        .get(tenant, stream, id)
        .await
        .expect("get answers")
        .map(|raw| serde_json::from_str(raw.get()).expect("a stored event is JSON"))
}

pub async fn total(store: &dyn EventStore, filter: Filter) -> u64 {
    store.stats(filter).await.expect("stats answer").total
}
