//! Backups of an embedded Logbook data directory: the tar archive a running
//! server streams (`POST /v1/admin/backup`), the manifest that ends it, and the
//! checks `logbook backup` and `logbook restore` make before trusting a copy.
//!
//! The server decides *what* a consistent copy holds (it alone can stop its
//! writers for the moment it takes); this crate only moves bytes and proves
//! they arrived whole: every file's size and SHA-256 are in the manifest, the
//! manifest is the archive's last entry, so an archive cut short has none and
//! is refused, and restore checks every file again before laying it down.

mod archive;
mod error;
mod manifest;
mod restore;
mod unpack;

pub use archive::{Source, write_archive};
pub use error::BackupError;
pub use manifest::{FileRecord, MANIFEST_FILE, Manifest};
pub use restore::{restore, verify_dir};
pub use unpack::unpack;

#[cfg(test)]
mod tests;
