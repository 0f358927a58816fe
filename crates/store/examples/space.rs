//! Prints how many bytes per event each field of an embedded index takes, by
//! part (term dictionary, postings, positions, fast columns), to see where the
//! stored size goes: `cargo run --release -p store --example space -- DATA_DIR/index`.
#![allow(clippy::unwrap_used)] // a diagnostic tool: failing loudly is what it should do

use std::collections::BTreeMap;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: space INDEX_DIR");
        std::process::exit(2);
    };
    let index = tantivy::Index::open_in_dir(dir).unwrap();
    let searcher = index.reader().unwrap().searcher();
    let usage = searcher.space_usage().unwrap();
    let mut fields: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut store = 0;
    for segment in usage.segments() {
        let parts = [
            segment.termdict(),
            segment.postings(),
            segment.positions(),
            segment.fast_fields(),
        ];
        for (part, usage) in parts.iter().enumerate() {
            for field in usage.fields() {
                fields.entry(field.field_name().to_owned()).or_default()[part] +=
                    field.total().get_bytes();
            }
        }
        store += segment.store().total().get_bytes();
    }
    let events = searcher.num_docs().max(1) as f64;
    println!("{} events; bytes per event:", searcher.num_docs());
    println!(
        "{:12} {:>8} {:>8} {:>8} {:>8}",
        "field", "terms", "postings", "positions", "fast"
    );
    for (name, [terms, postings, positions, fast]) in fields {
        let per = |bytes: u64| bytes as f64 / events;
        println!(
            "{name:12} {:8.1} {:8.1} {:8.1} {:8.1}",
            per(terms),
            per(postings),
            per(positions),
            per(fast)
        );
    }
    println!("document store {:.1}", store as f64 / events);
}
