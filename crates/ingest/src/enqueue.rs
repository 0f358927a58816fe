//! The durable hand-off: a batch is acknowledged only once the queue holds it.

use model::DecodedBatch;
use queue::{Position, Queue};

use crate::IngestError;

/// Appends the accepted events of `batch`, keyed by `tenant` (so a
/// partitioned queue keeps one tenant's records in order), and returns once
/// the queue holds them durably: the position just past their record.
pub async fn enqueue(
    queue: &dyn Queue,
    tenant: &str,
    batch: &DecodedBatch,
) -> Result<Position, IngestError> {
    let record = model::encode_record(batch);
    let (_, end) = queue.append_keyed(tenant, record.into()).await?;
    Ok(end)
}
