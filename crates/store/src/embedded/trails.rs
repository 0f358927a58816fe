//! The audit trails of the embedded store: one append-only, verifiable log per
//! tenant under the audit directory, kept in step with the index.
//!
//! Staging an audit event gives it the next sequence number of its tenant and
//! keeps its leaf (the canonical bytes of the event as stored) pending. A commit
//! appends and fsyncs the pending leaves *before* the index commit, whose
//! payload records each trail's size; on open every trail is cut back to that
//! size. So after a crash the trail and the index agree, and the events of an
//! unfinished commit are replayed from the queue with the same numbers.
//! Checkpoints are signed only over committed leaves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audit::{Checkpoint, Hash, SigningKey, TrailStore, VerifyingKey};
use model::Event;

use crate::StoreError;

/// The name checkpoints are signed under.
pub const KEY_NAME: &str = "logbook";
/// The signing key's file in the audit directory.
pub const KEY_FILE: &str = "checkpoint.key";
/// Each tenant's signed checkpoints, one JSON line each, in its trail directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

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

struct TenantTrail {
    store: TrailStore,
    /// Leaves staged since the last commit, in order.
    pending: Vec<Vec<u8>>,
    pending_ids: HashSet<String>,
    /// Leaves covered by an index commit: the most a checkpoint may sign.
    committed: u64,
    checkpoints: Vec<String>,
    last_checkpoint: Option<(u64, Instant)>,
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

fn read_checkpoints(path: &Path) -> Result<Vec<String>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StoreError::Corrupt(format!("{}: {error}", path.display()))),
    };
    #[derive(serde::Deserialize)]
    struct Line {
        note: String,
    }
    let mut notes = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line =
            line.map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))?;
        // A torn last line (a crash while writing) is not a checkpoint.
        if let Ok(Line { note }) = serde_json::from_str(&line) {
            notes.push(note);
        }
    }
    Ok(notes)
}

impl Trails {
    /// Opens every trail under `dir`, cutting each back to the size the last
    /// index commit recorded (`committed`; absent means none).
    pub(crate) fn open(
        dir: &Path,
        committed: &BTreeMap<String, u64>,
        policy: CheckpointPolicy,
    ) -> Result<Trails, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| {
            StoreError::Corrupt(format!("cannot create {}: {error}", dir.display()))
        })?;
        let key =
            SigningKey::load_or_create(&dir.join(KEY_FILE)).map_err(corrupt("signing key"))?;
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
        let entries = std::fs::read_dir(dir)
            .map_err(|error| StoreError::Corrupt(format!("{}: {error}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|error| StoreError::Corrupt(error.to_string()))?;
            if entry.path().is_dir() {
                let tenant = entry.file_name().to_string_lossy().into_owned();
                trails.open_tenant(&tenant, committed.get(&tenant).copied().unwrap_or(0))?;
            }
        }
        for (tenant, size) in committed {
            if *size > 0 && !trails.tenants.contains_key(tenant) {
                return Err(StoreError::Corrupt(format!(
                    "the index covers {size} audit events of {tenant:?} but its trail is missing"
                )));
            }
        }
        Ok(trails)
    }

    fn open_tenant(
        &mut self,
        tenant: &str,
        committed: u64,
    ) -> Result<&mut TenantTrail, StoreError> {
        let dir = tenant_dir(&self.dir, tenant)?;
        let mut store = TrailStore::open(&dir).map_err(corrupt(tenant))?;
        if store.size() < committed {
            return Err(StoreError::Corrupt(format!(
                "the trail of {tenant:?} holds {} events but the index covers {committed}",
                store.size()
            )));
        }
        if store.size() > committed {
            tracing::warn!(
                tenant,
                from = store.size(),
                to = committed,
                "cutting audit events of an unfinished commit; the queue replays them"
            );
            store.truncate(committed).map_err(corrupt(tenant))?;
        }
        let checkpoints: Vec<String> = read_checkpoints(&dir.join(CHECKPOINTS_FILE))?
            .into_iter()
            .filter(|note| {
                Checkpoint::verify(note, &self.verifying).is_ok_and(|c| c.size <= committed)
            })
            .collect();
        let last = checkpoints
            .last()
            .and_then(|note| Checkpoint::verify(note, &self.verifying).ok())
            .map(|checkpoint| (checkpoint.size, Instant::now()));
        Ok(self
            .tenants
            .entry(tenant.to_owned())
            .or_insert(TenantTrail {
                store,
                pending: Vec::new(),
                pending_ids: HashSet::new(),
                committed,
                checkpoints,
                last_checkpoint: last,
            }))
    }

    fn tenant(&mut self, tenant: &str) -> Result<&mut TenantTrail, StoreError> {
        if self.tenants.contains_key(tenant) {
            return self
                .tenants
                .get_mut(tenant)
                .ok_or_else(|| StoreError::Corrupt("trail vanished".to_owned()));
        }
        self.open_tenant(tenant, 0)
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
        event.seq = Some(trail.store.size() + trail.pending.len() as u64);
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
            if !trail.pending.is_empty() {
                trail
                    .store
                    .append(&trail.pending)
                    .map_err(corrupt(tenant))?;
                trail.pending.clear();
                trail.pending_ids.clear();
            }
            sizes.insert(tenant.clone(), trail.store.size());
        }
        Ok(sizes)
    }

    /// The index commit covering `sizes` succeeded.
    pub(crate) fn committed(&mut self, sizes: &BTreeMap<String, u64>) {
        for (tenant, size) in sizes {
            if let Some(trail) = self.tenants.get_mut(tenant) {
                trail.committed = *size;
            }
        }
    }

    /// Signs a checkpoint for every trail the policy says is due at `now`.
    pub(crate) fn checkpoint_due(&mut self, now: Instant) -> Result<(), StoreError> {
        let policy = self.policy;
        for (tenant, trail) in &mut self.tenants {
            let (last_size, last_time) =
                trail.last_checkpoint.unwrap_or((0, now - policy.interval));
            let new = trail.committed.saturating_sub(last_size);
            let due = new > 0
                && (new >= policy.every_events || now.duration_since(last_time) >= policy.interval);
            if !due {
                continue;
            }
            let checkpoint = Checkpoint {
                tenant: tenant.clone(),
                size: trail.committed,
                root: trail.store.root(trail.committed).map_err(corrupt(tenant))?,
                time: unix_now(),
            };
            let note = checkpoint
                .sign(&self.key, KEY_NAME)
                .map_err(|error| StoreError::Corrupt(format!("signing a checkpoint: {error}")))?;
            let path = trail.store.dir().join(CHECKPOINTS_FILE);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))?;
            let line = serde_json::json!({ "note": note }).to_string();
            file.write_all(format!("{line}\n").as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))?;
            trail.checkpoints.push(note);
            trail.last_checkpoint = Some((trail.committed, now));
        }
        Ok(())
    }

    /// The verifier key text of the signing key.
    pub(crate) fn public_key(&self) -> String {
        self.verifying.to_text()
    }

    /// The newest signed checkpoint of a tenant.
    pub(crate) fn latest_checkpoint(&self, tenant: &str) -> Option<String> {
        self.tenants
            .get(tenant)
            .and_then(|trail| trail.checkpoints.last().cloned())
    }

    /// The signed checkpoint of exactly `size`, if one was made.
    pub(crate) fn checkpoint_of_size(&self, tenant: &str, size: u64) -> Option<String> {
        let trail = self.tenants.get(tenant)?;
        trail
            .checkpoints
            .iter()
            .rev()
            .find(|note| Checkpoint::verify(note, &self.verifying).is_ok_and(|c| c.size == size))
            .cloned()
    }

    fn committed_trail(&self, tenant: &str, size: u64) -> Result<&TenantTrail, StoreError> {
        let trail = self.tenants.get(tenant).ok_or_else(|| {
            StoreError::OutOfRange(format!("tenant {tenant:?} has no audit events"))
        })?;
        if size == 0 || size > trail.committed {
            return Err(StoreError::OutOfRange(format!(
                "size must be from 1 to {} (the committed audit events)",
                trail.committed
            )));
        }
        Ok(trail)
    }

    /// The audit path of leaf `seq` in the tree of the first `size` leaves.
    pub(crate) fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let trail = self.committed_trail(tenant, size)?;
        if seq >= size {
            return Err(StoreError::OutOfRange(format!(
                "event {seq} is not in a tree of {size}"
            )));
        }
        trail
            .store
            .inclusion_proof(seq, size)
            .map_err(corrupt(tenant))
    }

    /// The canonical bytes of committed leaves `from..to`.
    pub(crate) fn leaves(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let trail = self.committed_trail(tenant, to)?;
        if from > to {
            return Err(StoreError::OutOfRange(format!("from must be at most {to}")));
        }
        (from..to)
            .map(|seq| trail.store.leaf(seq).map_err(corrupt(tenant)))
            .collect()
    }

    /// The consistency proof between the trees of `from` and `to` leaves.
    pub(crate) fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let trail = self.committed_trail(tenant, to)?;
        if from == 0 || from > to {
            return Err(StoreError::OutOfRange(format!(
                "from must be from 1 to {to}"
            )));
        }
        trail
            .store
            .consistency_proof(from, to)
            .map_err(corrupt(tenant))
    }
}

/// Unix seconds now, for a checkpoint's `time` line.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
