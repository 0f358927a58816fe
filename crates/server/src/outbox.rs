//! Moves security events from the metadata store's outbox into the queue.
//!
//! Each entry is appended with its id marked as client-chosen, so an entry
//! appended twice (a crash after the append, before the delete) replaces
//! itself in the store instead of appearing twice.

use std::sync::Arc;
use std::time::Duration;

use meta::MetaStore;
use model::{DecodedBatch, Event};
use queue::Queue;
use tokio::sync::watch;

/// How often the outbox is looked at.
const DRAIN_INTERVAL: Duration = Duration::from_millis(200);
/// Entries moved per append.
const DRAIN_BATCH: i64 = 1_000;

/// How often a process that does not hold the outbox lease asks for it.
const LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Drains until `stop` turns true, then drains once more — while this process
/// holds the outbox lease, which one process sharing the database holds at a
/// time.
pub(crate) async fn run(meta: MetaStore, queue: Arc<dyn Queue>, mut stop: watch::Receiver<bool>) {
    let mut lease: Option<meta::Lease> = None;
    loop {
        let stopping = *stop.borrow();
        if let Some(held) = &mut lease
            && !held.holds().await
        {
            tracing::warn!("lost the outbox lease (its database connection died)");
            lease = None;
        }
        if lease.is_none() {
            lease = match meta.try_outbox_lease().await {
                Ok(granted) => granted,
                Err(error) => {
                    tracing::warn!(%error, "cannot ask for the outbox lease; will retry");
                    None
                }
            };
        }
        if lease.is_none() {
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(LEASE_RETRY_INTERVAL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        loop {
            match drain_once(&meta, queue.as_ref()).await {
                Ok(moved) if moved as i64 == DRAIN_BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot move security events into the queue; will retry");
                    break;
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The queue key of the outbox's records.
const OUTBOX_KEY: &str = "logbook-outbox";

/// Moves one batch; returns how many entries it moved.
async fn drain_once(meta: &MetaStore, queue: &dyn Queue) -> anyhow::Result<usize> {
    let entries = meta.outbox_batch(DRAIN_BATCH).await?;
    if entries.is_empty() {
        return Ok(0);
    }
    let mut batch = DecodedBatch::default();
    for entry in &entries {
        match serde_json::from_str::<Event>(&entry.event) {
            Ok(event) => {
                batch.client_ids.push(batch.ids.len() as u32);
                batch.ids.push(event.id.clone());
                serde_json::to_writer(&mut batch.ndjson, &event)?;
                batch.ndjson.push(b'\n');
            }
            // Written by this program, so unreadable only if the database was edited.
            Err(error) => {
                tracing::error!(%error, id = entry.id, "dropping an unreadable outbox entry")
            }
        }
    }
    if !batch.ids.is_empty() {
        // One key for every batch: a partitioned queue keeps them all in one
        // partition, in the order they are drained.
        queue
            .append_keyed(OUTBOX_KEY, model::encode_record(&batch).into())
            .await?;
    }
    let ids: Vec<String> = entries.into_iter().map(|entry| entry.id).collect();
    meta.outbox_remove(&ids).await?;
    Ok(ids.len())
}
