//! Audit retention on the trails' side: which of a trail's oldest leaves have
//! expired, pruning them in the trail (their event ids kept as its stubs),
//! which pruned leaves the index has no tombstones for yet, and when
//! `leaves.log` is rewritten without the pruned bodies.
//!
//! The trail prunes first, then the index follows (its commit payload counts
//! the tombstones it holds), so a crash in between leaves an index that lacks
//! tombstones, never one that claims leaves the trail still serves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::Timestamp;

use super::{TrailView, Trails, corrupt, read, write};
use crate::StoreError;

/// `leaves.log` is rewritten once its pruned bytes reach a quarter of the
/// bytes it keeps: each rewrite copies at most four bytes kept per byte it
/// gives back, so pruning costs a bounded multiple of what it prunes.
const REWRITE_SHARE: u64 = 4;

/// …or once pruned bodies have waited this long in it and reach a sixteenth
/// of what it keeps: a trail that prunes a little every day is not copied
/// whole every day (the rewrite holds the store's locks while it copies).
const REWRITE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The share of kept bytes pruned bodies must reach after [`REWRITE_AFTER`].
const REWRITE_SHARE_AFTER_WAIT: u64 = 16;

/// The most leaves one expiry prunes: the ids of the pruned leaves are
/// written in one frame of `pruned.log` and their tombstones staged in one
/// go, so a large backlog is pruned over several rounds, each bounded.
const MAX_PRUNED_PER_CALL: usize = 50_000;

/// The leaves an expiry found: `from..to`, with the ids of their events.
#[derive(Debug)]
pub(crate) struct Expired {
    pub from: u64,
    pub to: u64,
    pub ids: Vec<String>,
}

/// What an expiry reads of each leaf.
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    received_at: Timestamp,
}

/// Whether `leaves.log` is due for a rewrite at `now`.
fn rewrite_due(pruned_bytes: u64, kept_bytes: u64, since: Option<Instant>, now: Instant) -> bool {
    pruned_bytes > 0
        && (pruned_bytes.saturating_mul(REWRITE_SHARE) >= kept_bytes
            || (pruned_bytes.saturating_mul(REWRITE_SHARE_AFTER_WAIT) >= kept_bytes
                && since
                    .is_some_and(|since| now.saturating_duration_since(since) >= REWRITE_AFTER)))
}

impl TrailView {
    /// Held by one expiry of this trail at a time.
    pub(crate) fn expiry(&self) -> Arc<Mutex<()>> {
        Arc::clone(&self.expiry)
    }

    /// The committed leaves after the pruned ones that Logbook received
    /// before `before`, up to the first it received at or after it. Reads the
    /// leaves outside every lock (committed leaves never change); the caller
    /// holds [`TrailView::expiry`], so no other prune moves the start.
    pub(crate) fn expired(&self, before: Timestamp) -> Result<Expired, StoreError> {
        let from = read(&self.store).pruned();
        let mut ids = Vec::new();
        if from < self.committed {
            for (seq, leaf) in (from..).zip(self.leaf_reader(from, self.committed)?) {
                let leaf = leaf.map_err(corrupt("reading leaves"))?;
                let head: Head = serde_json::from_slice(&leaf).map_err(|error| {
                    StoreError::Corrupt(format!(
                        "audit event {seq} in {} has no id or receive time: {error}; run \
                         `logbook verify`",
                        self.dir.display()
                    ))
                })?;
                if head.received_at >= before {
                    break;
                }
                ids.push(head.id);
                if ids.len() == MAX_PRUNED_PER_CALL {
                    break;
                }
            }
        }
        Ok(Expired {
            from,
            to: from + ids.len() as u64,
            ids,
        })
    }
}

impl Trails {
    /// How many leaves of the tenant's trail are pruned (0 without a trail).
    pub(crate) fn pruned(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .map_or(0, |trail| read(&trail.store).pruned())
    }

    /// Prunes the tenant's trail up to `expired.to` (durably: its event ids
    /// go to `pruned.log`); returns whether `leaves.log` is due at `now` for a
    /// rewrite without the pruned bodies ([`Trails::compact`]).
    pub(crate) fn prune(
        &mut self,
        tenant: &str,
        expired: Expired,
        now: Instant,
    ) -> Result<bool, StoreError> {
        let Some(trail) = self.tenants.get_mut(tenant) else {
            return Ok(false);
        };
        let mut store = write(&trail.store);
        let stubs = expired.ids.into_iter().map(String::into_bytes).collect();
        store.prune(expired.to, stubs).map_err(corrupt(tenant))?;
        if store.pruned_bytes() > 0 {
            trail.pruned_since.get_or_insert(now);
        }
        Ok(rewrite_due(
            store.pruned_bytes(),
            store.kept_bytes(),
            trail.pruned_since,
            now,
        ))
    }

    /// Rewrites the tenant's `leaves.log` without its pruned bodies.
    pub(crate) fn compact(&mut self, tenant: &str) -> Result<(), StoreError> {
        let Some(trail) = self.tenants.get_mut(tenant) else {
            return Ok(());
        };
        write(&trail.store).compact().map_err(corrupt(tenant))?;
        trail.pruned_since = None;
        Ok(())
    }

    /// The pruned leaves of the tenant's trail whose tombstones are neither in
    /// the index nor staged for it: the first of them, and their event ids.
    pub(crate) fn untombed(&self, tenant: &str) -> Result<Option<(u64, Vec<String>)>, StoreError> {
        let Some(trail) = self.tenants.get(tenant) else {
            return Ok(None);
        };
        let store = read(&trail.store);
        let from = trail.staged_pruned.unwrap_or(trail.index_pruned);
        if from >= store.pruned() {
            return Ok(None);
        }
        let ids = store
            .pruned_stubs(from, store.pruned())
            .map_err(corrupt(tenant))?
            .into_iter()
            .map(|stub| {
                String::from_utf8(stub).map_err(|_| {
                    StoreError::Corrupt(format!("a pruned event id of {tenant:?} is not UTF-8"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((from, ids)))
    }

    /// Tombstones of the tenant's pruned leaves up to `to` are staged for the
    /// next commit.
    pub(crate) fn tombstones_staged(&mut self, tenant: &str, to: u64) {
        if let Some(trail) = self.tenants.get_mut(tenant) {
            trail.staged_pruned = Some(to);
        }
    }

    /// For the next commit's payload: how many pruned leaves of each trail the
    /// index has tombstones for once it commits. What was staged is taken: if
    /// the commit fails, the next expiry stages it again.
    pub(crate) fn pruned_for_commit(&mut self) -> BTreeMap<String, u64> {
        self.tenants
            .iter_mut()
            .filter_map(|(tenant, trail)| {
                let pruned = trail.staged_pruned.take().unwrap_or(trail.index_pruned);
                (pruned > 0).then(|| (tenant.clone(), pruned))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaves_file_is_rewritten_for_a_quarter_of_its_size_or_after_a_day() {
        let now = Instant::now();
        assert!(!rewrite_due(0, 100, Some(now), now + REWRITE_AFTER));
        assert!(!rewrite_due(24, 100, None, now));
        assert!(rewrite_due(25, 100, None, now));
        assert!(rewrite_due(1, 0, None, now));
        assert!(!rewrite_due(7, 100, Some(now), now + REWRITE_AFTER / 2));
        assert!(rewrite_due(7, 100, Some(now), now + REWRITE_AFTER));
        // A little pruned each day does not copy the whole trail each day.
        assert!(!rewrite_due(1, 100, Some(now), now + REWRITE_AFTER * 3));
    }
}
