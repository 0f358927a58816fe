//! Signed checkpoints: a tenant's tree size and root, signed with the server's key, in the
//! C2SP `tlog-checkpoint` format wrapped in a C2SP signed note.
//!
//! The signed text (the *body*) is four lines, each ending in `\n`:
//!
//! ```text
//! logbook/<tenant>
//! <tree size in decimal, no leading zeros>
//! <standard base64, padded, of the 32-byte RFC 9162 root hash>
//! time <unix seconds in decimal, no leading zeros, '-' if negative>
//! ```
//!
//! The first line is the checkpoint *origin*; the fourth is an extension line. The signed
//! note is the body, one empty line, and one signature line per signer:
//!
//! ```text
//! — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature of the body)>
//! ```
//!
//! starting with an em dash (U+2014) and a space and ending in `\n`. The key hash is the
//! one of the verifier key ([`crate::signing`]), big-endian; the signature covers exactly
//! the body's bytes, final newline included. Parsing is strict: exactly these lines, no
//! other extension lines, canonical numbers and base64, a tenant without whitespace,
//! control characters or `+`. Signature lines of other keys are allowed and ignored, as
//! signed notes intend, but must be well-formed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;
use crate::signing::{KeyError, SigningKey, VerifyingKey, check_key_name, key_hash};

/// What every origin line starts with; the tenant follows.
pub const ORIGIN_PREFIX: &str = "logbook/";

/// The start of a signature line: an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint could not be signed, or a signed note is not a valid checkpoint
/// signed by the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Tenants must be non-empty and hold no whitespace, control characters or `+`.
    #[error(
        "invalid tenant {0:?}: it must be non-empty, without whitespace, control characters or '+'"
    )]
    InvalidTenant(String),
    /// The key name is not a valid signed-note key name.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A signed note ends with a newline.
    #[error("the note does not end with a newline")]
    MissingFinalNewline,
    /// A signed note separates its text from its signatures by an empty line.
    #[error("the note has no empty line before its signatures")]
    NoSignatureSection,
    /// The body does not have exactly four lines.
    #[error("the checkpoint body has {0} lines, expected 4 (origin, size, root hash, time)")]
    WrongLineCount(usize),
    /// The first line is not `logbook/<tenant>`.
    #[error("origin line {0:?} is not \"logbook/<tenant>\"")]
    BadOrigin(String),
    /// The second line is not a canonical decimal tree size.
    #[error("tree size line {0:?} is not a decimal number without leading zeros")]
    BadSize(String),
    /// The third line is not the canonical base64 of 32 bytes.
    #[error("root hash line {0:?} is not the padded standard base64 of 32 bytes")]
    BadRoot(String),
    /// The fourth line is not `time <unix seconds>`.
    #[error("extension line {0:?} is not \"time <unix seconds>\"")]
    BadTime(String),
    /// There are no signature lines after the empty line.
    #[error("the note has no signature lines")]
    NoSignatures,
    /// A line after the empty line is not `— <name> <base64>`.
    #[error("signature line {0:?} is not \"— <key name> <base64 signature>\"")]
    BadSignatureLine(String),
    /// No signature line carries the expected key's name and key hash.
    #[error("the note has no signature by key {name} ({hash:08x})")]
    NoSignatureForKey {
        /// The expected key's name.
        name: String,
        /// The expected key's hash.
        hash: u32,
    },
    /// A signature line of the expected key does not verify over the body.
    #[error("the signature by key {name} ({hash:08x}) does not verify")]
    InvalidSignature {
        /// The expected key's name.
        name: String,
        /// The expected key's hash.
        hash: u32,
    },
}

/// A tenant's tree head: how many events the trail held and the RFC 9162 root over them,
/// at a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tenant whose trail this is; the origin line is `logbook/<tenant>`.
    pub tenant: String,
    /// The tree size: the number of leaves (events).
    pub size: u64,
    /// `MTH` of the first `size` leaves.
    pub root: Hash,
    /// When the checkpoint was made, in seconds since the Unix epoch.
    pub time: i64,
}

impl Checkpoint {
    /// The origin line, `logbook/<tenant>`, without its newline.
    pub fn origin(&self) -> String {
        format!("{ORIGIN_PREFIX}{}", self.tenant)
    }

    /// The signed text: the four body lines described in the [module documentation](self).
    /// Fails if the tenant is not valid, as it could otherwise smuggle in lines.
    pub fn body(&self) -> Result<String, CheckpointError> {
        check_tenant(&self.tenant)?;
        Ok(format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin(),
            self.size,
            STANDARD.encode(self.root),
            self.time
        ))
    }

    /// The signed note of this checkpoint: its body, an empty line and the signature line
    /// of `key` under `key_name` (which must be the name its [`VerifyingKey`] is published
    /// under). Fails only for an invalid tenant or key name.
    pub fn sign(&self, key: &SigningKey, key_name: &str) -> Result<String, CheckpointError> {
        check_key_name(key_name)?;
        let body = self.body()?;
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key_hash(key_name, &key.public_bytes()).to_be_bytes());
        blob.extend_from_slice(&key.sign_bytes(body.as_bytes()));
        Ok(format!(
            "{body}\n{SIGNATURE_PREFIX}{key_name} {}\n",
            STANDARD.encode(blob)
        ))
    }

    /// Parses a signed note strictly and checks `key`'s signature over its body; returns
    /// the checkpoint only if both succeed. Signature lines of other keys are ignored.
    pub fn verify(note: &str, key: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
        let (body, signatures) = split_note(note)?;
        let checkpoint = parse_body(body)?;
        let mut found = false;
        for line in signatures {
            let (name, hash, signature) = parse_signature_line(line)?;
            if name != key.name() || hash != key.key_hash() {
                continue;
            }
            let verified = <[u8; 64]>::try_from(signature)
                .is_ok_and(|signature| key.verifies(body.as_bytes(), &signature));
            if !verified {
                return Err(CheckpointError::InvalidSignature {
                    name: key.name().to_owned(),
                    hash: key.key_hash(),
                });
            }
            found = true;
        }
        if !found {
            return Err(CheckpointError::NoSignatureForKey {
                name: key.name().to_owned(),
                hash: key.key_hash(),
            });
        }
        Ok(checkpoint)
    }
}

/// The tree size a note claims, read without checking anything else: lets a verifier say
/// which checkpoint a bad note was meant to be.
pub(crate) fn claimed_size(note: &str) -> Option<u64> {
    note.split('\n').nth(1).and_then(parse_u64)
}

/// Checks a tenant name: non-empty, no whitespace, control characters or `+`.
fn check_tenant(tenant: &str) -> Result<(), CheckpointError> {
    if tenant.is_empty()
        || tenant
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(CheckpointError::InvalidTenant(tenant.to_owned()));
    }
    Ok(())
}

/// Splits a signed note into its body (final newline included) and its signature lines
/// (newlines removed).
fn split_note(note: &str) -> Result<(&str, std::str::Split<'_, char>), CheckpointError> {
    let Some(without_last) = note.strip_suffix('\n') else {
        return Err(CheckpointError::MissingFinalNewline);
    };
    let Some(at) = without_last.find("\n\n") else {
        return Err(CheckpointError::NoSignatureSection);
    };
    let body = &without_last[..=at];
    let signatures = &without_last[at + 2..];
    if signatures.is_empty() {
        return Err(CheckpointError::NoSignatures);
    }
    Ok((body, signatures.split('\n')))
}

/// Parses the four body lines.
fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
    let lines: Vec<&str> = body.split_terminator('\n').collect();
    let [origin, size, root, time] = lines[..] else {
        return Err(CheckpointError::WrongLineCount(lines.len()));
    };
    let tenant = origin
        .strip_prefix(ORIGIN_PREFIX)
        .ok_or_else(|| CheckpointError::BadOrigin(origin.to_owned()))?;
    check_tenant(tenant).map_err(|_| CheckpointError::BadOrigin(origin.to_owned()))?;
    let size = parse_u64(size).ok_or_else(|| CheckpointError::BadSize(size.to_owned()))?;
    let root = parse_root(root).ok_or_else(|| CheckpointError::BadRoot(root.to_owned()))?;
    let time = time
        .strip_prefix("time ")
        .and_then(parse_i64)
        .ok_or_else(|| CheckpointError::BadTime(time.to_owned()))?;
    Ok(Checkpoint {
        tenant: tenant.to_owned(),
        size,
        root,
        time,
    })
}

/// Parses `— <name> <base64>` into the name, the key hash and the signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), CheckpointError> {
    let bad = || CheckpointError::BadSignatureLine(line.to_owned());
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(bad)?;
    let (name, blob) = rest.split_once(' ').ok_or_else(bad)?;
    check_key_name(name).map_err(|_| bad())?;
    let blob = STANDARD.decode(blob).map_err(|_| bad())?;
    let [h0, h1, h2, h3, signature @ ..] = blob.as_slice() else {
        return Err(bad());
    };
    if signature.is_empty() {
        return Err(bad());
    }
    Ok((
        name,
        u32::from_be_bytes([*h0, *h1, *h2, *h3]),
        signature.to_vec(),
    ))
}

/// A canonical unsigned decimal: digits only, no leading zeros (except `0` itself).
fn parse_u64(text: &str) -> Option<u64> {
    let value: u64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

/// A canonical signed decimal: as [`parse_u64`] with an optional `-` (not before 0).
fn parse_i64(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

/// The canonical padded standard base64 of exactly 32 bytes.
fn parse_root(text: &str) -> Option<Hash> {
    let bytes = STANDARD.decode(text).ok()?;
    let root = Hash::try_from(bytes.as_slice()).ok()?;
    (STANDARD.encode(root) == text).then_some(root)
}

#[cfg(test)]
mod tests;
