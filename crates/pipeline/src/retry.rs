//! Refused batches over a queue with a retry topology (RabbitMQ's delay
//! queues): the records of a batch the store refused that have retries left
//! go back through the queue, to be tried again after a delay, instead of
//! being isolated at once; the others stay for isolation (`isolate.rs`).
//!
//! Attempts count refusals, not outages: while the store is unavailable the
//! commit is retried in place with growing pauses and the records stay
//! unacknowledged (`commit_staged`), sending nothing anywhere. A record that
//! used every retry is isolated like any refused record over a queue without
//! retries, so a poison event still ends as a dead letter and the rest of its
//! record is stored; a refusal that goes away by itself (a transient
//! constraint, a store being migrated) costs a delay instead of a dead letter.

use std::collections::HashSet;

use crate::Worker;
use crate::telemetry::{self, Retried};

impl Worker {
    /// Sends the records of a refused batch that have retries left through
    /// the queue's retry topology, and forgets them here (the queue
    /// acknowledged them). If the queue has no retry topology or cannot take
    /// them now, every record stays for isolation.
    pub(crate) async fn retry_refused(&mut self, reason: &str) {
        let stages = self.consumer.retry_stages();
        if stages == 0 {
            return;
        }
        let retry: Vec<_> = self
            .readable
            .iter()
            .filter(|record| record.attempts < stages)
            .cloned()
            .collect();
        if retry.is_empty() {
            return;
        }
        if let Err(error) = self.consumer.retry(&retry).await {
            tracing::warn!(
                %error,
                %reason,
                "cannot send refused records to the retry queues; isolating their events now"
            );
            return;
        }
        let sent: HashSet<&str> = retry
            .iter()
            .filter_map(|record| record.receipt.as_deref())
            .collect();
        let gone = |record: &queue::Record| {
            record
                .receipt
                .as_deref()
                .is_some_and(|receipt| sent.contains(receipt))
        };
        self.readable.retain(|record| !gone(record));
        self.unacked.retain(|record| !gone(record));
        let events: u64 = retry
            .iter()
            .map(|record| {
                model::decode_record(&record.payload, record.position.0)
                    .map_or(0, |events| events.len() as u64)
            })
            .sum();
        self.staged = self.staged.saturating_sub(events);
        self.progress
            .send_modify(|p| p.retried_records += retry.len() as u64);
        for _ in &retry {
            telemetry::retried(Retried::Refused);
        }
        tracing::warn!(
            %reason,
            records = retry.len(),
            events,
            "the store refused a batch; its records go through the queue's retry queues"
        );
    }
}
