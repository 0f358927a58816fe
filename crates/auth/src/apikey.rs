//! Bearer API keys: generating them, storing them as hashes, checking their shape, and
//! deriving per-key signing secrets.
//!
//! A generated key is `lbk_` followed by 32 random bytes in base64url (47 characters,
//! 256 bits of entropy). Keys are stored only as their SHA-256 hash: with that much
//! entropy a slow password hash would add nothing but latency, and a plain hash lets
//! the server find a key by its hash in one lookup.

use hmac::Mac as _;
use sha2::{Digest as _, Sha256};

use crate::encoding::{base64url, hex_lower};
use crate::mac::hmac_sha256;
use crate::random::{RandomError, random_bytes};

/// Prefix of every key Logbook generates, so a leaked key is recognisable (for example
/// by secret scanners).
pub const KEY_PREFIX: &str = "lbk_";

/// Fewest characters an operator-provided key (`LOGBOOK_BOOTSTRAP_KEY`) may have.
pub const MIN_PROVIDED_KEY_CHARS: usize = 32;

/// Most bytes any key may have, generated, provided or presented.
pub const MAX_KEY_BYTES: usize = 256;

/// Prefix of key ids.
const KEY_ID_PREFIX: &str = "key_";

/// Fewest distinct characters an operator-provided key must contain.
const MIN_PROVIDED_DISTINCT_CHARS: usize = 10;

/// Domain separation for [`derive_signing_key`], so its output can never collide with
/// another use of the same master secret.
const SIGNING_KEY_CONTEXT: &str = "logbook signing key v1\n";

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("the API key is empty")]
    Empty,
    /// Fewer characters than required.
    #[error("the API key is too short: use at least {min} characters")]
    TooShort {
        /// The minimum, [`MIN_PROVIDED_KEY_CHARS`].
        min: usize,
    },
    /// More bytes than allowed.
    #[error("the API key is too long: at most {max} bytes are allowed")]
    TooLong {
        /// The maximum, [`MAX_KEY_BYTES`].
        max: usize,
    },
    /// Something other than printable ASCII without spaces.
    #[error("the API key may contain only printable ASCII characters, without spaces")]
    InvalidCharacters,
    /// Too repetitive to be a random secret.
    #[error("the API key repeats too few characters: use at least 10 different ones")]
    TooFewDistinct,
}

/// Generates a new API key: [`KEY_PREFIX`] and 32 random bytes in base64url without
/// padding.
///
/// # Errors
///
/// [`RandomError`] if the operating system cannot provide randomness.
pub fn generate_key() -> Result<String, RandomError> {
    let secret: [u8; 32] = random_bytes()?;
    Ok(format!("{KEY_PREFIX}{}", base64url(&secret)))
}

/// Generates a key id: `key_` and 16 lowercase hex characters (8 random bytes).
///
/// A key id is public: it names a key in listings, logs and signed requests, and
/// reveals nothing about the key's secret.
///
/// # Errors
///
/// [`RandomError`] if the operating system cannot provide randomness.
pub fn generate_key_id() -> Result<String, RandomError> {
    let id: [u8; 8] = random_bytes()?;
    Ok(format!("{KEY_ID_PREFIX}{}", hex_lower(&id)))
}

/// The lowercase hex SHA-256 of the key's bytes: what is stored, and what lookups use.
pub fn hash_key(key: &str) -> String {
    hex_lower(&Sha256::digest(key.as_bytes()))
}

/// Checks a key an operator chose (`LOGBOOK_BOOTSTRAP_KEY`): at least
/// [`MIN_PROVIDED_KEY_CHARS`] characters, at most [`MAX_KEY_BYTES`] bytes, printable
/// ASCII without spaces, and at least 10 distinct characters.
///
/// # Errors
///
/// The first rule broken, as a [`KeyError`].
pub fn check_provided_key(key: &str) -> Result<(), KeyError> {
    check_presented_key(key)?;
    if key.chars().count() < MIN_PROVIDED_KEY_CHARS {
        return Err(KeyError::TooShort {
            min: MIN_PROVIDED_KEY_CHARS,
        });
    }
    let mut seen = [false; 128];
    let mut distinct = 0;
    for byte in key.bytes() {
        // Every byte is ASCII here, so the index is in range.
        if let Some(slot) = seen.get_mut(usize::from(byte))
            && !*slot
        {
            *slot = true;
            distinct += 1;
        }
    }
    if distinct < MIN_PROVIDED_DISTINCT_CHARS {
        return Err(KeyError::TooFewDistinct);
    }
    Ok(())
}

/// Checks the shape of a key a client sent, before hashing and looking it up:
/// non-empty, at most [`MAX_KEY_BYTES`] bytes, printable ASCII without spaces.
///
/// # Errors
///
/// The first rule broken, as a [`KeyError`].
pub fn check_presented_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong { max: MAX_KEY_BYTES });
    }
    if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(KeyError::InvalidCharacters);
    }
    Ok(())
}

/// Derives the secret of the signing key `key_id` from the server's master secret:
/// [`KEY_PREFIX`] and base64url (no padding) of
/// `HMAC-SHA256(master, "logbook signing key v1\n" + key_id)`.
///
/// The server can thus recompute any signing key's secret from its id instead of
/// storing it; different ids give unrelated secrets.
pub fn derive_signing_key(master: &[u8], key_id: &str) -> String {
    let mut mac = hmac_sha256(master);
    mac.update(SIGNING_KEY_CONTEXT.as_bytes());
    mac.update(key_id.as_bytes());
    format!("{KEY_PREFIX}{}", base64url(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::KeyInit as _;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_key().expect("os randomness");
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), 4 + 43);
        assert!(
            key[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{key}"
        );
        assert_eq!(check_presented_key(&key), Ok(()));
        assert_eq!(check_provided_key(&key), Ok(()));
        assert_ne!(key, generate_key().expect("os randomness"));
    }

    #[test]
    fn generated_key_ids_have_the_documented_shape() {
        let id = generate_key_id().expect("os randomness");
        assert_eq!(id.len(), 4 + 16);
        assert!(id.starts_with("key_"));
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
        assert_ne!(id, generate_key_id().expect("os randomness"));
    }

    #[test]
    fn hash_key_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn provided_keys() {
        let good = "a-perfectly-fine-bootstrap-key-2025";
        assert_eq!(check_provided_key(good), Ok(()));
        assert_eq!(check_provided_key(""), Err(KeyError::Empty));
        assert_eq!(
            check_provided_key("short-key-123456"),
            Err(KeyError::TooShort { min: 32 })
        );
        assert_eq!(
            check_provided_key(&"x".repeat(257)),
            Err(KeyError::TooLong { max: 256 })
        );
        assert_eq!(
            check_provided_key("a perfectly fine bootstrap key 2025"),
            Err(KeyError::InvalidCharacters)
        );
        assert_eq!(
            check_provided_key("a-perfectly-fine-bootstrap-key-2025\n"),
            Err(KeyError::InvalidCharacters)
        );
        assert_eq!(
            check_provided_key("ä-perfectly-fine-bootstrap-key-2025"),
            Err(KeyError::InvalidCharacters)
        );
        assert_eq!(
            check_provided_key(&"abcdefghi".repeat(4)),
            Err(KeyError::TooFewDistinct)
        );
        assert_eq!(check_provided_key(&"abcdefghij".repeat(4)), Ok(()));
        assert_eq!(check_provided_key(&"abcdefghij".repeat(25)), Ok(()));
    }

    #[test]
    fn presented_keys() {
        assert_eq!(check_presented_key("x"), Ok(()));
        assert_eq!(check_presented_key(""), Err(KeyError::Empty));
        assert_eq!(check_presented_key(&"x".repeat(256)), Ok(()));
        assert_eq!(
            check_presented_key(&"x".repeat(257)),
            Err(KeyError::TooLong { max: 256 })
        );
        for bad in ["has space", "tab\there", "nul\0", "del\x7f", "é"] {
            assert_eq!(
                check_presented_key(bad),
                Err(KeyError::InvalidCharacters),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn derived_signing_keys() {
        let master = [42u8; 32];
        let a = derive_signing_key(&master, "key_0123456789abcdef");
        assert_eq!(a, derive_signing_key(&master, "key_0123456789abcdef"));
        assert_ne!(a, derive_signing_key(&master, "key_0123456789abcdee"));
        assert_ne!(a, derive_signing_key(&[43u8; 32], "key_0123456789abcdef"));
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), 4 + 43);
        assert_eq!(check_provided_key(&a), Ok(()));

        // The documented construction, spelled out.
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&master).expect("any key length");
        mac.update(b"logbook signing key v1\nkey_0123456789abcdef");
        let expected = format!("lbk_{}", base64url(&mac.finalize().into_bytes()));
        assert_eq!(a, expected);
    }
}
