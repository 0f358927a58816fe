//! Retention in the embedded store: deleting a tenant's events older than a
//! cutoff without disturbing what the pipeline has staged.
//!
//! A deletion is a tantivy delete query, applied by the next commit. When the
//! pipeline has nothing staged, that commit is made at once; otherwise the
//! deletion rides the pipeline's own next commit, so no event it staged is
//! ever committed without the queue position it belongs with. A tenant with
//! nothing to expire costs one count and no commit. Segments left empty are
//! dropped by the commit; segments with many deletions are rewritten alone by
//! [`ExpiryMergePolicy`], which returns their space.

use std::sync::atomic::Ordering;

use model::{Stream, Timestamp};
use tantivy::collector::Count;
use tantivy::index::SegmentMeta;
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

use super::compile::older_than_query;
use super::{Covers, Inner, engine};
use crate::StoreError;

/// The share of deleted events past which a segment is rewritten without them.
const REWRITE_DELETED_RATIO: f32 = 0.3;

/// tantivy's log merge policy, plus: every segment whose share of deleted
/// events passes [`REWRITE_DELETED_RATIO`] is rewritten on its own, whatever
/// its size (the log policy never merges segments over 10 M events, and
/// would merge a whole level to drop the deletions of one). Expired events
/// give their space back within a merge, and only their segments are
/// rewritten.
#[derive(Debug, Default)]
pub(super) struct ExpiryMergePolicy {
    levels: LogMergePolicy,
}

impl MergePolicy for ExpiryMergePolicy {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let mut candidates = self.levels.compute_merge_candidates(segments);
        let merging: Vec<_> = candidates
            .iter()
            .flat_map(|candidate| candidate.0.iter().copied())
            .collect();
        for segment in segments {
            let deleted = segment.num_deleted_docs() as f32;
            if segment.max_doc() > 0
                && deleted / segment.max_doc() as f32 > REWRITE_DELETED_RATIO
                && !merging.contains(&segment.id())
            {
                candidates.push(MergeCandidate(vec![segment.id()]));
            }
        }
        candidates
    }
}

impl Inner {
    /// Deletes the events of `tenant`'s `stream` older than `before`.
    pub(super) fn expire(
        &self,
        tenant: &str,
        stream: Stream,
        before: Timestamp,
    ) -> Result<(), StoreError> {
        let expired = || older_than_query(&self.fields, tenant, stream, before.nanos());
        let mut writer = self.writer();
        let committed = self
            .reader
            .searcher()
            .search(&*expired(), &Count)
            .map_err(engine("counting expired events"))?;
        if committed == 0 {
            // Staged events already expired are found by the next check.
            return Ok(());
        }
        writer
            .delete_query(expired())
            .map_err(engine("deleting expired events"))?;
        if self.staged.load(Ordering::Relaxed) {
            // The pipeline's next commit applies the deletion.
            return Ok(());
        }
        self.commit_locked(&mut writer, Covers::Nothing)
    }
}
