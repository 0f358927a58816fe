//! Event keys: a secret-keyed 64-bit hash of partition (tenant and stream, see
//! `schema::partition`) and id.
//!
//! The key orders events of equal timestamp and finds an event by id without a
//! term per id string. It is keyed with a secret kept in the index directory, so
//! a client cannot choose an id whose key collides with another event's and get
//! that event replaced; get-by-id also checks the stored id itself.

use std::hash::BuildHasher;
use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::StoreError;

/// The file in the index directory that holds the secret.
pub(super) const SECRET_FILE: &str = "event-key.secret";
const SECRET_LEN: usize = 32;

/// Computes event keys for one index.
#[derive(Clone)]
pub(crate) struct EventKeys {
    secret: [u8; SECRET_LEN],
}

impl EventKeys {
    /// Reads the index's secret, or creates it (synced) for a new index.
    pub(crate) fn open(dir: &Path, create: bool) -> Result<EventKeys, StoreError> {
        let path = dir.join(SECRET_FILE);
        let failed = |error: std::io::Error| {
            StoreError::Corrupt(format!("event key secret {}: {error}", path.display()))
        };
        if !create {
            let bytes = std::fs::read(&path).map_err(failed)?;
            let secret = bytes.try_into().map_err(|_| {
                StoreError::Corrupt(format!("{} is not {SECRET_LEN} bytes", path.display()))
            })?;
            return Ok(EventKeys { secret });
        }
        let secret = random_secret();
        let mut file = std::fs::File::create(&path).map_err(failed)?;
        file.write_all(&secret).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(EventKeys { secret })
    }

    /// The key of the event `id` in `partition`.
    pub(crate) fn key(&self, partition: &str, id: &str) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.secret)
            .chain_update((partition.len() as u64).to_le_bytes())
            .chain_update(partition)
            .chain_update(id)
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// 32 bytes from the operating system's randomness, by way of the standard
/// library's randomly keyed hasher (no extra dependency for a one-off need).
fn random_secret() -> [u8; SECRET_LEN] {
    let state = std::collections::hash_map::RandomState::new();
    let mut secret = [0u8; SECRET_LEN];
    for (index, chunk) in secret.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&state.hash_one(index).to_le_bytes());
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_the_secret_tenant_and_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = EventKeys::open(dir.path(), true).expect("created");
        let again = EventKeys::open(dir.path(), false).expect("read back");
        assert_eq!(keys.key("t", "id"), again.key("t", "id"));
        assert_ne!(keys.key("t", "id"), keys.key("u", "id"));
        assert_ne!(
            keys.key("ab", "c"),
            keys.key("a", "bc"),
            "the tenant is length-delimited"
        );
        let other = tempfile::tempdir().expect("temp dir");
        let other = EventKeys::open(other.path(), true).expect("created");
        assert_ne!(
            keys.key("t", "id"),
            other.key("t", "id"),
            "each index has its own secret"
        );
    }
}
