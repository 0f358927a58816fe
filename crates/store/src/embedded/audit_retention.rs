//! Audit retention in the embedded store: a tenant's oldest audit events are
//! pruned in its trail (their leaf hashes stay, see `trails/expiry.rs`) and
//! replaced in the index by tombstones.
//!
//! A tombstone is a document of the tenant's pruned partition (tenant, U+001F,
//! `pruned`), which no search, stats or histogram reads, keyed by the event's
//! id like the event was, with its `seq` as arrival and `{"id", "seq"}` as
//! document. It answers two questions once the event is gone: the event's
//! sequence number, for its inclusion proof, and whether an event staged again
//! (an outbox drained twice, a queue replaying) is already in the trail, which
//! is never appended to twice.
//!
//! The deletions and tombstones are staged under the writer's lock like any
//! change. When the pipeline has nothing staged they are committed at once;
//! otherwise they go with its next commit, so no event it staged is committed
//! without the queue position it belongs with.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::Instant;

use model::{Stream, Timestamp};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexWriter, TantivyDocument, Term};

use super::schema::partition;
use super::trails::Trails;
use super::{Covers, Inner, engine, id_of};
use crate::StoreError;

/// What separates the pruned partition of a tenant from its name.
const PRUNED_SUFFIX: &str = "\u{1f}pruned";

/// The partition of a tenant's tombstones; tenant names never hold U+001F.
fn pruned_partition(tenant: &str) -> String {
    format!("{tenant}{PRUNED_SUFFIX}")
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The tombstone of a pruned event: the sequence number of its id.
#[derive(serde::Deserialize)]
struct Tombstone {
    seq: u64,
}

impl Inner {
    /// Prunes the tenant's audit events received before `before` (see
    /// [`crate::AuditLog::expire_audit`]); `now` decides whether the trail's
    /// leaves file is due for a rewrite.
    pub(super) fn expire_audit(
        &self,
        tenant: &str,
        before: Timestamp,
        now: Instant,
    ) -> Result<u64, StoreError> {
        let Some(view) = self.trails().view(tenant) else {
            return Ok(0);
        };
        let expiry = view.expiry();
        let _one_at_a_time = expiry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let expired = view.expired(before)?;
        let newly = expired.to - expired.from;
        // As a commit does: no commit, staging or backup snapshot in between.
        let mut writer = self.writer();
        let (staged, rewrite) = {
            let mut trails = self.trails();
            let rewrite = trails.prune(tenant, expired, now)?;
            (
                self.stage_tombstones(&writer, &mut trails, tenant)?,
                rewrite,
            )
        };
        if staged && !self.staged.load(Ordering::Relaxed) {
            self.commit_locked(&mut writer, Covers::Nothing)?;
        }
        // Last, and at best: the pruned events have left every read; a
        // rewrite that fails (a full disk) returns their space at a later one.
        if rewrite && let Err(error) = self.trails().compact(tenant) {
            tracing::warn!(tenant, %error, "cannot rewrite an audit trail without its pruned bodies; will retry");
        }
        Ok(newly)
    }

    /// Stages what the index lacks of the tenant's pruned leaves: the deletion
    /// of their events and their tombstones (replacing any it has, so staging
    /// twice is harmless). Returns whether there was anything to stage. The
    /// caller holds the writer's lock, and `trails` is under the trails' lock.
    pub(super) fn stage_tombstones(
        &self,
        writer: &IndexWriter,
        trails: &mut Trails,
        tenant: &str,
    ) -> Result<bool, StoreError> {
        let Some((from, ids)) = trails.untombed(tenant)? else {
            return Ok(false);
        };
        let to = from + ids.len() as u64;
        let tombs = pruned_partition(tenant);
        for partition in [partition(tenant, Stream::Audit).into_owned(), tombs.clone()] {
            // An audit event's arrival number is its sequence number.
            let seqs = Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(self.fields.arrival, from)),
                Bound::Excluded(Term::from_field_u64(self.fields.arrival, to)),
            ));
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    term_query(Term::from_field_text(self.fields.tenant, &partition)),
                ),
                (Occur::Must, seqs),
            ]);
            writer
                .delete_query(Box::new(query))
                .map_err(engine("deleting pruned audit events"))?;
        }
        for (seq, id) in (from..).zip(&ids) {
            let mut document = TantivyDocument::new();
            document.add_text(self.fields.tenant, &tombs);
            document.add_i64(self.fields.timestamp, 0);
            document.add_u64(self.fields.key, self.keys.key(&tombs, id));
            document.add_u64(self.fields.arrival, seq);
            document.add_bytes(
                self.fields.document,
                serde_json::json!({"id": id, "seq": seq})
                    .to_string()
                    .as_bytes(),
            );
            writer
                .add_document(document)
                .map_err(engine("adding a pruned audit event's tombstone"))?;
        }
        trails.tombstones_staged(tenant, to);
        Ok(true)
    }

    /// The sequence number of the tenant's pruned audit event `id`, from its
    /// committed tombstone.
    pub(super) fn tombstone(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let tombs = pruned_partition(tenant);
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                term_query(Term::from_field_text(self.fields.tenant, &tombs)),
            ),
            (
                Occur::Must,
                term_query(Term::from_field_u64(
                    self.fields.key,
                    self.keys.key(&tombs, id),
                )),
            ),
        ]);
        let searcher = self.reader.searcher();
        let found = searcher
            .search(&query, &tantivy::collector::DocSetCollector)
            .map_err(engine("finding a pruned audit event"))?;
        for address in found {
            let document = self.load(&searcher, address)?;
            // Keys are hashes: the stored id decides.
            if id_of(&document)? == id {
                let tombstone: Tombstone =
                    serde_json::from_str(document.get()).map_err(|error| {
                        StoreError::Corrupt(format!("a pruned audit event's tombstone: {error}"))
                    })?;
                return Ok(Some(tombstone.seq));
            }
        }
        Ok(None)
    }

    /// [`Inner::tombstone`], answered at once for a tenant that pruned nothing.
    pub(super) fn pruned_seq(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError> {
        if self.trails().pruned(tenant) == 0 {
            return Ok(None);
        }
        self.tombstone(tenant, id)
    }
}
