//! The embedded store: a tantivy index in the data directory.
//!
//! Staged events go to tantivy's indexing threads; a commit writes the queue
//! position into the commit's payload (`meta.json`), so the events and the
//! position they cover become durable in one atomic step.

mod audit_log;
mod audit_retention;
mod backup;
mod blocks;
mod checkpoints;
mod collect;
mod compile;
mod exclusion;
mod expire;
mod keys;
mod known;
mod reindex;
mod replays;
mod schema;
mod trails;
mod visit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use model::{QueuedEvent, Stream, Timestamp};
use serde_json::value::RawValue;
use tantivy::schema::Value as _;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument};

pub use self::backup::{StagedFile, StoreSnapshot};
use self::blocks::TimeBlocks;
pub use self::checkpoints::CHECKPOINTS_FILE;
use self::collect::HistogramCollector;
use self::compile::Expansion;
use self::keys::EventKeys;
use self::replays::Replays;
use self::schema::Fields;
pub use self::trails::{CheckpointPolicy, KEY_FILE, KEY_NAME};
use self::trails::{TrailView, Trails};
use self::visit::{Plan, Window};
use crate::limits::{Admission, Budget};
pub use crate::limits::{QueryLimits, default_concurrency};
use crate::{
    Bucket, EventStore, Filter, Footprint, HistogramRequest, SearchPage, SearchRequest, Stats,
    StoreError, StoredEvent,
};

/// How the embedded store is laid out and tuned.
#[derive(Debug, Clone)]
pub struct EmbeddedStoreConfig {
    pub dir: PathBuf,
    /// Memory tantivy may use to buffer documents before writing a segment.
    pub writer_memory_bytes: usize,
    /// Indexing threads.
    pub indexer_threads: usize,
    /// Bytes of documents compressed together in the document store; larger
    /// blocks compress better and make fetching one event slower.
    pub docstore_block_bytes: usize,
    /// zstd level of the document store.
    pub docstore_zstd_level: i32,
    /// Where the tenants' audit trails and the checkpoint signing key live.
    pub audit_dir: PathBuf,
    pub checkpoints: CheckpointPolicy,
    /// Deadline, prefix expansion and concurrency of searches, stats and histograms.
    pub queries: QueryLimits,
}

impl EmbeddedStoreConfig {
    /// Defaults for a store under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        EmbeddedStoreConfig {
            audit_dir: dir.join("audit"),
            checkpoints: CheckpointPolicy::default(),
            queries: QueryLimits::default(),
            dir,
            writer_memory_bytes: 256 * 1024 * 1024,
            // One thread: on two cores, two made events searchable no sooner
            // (55,000 against 56,000 ev/s over three alternating 1 M runs,
            // within the noise) and split time into twice as many overlapping
            // segments, which doubled the cost of a histogram (BENCHMARKS.md).
            indexer_threads: 1,
            docstore_block_bytes: 256 * 1024,
            // Level 1: on Loghub-derived events in 256 KiB blocks, levels 1 and
            // 9 left the index the same size within 1 % (the document store
            // is dominated by ids, times and numbers zstd cannot shrink), and
            // level 1 made events searchable 15 % sooner (BENCHMARKS.md).
            docstore_zstd_level: 1,
        }
    }
}

/// The least memory tantivy accepts per indexing thread (its
/// `MEMORY_BUDGET_NUM_BYTES_MIN`, which it does not export).
const MIN_WRITER_MEMORY_PER_THREAD: usize = 15_000_000;

/// The tantivy-backed [`EventStore`].
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    index: Index,
    fields: Fields,
    keys: EventKeys,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Whether the writer holds staged changes the pipeline has not committed
    /// yet; read and changed only with the writer's lock held.
    staged: AtomicBool,
    /// Held by staging and committing; readers of the trails only take it to
    /// copy a [`TrailView`].
    trails: Mutex<Trails>,
    /// Which staged log events may repeat stored ones; taken with the writer.
    replays: Mutex<Replays>,
    /// Verifies checkpoints; its text is the published public key.
    verifying: audit::VerifyingKey,
    admission: Admission,
    /// Block summaries of the segments searched.
    blocks: Arc<TimeBlocks>,
}

/// The commit payload: what the last commit covers.
#[derive(serde::Serialize, serde::Deserialize)]
struct CommitPayload {
    /// Absent after the audit partition was re-indexed into an index that had
    /// no commit: no queue record is covered yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue_position: Option<u64>,
    /// Each tenant's audit trail size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    audit: BTreeMap<String, u64>,
    /// For each trail that pruned leaves: how many, from the first, the index
    /// has tombstones for instead of their events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pruned: BTreeMap<String, u64>,
    /// For partitioned queues (Kafka): per topic, the next offset to read of
    /// each partition the commits covered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    offsets: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// What a commit covers of the queue, besides its events.
#[derive(Clone, Copy)]
pub(crate) enum Covers<'a> {
    /// Nothing new: the last commit's position and offsets still hold.
    Nothing,
    /// The queue up to this position (the embedded queue).
    Position(u64),
    /// These partitions of this topic, up to these next offsets (Kafka).
    Offsets(&'a str, &'a [(u32, u64)]),
}

/// How often due checkpoints are looked for when no commit happens.
const CHECKPOINT_TICK: Duration = Duration::from_millis(500);

fn read_payload(index: &Index) -> Result<Option<CommitPayload>, StoreError> {
    let metas = index
        .load_metas()
        .map_err(engine("reading the last commit"))?;
    match metas.payload {
        None => Ok(None),
        Some(payload) => serde_json::from_str::<CommitPayload>(&payload)
            .map(Some)
            .map_err(|error| {
                StoreError::Corrupt(format!("unreadable commit payload {payload:?}: {error}"))
            }),
    }
}

fn engine(context: &'static str) -> impl FnOnce(tantivy::TantivyError) -> StoreError {
    move |source| StoreError::Engine {
        context,
        source: Box::new(source),
    }
}

impl EmbeddedStore {
    /// Opens the store in `config.dir`, creating it if empty.
    pub fn open(config: &EmbeddedStoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.dir).map_err(|error| {
            StoreError::Corrupt(format!("cannot create {}: {error}", config.dir.display()))
        })?;
        let (schema, fields) = schema::build();
        let exists = config.dir.join("meta.json").exists();
        // The secret is written before the index exists, so an index never lacks one.
        let keys = EventKeys::open(&config.dir, !exists)?;
        let index = if exists {
            let mut index = Index::open_in_dir(&config.dir).map_err(engine("opening the index"))?;
            if index.schema() != schema {
                return Err(StoreError::Corrupt(format!(
                    "the index in {} was written with another schema",
                    config.dir.display()
                )));
            }
            index.set_tokenizers(crate::analysis::tokenizers());
            index
        } else {
            let settings = IndexSettings {
                docstore_compression: Compressor::Zstd(ZstdCompressor {
                    compression_level: Some(config.docstore_zstd_level),
                }),
                docstore_blocksize: config.docstore_block_bytes,
                ..IndexSettings::default()
            };
            Index::builder()
                .schema(schema)
                .settings(settings)
                .tokenizers(crate::analysis::tokenizers())
                .create_in_dir(&config.dir)
                .map_err(engine("creating the index"))?
        };
        // tantivy splits the memory between the threads and refuses less than
        // its minimum per thread: fewer threads rather than no store.
        let threads = config.indexer_threads.clamp(
            1,
            (config.writer_memory_bytes / MIN_WRITER_MEMORY_PER_THREAD).max(1),
        );
        let writer = index
            .writer_with_num_threads(threads, config.writer_memory_bytes)
            .map_err(engine("opening the index writer"))?;
        writer.set_merge_policy(Box::<expire::ExpiryMergePolicy>::default());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(engine("opening the index reader"))?;
        let (position, indexed, pruned) = read_payload(&index)?
            .map(|payload| (payload.queue_position, payload.audit, payload.pruned))
            .unwrap_or_default();
        let (trails, missing) =
            Trails::open(&config.audit_dir, &indexed, &pruned, config.checkpoints)?;
        let replays = Replays::open(&reader.searcher())?;
        let inner = Arc::new(Inner {
            dir: config.dir.clone(),
            index,
            fields,
            keys,
            reader,
            writer: Mutex::new(writer),
            staged: AtomicBool::new(false),
            verifying: trails.verifying_key().clone(),
            trails: Mutex::new(trails),
            replays: Mutex::new(replays),
            admission: Admission::new(config.queries),
            blocks: Arc::default(),
        });
        if !missing.is_empty() {
            inner.reindex(&missing, position)?;
        }
        spawn_checkpointer(Arc::downgrade(&inner));
        inner
            .blocks
            .refresh_in_background(&inner.reader, &inner.fields);
        Ok(EmbeddedStore { inner })
    }

    /// Runs blocking index work off the async runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?
    }

    /// Runs a query of `tenant` off the async runtime within the query limits:
    /// admitted under the tenant's and the store's caps, stopped at its
    /// deadline, and cancelled when the returned future is dropped (the client
    /// went away).
    async fn query<T, F>(&self, tenant: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Budget) -> Result<T, StoreError> + Send + 'static,
    {
        let budget = Budget::new(self.inner.admission.limits().timeout);
        let _cancel = budget.cancel_on_drop();
        let admitted = self.inner.admission.admit(tenant, &budget).await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            budget.check()?;
            work(&inner, &budget)
        })
        .await
        .map_err(|error| StoreError::Task(error.to_string()))?
    }
}

/// Signs due checkpoints while no commits happen (a quiet trail still gets its
/// last events checkpointed within the policy's interval); ends with the store.
fn spawn_checkpointer(inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("audit-checkpoints".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_TICK);
                let Some(inner) = inner.upgrade() else { return };
                if let Err(error) = inner.trails().checkpoint_due(Instant::now()) {
                    tracing::error!(%error, "cannot sign an audit checkpoint");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the checkpoint thread; checkpoints follow commits only");
    }
}

impl Inner {
    fn trails(&self) -> MutexGuard<'_, Trails> {
        self.trails
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A tenant's trail for reading, taken under the trails' lock only long
    /// enough to copy it.
    fn view(&self, tenant: &str) -> Result<TrailView, StoreError> {
        self.trails()
            .view(tenant)
            .ok_or_else(|| StoreError::OutOfRange(format!("tenant {tenant:?} has no audit events")))
    }

    /// Makes staged events and pending leaves durable with what they cover of
    /// the queue (see [`Covers`]), then signs due checkpoints. Leaves are
    /// durable before the index commit that counts them.
    fn commit(&self, covers: Covers<'_>) -> Result<(), StoreError> {
        let mut writer = self.writer();
        self.commit_locked(&mut writer, covers)
    }

    /// [`Inner::commit`] with the writer's lock already held.
    fn commit_locked(
        &self,
        writer: &mut IndexWriter,
        covers: Covers<'_>,
    ) -> Result<(), StoreError> {
        let signed = {
            let mut trails = self.trails();
            // A commit keeps what the last one covered and it does not.
            let last = read_payload(&self.index)?;
            let (mut queue_position, mut offsets) = last
                .map(|payload| (payload.queue_position, payload.offsets))
                .unwrap_or_default();
            match covers {
                Covers::Nothing => {}
                Covers::Position(position) => queue_position = Some(position),
                Covers::Offsets(topic, next) => {
                    let recorded = offsets.entry(topic.to_owned()).or_default();
                    for &(partition, next) in next {
                        let offset = recorded.entry(partition).or_default();
                        *offset = (*offset).max(next);
                    }
                }
            }
            let payload = CommitPayload {
                queue_position,
                audit: trails.flush()?,
                pruned: trails.pruned_for_commit(),
                offsets,
            };
            let text = serde_json::to_string(&payload)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            let mut prepared = writer
                .prepare_commit()
                .map_err(engine("preparing a commit"))?;
            prepared.set_payload(&text);
            let committed = prepared.commit().map_err(engine("committing"));
            // Committed or dropped, nothing staged is left.
            self.staged.store(false, Ordering::Relaxed);
            self.replays().committed();
            committed?;
            // Searches see the events before any checkpoint signs them, so a
            // client that saw a checkpoint finds every event it covers.
            let reloaded = self.reader.reload().map_err(engine("reloading the reader"));
            trails.committed(&payload.audit, &payload.pruned);
            reloaded?;
            trails.checkpoint_due(Instant::now())
        };
        // New segments are summarised now, so the first search after a
        // commit or a merge does not pay for it.
        self.blocks
            .refresh_in_background(&self.reader, &self.fields);
        signed
    }

    /// The committed event of this tenant's stream with this id. Keys are
    /// hashes, so the stored id is compared: a collision never passes for it.
    fn find(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let query = compile::key_query(&self.fields, &self.keys, tenant, stream, id);
        let searcher = self.reader.searcher();
        // A key matches one live event, a few more only on a hash collision.
        let found = searcher
            .search(&query, &tantivy::collector::DocSetCollector)
            .map_err(query_error)?;
        for address in found {
            let event = self.load(&searcher, address)?;
            if id_of(&event)? == id {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// The key of an event's partition and id.
    fn key_of(&self, event: &model::Event) -> u64 {
        self.keys
            .key(&schema::partition(&event.tenant, event.stream), &event.id)
    }

    fn replays(&self) -> MutexGuard<'_, Replays> {
        self.replays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a log event repeats one staged since the last commit or one
    /// stored (a queue record delivered twice); notes it as staged.
    fn repeats(&self, replays: &mut Replays, incoming: &QueuedEvent) -> Result<bool, StoreError> {
        let event = &incoming.event;
        if replays.stage(self.key_of(event), incoming.arrival) {
            return Ok(true);
        }
        Ok(replays.may_be_stored(incoming.arrival)
            && self.find(&event.tenant, event.stream, &event.id)?.is_some())
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        // A panic while holding the lock leaves nothing half-done that the
        // writer itself does not recover from, so a poisoned lock is still usable.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tantivy document of an event; the attributes move into it uncopied.
    fn document(&self, incoming: QueuedEvent) -> TantivyDocument {
        let fields = &self.fields;
        let QueuedEvent {
            mut event,
            json,
            arrival,
            ..
        } = incoming;
        let mut document = TantivyDocument::new();
        let partition = schema::partition(&event.tenant, event.stream);
        document.add_text(fields.tenant, &partition);
        document.add_i64(fields.timestamp, event.timestamp.nanos());
        document.add_u64(fields.key, self.keys.key(&partition, &event.id));
        // The trail's sequence is the audit partition's arrival order, and the
        // one an index rebuilt from the trail's leaves can give again.
        let arrival = match event.stream {
            Stream::Audit => event.seq.unwrap_or(arrival),
            Stream::Logs => arrival,
        };
        document.add_u64(fields.arrival, arrival);
        if let Some(source) = event.source {
            document.add_text(fields.source, source.as_str());
        }
        if let Some(service) = &event.service {
            document.add_text(fields.service, service);
        }
        document.add_u64(fields.level, event.level.rank());
        document.add_text(fields.message, &event.message);
        let optional = [
            (fields.host, &event.host),
            (fields.trace_id, &event.trace_id),
            (fields.span_id, &event.span_id),
            (fields.user_id, &event.user_id),
            (fields.source_ip, &event.source_ip),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                document.add_text(field, value);
            }
        }
        if !event.attributes.is_empty() {
            for path in known::stored_paths(&event.attributes) {
                if let Some(token) = known::path_token(&partition, &path) {
                    document.add_text(fields.attribute_paths, &token);
                }
            }
            let attributes = serde_json::Value::Object(std::mem::take(&mut event.attributes));
            document.add_field_value(fields.attributes, &attributes);
        }
        document.add_bytes(fields.document, json.as_bytes());
        document
    }

    fn load(
        &self,
        searcher: &tantivy::Searcher,
        address: tantivy::DocAddress,
    ) -> Result<StoredEvent, StoreError> {
        let document: TantivyDocument =
            searcher.doc(address).map_err(engine("reading an event"))?;
        let bytes = document
            .get_first(self.fields.document)
            .and_then(|value| value.as_bytes())
            .ok_or_else(|| StoreError::Corrupt(format!("event {address:?} has no document")))?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("event {address:?} is not UTF-8")))?;
        RawValue::from_string(text)
            .map_err(|error| StoreError::Corrupt(format!("event {address:?} is not JSON: {error}")))
    }

    /// Plans a filter's query over the current searcher, expanding prefixes
    /// within the limits, and runs `work` on the plan.
    fn plan<T>(
        &self,
        filter: &Filter,
        budget: &Budget,
        work: impl FnOnce(&Plan<'_>) -> Result<T, StoreError>,
    ) -> Result<(tantivy::Searcher, T), StoreError> {
        let searcher = self.reader.searcher();
        let expansion = Expansion {
            searcher: &searcher,
            budget,
            max_terms: self.admission.limits().max_prefix_terms,
        };
        let query = compile::compile_filter(&self.fields, &self.keys, filter, &expansion)?;
        let weight = query
            .weight(tantivy::query::EnableScoring::disabled_from_searcher(
                &searcher,
            ))
            .map_err(query_error)?;
        let partition = schema::partition(&filter.tenant, filter.stream);
        let plan = Plan {
            searcher: &searcher,
            weight,
            blocks: &self.blocks,
            partition: &partition,
            query: &filter.query,
            window: Window::of(filter),
            budget,
        };
        let fruit = work(&plan).map_err(|error| budget.explain(error))?;
        Ok((searcher, fruit))
    }

    fn search(&self, request: &SearchRequest, budget: &Budget) -> Result<SearchPage, StoreError> {
        let (searcher, mut hits) = self.plan(&request.filter, budget, |plan| {
            plan.page(request.limit + 1, request.cursor, request.order)
        })?;
        let more = hits.len() > request.limit;
        hits.truncate(request.limit);
        let next_cursor = if more {
            hits.last().map(|(cursor, _)| *cursor)
        } else {
            None
        };
        let events = hits
            .into_iter()
            .map(|(_, address)| self.load(&searcher, address))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchPage {
            events,
            next_cursor,
        })
    }
}

/// The `id` of a stored event.
fn id_of(event: &RawValue) -> Result<String, StoreError> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_str::<IdOnly>(event.get())
        .map(|only| only.id)
        .map_err(|error| StoreError::Corrupt(format!("a stored event has no id: {error}")))
}

/// Tantivy refuses some queries only when it runs them (e.g. a range it cannot
/// evaluate); those are the caller's to fix, the rest are ours.
fn query_error(error: tantivy::TantivyError) -> StoreError {
    match error {
        tantivy::TantivyError::InvalidArgument(message) => StoreError::InvalidQuery(message),
        source => StoreError::Engine {
            context: "searching",
            source: Box::new(source),
        },
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn committed_position(&self) -> Result<Option<u64>, StoreError> {
        self.blocking(|inner| {
            Ok(read_payload(&inner.index)?.and_then(|payload| payload.queue_position))
        })
        .await
    }

    async fn stage(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        self.blocking(move |inner| {
            let writer = inner.writer();
            let mut trails = inner.trails();
            let mut replays = inner.replays();
            if !events.is_empty() {
                inner.staged.store(true, Ordering::Relaxed);
            }
            for mut incoming in events {
                if incoming.event.stream == Stream::Audit {
                    // The trail is append-only: an event already in it (the server's
                    // outbox drained twice, or the queue replaying events whose leaves
                    // outlived an index commit) is skipped, never replaced nor
                    // numbered again. The index's audit partition holds exactly the
                    // trail's committed leaves, so it answers which ids the trail has.
                    let event = &incoming.event;
                    if trails.is_pending(&event.tenant, &event.id)
                        || inner
                            .find(&event.tenant, Stream::Audit, &event.id)?
                            .is_some()
                        // A pruned event: only its tombstone is left.
                        || (trails.pruned(&event.tenant) > 0
                            && inner.tombstone(&event.tenant, &event.id)?.is_some())
                    {
                        continue;
                    }
                    incoming.json = trails.assign(&mut incoming.event)?;
                } else if !incoming.replace_existing {
                    // A server-chosen id seen again is a queue record delivered
                    // twice: the event is stored once.
                    if inner.repeats(&mut replays, &incoming)? {
                        continue;
                    }
                } else {
                    let event = &incoming.event;
                    replays.stage(inner.key_of(event), incoming.arrival);
                    // Only an event of the same tenant and stream is replaced.
                    writer
                        .delete_query(compile::key_query(
                            &inner.fields,
                            &inner.keys,
                            &event.tenant,
                            event.stream,
                            &event.id,
                        ))
                        .map_err(engine("replacing an event"))?;
                }
                writer
                    .add_document(inner.document(incoming))
                    .map_err(engine("adding an event"))?;
            }
            Ok(())
        })
        .await
    }

    async fn commit(&self, position: Option<u64>) -> Result<(), StoreError> {
        let covers = position.map_or(Covers::Nothing, Covers::Position);
        self.blocking(move |inner| inner.commit(covers)).await
    }

    async fn commit_offsets(&self, topic: &str, next: &[(u32, u64)]) -> Result<(), StoreError> {
        let (topic, next) = (topic.to_owned(), next.to_vec());
        self.blocking(move |inner| inner.commit(Covers::Offsets(&topic, &next)))
            .await
    }

    async fn committed_offsets(&self, topic: &str) -> Result<BTreeMap<u32, u64>, StoreError> {
        let topic = topic.to_owned();
        self.blocking(move |inner| {
            Ok(read_payload(&inner.index)?
                .and_then(|mut payload| payload.offsets.remove(&topic))
                .unwrap_or_default())
        })
        .await
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchPage, StoreError> {
        let tenant = request.filter.tenant.clone();
        self.query(&tenant, move |inner, budget| inner.search(&request, budget))
            .await
    }

    async fn get(
        &self,
        tenant: &str,
        stream: Stream,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.blocking(move |inner| inner.find(&tenant, stream, &id))
            .await
    }

    async fn stats(&self, filter: Filter) -> Result<Stats, StoreError> {
        let tenant = filter.tenant.clone();
        self.query(&tenant, move |inner, budget| {
            Ok(inner.plan(&filter, budget, |plan| plan.stats())?.1)
        })
        .await
    }

    async fn histogram(&self, request: HistogramRequest) -> Result<Vec<Bucket>, StoreError> {
        if request.interval_nanos <= 0 {
            return Err(StoreError::InvalidQuery(
                "the interval must be positive".into(),
            ));
        }
        let tenant = request.filter.tenant.clone();
        self.query(&tenant, move |inner, budget| {
            let collector = HistogramCollector {
                interval_nanos: request.interval_nanos,
            };
            let (_, counts) =
                inner.plan(&request.filter, budget, |plan| plan.histogram(&collector))?;
            Ok(counts
                .into_iter()
                .map(|(start, count)| Bucket {
                    start: model::Timestamp::from_nanos(start),
                    count,
                })
                .collect())
        })
        .await
    }

    async fn warnings(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let paths = crate::fields::attribute_paths(filter.stream, &filter.query);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, stream) = (filter.tenant.clone(), filter.stream);
        // Looking terms up costs like a query, so it runs as one: admitted,
        // under a deadline, cancelled with its caller.
        self.query(&filter.tenant, move |inner, budget| {
            let searcher = inner.reader.searcher();
            let partition = schema::partition(&tenant, stream);
            let mut warnings = Vec::new();
            for (name, path) in paths {
                if known::has_attribute(&inner.fields, &searcher, &partition, &path, budget)?
                    == Some(false)
                {
                    warnings.push(crate::fields::unknown_attribute(&name, &path));
                }
            }
            Ok(warnings)
        })
        .await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            // The blocking pool runs store work, and the index is still there:
            // one stat, whatever the index holds.
            let meta = inner.dir.join("meta.json");
            std::fs::metadata(&meta).map_err(|error| {
                StoreError::Corrupt(format!("cannot read {}: {error}", meta.display()))
            })?;
            Ok(())
        })
        .await
    }

    async fn expire_logs(&self, tenant: &str, before: Timestamp) -> Result<(), StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.expire(&tenant, Stream::Logs, before))
            .await
    }

    async fn footprint(&self) -> Result<Footprint, StoreError> {
        self.blocking(|inner| {
            Ok(Footprint {
                events: inner.reader.searcher().num_docs(),
                bytes: directory_bytes(&inner.dir),
            })
        })
        .await
    }
}

/// The size of the files in a directory (not recursive: tantivy keeps a flat one).
fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .filter(|metadata| metadata.is_file())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}
