//! HMAC-SHA256 keyed with a byte string of any length, without a fallible constructor.

use hmac::digest::Key;
use hmac::{Hmac, KeyInit as _};
use sha2::{Digest as _, Sha256};

/// HMAC-SHA256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Returns an HMAC-SHA256 instance keyed with `key`.
///
/// HMAC accepts keys of any length (RFC 2104 §2): a key longer than the hash's block is
/// first hashed, and the result or a shorter key is zero-padded to one block. Doing that
/// step here yields a block-sized key that `Hmac::new` takes without a `Result`, so no
/// caller has to handle an error that cannot happen. The tests check the result against
/// `Hmac::new_from_slice` for short, block-sized and long keys.
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    let mut block = Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        for (slot, byte) in block.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
    } else {
        for (slot, byte) in block.iter_mut().zip(key) {
            *slot = *byte;
        }
    }
    HmacSha256::new(&block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac as _;

    fn reference(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    fn ours(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = hmac_sha256(key);
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn matches_the_library_for_every_key_length_class() {
        for len in [0usize, 1, 31, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                ours(&key, b"message"),
                reference(&key, b"message"),
                "len {len}"
            );
        }
    }

    #[test]
    fn rfc_4231_test_case_2() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(
            crate::encoding::hex_lower(&ours(b"Jefe", b"what do ya want for nothing?")),
            expected
        );
    }
}
