//! HMAC request signing, as the server's "Signed requests" scheme defines it:
//! `hex(HMAC-SHA256(key, timestamp "\n" METHOD "\n" path?query "\n" body))`.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

/// A signing key, keyed once at build time and cloned for each request.
#[derive(Clone)]
pub(crate) struct Signer {
    key_id: String,
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    pub fn new(key_id: &str, key: &str) -> Result<Signer, Error> {
        // HMAC takes keys of any length; the error arm cannot happen, but is
        // reported rather than unwrapped.
        let keyed =
            HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| Error::InvalidHeader {
                what: "signing key",
            })?;
        Ok(Signer {
            key_id: key_id.to_owned(),
            keyed,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The hex signature of one request.
    pub fn sign(&self, timestamp: &str, method: &str, path_and_query: &str, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        for part in [
            timestamp.as_bytes(),
            method.as_bytes(),
            path_and_query.as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\n");
        }
        mac.update(body);
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_worked_example_of_the_readme() {
        let signer = match Signer::new("key_example", "lbk_example_signing_key_0123456789abcdef") {
            Ok(signer) => signer,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(
            signer.sign("1763900000", "POST", "/v1/logs", br#"{"message":"hello"}"#),
            "7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504"
        );
        // Any change to a signed part changes the signature.
        assert_ne!(
            signer.sign("1763900001", "POST", "/v1/logs", br#"{"message":"hello"}"#),
            "7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504"
        );
        assert!(!format!("{signer:?}").contains("lbk_"));
    }
}
