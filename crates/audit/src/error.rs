//! The crate's error type for operations that touch files, keys or whole trails.

use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::merkle::ProofError;
use crate::signing::KeyError;

/// Why an audit operation failed.
///
/// Variants that come from a file name it; the pure parts of the crate have their own,
/// narrower errors ([`ProofError`], [`CheckpointError`], [`KeyError`]) that convert into
/// this one.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A read, write, sync or metadata call on a file or directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "fsync".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("could not read random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    /// A key seed file exists but does not hold exactly 32 bytes.
    #[error("key file {} holds {len} bytes, expected a 32-byte Ed25519 seed", path.display())]
    KeyFileLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A key or key name was rejected.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A checkpoint could not be signed, parsed or verified.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tree hash or proof could not be produced, or a proof did not verify.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// Another process (or another [`TrailStore`](crate::TrailStore) in this one) holds the
    /// trail's lock.
    #[error("trail {} is locked by another writer", path.display())]
    Locked {
        /// The trail directory.
        path: PathBuf,
    },
    /// A leaf sequence number at or beyond the trail's size.
    #[error("leaf {seq} is outside a trail of {size} leaves")]
    SeqOutOfRange {
        /// The sequence number asked for.
        seq: u64,
        /// The trail's size.
        size: u64,
    },
    /// A truncation to more leaves than the trail holds.
    #[error("cannot truncate a trail of {size} leaves to {requested}")]
    TruncateBeyondEnd {
        /// The size asked for.
        requested: u64,
        /// The trail's size.
        size: u64,
    },
    /// A leaf longer than a frame's 32-bit length field can describe.
    #[error("leaf of {len} bytes exceeds the 4 GiB frame limit")]
    LeafTooLarge {
        /// The leaf's length.
        len: usize,
    },
    /// The trail's files do not match what the store wrote (changed while it was open).
    #[error("trail file {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },
    /// An earlier write failed and could not be undone; the store refuses further appends
    /// and truncations until it is reopened (which cuts partial data as a torn tail).
    #[error("an earlier write to trail {} failed and could not be undone; reopen the trail", path.display())]
    Poisoned {
        /// The trail directory.
        path: PathBuf,
    },
    /// The leaf's body was pruned: its leaf hash is kept (proofs and verification still
    /// work), its bytes are not.
    #[error("leaf {seq} is pruned: the trail keeps the bodies of leaves {pruned} and up only")]
    Pruned {
        /// The sequence number asked for.
        seq: u64,
        /// How many leaves, from the first, are pruned.
        pruned: u64,
    },
    /// A prune that would skip leaves (leave a gap before it) or would cover leaves the
    /// trail does not hold.
    #[error("cannot prune a trail of {size} leaves, {pruned} pruned, to {requested} leaves")]
    PruneOutOfRange {
        /// The number of leaves asked to be pruned.
        requested: u64,
        /// How many are pruned already.
        pruned: u64,
        /// The trail's size.
        size: u64,
    },
    /// The leaves file was rewritten without pruned bodies since a byte span of it was
    /// taken ([`TrailStore::frame_span`](crate::TrailStore::frame_span)): take it again.
    #[error("trail file {} was rewritten since the span was read; read it again", path.display())]
    Rewritten {
        /// The leaves file.
        path: PathBuf,
    },
    /// An event's `"seq"` member differs from the leaf index it is being checked at.
    #[error("the event claims seq {claimed} but is being checked as leaf {index}")]
    SeqMismatch {
        /// The event's `"seq"`.
        claimed: u64,
        /// The leaf index given.
        index: u64,
    },
}

impl AuditError {
    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        AuditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
