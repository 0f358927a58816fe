//! Retention in the embedded store: deleting a tenant's events older than a
//! cutoff without disturbing what the pipeline has staged.
//!
//! A deletion is a tantivy delete query, applied by the next commit. When the
//! pipeline has nothing staged, that commit is made at once; otherwise the
//! deletion rides the pipeline's own next commit, so no event it staged is
//! ever committed without the queue position it belongs with. Segments left
//! empty are dropped by the commit; segments with many deletions are rewritten
//! by the merge policy (see [`merge_policy`]), which returns their space.

use std::sync::atomic::Ordering;

use model::{Stream, Timestamp};
use tantivy::indexer::LogMergePolicy;

use super::compile::older_than_query;
use super::{Covers, Inner, engine};
use crate::StoreError;

/// The share of deleted events past which a segment is rewritten without them.
const REWRITE_DELETED_RATIO: f32 = 0.3;

/// tantivy's log merge policy, except that a segment whose share of deleted
/// events passes [`REWRITE_DELETED_RATIO`] is merged (rewritten) at its level
/// even when the level is not full: expired events give their space back
/// within a merge, not whenever the level next fills.
pub(super) fn merge_policy() -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(REWRITE_DELETED_RATIO);
    policy
}

impl Inner {
    /// Deletes the events of `tenant`'s `stream` older than `before`.
    pub(super) fn expire(
        &self,
        tenant: &str,
        stream: Stream,
        before: Timestamp,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer();
        writer
            .delete_query(older_than_query(
                &self.fields,
                tenant,
                stream,
                before.nanos(),
            ))
            .map_err(engine("deleting expired events"))?;
        if self.staged.load(Ordering::Relaxed) {
            // The pipeline's next commit applies the deletion.
            return Ok(());
        }
        self.commit_locked(&mut writer, Covers::Nothing)
    }
}
