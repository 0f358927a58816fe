//! The `--resume` state file: per input file, what the file was (size, mtime,
//! a hash of its first KiB) and the byte offset up to which the server has
//! answered for every event, so a re-run continues there instead of sending
//! the file again.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The state file's default name, in the working directory.
pub const DEFAULT_STATE_FILE: &str = "logbook-import.state";

/// Bytes of the start of a file hashed into its identity.
const HEAD_BYTES: u64 = 1024;

/// What makes a file the same file when an import resumes: any change
/// (appended to, rewritten, touched) makes its recorded offset meaningless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub size: u64,
    pub mtime_ns: u64,
    /// Lowercase hex SHA-256 of the first KiB.
    pub head_sha256: String,
}

impl Identity {
    /// The identity of the file at `path` as it is now.
    pub fn of(path: &Path) -> anyhow::Result<Identity> {
        let file = std::fs::File::open(path)?;
        let metadata = file.metadata()?;
        let mtime = metadata.modified()?.duration_since(UNIX_EPOCH)?;
        let mut head = Vec::new();
        file.take(HEAD_BYTES).read_to_end(&mut head)?;
        Ok(Identity {
            size: metadata.len(),
            mtime_ns: u64::try_from(mtime.as_nanos()).unwrap_or(u64::MAX),
            head_sha256: Sha256::digest(&head)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        })
    }
}

/// How far the import of one file got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The server it was sent to: an offset means nothing for another one.
    pub url: String,
    /// `ndjson` or `lines`, and the service of `lines`: the same bytes make
    /// other events under another format.
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub identity: Identity,
    /// Bytes of the (decompressed) input every event of which was answered.
    pub offset: u64,
    /// Newlines of the (decompressed) input before `offset`.
    pub line: u64,
    /// Whether the input is one JSON array (then `offset` is inside it).
    #[serde(default)]
    pub array: bool,
    /// Whether the whole file was read and answered.
    pub complete: bool,
}

/// The state file: entries by the canonical path of their input file
/// (lossily UTF-8, as JSON keys must be).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    files: BTreeMap<String, Entry>,
}

/// The state file as loaded, written back after every answered batch.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    stored: Stored,
}

impl StateFile {
    /// Reads `path`; a file that does not exist is an empty state.
    pub fn load(path: &Path) -> anyhow::Result<StateFile> {
        let stored = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the import state {} is not one this version wrote",
                    path.display()
                )
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read the import state {}", path.display()));
            }
        };
        Ok(StateFile {
            path: path.to_owned(),
            stored,
        })
    }

    /// The recorded progress of the file whose canonical path is `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.stored.files.get(key)
    }

    /// Records `entry` for `key` and writes the whole state to disk: to a
    /// temporary file, synced, then renamed over the old one, so a crash
    /// leaves either the old state or the new.
    pub fn put(&mut self, key: &str, entry: Entry) -> anyhow::Result<()> {
        self.stored.files.insert(key.to_owned(), entry);
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&serde_json::to_vec_pretty(&self.stored)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        };
        write().with_context(|| format!("cannot write the import state {}", self.path.display()))
    }
}

/// Where `--resume` starts reading a file: its recorded progress when the
/// state has some for the same file, format and server; an error when the
/// recorded progress belongs to something else.
pub fn resume_point(entry: &Entry, wanted: &Entry) -> anyhow::Result<(u64, u64)> {
    if entry.url != wanted.url {
        bail!(
            "it was imported into {}, not {}: import it without --resume, or with another --state",
            entry.url,
            wanted.url
        );
    }
    if (&entry.format, &entry.service) != (&wanted.format, &wanted.service) {
        bail!(
            "it was imported as --format {}{}: resume with the same options, or import it without --resume",
            entry.format,
            entry
                .service
                .as_deref()
                .map(|service| format!(" --service {service}"))
                .unwrap_or_default()
        );
    }
    if entry.identity != wanted.identity {
        bail!(
            "it changed since its import was recorded (size, modification time or first KiB): \
             import it again without --resume"
        );
    }
    Ok((entry.offset, entry.line))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(offset: u64) -> Entry {
        Entry {
            url: "http://127.0.0.1:8080".into(),
            format: "lines".into(),
            service: Some("apache".into()),
            identity: Identity {
                size: 100,
                mtime_ns: 7,
                head_sha256: "ab".into(),
            },
            offset,
            line: 3,
            array: false,
            complete: false,
        }
    }

    #[test]
    fn entries_survive_a_reload_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut state = StateFile::load(&path).unwrap();
        assert!(state.get("/a").is_none());
        state.put("/a", entry(10)).unwrap();
        state.put("/b", entry(20)).unwrap();
        state.put("/a", entry(30)).unwrap();
        let reloaded = StateFile::load(&path).unwrap();
        assert_eq!(reloaded.get("/a"), Some(&entry(30)));
        assert_eq!(reloaded.get("/b"), Some(&entry(20)));
        assert!(!dir.path().join("state.tmp").exists());
        std::fs::write(&path, "not json").unwrap();
        assert!(StateFile::load(&path).is_err());
    }

    #[test]
    fn resume_needs_the_same_file_format_and_server() {
        let recorded = entry(40);
        let mut wanted = entry(0);
        assert_eq!(resume_point(&recorded, &wanted).unwrap(), (40, 3));
        wanted.identity.size = 101;
        assert!(resume_point(&recorded, &wanted).is_err());
        let mut wanted = entry(0);
        wanted.service = Some("nginx".into());
        assert!(resume_point(&recorded, &wanted).is_err());
        let mut wanted = entry(0);
        wanted.url = "http://elsewhere:8080".into();
        assert!(resume_point(&recorded, &wanted).is_err());
    }

    #[test]
    fn identity_changes_with_the_first_kib_and_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a".repeat(2000)).unwrap();
        let first = Identity::of(&path).unwrap();
        assert_eq!(first.size, 2000);
        assert_eq!(first.head_sha256.len(), 64);
        assert_eq!(Identity::of(&path).unwrap(), first);
        let mut changed = "b".to_owned();
        changed.push_str(&"a".repeat(1999));
        std::fs::write(&path, changed).unwrap();
        assert_ne!(Identity::of(&path).unwrap().head_sha256, first.head_sha256);
        std::fs::write(&path, "a".repeat(2001)).unwrap();
        assert_ne!(Identity::of(&path).unwrap().size, first.size);
    }
}
