//! Rebuilding the index's audit partition from the trails: the trail is the
//! source of truth, and its leaves are the canonical JSON of the stored
//! events, so an index that lacks some (lost, restored from an older backup,
//! or behind after a crash between the trail's append and the index commit)
//! gets them back as they were, with the same sequence numbers. Pruned leaves
//! have no event to give back: the index gets their tombstones instead, from
//! the event ids the trail kept.

use model::{Event, QueuedEvent, Stream};

use super::trails::Missing;
use super::{Covers, Inner, engine};
use crate::StoreError;

impl Inner {
    /// Indexes the `missing` leaves of each trail and commits them together
    /// with `position`, the queue position the index already covered.
    pub(super) fn reindex(
        &self,
        missing: &[Missing],
        position: Option<u64>,
    ) -> Result<(), StoreError> {
        for gap in missing {
            if !gap.pruned.is_empty() {
                tracing::warn!(
                    tenant = gap.tenant,
                    from = gap.pruned.start,
                    to = gap.pruned.end,
                    "the index lacks the tombstones of pruned audit events; adding them"
                );
                let writer = self.writer();
                let mut trails = self.trails();
                self.stage_tombstones(&writer, &mut trails, &gap.tenant)?;
            }
            if gap.from == gap.to {
                continue;
            }
            tracing::warn!(
                tenant = gap.tenant,
                from = gap.from,
                to = gap.to,
                "the index lacks audit events its trail holds; re-indexing them from the trail"
            );
            let view = self.view(&gap.tenant)?;
            let writer = self.writer();
            let mut seq = gap.from;
            for leaf in view.leaf_reader(gap.from, gap.to)? {
                let leaf = leaf.map_err(|error| {
                    StoreError::Corrupt(format!("audit trail of {:?}: {error}", gap.tenant))
                })?;
                let event = leaf_event(&gap.tenant, seq, &leaf)?;
                let json = String::from_utf8(leaf).map_err(|_| unreadable(&gap.tenant, seq))?;
                writer
                    .add_document(self.document(QueuedEvent {
                        event,
                        json,
                        replace_existing: false,
                        // An audit event's arrival order is its sequence number.
                        arrival: seq,
                    }))
                    .map_err(engine("re-indexing an audit event"))?;
                seq += 1;
            }
            if seq != gap.to {
                return Err(StoreError::Corrupt(format!(
                    "the trail of {:?} ends at {seq} while reading it up to {}",
                    gap.tenant, gap.to
                )));
            }
        }
        self.commit(position.map_or(Covers::Nothing, Covers::Position))
    }
}

/// The event a leaf holds, which must be the audit event `seq` of `tenant`.
fn leaf_event(tenant: &str, seq: u64, leaf: &[u8]) -> Result<Event, StoreError> {
    let event: Event = serde_json::from_slice(leaf).map_err(|_| unreadable(tenant, seq))?;
    if event.tenant != tenant || event.stream != Stream::Audit || event.seq != Some(seq) {
        return Err(unreadable(tenant, seq));
    }
    Ok(event)
}

fn unreadable(tenant: &str, seq: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "audit event {seq} of {tenant:?} is not the event its trail position says, so the \
         index cannot be rebuilt from it; run `logbook verify` and restore the trail from a \
         backup"
    ))
}
