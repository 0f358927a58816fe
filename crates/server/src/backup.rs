//! The server's side of `POST /v1/admin/backup`: a consistent snapshot of the
//! embedded data directory, taken while ingest goes on, streamed as a tar
//! archive with a manifest.
//!
//! The order is what makes it consistent. First the metadata database is
//! copied online (`VACUUM INTO`): a security event drained from the outbox
//! after that copy is then still in the queue's copy, and one drained before
//! it is in both (its id makes the second copy a no-op). Then, in one moment
//! with commits held still (`EmbeddedStore::snapshot`), the index's last
//! commit and the audit trails are linked and the queue's segments are linked
//! with their durable lengths: every record acknowledged before that moment
//! is either indexed in the copied commit or in the queue copy after the
//! commit's position, and a restored server's worker indexes the rest. Dead
//! letters are linked in the same moment. Everything is hard-linked into a
//! staging directory inside the data directory (so a merge or a release that
//! deletes a file does not take it from the backup) and removed once streamed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::backup_routes::{BackupRefusal, BackupStart, BackupStarted, BackupStream, Backups};
use bytes::Bytes;
use queue::EmbeddedQueue;
use store::embedded::EmbeddedStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Config;

/// Where a backup's links and copies are made, inside the data directory; a
/// leftover from a crash is removed by the next backup.
const STAGING_DIR: &str = "backup-staging";

/// Bytes sent to the client per chunk, and chunks waiting at most: a slow
/// client holds the archive back instead of filling memory.
const CHUNK_BYTES: usize = 256 * 1024;
const CHUNKS_AHEAD: usize = 4;

/// The engines a backup copies: all embedded, in one data directory.
struct Engines {
    store: EmbeddedStore,
    queue: Arc<EmbeddedQueue>,
}

/// Takes backups of this server's data directory, one at a time.
pub(crate) struct ServerBackups {
    data_dir: PathBuf,
    meta: meta::MetaStore,
    /// The engines, or why this server cannot be backed up this way.
    engines: Result<Arc<Engines>, String>,
    /// One permit: the backup running, from its snapshot to its last byte.
    slot: Arc<Semaphore>,
}

impl ServerBackups {
    /// Backups of the embedded engines the server opened; `None` for an
    /// engine the configuration puts elsewhere.
    pub(crate) fn new(
        config: &Config,
        meta: meta::MetaStore,
        store: Option<EmbeddedStore>,
        queue: Option<Arc<EmbeddedQueue>>,
    ) -> ServerBackups {
        let engines = match (store, queue, &config.database_url) {
            (Some(store), Some(queue), None) => Ok(Arc::new(Engines { store, queue })),
            _ => Err(
                "this server keeps data outside its data directory (a PostgreSQL store or \
                      metadata database, or a broker queue): back those up with their own tools \
                      (pg_dump; see the README's \"Backup and restore\")"
                    .to_owned(),
            ),
        };
        ServerBackups {
            data_dir: config.data_dir.clone(),
            meta,
            engines,
            slot: Arc::new(Semaphore::new(1)),
        }
    }

    async fn begin(&self) -> Result<(BackupStarted, BackupStream), BackupRefusal> {
        let engines = self
            .engines
            .as_ref()
            .map_err(|reason| BackupRefusal::Unsupported(reason.clone()))?;
        let permit = Arc::clone(&self.slot)
            .try_acquire_owned()
            .map_err(|_| BackupRefusal::Busy)?;
        let staging = self.data_dir.join(STAGING_DIR);
        let taken = self.snapshot(Arc::clone(engines), &staging).await;
        let (started, sources) = match taken {
            Ok(taken) => taken,
            Err(reason) => {
                let cleanup = staging.clone();
                let _ = tokio::task::spawn_blocking(move || remove_staging(&cleanup)).await;
                return Err(BackupRefusal::Failed(reason));
            }
        };
        Ok((started, stream(sources, staging, permit)))
    }

    /// Copies the metadata, then links the rest in one moment; returns what
    /// the archive will hold.
    async fn snapshot(
        &self,
        engines: Arc<Engines>,
        staging: &Path,
    ) -> Result<(BackupStarted, Vec<backup::Source>), String> {
        let fresh = staging.to_path_buf();
        tokio::task::spawn_blocking(move || {
            remove_staging(&fresh)?;
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&fresh)
                .map_err(|error| format!("cannot create {}: {error}", fresh.display()))
        })
        .await
        .map_err(|error| error.to_string())??;
        let meta_copy = staging.join(meta::SQLITE_FILE);
        self.meta
            .copy_sqlite_into(&meta_copy)
            .await
            .map_err(|error| error.to_string())?;
        let data_dir = self.data_dir.clone();
        let staging = staging.to_path_buf();
        tokio::task::spawn_blocking(move || link_all(&engines, &data_dir, &staging, &meta_copy))
            .await
            .map_err(|error| error.to_string())?
    }
}

impl Backups for ServerBackups {
    fn start(&self) -> BackupStart<'_> {
        Box::pin(self.begin())
    }
}

/// The moment of the snapshot: store, trails, queue and dead letters linked
/// with commits held still.
fn link_all(
    engines: &Engines,
    data_dir: &Path,
    staging: &Path,
    meta_copy: &Path,
) -> Result<(BackupStarted, Vec<backup::Source>), String> {
    let (store, during) = engines
        .store
        .snapshot(&data_dir.join("audit"), staging, || {
            let segments = engines
                .queue
                .link_snapshot(&staging.join("queue"))
                .map_err(|error| error.to_string())?;
            let letters =
                link_letters(&data_dir.join("dead-letter"), &staging.join("dead-letter"))?;
            Ok::<_, String>((segments, letters))
        })
        .map_err(|error| error.to_string())?;
    let (segments, letters) = during?;
    check_covered(store.queue_position, &segments)?;
    let meta_bytes = std::fs::metadata(meta_copy)
        .map_err(|error| format!("cannot read {}: {error}", meta_copy.display()))?
        .len();
    let mut sources = vec![backup::Source {
        path: meta::SQLITE_FILE.to_owned(),
        file: meta_copy.to_path_buf(),
        bytes: meta_bytes,
    }];
    sources.extend(store.files.into_iter().map(|file| backup::Source {
        path: file.path,
        file: file.file,
        bytes: file.bytes,
    }));
    sources.extend(segments.into_iter().map(|segment| backup::Source {
        path: format!("queue/{}", segment.name),
        file: segment.path,
        bytes: segment.bytes,
    }));
    sources.extend(letters);
    let started = BackupStarted {
        queue_position: store.queue_position,
        files: sources.len(),
        bytes: sources.iter().map(|source| source.bytes).sum(),
    };
    Ok((started, sources))
}

/// The queue copy must start at or before the position the index copy
/// covers, or records between them would be in neither.
fn check_covered(position: Option<u64>, segments: &[queue::LinkedSegment]) -> Result<(), String> {
    let Some(first) = segments.first() else {
        return Err("the queue has no segment to copy".to_owned());
    };
    let start: u64 = first
        .name
        .trim_end_matches(".seg")
        .parse()
        .map_err(|_| format!("unexpected queue segment name {}", first.name))?;
    let end = start + segments.iter().map(|segment| segment.bytes).sum::<u64>();
    match position {
        Some(position) if position < start || position > end => Err(format!(
            "the index commit covers the queue up to {position}, outside the copied {start}..{end}"
        )),
        _ => Ok(()),
    }
}

/// Links every dead letter (a finished file; a `.tmp` being written is left out).
fn link_letters(dir: &Path, staging: &Path) -> Result<Vec<backup::Source>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("cannot list {}: {error}", dir.display())),
    };
    std::fs::create_dir_all(staging)
        .map_err(|error| format!("cannot create {}: {error}", staging.display()))?;
    let mut letters = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_file() || name.ends_with(".tmp") {
            continue;
        }
        let link = staging.join(&name);
        match std::fs::hard_link(entry.path(), &link) {
            Ok(()) => {}
            // Replayed or purged meanwhile.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(format!("cannot link {name}: {error}")),
        }
        let bytes = std::fs::metadata(&link)
            .map_err(|error| format!("cannot read {}: {error}", link.display()))?
            .len();
        letters.push(backup::Source {
            path: format!("dead-letter/{name}"),
            file: link,
            bytes,
        });
    }
    Ok(letters)
}

/// Streams the archive from a blocking task; the slot is held, and the
/// staging directory kept, until the last byte is sent or the client left.
fn stream(
    sources: Vec<backup::Source>,
    staging: PathBuf,
    permit: OwnedSemaphorePermit,
) -> BackupStream {
    let (sender, receiver) = mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let created = meta::now_millis();
        let out = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK_BYTES),
        };
        match backup::write_archive(&sources, created, env!("CARGO_PKG_VERSION"), out) {
            Ok(manifest) => tracing::info!(
                files = manifest.files.len(),
                bytes = manifest.total_bytes(),
                "backup streamed"
            ),
            Err(error) => {
                tracing::warn!(%error, "backup stopped before its end");
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
        }
        if let Err(error) = remove_staging(&staging) {
            tracing::warn!(%error, "cannot remove the backup's staging directory");
        }
    });
    receiver
}

fn remove_staging(staging: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("cannot remove {}: {error}", staging.display())),
    }
}

/// Hands the archive to the response body in chunks, waiting while the
/// channel is full; a closed channel (the client went away) stops the archive.
struct ChannelWriter {
    sender: mpsc::Sender<std::io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.buffer.len();
        let taken = bytes.len().min(room);
        self.buffer.extend_from_slice(&bytes[..taken]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
