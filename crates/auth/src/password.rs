//! Passwords: Argon2id hashing and verification, the password policy, and generated
//! passwords.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with the
//! argon2 crate's default parameters, which follow OWASP's recommendation for Argon2id,
//! and a fresh 16-byte salt from the operating system per hash. Verification takes the
//! parameters from the stored string, so raising them later keeps old hashes working.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{Error as HashError, PasswordHasher as _, PasswordVerifier as _};

use crate::random::{RandomError, random_bytes};

/// Fewest characters (Unicode scalar values) a chosen password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Most bytes (UTF-8) a password may have; longer ones are never hashed or verified.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Fewest distinct characters a chosen password must contain.
const MIN_DISTINCT_CHARS: usize = 5;

/// Length of a generated password.
const GENERATED_PASSWORD_CHARS: usize = 24;

/// Characters of generated passwords: letters and digits minus the look-alikes
/// `0 O o 1 I l`, so a password read off a screen can be typed back.
const GENERATED_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz";

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password is longer than {max} bytes")]
    TooLong {
        /// The limit, [`MAX_PASSWORD_BYTES`].
        max: usize,
    },
    /// The stored hash is not a PHC string of a supported Argon2 variant and parameters.
    #[error("the stored password hash is not a valid Argon2 PHC string")]
    InvalidHash,
    /// The operating system could not provide a salt.
    #[error("no random salt: {0}")]
    Random(#[from] RandomError),
    /// Argon2 itself failed, which the default parameters do not cause.
    #[error("password hashing failed: {0}")]
    Hashing(HashError),
}

/// Why a chosen password is not acceptable. The messages are meant for the person
/// choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("The password is too short: use at least {min} characters.")]
    TooShort {
        /// The minimum, [`MIN_PASSWORD_CHARS`].
        min: usize,
    },
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error(
        "The password is too long: use at most {max} bytes (a letter or digit is one byte, an accented letter or symbol can be up to four)."
    )]
    TooLong {
        /// The maximum, [`MAX_PASSWORD_BYTES`].
        max: usize,
    },
    /// The password contains the username, ignoring case.
    #[error("The password must not contain the username.")]
    ContainsUsername,
    /// Fewer than five different characters.
    #[error("The password repeats too few characters: use at least 5 different ones.")]
    TooFewDistinct,
    /// Control characters (line breaks, tabs, …), which are hard to type reliably.
    #[error("The password must not contain control characters such as tabs or line breaks.")]
    ControlCharacters,
}

/// Hashes `password` with Argon2id and a random salt, returning the PHC string to store.
///
/// # Errors
///
/// [`PasswordError::TooLong`] above [`MAX_PASSWORD_BYTES`], [`PasswordError::Random`] if
/// no salt can be drawn, [`PasswordError::Hashing`] if Argon2 fails.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    let salt: [u8; 16] = random_bytes()?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string.
///
/// Returns `Ok(false)` when the password does not match, including a password longer
/// than [`MAX_PASSWORD_BYTES`], which no stored hash can match (that early return
/// reveals only the length of what the caller sent, which the caller knows).
///
/// # Errors
///
/// [`PasswordError::InvalidHash`] only when `phc` cannot be parsed or names an
/// unsupported algorithm or parameters: a corrupt record, not a wrong password.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|_| PasswordError::InvalidHash)?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    match Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(_) => Err(PasswordError::InvalidHash),
    }
}

/// A hash of a fixed password with a fixed salt and the default parameters: the same
/// work as a real stored hash. `None` only if Argon2 failed, which it does not.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password_with_salt(b"logbook dummy password", b"logbook-dummy-salt")
        .ok()
        .map(|hash| hash.to_string())
});

/// Spends the time of one password verification, for a login whose username is unknown,
/// so its response takes as long as a known username's and does not reveal which names
/// exist.
///
/// Verifies `password` against a fixed dummy hash with the default parameters. The dummy
/// hash is computed on the first call, which therefore costs about twice as much.
pub fn burn_verification(password: &str) {
    if let Some(dummy) = DUMMY_HASH.as_deref() {
        // The result is meaningless; only the time spent matters. `black_box` keeps the
        // optimiser from reasoning about the unused result.
        let _ = std::hint::black_box(verify_password(password, dummy));
    } else {
        // Unreachable in practice; spend the same work another way.
        let mut out = [0u8; 32];
        let _ = std::hint::black_box(Argon2::default().hash_password_into(
            password.as_bytes(),
            b"logbook-dummy-salt",
            &mut out,
        ));
    }
}

/// Checks a password someone chose against the policy.
///
/// The rules: at least [`MIN_PASSWORD_CHARS`] characters and at most
/// [`MAX_PASSWORD_BYTES`] bytes, no control characters, at least five distinct
/// characters, and not containing the username (ignoring case) when the username has
/// at least three characters.
///
/// # Errors
///
/// The first rule broken, as a [`PolicyError`] whose message can be shown to the user.
pub fn check_policy(username: &str, password: &str) -> Result<(), PolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PolicyError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.chars().any(char::is_control) {
        return Err(PolicyError::ControlCharacters);
    }
    if password.chars().collect::<HashSet<char>>().len() < MIN_DISTINCT_CHARS {
        return Err(PolicyError::TooFewDistinct);
    }
    if username.chars().count() >= 3 && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(PolicyError::ContainsUsername);
    }
    Ok(())
}

/// Generates a 24-character password of letters and digits without look-alikes
/// (about 139 bits of entropy), for accounts created on someone's behalf.
///
/// # Errors
///
/// [`RandomError`] if the operating system cannot provide randomness.
pub fn generate_password() -> Result<String, RandomError> {
    // Rejection sampling keeps every character equally likely: only bytes below the
    // largest multiple of the alphabet size are used.
    let alphabet_len = GENERATED_ALPHABET.len();
    let limit = 256 - 256 % alphabet_len;
    let mut password = String::with_capacity(GENERATED_PASSWORD_CHARS);
    while password.len() < GENERATED_PASSWORD_CHARS {
        let batch: [u8; 32] = random_bytes()?;
        for byte in batch.map(usize::from) {
            if byte < limit && password.len() < GENERATED_PASSWORD_CHARS {
                password.push(char::from(GENERATED_ALPHABET[byte % alphabet_len]));
            }
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("correct horse battery staple").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_password("correct horse battery staple", &hash).ok(),
            Some(true)
        );
        assert_eq!(
            verify_password("correct horse battery stapl", &hash).ok(),
            Some(false)
        );
        assert_eq!(verify_password("", &hash).ok(), Some(false));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password("same password!").expect("hash");
        let b = hash_password("same password!").expect("hash");
        assert_ne!(a, b);
    }

    #[test]
    fn unparsable_hash_is_an_error_not_a_mismatch() {
        for stored in [
            "",
            "plain",
            "$argon2id$",
            "$md5$abc",
            "$argon2id$v=19$m=19456,t=2,p=1$",
        ] {
            assert!(
                matches!(
                    verify_password("whatever", stored),
                    Err(PasswordError::InvalidHash)
                ),
                "{stored}"
            );
        }
    }

    #[test]
    fn too_long_passwords() {
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hash_password(&long),
            Err(PasswordError::TooLong {
                max: MAX_PASSWORD_BYTES
            })
        ));
        let hash = DUMMY_HASH.as_deref().expect("dummy hash");
        assert_eq!(verify_password(&long, hash).ok(), Some(false));
        assert!(matches!(
            verify_password(&long, "junk"),
            Err(PasswordError::InvalidHash)
        ));
    }

    #[test]
    fn dummy_hash_is_a_default_argon2id_hash() {
        let hash = DUMMY_HASH.as_deref().expect("dummy hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_password("logbook dummy password", hash).ok(),
            Some(true)
        );
        burn_verification("anything at all");
    }

    #[test]
    fn policy_accepts_a_reasonable_password() {
        assert_eq!(check_policy("alice", "purple monkey dishwasher"), Ok(()));
        assert_eq!(check_policy("alice", "ünïcödé-pässwörd"), Ok(()));
    }

    #[test]
    fn policy_length_counts_characters_not_bytes() {
        assert_eq!(
            check_policy("bob", "abcdefghijk"),
            Err(PolicyError::TooShort { min: 12 })
        );
        assert_eq!(check_policy("bob", "abcdefghijkl"), Ok(()));
        // 11 two-byte characters: 22 bytes, still too short.
        assert_eq!(
            check_policy("bob", "äöüßéèêëïîô"),
            Err(PolicyError::TooShort { min: 12 })
        );
        assert_eq!(
            check_policy("bob", &"ab3de".repeat(205)),
            Err(PolicyError::TooLong { max: 1024 })
        );
        assert_eq!(check_policy("bob", &"abcdefgh".repeat(128)), Ok(()));
    }

    #[test]
    fn policy_rules() {
        assert_eq!(
            check_policy("bob", "abcdefghijk\tl"),
            Err(PolicyError::ControlCharacters)
        );
        assert_eq!(
            check_policy("bob", "abcdefghijk\nl"),
            Err(PolicyError::ControlCharacters)
        );
        assert_eq!(
            check_policy("bob", "abababababababab"),
            Err(PolicyError::TooFewDistinct)
        );
        assert_eq!(check_policy("bob", "abcdeabcdeab"), Ok(()));
        assert_eq!(
            check_policy("Alice", "my-ALICE-password"),
            Err(PolicyError::ContainsUsername)
        );
        // Usernames shorter than three characters are not checked.
        assert_eq!(check_policy("al", "my-al-password"), Ok(()));
        assert_eq!(
            check_policy("ali", "my-ali-password"),
            Err(PolicyError::ContainsUsername)
        );
    }

    #[test]
    fn policy_messages_read_well() {
        assert_eq!(
            PolicyError::TooShort { min: 12 }.to_string(),
            "The password is too short: use at least 12 characters."
        );
        assert_eq!(
            PolicyError::ContainsUsername.to_string(),
            "The password must not contain the username."
        );
    }

    #[test]
    fn generated_passwords() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let password = generate_password().expect("os randomness");
            assert_eq!(password.chars().count(), 24);
            assert!(
                password.bytes().all(|b| GENERATED_ALPHABET.contains(&b)),
                "{password}"
            );
            assert!(!password.contains(['0', 'O', 'o', '1', 'I', 'l']));
            assert_eq!(check_policy("admin", &password), Ok(()));
            assert!(seen.insert(password));
        }
    }

    #[test]
    fn alphabet_has_no_duplicates() {
        let distinct: HashSet<&u8> = GENERATED_ALPHABET.iter().collect();
        assert_eq!(distinct.len(), GENERATED_ALPHABET.len());
        assert_eq!(GENERATED_ALPHABET.len(), 56);
    }
}
