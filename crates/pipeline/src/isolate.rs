//! Poison isolation: when the store refuses a commit because of what was
//! staged ([`StoreError::Rejected`], after which it has dropped the staged
//! events), the worker finds the events it refuses without losing or skipping
//! the others.
//!
//! The events of the records read since the last commit are staged again in
//! halves, and a refused half is halved again, down to single events; every
//! part the store takes is committed. A single event the store still refuses
//! is tried up to `max_attempts` times in all, with growing pauses, then
//! becomes a dead letter with its error, attempts and times.
//!
//! The commits of the parts record no new queue position nor partition
//! offsets (they keep the last complete commit's), so a crash meanwhile replays every record of the batch.
//! Every event staged here replaces a stored copy with its id, so that replay
//! does not store the parts already committed twice when it runs into the
//! refusal again and isolates anew.

use model::{QueuedEvent, Timestamp};
use store::{DeadLetter, dead_letters::Failure};
use tokio::sync::watch;

use crate::telemetry::DeadLetterReason;
use crate::{Backoff, Committed, Mark, PipelineError, Staged, Worker, pause_unless_stopped};

/// An event to store again, with the queue position of its record.
pub(crate) struct Pending {
    record: u64,
    pub(crate) event: QueuedEvent,
}

impl Worker {
    /// Stores the events of the refused batch part by part; returns how many
    /// became dead letters.
    pub(crate) async fn isolate(
        &mut self,
        reason: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<u64, PipelineError> {
        let refused_at = Timestamp::now();
        let events = self.events_again();
        tracing::warn!(
            %reason,
            events = events.len(),
            "the store refused a batch; storing it in parts to isolate what it refuses"
        );
        let hold = self.hold();
        let mut dead = 0;
        // Parts still to store, the next one last; each part is in queue order.
        let mut parts = match events.len() {
            0 => Vec::new(),
            1 => {
                // The batch was this one event: its first attempt failed.
                let failure = Failure {
                    error: reason,
                    attempts: 1,
                    first_failed_at: refused_at,
                    last_failed_at: refused_at,
                };
                let single = events.into_iter().next();
                if let Some(single) = single
                    && !self.settle(single, Some(failure), &hold, shutdown).await?
                {
                    dead += 1;
                }
                Vec::new()
            }
            _ => halves(events),
        };
        while let Some(part) = parts.pop() {
            if part.len() == 1 {
                if let Some(single) = part.into_iter().next()
                    && !self.settle(single, None, &hold, shutdown).await?
                {
                    dead += 1;
                }
                continue;
            }
            let staged: Vec<QueuedEvent> =
                part.iter().map(|pending| pending.event.clone()).collect();
            self.store.stage(staged.clone()).await?;
            if let Committed::Refused(_) = self
                .commit_staged(&hold, Staged::These(staged), shutdown)
                .await?
            {
                parts.extend(halves(part));
            }
        }
        Ok(dead)
    }

    /// The events of the records read since the last commit, decoded again
    /// from their payloads, each marked to replace a stored copy.
    pub(crate) fn events_again(&self) -> Vec<Pending> {
        let mut events = Vec::new();
        for record in &self.readable {
            // Decoding is deterministic: these records decoded when they were read.
            let Ok(decoded) = model::decode_record(&record.payload, record.position.0) else {
                continue;
            };
            events.extend(decoded.into_iter().map(|mut event| {
                event.replace_existing = true;
                Pending {
                    record: record.position.0,
                    event,
                }
            }));
        }
        events
    }

    /// Stores one event on its own, trying until `max_attempts` tries failed
    /// in all (`failed` counts those already made); then keeps it as a dead
    /// letter. Returns whether it was stored.
    async fn settle(
        &mut self,
        single: Pending,
        mut failed: Option<Failure>,
        hold: &Mark,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, PipelineError> {
        let mut backoff = Backoff::default();
        let failure = loop {
            if let Some(failure) = failed.take_if(|failure| failure.attempts >= self.max_attempts) {
                break failure;
            }
            if failed.is_some() {
                pause_unless_stopped(backoff.next_pause(), shutdown).await;
            }
            self.store.stage(vec![single.event.clone()]).await?;
            let staged = Staged::These(vec![single.event.clone()]);
            match self.commit_staged(hold, staged, shutdown).await? {
                Committed::Stored => return Ok(true),
                Committed::Refused(error) => {
                    let now = Timestamp::now();
                    failed = Some(match failed {
                        Some(failure) => Failure {
                            error,
                            attempts: failure.attempts + 1,
                            last_failed_at: now,
                            ..failure
                        },
                        None => Failure {
                            error,
                            attempts: 1,
                            first_failed_at: now,
                            last_failed_at: now,
                        },
                    });
                }
            }
        };
        let letter = DeadLetter::for_event(&single.event, single.record, failure);
        tracing::error!(
            dead_letter = letter.info.id,
            tenant = single.event.event.tenant,
            id = single.event.event.id,
            attempts = letter.info.attempts,
            error = letter.info.error,
            "the store refused an event on its own; it became a dead letter"
        );
        self.keep(letter, DeadLetterReason::Refused, shutdown)
            .await?;
        Ok(false)
    }
}

/// Splits a part in two, as parts to push: the second half first, so the
/// first half is taken next and the queue order is kept.
fn halves(mut part: Vec<Pending>) -> Vec<Vec<Pending>> {
    let second = part.split_off(part.len() / 2);
    vec![second, part]
}
