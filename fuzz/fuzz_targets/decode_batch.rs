//! Fuzzes `model::decode_batch`, the first code untrusted ingest bodies reach:
//! whatever the bytes, it returns accepted events and rejections, or an error,
//! and never panics; every accepted event survives the queue record round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::{
    BatchFormat, IngestContext, Limits, Timestamp, decode_batch, decode_record, encode_record,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        BatchFormat::Json
    } else {
        BatchFormat::Ndjson
    };
    let limits = Limits {
        max_event_bytes: 4096,
        max_depth: 8,
        max_batch_events: 64,
    };
    let context = IngestContext::new(
        "fuzz",
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Some("127.0.0.1".to_owned()),
    );
    if let Ok(batch) = decode_batch(body, format, &context, &limits) {
        let record = encode_record(&batch);
        let events = decode_record(&record, 0).expect("an encoded record decodes");
        assert_eq!(events.len(), batch.ids.len());
    }
});
