//! Writing events: staged events wait in memory, and a commit writes them all
//! in one transaction together with the queue position they cover.
//!
//! Ids make replays harmless, even with several workers committing at once:
//! `store_event_ids` holds one row per (tenant, stream, id). An event whose
//! id the client chose replaces the event holding that id (the key row is
//! updated and remembers where the old event was, which is then deleted);
//! any other event is written only if its key row could be inserted, so a
//! redelivered queue record is skipped. A key row another transaction has
//! just inserted makes ours wait for that transaction, so two workers never
//! both write the same id.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use model::{QueuedEvent, Stream};
use sqlx::PgPool;
use sqlx::postgres::PgConnection;

use super::compile::stream_code;
use super::copy::{CopyData, Row};
use super::errors::engine;
use super::terms::{self, Indexer};
use crate::StoreError;

/// The columns a `COPY` fills, in the order rows are encoded.
const COPY: &str = "COPY store_events (tenant, stream, ts, arrival, id, service, level, terms, nums, doc) FROM STDIN (FORMAT binary)";

/// The `arrival` column of an arrival number: shifted into `bigint` so that
/// the column sorts as the numbers do.
pub(crate) fn arrival_column(arrival: u64) -> i64 {
    (arrival ^ (1 << 63)) as i64
}

/// The arrival number of an `arrival` column.
pub(crate) fn arrival_number(column: i64) -> u64 {
    (column as u64) ^ (1 << 63)
}

/// An event waiting for the next commit.
pub(crate) struct Staged {
    pub event: QueuedEvent,
    /// Replaces the stored event with its id (a log event whose id the client chose).
    pub replace: bool,
}

/// The events staged since the last commit, one per (tenant, stream, id), as
/// the embedded store would leave them: a later event with a chosen id
/// replaces an earlier staged one, any other repeat is skipped.
#[derive(Default)]
pub(crate) struct Pending {
    events: Vec<Staged>,
    by_key: HashMap<(String, Stream, String), usize>,
}

impl Pending {
    pub fn stage(&mut self, incoming: QueuedEvent) {
        let replace = incoming.replace_existing && incoming.event.stream == Stream::Logs;
        let event = &incoming.event;
        let key = (event.tenant.clone(), event.stream, event.id.clone());
        match self.by_key.get(&key) {
            Some(&index) if replace => {
                self.events[index] = Staged {
                    event: incoming,
                    replace: true,
                }
            }
            Some(_) => {}
            None => {
                self.by_key.insert(key, self.events.len());
                self.events.push(Staged {
                    event: incoming,
                    replace,
                });
            }
        }
    }

    pub fn take(&mut self) -> Vec<Staged> {
        self.by_key.clear();
        std::mem::take(&mut self.events)
    }
}

/// An event ready to be written: its key, its row and what the shared tables learn from it.
pub(crate) struct Encoded {
    pub tenant: String,
    pub stream: Stream,
    pub id: String,
    pub ts: i64,
    pub arrival: i64,
    pub replace: bool,
    pub row: Vec<u8>,
    /// Lexemes a prefix can reach, for the lexicon.
    pub prefixable: Vec<String>,
    /// Attribute path keys the event holds.
    pub paths: Vec<String>,
    /// An audit event as staged, to be numbered in its trail at commit.
    pub audit: Option<QueuedEvent>,
}

/// Encodes staged events (CPU work: run it off the async runtime).
pub(crate) fn encode(staged: Vec<Staged>) -> Vec<Encoded> {
    let mut indexer = Indexer::new();
    staged
        .into_iter()
        .map(|Staged { event, replace }| encode_one(&mut indexer, event, replace))
        .collect()
}

/// Encodes one event.
pub(crate) fn encode_one(indexer: &mut Indexer, queued: QueuedEvent, replace: bool) -> Encoded {
    let event = &queued.event;
    let terms = indexer.terms(event);
    if terms.truncated {
        tracing::warn!(
            tenant = %event.tenant,
            id = %event.id,
            "event has more distinct terms than a PostgreSQL tsvector holds; the rest are not searchable"
        );
    }
    let arrival = arrival_column(queued.arrival);
    let nums = terms.nums_json();
    let mut row = Row::new(10, queued.json.len() * 3 + 64);
    row.text(&event.tenant);
    row.int2(stream_code(event.stream));
    row.int8(event.timestamp.nanos());
    row.int8(arrival);
    row.text(&event.id);
    match &event.service {
        Some(service) => row.text(&terms::escape(service)),
        None => row.null(),
    }
    row.int2(event.level.rank() as i16);
    row.raw(|out| terms::tsvector_binary(&terms.lexemes, out));
    match &nums {
        Some(json) => row.jsonb(json),
        None => row.null(),
    }
    row.text(&queued.json);
    let audit = (event.stream == Stream::Audit).then(|| queued.clone());
    Encoded {
        tenant: event.tenant.clone(),
        stream: event.stream,
        id: event.id.clone(),
        ts: event.timestamp.nanos(),
        arrival,
        replace,
        row: row.into_bytes(),
        prefixable: terms
            .lexemes
            .into_keys()
            .filter(|lexeme| terms::prefixable(lexeme))
            .collect(),
        paths: terms.paths.into_iter().collect(),
        audit,
    }
}

/// What the lexicon and the field table are already known to hold, so a
/// commit sends only what is new. Bounded: cleared when full.
pub(crate) struct Known {
    lexemes: Mutex<HashSet<String>>,
    paths: Mutex<HashSet<(String, Stream, String)>>,
}

/// Lexemes remembered at most (some tens of MiB); past this the memory starts over.
const MAX_KNOWN_LEXEMES: usize = 500_000;

impl Known {
    pub fn new() -> Self {
        Known {
            lexemes: Mutex::new(HashSet::new()),
            paths: Mutex::new(HashSet::new()),
        }
    }

    /// Records the prefixable lexemes and attribute paths of `events` that
    /// were not yet known. Entries outlive the events that brought them (as
    /// terms of deleted documents do in the embedded index); both tables only
    /// ever grow.
    pub async fn record(&self, pool: &PgPool, events: &[Encoded]) -> Result<(), StoreError> {
        let mut lexemes: Vec<String> = {
            let known = lock(&self.lexemes);
            let mut new: Vec<String> = events
                .iter()
                .flat_map(|event| &event.prefixable)
                .filter(|lexeme| !known.contains(*lexeme))
                .cloned()
                .collect();
            new.sort_unstable();
            new.dedup();
            new
        };
        let mut paths: Vec<(String, Stream, String)> = {
            let known = lock(&self.paths);
            let mut new: Vec<_> = events
                .iter()
                .flat_map(|event| {
                    event
                        .paths
                        .iter()
                        .map(|path| (event.tenant.clone(), event.stream, path.clone()))
                })
                .filter(|entry| !known.contains(entry))
                .collect();
            new.sort_unstable_by(|a, b| {
                (&a.0, stream_code(a.1), &a.2).cmp(&(&b.0, stream_code(b.1), &b.2))
            });
            new.dedup();
            new
        };
        if !lexemes.is_empty() {
            sqlx::query(
                "INSERT INTO store_lexicon (lexeme) SELECT * FROM unnest($1::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&lexemes)
            .execute(pool)
            .await
            .map_err(engine("recording terms"))?;
        }
        if !paths.is_empty() {
            let (tenants, streams, keys): (Vec<String>, Vec<i16>, Vec<String>) = paths
                .iter()
                .map(|(tenant, stream, path)| (tenant.clone(), stream_code(*stream), path.clone()))
                .collect();
            sqlx::query(
                "INSERT INTO store_fields (tenant, stream, path) \
                 SELECT * FROM unnest($1::text[], $2::int2[], $3::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&tenants)
            .bind(&streams)
            .bind(&keys)
            .execute(pool)
            .await
            .map_err(engine("recording attribute paths"))?;
        }
        {
            let mut known = lock(&self.lexemes);
            if known.len() + lexemes.len() > MAX_KNOWN_LEXEMES {
                known.clear();
            }
            known.extend(lexemes.drain(..));
        }
        lock(&self.paths).extend(paths.drain(..));
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A key row a replacing event wrote: tenant, stream, id and, if it replaced
/// an event, where that event was (timestamp and arrival).
type Upserted = (String, i16, String, Option<i64>, Option<i64>);

/// The key columns of some events, as arrays for `unnest`.
#[derive(Default)]
struct Keys {
    tenants: Vec<String>,
    streams: Vec<i16>,
    ids: Vec<String>,
    ts: Vec<i64>,
    arrivals: Vec<i64>,
}

impl Keys {
    fn push(&mut self, tenant: &str, stream: i16, id: &str, ts: i64, arrival: i64) {
        self.tenants.push(tenant.to_owned());
        self.streams.push(stream);
        self.ids.push(id.to_owned());
        self.ts.push(ts);
        self.arrivals.push(arrival);
    }
}

/// What a commit records of the queue besides its events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Covers<'a> {
    /// Nothing new: the recorded position and offsets stay.
    Nothing,
    /// The queue up to this position (the embedded queue).
    Position(u64),
    /// These partitions of this topic, up to these next offsets (Kafka).
    Offsets(&'a str, &'a [(u32, u64)]),
}

/// Writes `events` (one per key) and what they cover of the queue in the
/// transaction on `connection`; returns how many events were added (not
/// replaced or skipped). Audit events are numbered in their trails first (see
/// `trail.rs`).
pub(crate) async fn write(
    connection: &mut PgConnection,
    events: Vec<Encoded>,
    covers: Covers<'_>,
) -> Result<u64, StoreError> {
    let (audit, mut events): (Vec<Encoded>, Vec<Encoded>) =
        events.into_iter().partition(|event| event.audit.is_some());
    if !audit.is_empty() {
        events.extend(super::trail::append(connection, audit).await?);
    }
    // The same order in every transaction, so that two of them waiting for
    // each other's keys cannot deadlock.
    events.sort_unstable_by(|a, b| {
        (&a.tenant, stream_code(a.stream), &a.id).cmp(&(&b.tenant, stream_code(b.stream), &b.id))
    });
    let key = |event: &Encoded| {
        (
            event.tenant.clone(),
            stream_code(event.stream),
            event.id.clone(),
        )
    };
    let (mut fresh, mut replacing) = (Keys::default(), Keys::default());
    for event in &events {
        let keys = if event.replace {
            &mut replacing
        } else {
            &mut fresh
        };
        keys.push(
            &event.tenant,
            stream_code(event.stream),
            &event.id,
            event.ts,
            event.arrival,
        );
    }
    let mut written: HashSet<(String, i16, String)> = HashSet::with_capacity(events.len());
    let mut added = 0u64;
    if !fresh.ids.is_empty() {
        let inserted: Vec<(String, i16, String)> = sqlx::query_as(
            "INSERT INTO store_event_ids (tenant, stream, id, ts, arrival) \
             SELECT * FROM unnest($1::text[], $2::int2[], $3::text[], $4::int8[], $5::int8[]) \
             ON CONFLICT DO NOTHING RETURNING tenant, stream, id",
        )
        .bind(&fresh.tenants)
        .bind(&fresh.streams)
        .bind(&fresh.ids)
        .bind(&fresh.ts)
        .bind(&fresh.arrivals)
        .fetch_all(&mut *connection)
        .await
        .map_err(engine("recording event ids"))?;
        added += inserted.len() as u64;
        written.extend(inserted);
    }
    if !replacing.ids.is_empty() {
        let upserted: Vec<Upserted> = sqlx::query_as(
            "INSERT INTO store_event_ids AS k (tenant, stream, id, ts, arrival) \
             SELECT * FROM unnest($1::text[], $2::int2[], $3::text[], $4::int8[], $5::int8[]) \
             ON CONFLICT (tenant, stream, id) DO UPDATE SET ts = excluded.ts, arrival = excluded.arrival, \
                 replaced_ts = k.ts, replaced_arrival = k.arrival \
             RETURNING tenant, stream, id, replaced_ts, replaced_arrival",
        )
        .bind(&replacing.tenants)
        .bind(&replacing.streams)
        .bind(&replacing.ids)
        .bind(&replacing.ts)
        .bind(&replacing.arrivals)
        .fetch_all(&mut *connection)
        .await
        .map_err(engine("recording replaced event ids"))?;
        let mut old = Keys::default();
        for (tenant, stream, id, ts, arrival) in upserted {
            match (ts, arrival) {
                (Some(ts), Some(arrival)) => old.push(&tenant, stream, &id, ts, arrival),
                _ => added += 1,
            }
            written.insert((tenant, stream, id));
        }
        if !old.ids.is_empty() {
            sqlx::query(
                "DELETE FROM store_events e \
                 USING unnest($1::text[], $2::int2[], $3::text[], $4::int8[], $5::int8[]) \
                     AS r(tenant, stream, id, ts, arrival) \
                 WHERE e.tenant = r.tenant AND e.stream = r.stream AND e.ts = r.ts \
                   AND e.arrival = r.arrival AND e.id = r.id",
            )
            .bind(&old.tenants)
            .bind(&old.streams)
            .bind(&old.ids)
            .bind(&old.ts)
            .bind(&old.arrivals)
            .execute(&mut *connection)
            .await
            .map_err(engine("deleting replaced events"))?;
        }
    }
    let mut data = CopyData::new();
    let mut rows = 0;
    for event in &events {
        if written.contains(&key(event)) {
            data.push(&event.row);
            rows += 1;
        }
    }
    if rows > 0 {
        let mut copy = connection
            .copy_in_raw(COPY)
            .await
            .map_err(engine("writing events"))?;
        if let Err(error) = copy.send(data.finish()).await {
            // The connection must leave COPY mode; the transaction is lost anyway.
            let _ = copy.abort("the events could not be sent").await;
            return Err(engine("writing events")(error));
        }
        copy.finish().await.map_err(engine("writing events"))?;
    }
    if added > 0 {
        sqlx::query(
            "INSERT INTO store_counts (shard, events) VALUES (pg_backend_pid() % 16, $1) \
             ON CONFLICT (shard) DO UPDATE SET events = store_counts.events + excluded.events",
        )
        .bind(added as i64)
        .execute(&mut *connection)
        .await
        .map_err(engine("counting events"))?;
    }
    match covers {
        Covers::Nothing => {}
        Covers::Position(position) => {
            sqlx::query("UPDATE store_position SET position = $1")
                .bind(position as i64)
                .execute(&mut *connection)
                .await
                .map_err(engine("recording the queue position"))?;
        }
        Covers::Offsets(topic, next) => record_offsets(connection, topic, next).await?,
    }
    Ok(added)
}

/// Upserts the next offset of each partition, never moving one back: a
/// worker that lost a partition and commits late leaves the newer offset of
/// the partition's new owner in place. Rows are taken in partition order, so
/// two commits over the same partitions cannot deadlock.
async fn record_offsets(
    connection: &mut PgConnection,
    topic: &str,
    next: &[(u32, u64)],
) -> Result<(), StoreError> {
    let mut next = next.to_vec();
    next.sort_unstable();
    let partitions: Vec<i32> = next
        .iter()
        .map(|&(partition, _)| partition as i32)
        .collect();
    let offsets: Vec<i64> = next.iter().map(|&(_, offset)| offset as i64).collect();
    sqlx::query(
        "INSERT INTO queue_offsets (topic, partition, next) \
         SELECT $1, partition, next FROM UNNEST($2::integer[], $3::bigint[]) AS o (partition, next) \
         ON CONFLICT (topic, partition) DO UPDATE SET next = GREATEST(queue_offsets.next, excluded.next)",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *connection)
    .await
    .map_err(engine("recording the queue offsets"))?;
    Ok(())
}
