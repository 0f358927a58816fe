//! Where processed events live, and how they are searched.
//!
//! [`EventStore`] is the seam between the pipeline and query API on one side and
//! a storage engine on the other: the embedded tantivy store, and the PostgreSQL
//! store (feature `postgres`) with the same query semantics. One conformance
//! suite (`tests/conformance/`) runs against both.
//!
//! Architecture invariant: every read takes a tenant and a stream and never
//! returns another tenant's events, nor events of the tenant's other stream,
//! whatever query, id or cursor it is given. Likewise an event only ever
//! replaces an event of its own tenant and stream.

mod analysis;
mod breaker;
mod cursor;
pub mod dead_letters;
pub mod embedded;
mod fields;
mod limits;
pub mod matcher;
#[cfg(feature = "postgres")]
pub mod postgres;
mod request;

use std::collections::BTreeMap;

use async_trait::async_trait;
use model::{QueuedEvent, Stream, Timestamp};
use serde_json::value::RawValue;

pub use breaker::{Breaker, BreakerPolicy};
pub use cursor::{Cursor, CursorError};
pub use dead_letters::{DeadLetter, DeadLetterInfo, DeadLetterPage, DeadLetters};
pub use limits::{QueryLimits, default_concurrency};
pub use request::{Bucket, Filter, HistogramRequest, Order, SearchPage, SearchRequest, Stats};

/// What went wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query is well-formed but cannot run (unknown level, a range on a text field…).
    #[error("{0}")]
    InvalidQuery(String),
    /// One term of the query cannot run; `position` is its byte offset in the query text.
    #[error("{message} (at byte {position})")]
    InvalidTerm { position: usize, message: String },
    /// The query would cost more than a configured limit allows (a prefix matching
    /// too many terms); `position` is the offending term's byte offset, if known.
    #[error("{message}")]
    QueryTooComplex {
        position: Option<usize>,
        message: String,
    },
    /// The query ran out of time and was stopped.
    #[error("the query did not finish within {0:?}")]
    QueryTimeout(std::time::Duration),
    /// The query was stopped because its caller went away.
    #[error("the query was cancelled")]
    Cancelled,
    /// The tenant already runs as many queries as it may at once.
    #[error("{0} queries of this tenant are already running")]
    TooManyQueries(usize),
    /// The storage engine failed for a reason of its own.
    #[error("storage engine error while {context}: {source}")]
    Engine {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The storage engine cannot be reached (a database that is down or
    /// refuses connections); the caller may retry later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// What was staged holds something the store refuses (a value its engine
    /// cannot take). Contract: after a commit fails with `Rejected` the store
    /// has dropped everything staged since the last commit, so the caller can
    /// stage parts of it again to find what it refuses; after `Unavailable`
    /// it keeps the staged events for a retry of the commit.
    #[error("the store refused the data: {0}")]
    Rejected(String),
    /// A size, sequence number or range outside what is stored.
    #[error("{0}")]
    OutOfRange(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("store task failed: {0}")]
    Task(String),
}

/// A stored event as the API returns it: its canonical JSON, not re-serialised.
pub type StoredEvent = Box<RawValue>;

/// A storage engine for events.
///
/// Writes come from one pipeline worker at a time per store value: `stage` adds
/// events that stay invisible until `commit`, which makes them searchable and
/// records the queue position they cover in the same atomic step. After a crash,
/// `committed_position` says where the pipeline must resume, so nothing is lost or
/// stored twice. An event is stored once per (tenant, stream, id): one whose id
/// the client chose (`replace_existing`) replaces the stored one, any other is
/// skipped when its id is already stored, so a queue that delivers a record twice
/// stores it once. A store shared by several processes (PostgreSQL) keeps that
/// true with workers committing at once.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The queue position covered by the last commit, if any.
    async fn committed_position(&self) -> Result<Option<u64>, StoreError>;
    /// Adds events to the next commit.
    async fn stage(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError>;
    /// Makes staged events visible and durable, together with `position` when
    /// given: the queue position the commit covers, for queues whose consumer
    /// resumes from the store's record (the embedded queue). Queues that track
    /// their consumers themselves (consumer groups) pass `None`, and replays are
    /// made harmless by event ids instead.
    ///
    /// A commit that fails drops everything staged; the caller stages again
    /// what it still wants stored (events a failed commit may have stored
    /// after all are staged to replace their copies).
    async fn commit(&self, position: Option<u64>) -> Result<(), StoreError>;
    /// Like [`EventStore::commit`], for a partitioned queue (Kafka): makes the
    /// staged events durable together with `next`, the next offset to read of
    /// each partition of `topic` the commit covers, in one atomic step. A
    /// partition's recorded offset never moves back: a late commit by a worker
    /// that lost the partition leaves the newer offset in place (its events
    /// are stored once all the same, by id). Partitions not named keep theirs,
    /// and so does the single queue position.
    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError>;
    /// The next offset to read of each partition of `topic`, as the commits
    /// recorded them; partitions no commit covered are absent.
    async fn committed_offsets(&self, topic: &str) -> Result<BTreeMap<u32, u64>, StoreError>;
    /// One page of matching events, ordered by timestamp.
    async fn search(&self, request: SearchRequest) -> Result<SearchPage, StoreError>;
    /// The event with this id in this tenant's stream.
    async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError>;
    /// Counts of matching events, in total and by service and level.
    async fn stats(&self, filter: Filter) -> Result<Stats, StoreError>;
    /// Counts of matching events per time bucket.
    async fn histogram(&self, request: HistogramRequest) -> Result<Vec<Bucket>, StoreError>;
    /// Remarks about a filter that runs but probably does not mean what it says,
    /// such as a field that no event of the tenant's stream has (a typo).
    async fn warnings(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let _ = filter;
        Ok(Vec::new())
    }
    /// Whether the store answers, for readiness probes: constant work, however
    /// much the store holds.
    async fn ready(&self) -> Result<(), StoreError>;
    /// Deletes the tenant's log events (never its audit events) whose
    /// timestamp is before `before`: retention. Once the call returns they
    /// are gone from search, stats and histograms alike, or go with the
    /// pipeline's next commit if it has events staged (embedded store). The
    /// space is given back as the engine allows: see the README's retention
    /// section. Deleting what is already gone is a no-op.
    async fn expire_logs(&self, tenant: &str, before: Timestamp) -> Result<(), StoreError>;
    /// Events stored and bytes on disk, for the administrator's status and
    /// benchmarks: costs in proportion to what the store holds.
    async fn footprint(&self) -> Result<Footprint, StoreError>;
}

/// The verifiable side of the audit stream: each tenant's trail is a Merkle
/// tree (RFC 9162) over its audit events in sequence order, with signed
/// checkpoints and proofs against them.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// The checkpoint signing key in the signed-note verifier format.
    fn public_key(&self) -> String;
    /// The newest signed checkpoint of a tenant, or the one of exactly `size`.
    async fn checkpoint(
        &self,
        tenant: &str,
        size: Option<u64>,
    ) -> Result<Option<String>, StoreError>;
    /// The inclusion proof of event `seq` in the tree of the first `size` events.
    async fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<Vec<audit::Hash>, StoreError>;
    /// The canonical bytes of committed events `from..to` of a tenant's trail, in order.
    /// Pruned events have none: `from` below [`AuditLog::pruned`] is `OutOfRange`.
    async fn leaves(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The leaf hashes of committed events `from..to` as the trail recorded them when it
    /// built its tree (not recomputed from the leaves): an export carries them so that a
    /// verifier can name an altered event exactly.
    async fn leaf_hashes(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError>;
    /// The consistency proof between the trees of `from` and `to` events.
    async fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError>;
    /// Audit retention: prunes the oldest events of a tenant's trail, those Logbook
    /// received (`received_at`, which the client cannot set) before `before`, and returns
    /// how many it newly pruned. A pruned event's body is removed (from search, stats,
    /// histograms, get-by-id, [`leaves`](AuditLog::leaves) and exports) while its leaf
    /// hash stays, so every checkpoint, root and proof stays valid, its inclusion proof
    /// is still served ([`pruned_seq`](AuditLog::pruned_seq)), and the same event sent
    /// again is still recognised and not appended twice.
    ///
    /// A trail is ordered by sequence number, not strictly by time, and only a prefix of
    /// it is ever pruned: the pruned part ends at the first event received at or after
    /// `before`, so an event received late (after a newer one) can keep older ones until
    /// it expires itself. Only events committed to the store are pruned. Pruning what is
    /// pruned already does nothing, and an interrupted call is finished by the next one
    /// or when the store opens, so the call can simply be repeated. The embedded store
    /// applies it with the pipeline's next commit when the pipeline has events staged.
    async fn expire_audit(&self, tenant: &str, before: Timestamp) -> Result<u64, StoreError>;
    /// How many events, from the first, of a tenant's trail are pruned (0 without a trail).
    async fn pruned(&self, tenant: &str) -> Result<u64, StoreError>;
    /// The sequence number of a tenant's pruned audit event with this id, if there is one:
    /// for its inclusion proof, once the event itself can no longer be read.
    async fn pruned_seq(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError>;
}

/// How much a store holds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Footprint {
    pub events: u64,
    pub bytes: u64,
}
