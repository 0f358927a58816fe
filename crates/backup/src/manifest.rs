//! The manifest: which files a backup holds, with each one's size and SHA-256,
//! written as the archive's last entry and kept beside the files.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::BackupError;

/// The manifest's name, in the archive and in a backup directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";

/// The only manifest format this build reads and writes.
const FORMAT: u32 = 1;

/// The largest manifest an archive may carry (about 200 bytes a file).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's format; a reader refuses one it does not know.
    pub format: u32,
    /// When the server took the snapshot, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The version of the Logbook that wrote it.
    pub logbook_version: String,
    /// Every file, in archive order.
    pub files: Vec<FileRecord>,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Its path relative to the data directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// An empty manifest of this format, stamped now.
    pub(crate) fn new(created_at_ms: i64, logbook_version: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            created_at_ms,
            logbook_version: logbook_version.to_owned(),
            files: Vec::new(),
        }
    }

    /// The total size of the files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.bytes).sum()
    }

    /// Reads a manifest and checks it can be trusted as a list of paths:
    /// a known format, safe relative paths, none twice.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, BackupError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|error| BackupError::Invalid(format!("unreadable manifest: {error}")))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Invalid(format!(
                "manifest format {} (this build reads format {FORMAT})",
                manifest.format
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for file in &manifest.files {
            relative_path(&file.path)?;
            if file.path == MANIFEST_FILE || !seen.insert(file.path.as_str()) {
                return Err(BackupError::Invalid(format!(
                    "the manifest lists {:?} twice",
                    file.path
                )));
            }
        }
        Ok(manifest)
    }

    /// The manifest as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// The record of `path`, if the manifest lists it.
    pub fn file(&self, path: &str) -> Option<&FileRecord> {
        self.files.iter().find(|file| file.path == path)
    }
}

/// `path` as a relative path of plain components (no `..`, no root, no `.`),
/// so that joining it to a directory stays inside that directory.
pub(crate) fn relative_path(path: &str) -> Result<PathBuf, BackupError> {
    let candidate = Path::new(path);
    let plain = path
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..")
        && candidate
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if !plain {
        return Err(BackupError::Invalid(format!(
            "{path:?} is not a relative path inside the data directory"
        )));
    }
    Ok(candidate.to_path_buf())
}

/// Hashes bytes as they pass, and counts them.
#[derive(Default)]
pub(crate) struct Hasher {
    sha: Sha256,
    bytes: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// The record of what passed, as `path`.
    pub(crate) fn finish(self, path: &str) -> FileRecord {
        let digest = self.sha.finalize();
        FileRecord {
            path: path.to_owned(),
            bytes: self.bytes,
            sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_one() {
        let mut hasher = Hasher::default();
        hasher.update(b"ab");
        hasher.update(b"c");
        let record = hasher.finish("x");
        assert_eq!(record.bytes, 3);
        assert_eq!(
            record.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "queue/../../x", "./x", "a/./b"] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
        assert!(relative_path("audit/default/leaves.log").is_ok());
    }

    #[test]
    fn a_manifest_round_trips_and_refuses_duplicates_and_other_formats() {
        let mut manifest = Manifest::new(1, "0.1.0");
        manifest.files.push(FileRecord {
            path: "meta.db".into(),
            bytes: 3,
            sha256: "00".into(),
        });
        let parsed = Manifest::from_json(&manifest.to_json()).unwrap();
        assert_eq!(parsed, manifest);

        manifest.files.push(manifest.files[0].clone());
        assert!(Manifest::from_json(&manifest.to_json()).is_err());
        manifest.files.pop();
        manifest.format = 2;
        assert!(Manifest::from_json(&manifest.to_json()).is_err());
        manifest.format = FORMAT;
        manifest.files[0].path = "../meta.db".into();
        assert!(Manifest::from_json(&manifest.to_json()).is_err());
    }
}
