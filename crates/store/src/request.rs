//! The shapes of questions asked of a store and of its answers.

use std::collections::BTreeMap;

use model::{Stream, Timestamp};
use serde::Serialize;

use crate::{Cursor, StoredEvent};

/// Which events a read is about.
#[derive(Debug, Clone)]
pub struct Filter {
    pub tenant: String,
    /// The stream read; events of the tenant's other stream are never matched.
    pub stream: Stream,
    pub query: query::Query,
    /// Inclusive lower bound on the event timestamp.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on the event timestamp.
    pub to: Option<Timestamp>,
}

/// Newest first (the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Descending,
    Ascending,
}

/// A request for one page of events.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: Filter,
    pub limit: usize,
    /// Continue after this position (from the previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
    pub order: Order,
}

/// One page of events, and where the next one starts if there is more.
#[derive(Debug)]
pub struct SearchPage {
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<Cursor>,
}

/// Counts of matching events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub total: u64,
    /// Events without a service are counted under `""`.
    pub by_service: BTreeMap<String, u64>,
    pub by_level: BTreeMap<String, u64>,
}

/// A request for counts per time bucket.
#[derive(Debug, Clone)]
pub struct HistogramRequest {
    pub filter: Filter,
    /// Bucket width in nanoseconds; buckets are aligned to multiples of it since the epoch.
    pub interval_nanos: i64,
}

/// The count of events whose timestamp falls in `[start, start + interval)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    pub count: u64,
}

/// The most buckets a histogram may have; more means the interval is too fine.
pub(crate) const MAX_BUCKETS: usize = 10_000;

/// Why a histogram with more than [`MAX_BUCKETS`] buckets is refused.
pub(crate) fn too_many_buckets_message() -> String {
    format!(
        "the histogram would have more than {MAX_BUCKETS} buckets; use a larger interval or a narrower time range"
    )
}
