//! Fuzzes the query language end to end: `query::parse_within` on any string,
//! then, for what parses, the embedded store's compiler and collectors over a
//! small index (search, stats and histogram). Nothing may panic; errors are fine.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use model::{
    BatchFormat, IngestContext, Limits, Stream, Timestamp, decode_batch, decode_record,
    encode_record,
};
use store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use store::{EventStore, Filter, HistogramRequest, Order, SearchRequest};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

/// One store with a few varied events, shared by every run.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = EmbeddedStore::open(&EmbeddedStoreConfig::new(dir.path())).expect("store");
        let events = serde_json::json!([
            {"service": "pay", "level": "error", "message": "payment failed: card declined", "metadata": {"retryCount": 3, "ok": false}},
            {"service": "auth", "level": "info", "message": "user signed in", "userId": "u1", "latency": 12.5},
            {"service": "pay", "level": "warn", "message": "slow query took 900ms", "timestamp": "2026-01-01T00:00:00Z"},
            {"message": "connection refused by db-1:5432", "tags": ["a", "b"], "big": 18446744073709551615u64}
        ]);
        let body = serde_json::to_vec(&events).expect("json");
        let context = IngestContext::new("default", Timestamp::from_nanos(1_700_000_000_000_000_000), None);
        let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).expect("batch");
        let queued = decode_record(&encode_record(&batch), 0).expect("record");
        runtime.block_on(async {
            store.stage(queued).await.expect("stage");
            store.commit(Some(1)).await.expect("commit");
        });
        Fixture { runtime, store, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = query::parse_within(text, &query::Limits::default());
    if let Err(error) = &parsed {
        assert!(error.position <= text.len() && text.is_char_boundary(error.position));
    }
    let unlimited = query::parse(text);
    let Ok(query) = unlimited else {
        assert!(parsed.is_err(), "limits only ever refuse more");
        return;
    };
    let fixture = fixture();
    let filter = Filter {
        tenant: "default".into(),
        stream: Stream::Logs,
        query,
        from: None,
        to: None,
    };
    fixture.runtime.block_on(async {
        let _ = fixture.store.warnings(&filter).await;
        let _ = fixture
            .store
            .search(SearchRequest {
                filter: filter.clone(),
                limit: 10,
                cursor: None,
                order: Order::Ascending,
            })
            .await;
        let _ = fixture.store.stats(filter.clone()).await;
        let _ = fixture
            .store
            .histogram(HistogramRequest {
                filter,
                interval_nanos: 3_600_000_000_000,
            })
            .await;
    });
});
