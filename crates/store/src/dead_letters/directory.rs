//! The embedded dead-letter store: a directory with one file per letter,
//! written and synced (file and directory) before `put` returns, so a letter
//! is never lost once the queue may forget its record.
//!
//! A letter file `<id>.letter` is a JSON header line (`{"v":1,"letter":{…}}`,
//! everything but the payload) followed by the payload's bytes, so listing
//! reads only the first line of each file. Files `<position>.record` that
//! earlier versions wrote for unreadable records (the raw record, nothing
//! else) are read as letters too, with the error "unreadable record".

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use model::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DeadLetter, DeadLetterInfo, DeadLetterPage, DeadLetters, is_valid_id, page_size};
use crate::StoreError;

const VERSION: u32 = 1;
const LETTER: &str = "letter";
const OLD_RECORD: &str = "record";

#[derive(Serialize, Deserialize)]
struct Header {
    v: u32,
    letter: DeadLetterInfo,
}

/// Dead letters kept as files in one directory (`data_dir/dead-letter`),
/// created on the first letter.
#[derive(Debug, Clone)]
pub struct DirectoryDeadLetters {
    dir: PathBuf,
}

impl DirectoryDeadLetters {
    /// Letters in `dir`; nothing is touched until the first `put`.
    pub fn new(dir: impl Into<PathBuf>) -> DirectoryDeadLetters {
        DirectoryDeadLetters { dir: dir.into() }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || work(&dir))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?
    }
}

#[async_trait]
impl DeadLetters for DirectoryDeadLetters {
    async fn put(&self, letter: DeadLetter) -> Result<(), StoreError> {
        self.blocking(move |dir| write_letter(dir, &letter)).await
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<DeadLetterPage, StoreError> {
        let after = after.map(str::to_owned);
        self.blocking(move |dir| list(dir, after.as_deref(), page_size(limit)))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let id = id.to_owned();
        self.blocking(move |dir| read_letter(dir, &id)).await
    }

    async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let id = id.to_owned();
        self.blocking(move |dir| remove(dir, &id)).await
    }
}

/// An I/O error that names the file it happened to.
fn io_error(context: &'static str, path: &Path) -> impl Fn(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    move |error| StoreError::Engine {
        context,
        source: Box::new(std::io::Error::new(
            error.kind(),
            format!("{path}: {error}"),
        )),
    }
}

fn path_of(dir: &Path, id: &str, extension: &str) -> PathBuf {
    dir.join(format!("{id}.{extension}"))
}

/// Writes `<id>.letter` through a temporary file, so a crash leaves either
/// the old letter or the new one, then syncs the file and the directory.
fn write_letter(dir: &Path, letter: &DeadLetter) -> Result<(), StoreError> {
    if !is_valid_id(&letter.info.id) {
        return Err(StoreError::Rejected(format!(
            "{:?} cannot name a dead letter",
            letter.info.id
        )));
    }
    std::fs::create_dir_all(dir).map_err(io_error("creating the dead-letter directory", dir))?;
    let path = path_of(dir, &letter.info.id, LETTER);
    let temporary = path.with_extension("letter.tmp");
    let failed = io_error("writing a dead letter", &temporary);
    let header = Header {
        v: VERSION,
        letter: letter.info.clone(),
    };
    let mut bytes = serde_json::to_vec(&header).map_err(|error| {
        StoreError::Corrupt(format!("cannot serialise a dead letter's header: {error}"))
    })?;
    bytes.push(b'\n');
    bytes.extend_from_slice(&letter.payload);
    let mut file = File::create(&temporary).map_err(&failed)?;
    file.write_all(&bytes).map_err(&failed)?;
    file.sync_all().map_err(&failed)?;
    std::fs::rename(&temporary, &path).map_err(io_error("writing a dead letter", &path))?;
    sync_dir(dir)
}

/// Makes the directory's entries durable: without it a crash could lose a
/// letter's file after the queue released its record.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("syncing the dead-letter directory", dir))
}

/// What kind of file holds a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letter,
    OldRecord,
}

/// The letters in the directory by id; a `.letter` file wins over an old
/// `.record` file of the same id.
fn index(dir: &Path) -> Result<BTreeMap<String, Kind>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(io_error("listing dead letters", dir)(error)),
    };
    let mut letters = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing dead letters", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((id, extension)) = name.rsplit_once('.') else {
            continue;
        };
        if !is_valid_id(id) {
            continue;
        }
        match extension {
            LETTER => {
                letters.insert(id.to_owned(), Kind::Letter);
            }
            OLD_RECORD => {
                letters.entry(id.to_owned()).or_insert(Kind::OldRecord);
            }
            // Temporary files of an interrupted put, and anything else.
            _ => {}
        }
    }
    Ok(letters)
}

fn list(dir: &Path, after: Option<&str>, limit: usize) -> Result<DeadLetterPage, StoreError> {
    let letters = index(dir)?;
    let start = match after {
        Some(after) => Bound::Excluded(after.to_owned()),
        None => Bound::Unbounded,
    };
    let mut page = DeadLetterPage::default();
    for (id, kind) in letters.range((start, Bound::Unbounded)) {
        if page.letters.len() == limit {
            page.next = page.letters.last().map(|info| info.id.clone());
            break;
        }
        // A letter removed since the directory was read is simply not listed.
        if let Some(info) = read_info(dir, id, *kind)? {
            page.letters.push(info);
        }
    }
    Ok(page)
}

/// The header of a letter, or `None` if its file is gone.
fn read_info(dir: &Path, id: &str, kind: Kind) -> Result<Option<DeadLetterInfo>, StoreError> {
    match kind {
        Kind::Letter => {
            let path = path_of(dir, id, LETTER);
            let Some(file) = open_if_present(&path)? else {
                return Ok(None);
            };
            let mut line = Vec::new();
            BufReader::new(file)
                .read_until(b'\n', &mut line)
                .map_err(io_error("reading a dead letter", &path))?;
            parse_header(&path, &line).map(Some)
        }
        Kind::OldRecord => {
            let path = path_of(dir, id, OLD_RECORD);
            match std::fs::metadata(&path) {
                Ok(metadata) => Ok(Some(old_record_info(id, &metadata))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(io_error("reading a dead letter", &path)(error)),
            }
        }
    }
}

fn open_if_present(path: &Path) -> Result<Option<File>, StoreError> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("reading a dead letter", path)(error)),
    }
}

fn parse_header(path: &Path, line: &[u8]) -> Result<DeadLetterInfo, StoreError> {
    let header: Header = serde_json::from_slice(line).map_err(|error| {
        StoreError::Corrupt(format!(
            "the dead letter {} has an unreadable header: {error}",
            path.display()
        ))
    })?;
    if header.v != VERSION {
        return Err(StoreError::Corrupt(format!(
            "the dead letter {} has version {}, which this build cannot read",
            path.display(),
            header.v
        )));
    }
    Ok(header.letter)
}

/// What an old `<position>.record` file says about itself: its name is the
/// record's queue position, its time the file's modification time.
fn old_record_info(id: &str, metadata: &std::fs::Metadata) -> DeadLetterInfo {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_nanos()).ok())
        .map_or_else(Timestamp::now, Timestamp::from_nanos);
    DeadLetterInfo {
        id: id.to_owned(),
        tenant: None,
        stream: None,
        position: id.parse().unwrap_or(0),
        error: "unreadable record".to_owned(),
        attempts: 1,
        first_failed_at: modified,
        last_failed_at: modified,
        payload_bytes: metadata.len(),
    }
}

fn read_letter(dir: &Path, id: &str) -> Result<Option<DeadLetter>, StoreError> {
    let path = path_of(dir, id, LETTER);
    if let Some(mut file) = open_if_present(&path)? {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error("reading a dead letter", &path))?;
        let split = bytes
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the dead letter {} has no header line",
                    path.display()
                ))
            })?;
        let info = parse_header(&path, &bytes[..split])?;
        bytes.drain(..=split);
        return Ok(Some(DeadLetter {
            info,
            payload: bytes,
        }));
    }
    let path = path_of(dir, id, OLD_RECORD);
    let Some(mut file) = open_if_present(&path)? else {
        return Ok(None);
    };
    let metadata = file
        .metadata()
        .map_err(io_error("reading a dead letter", &path))?;
    let mut payload = Vec::new();
    file.read_to_end(&mut payload)
        .map_err(io_error("reading a dead letter", &path))?;
    let mut info = old_record_info(id, &metadata);
    info.payload_bytes = payload.len() as u64;
    Ok(Some(DeadLetter { info, payload }))
}

fn remove(dir: &Path, id: &str) -> Result<bool, StoreError> {
    let mut removed = false;
    for extension in [LETTER, OLD_RECORD] {
        let path = path_of(dir, id, extension);
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("removing a dead letter", &path)(error)),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(removed)
}
