//! Signatures of the webhook notifications Logbook sends (alerts), so a
//! receiver can tell them from forgeries and refuse stale replays.
//!
//! The header is `Logbook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`,
//! the HMAC keyed with the rule's secret (its bytes as shown) over
//! `"<t>.<body>"`, the body exactly as sent.

use hmac::Mac as _;

use crate::encoding::hex_lower;
use crate::mac::hmac_sha256;
use crate::{RandomError, random_bytes};

/// The name of the signature header.
pub const SIGNATURE_HEADER: &str = "logbook-signature";

/// The prefix of webhook secrets, so they are recognisable where they leak.
const SECRET_PREFIX: &str = "whsec_";

/// A new webhook secret: the prefix and 32 random bytes in hex.
pub fn new_secret() -> Result<String, RandomError> {
    Ok(format!(
        "{SECRET_PREFIX}{}",
        hex_lower(&random_bytes::<32>()?)
    ))
}

/// The value of the signature header for `body` sent at `unix_seconds`.
pub fn signature_header(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex_lower(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::KeyInit as _;

    #[test]
    fn the_header_is_the_hmac_of_the_timestamp_a_dot_and_the_body() {
        // Computed independently: HMAC-SHA256 with key "whsec_test" over "1700000000.{}".
        let mut reference =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").expect("any key length");
        reference.update(b"1700000000.{}");
        let expected = hex_lower(&reference.finalize().into_bytes());
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, b"{}"),
            format!("t=1700000000,v1={expected}")
        );
        assert_ne!(
            signature_header("whsec_test", 1_700_000_001, b"{}"),
            signature_header("whsec_test", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let (a, b) = (new_secret().expect("random"), new_secret().expect("random"));
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_ne!(a, b);
    }
}
