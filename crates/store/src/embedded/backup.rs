//! A backup's view of the embedded store: the committed index and every
//! audit trail, hard-linked into a staging directory while no commit can
//! happen, so the copy is the state of one commit.
//!
//! Holding the writer's and the trails' locks stops commits, staging and
//! checkpoint signing (ingest goes on: it only appends to the queue). In that
//! moment the files of the committed segments are linked under tantivy's meta
//! lock, which its garbage collector takes before deleting what a merge made
//! obsolete, and `meta.json` is written from the metas those files belong to,
//! with its payload (the queue position and trail sizes the commit covers).
//! Trail files only grow, or are replaced whole by a rename, so a link and the
//! length it had in that moment are a stable copy of what the commit counts.
//! The caller's `during` runs in the same moment, for the queue's snapshot:
//! the queue then holds every record from the committed position on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tantivy::Directory as _;
use tantivy::directory::META_LOCK;

use super::{EmbeddedStore, engine};
use crate::StoreError;

/// A file linked or written for a backup.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// Its path relative to the data directory, `/`-separated (`index/…`, `audit/…`).
    pub path: String,
    /// Where it is in the staging directory.
    pub file: PathBuf,
    /// How many of its first bytes belong to the snapshot.
    pub bytes: u64,
}

/// What the store's part of a snapshot holds.
#[derive(Debug)]
pub struct StoreSnapshot {
    pub files: Vec<StagedFile>,
    /// The queue position the copied commit covers (none before the first).
    pub queue_position: Option<u64>,
}

fn failed(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let message = format!("{context} {}", path.display());
    move |error| StoreError::Corrupt(format!("{message}: {error}"))
}

impl EmbeddedStore {
    /// Links the last commit of the index (into `staging/index`) and every
    /// audit trail under `audit_dir` with the signing key (into
    /// `staging/audit`) while no commit can happen, and runs `during` in that
    /// same moment. `staging` must be on the data directory's file system.
    /// Blocking; takes milliseconds, during which the worker waits.
    pub fn snapshot<T>(
        &self,
        audit_dir: &Path,
        staging: &Path,
        during: impl FnOnce() -> T,
    ) -> Result<(StoreSnapshot, T), StoreError> {
        let inner = &self.inner;
        let _writer = inner.writer();
        let _trails = inner.trails();
        let mut files = Vec::new();
        let queue_position = self.link_index(&staging.join("index"), &mut files)?;
        link_trails(audit_dir, &staging.join("audit"), &mut files)?;
        let during = during();
        Ok((
            StoreSnapshot {
                files,
                queue_position,
            },
            during,
        ))
    }

    /// Links the committed segments' files and the event-key secret, and
    /// writes `meta.json` and `.managed.json` for them; returns the committed
    /// queue position.
    fn link_index(
        &self,
        staging: &Path,
        files: &mut Vec<StagedFile>,
    ) -> Result<Option<u64>, StoreError> {
        let inner = &self.inner;
        create_dir(staging)?;
        // tantivy deletes obsolete files only while holding this lock.
        let _gc = inner
            .index
            .directory()
            .acquire_lock(&META_LOCK)
            .map_err(|error| {
                StoreError::Corrupt(format!("cannot take the index's meta lock: {error}"))
            })?;
        let metas = inner
            .index
            .load_metas()
            .map_err(engine("reading the last commit"))?;
        let segment_files: BTreeSet<PathBuf> = metas.list_segment_files().into_iter().collect();
        let mut linked = Vec::new();
        let mut present = Vec::new();
        for name in &segment_files {
            // The list names every file a segment may have (deletes, a
            // temporary store); with the meta lock held, a missing one is one
            // the segment does not have.
            match link(&inner.dir.join(name), &staging.join(name)) {
                Ok(file) => {
                    linked.push(file);
                    present.push(name);
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(link_failed(&inner.dir.join(name), error)),
            }
        }
        let secret = inner.dir.join(super::keys::SECRET_FILE);
        linked.push(
            link(&secret, &staging.join(super::keys::SECRET_FILE))
                .map_err(|error| link_failed(&secret, error))?,
        );
        let mut meta = serde_json::to_vec_pretty(&metas).map_err(|error| {
            StoreError::Corrupt(format!("cannot write the index's metas: {error}"))
        })?;
        meta.push(b'\n');
        // What tantivy's garbage collector may delete once it is obsolete.
        let managed: Vec<&str> = present
            .into_iter()
            .filter_map(|name| name.to_str())
            .chain(["meta.json"])
            .collect();
        let mut managed = serde_json::to_vec(&managed).map_err(|error| {
            StoreError::Corrupt(format!("cannot list the index's files: {error}"))
        })?;
        managed.push(b'\n');
        for (name, bytes) in [("meta.json", meta), (".managed.json", managed)] {
            let path = staging.join(name);
            std::fs::write(&path, &bytes).map_err(failed("cannot write", &path))?;
            linked.push((path, bytes.len() as u64));
        }
        for (file, bytes) in linked {
            files.push(staged("index", staging, file, bytes));
        }
        let payload = metas
            .payload
            .as_deref()
            .map(serde_json::from_str::<super::CommitPayload>)
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("unreadable commit payload: {error}")))?;
        Ok(payload.and_then(|payload| payload.queue_position))
    }
}

/// Links the signing key and every file of every tenant's trail directory,
/// noting each one's length now; a rewrite of `leaves.log` not yet renamed
/// into place (`*.new`) is left out, as opening a trail removes it.
fn link_trails(
    audit_dir: &Path,
    staging: &Path,
    files: &mut Vec<StagedFile>,
) -> Result<(), StoreError> {
    create_dir(staging)?;
    let key = audit_dir.join(super::KEY_FILE);
    if key.exists() {
        let (file, bytes) =
            link(&key, &staging.join(super::KEY_FILE)).map_err(|error| link_failed(&key, error))?;
        files.push(staged("audit", staging, file, bytes));
    }
    let tenants = std::fs::read_dir(audit_dir).map_err(failed("cannot list", audit_dir))?;
    for tenant in tenants {
        let tenant = tenant.map_err(failed("cannot list", audit_dir))?;
        if !tenant.path().is_dir() {
            continue;
        }
        let target = staging.join(tenant.file_name());
        create_dir(&target)?;
        let entries =
            std::fs::read_dir(tenant.path()).map_err(failed("cannot list", &tenant.path()))?;
        for entry in entries {
            let entry = entry.map_err(failed("cannot list", &tenant.path()))?;
            let name = entry.file_name();
            if !entry.path().is_file() || name.to_string_lossy().ends_with(".new") {
                continue;
            }
            let (file, bytes) = link(&entry.path(), &target.join(&name))
                .map_err(|error| link_failed(&entry.path(), error))?;
            files.push(staged("audit", staging, file, bytes));
        }
    }
    Ok(())
}

/// Hard-links `from` to `to` and returns the link with its length now.
fn link(from: &Path, to: &Path) -> std::io::Result<(PathBuf, u64)> {
    std::fs::hard_link(from, to)?;
    let bytes = std::fs::metadata(to)?.len();
    Ok((to.to_path_buf(), bytes))
}

fn link_failed(from: &Path, error: std::io::Error) -> StoreError {
    failed("cannot link for the backup", from)(error)
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(failed("cannot create", dir))
}

/// A staged file named by its path under `prefix`.
fn staged(prefix: &str, staging: &Path, file: PathBuf, bytes: u64) -> StagedFile {
    let relative = file.strip_prefix(staging).unwrap_or(&file);
    let path = std::iter::once(prefix.to_owned())
        .chain(
            relative
                .components()
                .map(|component| component.as_os_str().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join("/");
    StagedFile { path, file, bytes }
}
