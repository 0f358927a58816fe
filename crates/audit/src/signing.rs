//! Ed25519 keys for signing checkpoints, and the signed-note verifier key text.
//!
//! A [`SigningKey`] is a 32-byte Ed25519 seed (RFC 8032), kept by the server in a file it
//! creates with mode 0600. Its public half, bound to a key name, is a [`VerifyingKey`],
//! published as a verifier key in the format of C2SP signed notes (the `golang.org/x/mod/
//! sumdb/note` format):
//!
//! ```text
//! <name>+<key hash>+<base64(0x01 || 32-byte Ed25519 public key)>
//! ```
//!
//! where `<key hash>` is eight lowercase hex digits: the first four bytes of
//! `SHA-256(name || "\n" || 0x01 || public key)`, and base64 is the standard alphabet with
//! padding. The name is non-empty and holds no whitespace and no `+`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

use crate::error::AuditError;

/// The signature-algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// Why a key name or verifier key text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key names must be non-empty and hold no whitespace and no `+`.
    #[error("invalid key name {0:?}: it must be non-empty, without whitespace or '+'")]
    InvalidName(String),
    /// The verifier key is not `<name>+<hash>+<key>`.
    #[error("a verifier key has the form <name>+<8 hex digits>+<base64 key>")]
    Malformed,
    /// The key hash is not eight lowercase hex digits.
    #[error("verifier key hash {0:?} is not 8 lowercase hex digits")]
    BadHashText(String),
    /// The key part is not canonical standard base64.
    #[error("verifier key is not valid base64")]
    BadBase64,
    /// The decoded key is not an algorithm byte and 32 key bytes.
    #[error("verifier key has {0} bytes, expected 33 (algorithm byte and Ed25519 key)")]
    WrongLength(usize),
    /// The algorithm byte is not Ed25519's.
    #[error("verifier key algorithm {0:#04x} is not Ed25519 (0x01)")]
    UnsupportedAlgorithm(u8),
    /// The key bytes are not a valid Ed25519 public key.
    #[error("verifier key is not a valid Ed25519 public key")]
    BadKey,
    /// The key hash does not match the name and key.
    #[error("verifier key hash {given:08x} does not match name and key (expected {expected:08x})")]
    HashMismatch {
        /// The hash in the text.
        given: u32,
        /// The hash computed from name and key.
        expected: u32,
    },
}

/// Checks a signed-note key name: non-empty, no Unicode whitespace, no `+`.
pub(crate) fn check_key_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The signed-note key hash: the first four bytes, big-endian, of
/// `SHA-256(name || "\n" || 0x01 || public key)`.
pub(crate) fn key_hash(name: &str, public: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ALG_ED25519]);
    hasher.update(public);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// An Ed25519 private key for signing checkpoints. Its [`Debug`] output shows only the
/// public key.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new key from 32 bytes of operating-system randomness.
    pub fn generate() -> Result<SigningKey, AuditError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(AuditError::Random)?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key whose RFC 8032 private key (seed) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Loads the 32-byte seed at `path`, or, if there is no file there, generates a key and
    /// stores its seed there first.
    ///
    /// A new seed is written to a temporary file in the same directory, created with mode
    /// 0600 and fsynced, then linked to `path` (which fails if another process created the
    /// key meanwhile; then that key is loaded) and the directory is fsynced: `path` never
    /// holds a partial seed, even after a crash. A file at `path` that is not exactly 32
    /// bytes long is refused, never overwritten.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, AuditError> {
        match read_seed(path) {
            Err(AuditError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            loaded => return loaded.map(|seed| SigningKey::from_seed(&seed)),
        }
        let key = SigningKey::generate()?;
        match create_seed_file(path, &key.inner.to_bytes()) {
            Ok(()) => Ok(key),
            Err(AuditError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                read_seed(path).map(|seed| SigningKey::from_seed(&seed))
            }
            Err(e) => Err(e),
        }
    }

    /// The public key, under the signed-note key name `name` (for example `logbook`); the
    /// same name must be given to [`Checkpoint::sign`](crate::Checkpoint::sign).
    pub fn verifying_key(&self, name: &str) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::new(name, self.inner.verifying_key())
    }

    /// The Ed25519 signature of `message`.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    /// The raw 32-byte public key.
    pub(crate) fn public_bytes(&self) -> [u8; 32] {
        self.inner.verifying_key().to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &STANDARD.encode(self.public_bytes()))
            .finish_non_exhaustive()
    }
}

/// Reads a seed file, refusing one that is not exactly 32 bytes long.
fn read_seed(path: &Path) -> Result<[u8; 32], AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::io("stat", path, e))?
        .len();
    if len != 32 {
        return Err(AuditError::KeyFileLength {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut seed = [0u8; 32];
    file.read_exact(&mut seed)
        .map_err(|e| AuditError::io("read", path, e))?;
    Ok(seed)
}

/// Writes `seed` to `path` atomically (temporary file, fsync, link, fsync directory).
fn create_seed_file(path: &Path, seed: &[u8; 32]) -> Result<(), AuditError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(AuditError::Random)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", u64::from_le_bytes(suffix)));
    let tmp = dir.join(tmp_name);

    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| AuditError::io("create", &tmp, e))?;
        file.write_all(seed)
            .map_err(|e| AuditError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| AuditError::io("fsync", &tmp, e))?;
        fs::hard_link(&tmp, path).map_err(|e| AuditError::io("link", path, e))
    })();
    // The temporary name is never needed again, whatever happened.
    let removed = fs::remove_file(&tmp);
    written?;
    if let Err(e) = removed
        && e.kind() != ErrorKind::NotFound
    {
        return Err(AuditError::io("remove", &tmp, e));
    }
    sync_dir(&dir)
}

/// Fsyncs a directory, making the creation, removal or renaming of its entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("fsync directory", dir, e))
}

/// An Ed25519 public key bound to a signed-note key name: what verifies checkpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    name: String,
    hash: u32,
    inner: ed25519_dalek::VerifyingKey,
}

impl VerifyingKey {
    /// Binds `key` to `name`.
    fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<VerifyingKey, KeyError> {
        check_key_name(name)?;
        Ok(VerifyingKey {
            name: name.to_owned(),
            hash: key_hash(name, key.as_bytes()),
            inner: key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key hash that identifies this key in signature lines.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// The verifier key text `<name>+<key hash>+<base64(0x01 || public key)>`.
    pub fn to_text(&self) -> String {
        let mut bytes = [0u8; 33];
        bytes[0] = ALG_ED25519;
        bytes[1..].copy_from_slice(self.inner.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.hash, STANDARD.encode(bytes))
    }

    /// Parses verifier key text, checking the name, the algorithm, the key and that the
    /// key hash matches them.
    pub fn from_text(text: &str) -> Result<VerifyingKey, KeyError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash_text), Some(key_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Malformed);
        };
        check_key_name(name)?;
        let given = parse_hash_text(hash_text)?;
        let bytes = STANDARD.decode(key_text).map_err(|_| KeyError::BadBase64)?;
        let [alg, key @ ..] = <[u8; 33]>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        if alg != ALG_ED25519 {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let inner = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| KeyError::BadKey)?;
        let key = VerifyingKey::new(name, inner)?;
        if key.hash != given {
            return Err(KeyError::HashMismatch {
                given,
                expected: key.hash,
            });
        }
        Ok(key)
    }

    /// Whether `signature` is this key's valid Ed25519 signature of `message`. Uses strict
    /// verification (canonical encodings, no small-order keys or points).
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.inner.verify_strict(message, &signature).is_ok()
    }
}

/// Parses eight lowercase hex digits.
fn parse_hash_text(text: &str) -> Result<u32, KeyError> {
    let bad = || KeyError::BadHashText(text.to_owned());
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    u32::from_str_radix(text, 16).map_err(|_| bad())
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey")
            .field(&self.to_text())
            .finish()
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
mod tests;
