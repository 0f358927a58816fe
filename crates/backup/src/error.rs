//! The one error type of backups.

use std::path::PathBuf;

/// Why a backup could not be written, unpacked, checked or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The archive or the backup directory is not what a backup holds: cut
    /// short, altered, or not a Logbook backup at all.
    #[error("not a complete Logbook backup: {0}")]
    Invalid(String),
    /// The directory a backup or a restore would write into already holds files.
    #[error("{} is not empty; {what} writes only into an empty or new directory", path.display())]
    NotEmpty { path: PathBuf, what: &'static str },
}

impl BackupError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.into();
        move |source| BackupError::Io {
            context,
            path,
            source,
        }
    }
}
