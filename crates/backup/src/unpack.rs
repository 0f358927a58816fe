//! Unpacking an archive as it arrives: every file written and hashed, and the
//! whole refused unless it ends with a manifest that lists exactly what came.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::manifest::{Hasher, MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, relative_path};
use crate::restore::{create_file, empty_dir, sync_dirs, undo_on_error};
use crate::{BackupError, FileRecord};

/// Unpacks the archive read from `input` into `dir` (created if missing; it
/// must be empty), fsyncs every file and directory, writes the manifest beside
/// the files and returns it. Fails, removing what it wrote, if the archive ends before its manifest (the transfer was cut
/// short) or if any file differs from what the manifest says.
pub fn unpack<R: Read>(input: R, dir: &Path) -> Result<Manifest, BackupError> {
    let existed = dir.exists();
    empty_dir(dir, "a backup")?;
    let unpacked = unpack_into(input, dir);
    undo_on_error(unpacked, dir, existed)
}

fn unpack_into<R: Read>(input: R, dir: &Path) -> Result<Manifest, BackupError> {
    let mut dirs = BTreeSet::from([dir.to_path_buf()]);
    let mut written: Vec<FileRecord> = Vec::new();
    let mut manifest = None;
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(BackupError::io("cannot read the archive", dir))?;
    for entry in entries {
        let mut entry = entry.map_err(BackupError::io("cannot read the archive into", dir))?;
        if manifest.is_some() {
            return Err(BackupError::Invalid(
                "the archive goes on after its manifest".to_owned(),
            ));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Invalid(format!(
                "the archive holds a {:?} entry; a backup holds regular files only",
                entry.header().entry_type()
            )));
        }
        let path = entry
            .path()
            .map_err(BackupError::io("cannot read an entry's name in", dir))?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| BackupError::Invalid("an entry's name is not UTF-8".to_owned()))?;
        if path == MANIFEST_FILE {
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(BackupError::Invalid("the manifest is too large".to_owned()));
            }
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(BackupError::io("cannot read the manifest for", dir))?;
            manifest = Some((Manifest::from_json(&json)?, json));
            continue;
        }
        let target = dir.join(relative_path(&path)?);
        if let Some(parent) = target.parent() {
            create_dirs(parent, &mut dirs)?;
        }
        let mut file = create_file(&target)?;
        let mut hasher = Hasher::default();
        copy(&mut entry, &mut file, &mut hasher, &target)?;
        file.sync_all()
            .map_err(BackupError::io("cannot sync", &target))?;
        written.push(hasher.finish(&path));
    }
    let Some((manifest, json)) = manifest else {
        return Err(BackupError::Invalid(
            "the archive ended before its manifest: the transfer was cut short".to_owned(),
        ));
    };
    check_same(&manifest.files, &written)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let mut file = create_file(&manifest_path)?;
    std::io::Write::write_all(&mut file, &json)
        .and_then(|()| file.sync_all())
        .map_err(BackupError::io("cannot write", &manifest_path))?;
    sync_dirs(&dirs)?;
    Ok(manifest)
}

/// Copies `input` to `output`, hashing what passes.
pub(crate) fn copy(
    input: &mut impl Read,
    output: &mut impl std::io::Write,
    hasher: &mut Hasher,
    target: &Path,
) -> Result<(), BackupError> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(BackupError::io("cannot read the data of", target)(error)),
        };
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(BackupError::io("cannot write", target))?;
    }
}

/// Creates `dir` and its missing parents, private to the owner, noting each.
fn create_dirs(dir: &Path, created: &mut BTreeSet<PathBuf>) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if created.contains(dir) {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(BackupError::io("cannot create", dir))?;
    let mut at = Some(dir);
    while let Some(path) = at {
        if !created.insert(path.to_path_buf()) {
            break;
        }
        at = path.parent();
    }
    Ok(())
}

/// The files listed and the files found must be the same, in the same order.
pub(crate) fn check_same(listed: &[FileRecord], found: &[FileRecord]) -> Result<(), BackupError> {
    for (index, expected) in listed.iter().enumerate() {
        match found.get(index) {
            Some(actual) if actual == expected => {}
            Some(actual) if actual.path == expected.path => {
                return Err(BackupError::Invalid(format!(
                    "{} is {} bytes with SHA-256 {}, but the manifest says {} bytes with {}",
                    expected.path, actual.bytes, actual.sha256, expected.bytes, expected.sha256
                )));
            }
            Some(actual) => {
                return Err(BackupError::Invalid(format!(
                    "found {} where the manifest lists {}",
                    actual.path, expected.path
                )));
            }
            None => {
                return Err(BackupError::Invalid(format!(
                    "{} is missing",
                    expected.path
                )));
            }
        }
    }
    match found.get(listed.len()) {
        Some(extra) => Err(BackupError::Invalid(format!(
            "{} is not in the manifest",
            extra.path
        ))),
        None => Ok(()),
    }
}
