//! The audit trails of the embedded store: one append-only, verifiable log per
//! tenant under the audit directory, the source of truth from which the
//! index's audit partition is derived.
//!
//! Staging an audit event gives it the next sequence number of its tenant and
//! keeps its leaf (the canonical bytes of the event as stored) pending. A commit
//! appends and fsyncs the pending leaves *before* the index commit, whose
//! payload records each trail's size. Opening cuts nothing durable (only a torn
//! tail): leaves the index lacks (an unfinished commit, a lost or restored
//! index) are handed back to be re-indexed, and the queue's replay of their
//! events is recognised by id and skipped, so no event is numbered twice.
//! Checkpoints are signed only over committed leaves. Readers work on a
//! [`TrailView`], outside the lock that indexing needs.
//!
//! Audit retention prunes a trail's oldest leaves (see `expiry.rs`): the trail
//! records it first, then the index drops their events and keeps a tombstone
//! (id and seq) for each; the commit payload says how many pruned leaves the
//! index has tombstones for, and opening gives the index what it lacks.

mod expiry;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use audit::{Checkpoint, Hash, LeafReader, SigningKey, TrailStore, VerifyingKey};
use model::Event;

use super::checkpoints::{CHECKPOINTS_FILE, CheckpointLog, CheckpointsView, Signed, sync_dir};
use crate::StoreError;

/// The name checkpoints are signed under.
pub const KEY_NAME: &str = "logbook";
/// The signing key's file in the audit directory.
pub const KEY_FILE: &str = "checkpoint.key";

/// When a tenant's trail gets a new signed checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many new events…
    pub every_events: u64,
    /// …or this long after the previous checkpoint, if there is anything new.
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_events: 1_000,
            interval: Duration::from_secs(5),
        }
    }
}

fn corrupt(context: &str) -> impl Fn(audit::AuditError) -> StoreError + '_ {
    move |error| StoreError::Corrupt(format!("audit trail: {context}: {error}"))
}

/// A poisoned lock is still usable: a trail store refuses writes itself after
/// a write it could not undo.
fn read(store: &RwLock<TrailStore>) -> RwLockReadGuard<'_, TrailStore> {
    store
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(store: &RwLock<TrailStore>) -> RwLockWriteGuard<'_, TrailStore> {
    store
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the index lacks of a tenant's trail: leaves `from..to`, and the
/// tombstones of the pruned leaves `pruned` (whose events it may still hold).
#[derive(Debug)]
pub(crate) struct Missing {
    pub tenant: String,
    pub from: u64,
    pub to: u64,
    pub pruned: Range<u64>,
}

struct TenantTrail {
    dir: PathBuf,
    /// Shared with readers, who hold it only for a proof's few reads.
    store: Arc<RwLock<TrailStore>>,
    /// Leaves staged since the last commit, in order.
    pending: Vec<Vec<u8>>,
    pending_ids: HashSet<String>,
    /// Leaves covered by an index commit: the most a checkpoint may sign.
    committed: u64,
    /// Pruned leaves the last index commit has tombstones for.
    index_pruned: u64,
    /// Pruned leaves whose tombstones are staged for the next commit.
    staged_pruned: Option<u64>,
    /// Held by one expiry of this trail at a time.
    expiry: Arc<Mutex<()>>,
    /// Since when `leaves.log` holds pruned leaves (see `expiry.rs`).
    pruned_since: Option<Instant>,
    checkpoints: CheckpointLog,
    /// When the newest checkpoint was signed (or found on open); none: at once.
    last_checkpoint_at: Option<Instant>,
}

/// What a reader needs of one tenant's trail, taken under the trails' lock
/// and used after it is released: leaves below `committed` never change.
pub(crate) struct TrailView {
    dir: PathBuf,
    store: Arc<RwLock<TrailStore>>,
    committed: u64,
    expiry: Arc<Mutex<()>>,
    checkpoints: CheckpointsView,
}

/// Every tenant's trail, the signing key and the checkpoint policy.
pub(crate) struct Trails {
    dir: PathBuf,
    key: SigningKey,
    verifying: VerifyingKey,
    policy: CheckpointPolicy,
    tenants: HashMap<String, TenantTrail>,
}

/// The trail directory of a tenant; tenant ids are `[a-z0-9-]`, checked here
/// again because they become a path.
fn tenant_dir(dir: &Path, tenant: &str) -> Result<PathBuf, StoreError> {
    let safe = !tenant.is_empty()
        && tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if safe {
        Ok(dir.join(tenant))
    } else {
        Err(StoreError::Corrupt(format!(
            "tenant id {tenant:?} cannot name a trail"
        )))
    }
}

/// Whether a trail directory holds anything signed or to be signed.
fn holds_events(dir: &Path) -> bool {
    ["leaves.log", CHECKPOINTS_FILE]
        .iter()
        .any(|name| std::fs::metadata(dir.join(name)).is_ok_and(|meta| meta.len() > 0))
}

/// The tenants with a trail directory under `dir`.
fn trail_dirs(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| StoreError::Corrupt(format!("{}: {error}", dir.display())))?;
    let mut tenants = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if entry.path().is_dir() {
            tenants.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    tenants.sort();
    Ok(tenants)
}

/// The key that signed the existing trails; a new one only if none exists yet.
fn signing_key(dir: &Path, tenants: &[String]) -> Result<SigningKey, StoreError> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        let signed: Vec<&str> = tenants
            .iter()
            .filter(|tenant| holds_events(&dir.join(tenant)))
            .map(String::as_str)
            .collect();
        if !signed.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the checkpoint signing key {} is missing, but the audit trails of {} exist and \
                 their checkpoints were signed with it. Restore the key file from a backup; \
                 Logbook does not make a new key for existing trails (keys are not rotated)",
                path.display(),
                signed.join(", ")
            )));
        }
    }
    SigningKey::load_or_create(&path).map_err(corrupt("signing key"))
}

impl Trails {
    /// Opens every trail under `dir`. `indexed` is each trail's size in the
    /// last index commit (absent: none), `pruned` how many of its pruned leaves
    /// that commit has tombstones for; what the index lacks is returned, to be
    /// re-indexed. Refuses trails that lack leaves the index or a signed
    /// checkpoint covers, and trails without their signing key.
    pub(crate) fn open(
        dir: &Path,
        indexed: &BTreeMap<String, u64>,
        pruned: &BTreeMap<String, u64>,
        policy: CheckpointPolicy,
    ) -> Result<(Trails, Vec<Missing>), StoreError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|error| {
                StoreError::Corrupt(format!("cannot create {}: {error}", dir.display()))
            })?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let tenants = trail_dirs(dir)?;
        let key = signing_key(dir, &tenants)?;
        let verifying = key
            .verifying_key(KEY_NAME)
            .map_err(|error| StoreError::Corrupt(format!("audit signing key: {error}")))?;
        let mut trails = Trails {
            dir: dir.to_owned(),
            key,
            verifying,
            policy,
            tenants: HashMap::new(),
        };
        let mut missing = Vec::new();
        for tenant in tenants {
            let size = indexed.get(&tenant).copied().unwrap_or(0);
            let tombstones = pruned.get(&tenant).copied().unwrap_or(0);
            missing.extend(trails.open_tenant(&tenant, size, tombstones)?);
        }
        for (tenant, size) in indexed {
            if *size > 0 && !trails.tenants.contains_key(tenant) {
                return Err(StoreError::Corrupt(format!(
                    "the index covers {size} audit events of {tenant:?} but its trail {} is \
                     missing; restore it from a backup",
                    dir.join(tenant).display()
                )));
            }
        }
        Ok((trails, missing))
    }

    /// Opens one trail whose first `indexed` leaves the index holds, with
    /// tombstones for the first `tombstones`; returns what it lacks.
    fn open_tenant(
        &mut self,
        tenant: &str,
        indexed: u64,
        tombstones: u64,
    ) -> Result<Option<Missing>, StoreError> {
        let dir = tenant_dir(&self.dir, tenant)?;
        let store = TrailStore::open(&dir).map_err(corrupt(tenant))?;
        if !store.recovery().is_clean() {
            tracing::warn!(tenant, recovery = ?store.recovery(), "cut the torn tail of an audit trail");
        }
        let size = store.size();
        if size < indexed {
            return Err(StoreError::Corrupt(format!(
                "the trail of {tenant:?} holds {size} events but the index covers {indexed}: \
                 events are missing from {}; restore it from a backup and run `logbook verify`",
                dir.display()
            )));
        }
        let pruned = store.pruned();
        if pruned < tombstones {
            return Err(StoreError::Corrupt(format!(
                "the index has pruned {tombstones} audit events of {tenant:?} but its trail in \
                 {} only {pruned}: the trail is older than the index; restore both from the \
                 same backup",
                dir.display()
            )));
        }
        let checkpoints = CheckpointLog::open(&dir)?;
        if let Some(latest) = checkpoints.latest() {
            self.check_latest(tenant, &dir, &store, latest)?;
        }
        let last_checkpoint_at = checkpoints.latest().map(|_| Instant::now());
        let pruned_since = (store.pruned_bytes() > 0).then(Instant::now);
        self.tenants.insert(
            tenant.to_owned(),
            TenantTrail {
                dir,
                store: Arc::new(RwLock::new(store)),
                pending: Vec::new(),
                pending_ids: HashSet::new(),
                committed: size,
                index_pruned: tombstones,
                staged_pruned: None,
                expiry: Arc::default(),
                pruned_since,
                checkpoints,
                last_checkpoint_at,
            },
        );
        // Pruned leaves have no events to index again, only tombstones.
        let from = indexed.max(pruned);
        Ok((size > from || pruned > tombstones).then(|| Missing {
            tenant: tenant.to_owned(),
            from,
            to: size,
            pruned: tombstones..pruned,
        }))
    }

    /// The newest checkpoint must verify and sign a prefix of the trail: new
    /// leaves are never appended to a trail that lost signed ones or differs
    /// from what was signed (that would fork it).
    fn check_latest(
        &self,
        tenant: &str,
        dir: &Path,
        store: &TrailStore,
        latest: &Signed,
    ) -> Result<(), StoreError> {
        let checkpoint = Checkpoint::verify(&latest.note, &self.verifying).map_err(|error| {
            StoreError::Corrupt(format!(
                "the newest checkpoint in {} does not verify with {} ({error}): the key or the \
                 checkpoints were replaced; restore them from a backup",
                dir.join(CHECKPOINTS_FILE).display(),
                self.dir.join(KEY_FILE).display()
            ))
        })?;
        if checkpoint.size > store.size() {
            return Err(StoreError::Corrupt(format!(
                "the trail of {tenant:?} holds {} events but a checkpoint signed {}: signed \
                 events are missing from {}; restore it from a backup (`logbook verify` shows \
                 what is missing)",
                store.size(),
                checkpoint.size,
                dir.display()
            )));
        }
        if store.root(checkpoint.size).map_err(corrupt(tenant))? != checkpoint.root {
            return Err(StoreError::Corrupt(format!(
                "the trail in {} does not match its newest signed checkpoint (size {}); run \
                 `logbook verify` to find the altered events and restore them from a backup",
                dir.display(),
                checkpoint.size
            )));
        }
        Ok(())
    }

    fn tenant(&mut self, tenant: &str) -> Result<&mut TenantTrail, StoreError> {
        if !self.tenants.contains_key(tenant) && self.open_tenant(tenant, 0, 0)?.is_some() {
            return Err(StoreError::Corrupt(format!(
                "the trail of {tenant:?} appeared while the server was running; restart to \
                 index it"
            )));
        }
        self.tenants
            .get_mut(tenant)
            .ok_or_else(|| StoreError::Corrupt("trail vanished".to_owned()))
    }

    /// The verifier key of the signing key.
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Whether an event with this id is staged and not yet committed.
    pub(crate) fn is_pending(&self, tenant: &str, id: &str) -> bool {
        self.tenants
            .get(tenant)
            .is_some_and(|trail| trail.pending_ids.contains(id))
    }

    /// Gives an audit event its sequence number and keeps its leaf pending;
    /// returns the event's JSON as stored, which is its canonical form: what
    /// the API returns is exactly the leaf's bytes.
    pub(crate) fn assign(&mut self, event: &mut Event) -> Result<String, StoreError> {
        let trail = self.tenant(&event.tenant)?;
        event.seq = Some(read(&trail.store).size() + trail.pending.len() as u64);
        let value = serde_json::to_value(&*event).map_err(|error| {
            StoreError::Corrupt(format!("an audit event does not serialise: {error}"))
        })?;
        let leaf = audit::canonical_json(&value);
        let json = String::from_utf8(leaf.clone())
            .map_err(|_| StoreError::Corrupt("canonical JSON is not UTF-8".to_owned()))?;
        trail.pending.push(leaf);
        trail.pending_ids.insert(event.id.clone());
        Ok(json)
    }

    /// Appends and fsyncs every pending leaf; returns every trail's size for the
    /// index commit's payload.
    pub(crate) fn flush(&mut self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut sizes = BTreeMap::new();
        for (tenant, trail) in &mut self.tenants {
            let mut store = write(&trail.store);
            if !trail.pending.is_empty() {
                store.append(&trail.pending).map_err(corrupt(tenant))?;
                trail.pending.clear();
                trail.pending_ids.clear();
            }
            sizes.insert(tenant.clone(), store.size());
        }
        Ok(sizes)
    }

    /// The index commit covering `sizes`, with tombstones for the first
    /// `pruned` leaves of each trail, succeeded.
    pub(crate) fn committed(
        &mut self,
        sizes: &BTreeMap<String, u64>,
        pruned: &BTreeMap<String, u64>,
    ) {
        for (tenant, size) in sizes {
            if let Some(trail) = self.tenants.get_mut(tenant) {
                trail.committed = *size;
            }
        }
        for (tenant, pruned) in pruned {
            if let Some(trail) = self.tenants.get_mut(tenant) {
                trail.index_pruned = *pruned;
            }
        }
    }

    /// Signs a checkpoint for every trail the policy says is due at `now`.
    pub(crate) fn checkpoint_due(&mut self, now: Instant) -> Result<(), StoreError> {
        let policy = self.policy;
        for (tenant, trail) in &mut self.tenants {
            let last_size = trail.checkpoints.latest().map_or(0, |signed| signed.size);
            let new = trail.committed.saturating_sub(last_size);
            let due = new > 0
                && (new >= policy.every_events
                    || trail
                        .last_checkpoint_at
                        .is_none_or(|at| now.duration_since(at) >= policy.interval));
            if !due {
                continue;
            }
            let checkpoint = Checkpoint {
                tenant: tenant.clone(),
                size: trail.committed,
                root: read(&trail.store)
                    .root(trail.committed)
                    .map_err(corrupt(tenant))?,
                time: unix_now(),
            };
            let note = checkpoint
                .sign(&self.key, KEY_NAME)
                .map_err(|error| StoreError::Corrupt(format!("signing a checkpoint: {error}")))?;
            trail.checkpoints.append(Signed {
                size: checkpoint.size,
                note,
            })?;
            trail.last_checkpoint_at = Some(now);
        }
        Ok(())
    }

    /// What a reader needs of a tenant's trail, if it has one.
    pub(crate) fn view(&self, tenant: &str) -> Option<TrailView> {
        self.tenants.get(tenant).map(|trail| TrailView {
            dir: trail.dir.clone(),
            store: Arc::clone(&trail.store),
            committed: trail.committed,
            expiry: Arc::clone(&trail.expiry),
            checkpoints: trail.checkpoints.view(),
        })
    }
}

impl TrailView {
    /// The newest signed checkpoint.
    pub(crate) fn latest_checkpoint(&self) -> Option<String> {
        self.checkpoints.latest()
    }

    /// The signed checkpoint of exactly `size`, if one was made.
    pub(crate) fn checkpoint_of_size(
        &self,
        size: u64,
        key: &VerifyingKey,
    ) -> Result<Option<String>, StoreError> {
        self.checkpoints.of_size(size, key)
    }

    fn check_committed(&self, size: u64) -> Result<(), StoreError> {
        if size == 0 || size > self.committed {
            return Err(StoreError::OutOfRange(format!(
                "size must be from 1 to {} (the committed audit events)",
                self.committed
            )));
        }
        Ok(())
    }

    /// The audit path of leaf `seq` in the tree of the first `size` leaves.
    pub(crate) fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_committed(size)?;
        if seq >= size {
            return Err(StoreError::OutOfRange(format!(
                "event {seq} is not in a tree of {size}"
            )));
        }
        read(&self.store)
            .inclusion_proof(seq, size)
            .map_err(corrupt("inclusion proof"))
    }

    /// The consistency proof between the trees of `from` and `to` leaves.
    pub(crate) fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_committed(to)?;
        if from == 0 || from > to {
            return Err(StoreError::OutOfRange(format!(
                "from must be from 1 to {to}"
            )));
        }
        read(&self.store)
            .consistency_proof(from, to)
            .map_err(corrupt("consistency proof"))
    }

    /// The canonical bytes of committed leaves `from..to`; none of them may be
    /// pruned.
    pub(crate) fn leaves(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.check_committed(to)?;
        if from > to {
            return Err(StoreError::OutOfRange(format!("from must be at most {to}")));
        }
        let leaves = self
            .leaf_reader(from, to)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt("reading leaves"))?;
        if leaves.len() as u64 != to - from {
            return Err(StoreError::Corrupt(format!(
                "{} holds {} of the leaves {from}..{to}",
                self.dir.display(),
                leaves.len()
            )));
        }
        Ok(leaves)
    }

    /// The stored leaf hashes of committed leaves `from..to`: the ones the tree, and
    /// so every checkpoint, was built from.
    pub(crate) fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_committed(to)?;
        if from > to {
            return Err(StoreError::OutOfRange(format!("from must be at most {to}")));
        }
        read(&self.store)
            .leaf_hashes(from, to)
            .map_err(corrupt("reading leaf hashes"))
    }

    /// Leaves `from..to` read from the file, without holding the store's lock
    /// while reading. The caller checks that `to` is at most `committed`.
    /// Pruned leaves are `OutOfRange`.
    pub(crate) fn leaf_reader(&self, from: u64, to: u64) -> Result<LeafReader, StoreError> {
        // A rewrite renames a new file in only after pruning more, so a second
        // span finds the file it names (a third try is for a second rewrite).
        let mut tries = 0;
        loop {
            tries += 1;
            let span = read(&self.store)
                .frame_span(from, to)
                .map_err(|error| match error {
                    audit::AuditError::Pruned { pruned, .. } => StoreError::OutOfRange(format!(
                        "events 0..{pruned} of this trail are pruned: their bodies are gone, their \
                     leaf hashes kept"
                    )),
                    error => corrupt("reading leaves")(error),
                })?;
            match audit::read_leaves_in(&self.dir, span) {
                // Rewritten without pruned leaves since the span was taken: again.
                Err(audit::AuditError::Rewritten { .. }) if tries < 3 => continue,
                read => return read.map_err(corrupt("reading leaves")),
            }
        }
    }
}

/// Unix seconds now, for a checkpoint's `time` line.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
