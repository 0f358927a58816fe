//! Checking a backup directory against its manifest, and laying it down as a
//! new data directory.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::manifest::{Hasher, MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, relative_path};
use crate::unpack::{check_same, copy};
use crate::{BackupError, FileRecord};

/// Reads `dir`'s manifest and checks every file against it (size and SHA-256),
/// and that the directory holds no file it does not list.
pub fn verify_dir(dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(dir)?;
    let mut found = Vec::with_capacity(manifest.files.len());
    for record in &manifest.files {
        let path = dir.join(relative_path(&record.path)?);
        let mut file = open_listed(&path, record)?;
        let mut hasher = Hasher::default();
        copy(&mut file, &mut std::io::sink(), &mut hasher, &path)?;
        found.push(hasher.finish(&record.path));
    }
    check_same(&manifest.files, &found)?;
    check_nothing_else(dir, &manifest)?;
    Ok(manifest)
}

/// Lays the backup in `from` down as the data directory `to` (created if
/// missing; it must be empty), checking every file against the manifest as it
/// is copied, and fsyncs every file and directory. On a failure, what it wrote
/// is removed again.
pub fn restore(from: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(from)?;
    check_nothing_else(from, &manifest)?;
    let existed = to.exists();
    empty_dir(to, "restore")?;
    let copied = copy_all(from, to, &manifest);
    undo_on_error(copied, to, existed).map(|()| manifest)
}

/// On an error, removes what was written into `dir`: the directory itself if
/// it did not exist before, else its contents.
pub(crate) fn undo_on_error<T>(
    result: Result<T, BackupError>,
    dir: &Path,
    existed: bool,
) -> Result<T, BackupError> {
    let Err(error) = result else {
        return result;
    };
    let cleaned = if existed {
        std::fs::read_dir(dir).and_then(|mut entries| {
            entries.try_for_each(|entry| {
                let path = entry?.path();
                match path.is_dir() {
                    true => std::fs::remove_dir_all(path),
                    false => std::fs::remove_file(path),
                }
            })
        })
    } else {
        std::fs::remove_dir_all(dir)
    };
    match cleaned {
        Ok(()) => Err(error),
        Err(cleanup) => Err(BackupError::Invalid(format!(
            "{error}; and what was written so far could not be removed from {}: {cleanup}",
            dir.display()
        ))),
    }
}

fn copy_all(from: &Path, to: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let mut dirs = BTreeSet::from([to.to_path_buf()]);
    if let Some(parent) = to.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        dirs.insert(parent.to_path_buf());
    }
    for record in &manifest.files {
        let relative = relative_path(&record.path)?;
        let source = from.join(&relative);
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(BackupError::io("cannot create", parent))?;
            let mut at = parent;
            while at != to && dirs.insert(at.to_path_buf()) {
                match at.parent() {
                    Some(up) => at = up,
                    None => break,
                }
            }
        }
        let mut input = open_listed(&source, record)?;
        let mut output = create_file(&target)?;
        let mut hasher = Hasher::default();
        copy(&mut input, &mut output, &mut hasher, &target)?;
        let copied = hasher.finish(&record.path);
        check_same(std::slice::from_ref(record), std::slice::from_ref(&copied))?;
        output
            .sync_all()
            .map_err(BackupError::io("cannot sync", &target))?;
    }
    sync_dirs(&dirs)
}

fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let file = File::open(&path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => BackupError::Invalid(format!(
            "{} has no {MANIFEST_FILE}: not a backup `logbook backup` finished",
            dir.display()
        )),
        _ => BackupError::io("cannot open", &path)(error),
    })?;
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_MANIFEST_BYTES + 1),
        &mut json,
    )
    .map_err(BackupError::io("cannot read", &path))?;
    if json.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(BackupError::Invalid("the manifest is too large".to_owned()));
    }
    Manifest::from_json(&json)
}

/// Opens a file the manifest lists; a missing one is named as such.
fn open_listed(path: &Path, record: &FileRecord) -> Result<File, BackupError> {
    File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => BackupError::Invalid(format!("{} is missing", record.path)),
        _ => BackupError::io("cannot open", path)(error),
    })
}

/// Refuses a backup directory holding files its manifest does not list (two
/// backups mixed in one directory, or a file added by hand).
fn check_nothing_else(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let listed: BTreeSet<PathBuf> = manifest
        .files
        .iter()
        .map(|file| PathBuf::from(&file.path))
        .chain([PathBuf::from(MANIFEST_FILE)])
        .collect();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).map_err(BackupError::io("cannot list", &at))? {
            let path = entry.map_err(BackupError::io("cannot list", &at))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            if !listed.contains(relative) {
                return Err(BackupError::Invalid(format!(
                    "{} holds {}, which its manifest does not list",
                    dir.display(),
                    relative.display()
                )));
            }
        }
    }
    Ok(())
}

/// Makes sure `dir` exists (created private to its owner) and is empty.
pub(crate) fn empty_dir(dir: &Path, what: &'static str) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(BackupError::io("cannot create", dir))?;
    let mut entries = std::fs::read_dir(dir).map_err(BackupError::io("cannot list", dir))?;
    if entries.next().is_some() {
        return Err(BackupError::NotEmpty {
            path: dir.to_path_buf(),
            what,
        });
    }
    Ok(())
}

/// Creates a new file readable by its owner only.
pub(crate) fn create_file(path: &Path) -> Result<File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(BackupError::io("cannot create", path))
}

/// Fsyncs directories, so the files created in them are durable.
pub(crate) fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> Result<(), BackupError> {
    for dir in dirs {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(BackupError::io("cannot sync", dir))?;
    }
    Ok(())
}
