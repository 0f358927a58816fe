//! `logbook verify --store-url`: every trail of a PostgreSQL store, read
//! straight from the database (read-only, in chunks) and checked like a data
//! directory's, trusting nothing but the pinned public key. Pruned leaves
//! (no body) are checked by their recorded hashes.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use audit::{Checkpoint, Expectations, Hash, Leaf, VerifyReport, VerifyingKey};
use store::postgres::TrailSource;

/// Leaves fetched per query.
const CHUNK: u32 = 10_000;
/// Chunks fetched ahead of the verifier.
const AHEAD: usize = 2;

/// Verifies the trails of `tenants` (all when `None`); fails when any is broken.
pub(super) async fn verify_store(
    url: &str,
    only: Option<String>,
    key: VerifyingKey,
    trusted: Option<Checkpoint>,
) -> anyhow::Result<()> {
    let source = TrailSource::connect(url)
        .await
        .context("cannot read the audit trails from the database")?;
    let mut tenants = source.tenants().await?;
    if let Some(only) = &only {
        anyhow::ensure!(tenants.contains(only), "tenant {only:?} has no audit trail");
        tenants.retain(|tenant| tenant == only);
    }
    let (key, trusted) = (Arc::new(key), Arc::new(trusted));
    let mut broken = 0;
    for tenant in &tenants {
        let report = verify_tenant(&source, tenant, &key, &trusted).await?;
        println!("{tenant}: {report}");
        if !report.is_verified() {
            broken += 1;
        }
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} of {} audit trails failed verification",
        tenants.len()
    );
    Ok(())
}

/// Streams one tenant's leaves from the database into the verifier.
async fn verify_tenant(
    source: &TrailSource,
    tenant: &str,
    key: &Arc<VerifyingKey>,
    trusted: &Arc<Option<Checkpoint>>,
) -> anyhow::Result<VerifyReport> {
    let notes = source.checkpoints(tenant).await?;
    // The recorded hashes are not trusted: they only point at the first
    // altered leaf when their own root is the signed one (see `Expectations`).
    let hashes: Arc<Mutex<Vec<Option<Hash>>>> = Arc::default();
    let (sender, leaves) = std::sync::mpsc::sync_channel::<Leaf>(CHUNK as usize * AHEAD);
    let fetch = {
        let (source, tenant, hashes) = (source.clone(), tenant.to_owned(), Arc::clone(&hashes));
        tokio::spawn(async move {
            let mut from = 0u64;
            loop {
                let chunk = source.leaves(&tenant, from, CHUNK).await?;
                let count = chunk.len();
                for (leaf, hash) in chunk {
                    let hash: Option<Hash> = hash.try_into().ok();
                    hashes
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(hash);
                    // A pruned leaf is checked by its recorded hash; one without
                    // a usable hash has nothing to be checked by (altered).
                    let leaf = match (leaf, hash) {
                        (Some(bytes), _) => Leaf::Body(bytes),
                        (None, Some(hash)) => Leaf::Pruned(hash),
                        (None, None) => Leaf::Body(Vec::new()),
                    };
                    if sender.send(leaf).is_err() {
                        // The verifier stopped early (the trail is broken).
                        return Ok::<(), store::StoreError>(());
                    }
                }
                if count < CHUNK as usize {
                    return Ok(());
                }
                from += count as u64;
            }
        })
    };
    let (tenant, key, trusted) = (tenant.to_owned(), Arc::clone(key), Arc::clone(trusted));
    let report = tokio::task::spawn_blocking(move || {
        let stored = |seq: u64| -> Option<Hash> {
            let hashes = hashes.lock().unwrap_or_else(PoisonError::into_inner);
            hashes.get(usize::try_from(seq).ok()?).copied().flatten()
        };
        let expect = Expectations {
            key: &key,
            tenant: &tenant,
            trusted: (*trusted).as_ref(),
            signed_only: false,
            stored_hashes: Some(&stored),
        };
        audit::verify_trail(leaves.into_iter().map(Ok), &notes, &expect, &mut |_| {})
    })
    .await
    .context("the verification thread failed")?;
    // A database error must not pass for a trail that ends early.
    fetch
        .await
        .context("the reading task failed")?
        .context("cannot read the audit leaves")?;
    Ok(report?)
}
