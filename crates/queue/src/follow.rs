//! Following the embedded queue: the writer thread publishes each record to a
//! bounded broadcast after its fsync, so a follower sees records as soon as
//! they are durable and a slow follower loses records rather than holding the
//! writer back.

use std::time::Duration;

use tokio::sync::broadcast;

use crate::{Followed, Follower, Position, QueueError, Record};

/// Records the broadcast keeps for a follower that has not read them yet.
pub(crate) const FOLLOW_CAPACITY: usize = 4096;

/// A follower of the embedded queue.
pub(crate) struct EmbeddedFollower {
    receiver: broadcast::Receiver<Record>,
    order: InOrder,
}

impl EmbeddedFollower {
    /// A follower of the records published after `start`.
    pub(crate) fn new(receiver: broadcast::Receiver<Record>, start: Position) -> Self {
        EmbeddedFollower {
            receiver,
            order: InOrder::new(start),
        }
    }
}

/// Turns records seen in order into [`Followed`] items, reporting a gap in
/// the positions (records that went by unseen) before the record after it.
pub(crate) struct InOrder {
    /// Where the next record should start.
    expected: Position,
    /// A record held back while the gap before it is reported.
    held: Option<Record>,
}

impl InOrder {
    pub(crate) fn new(expected: Position) -> Self {
        InOrder {
            expected,
            held: None,
        }
    }

    /// The record held back by the last gap, now due.
    pub(crate) fn take_held(&mut self) -> Option<Followed> {
        let record = self.held.take()?;
        Some(self.seen(record))
    }

    /// Reports the gap before `record`, if there is one, holding the record for the next call.
    pub(crate) fn seen(&mut self, record: Record) -> Followed {
        if record.position > self.expected {
            let gap = Followed::Missed {
                from: self.expected,
                to: record.position,
            };
            self.expected = record.position;
            self.held = Some(record);
            return gap;
        }
        self.expected = record.next;
        Followed::Record(record)
    }
}

#[async_trait::async_trait]
impl Follower for EmbeddedFollower {
    async fn next(&mut self, wait: Duration) -> Result<Option<Followed>, QueueError> {
        if let Some(due) = self.order.take_held() {
            return Ok(Some(due));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Err(_) => return Ok(None),
                Ok(Ok(record)) => return Ok(Some(self.order.seen(record))),
                // The next record received starts after the gap, which `seen` reports.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(QueueError::Closed),
            }
        }
    }
}
