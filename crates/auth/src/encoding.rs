//! Byte encodings shared by the other modules: lowercase hex and base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encodes bytes as lowercase hex.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes exactly `N` bytes from `2 * N` lowercase hex digits; anything else is `None`.
///
/// Uppercase digits are refused on purpose: every byte string then has exactly one
/// accepted spelling, so a replay cache keyed by the text cannot be bypassed by changing
/// the case of a signature.
pub(crate) fn decode_hex_lower<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = lower_hex_value(pair[0])?;
        let low = lower_hex_value(pair[1])?;
        *byte = (high << 4) | low;
    }
    Some(out)
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Encodes bytes as base64url without padding (RFC 4648 §5), as JWTs and API keys use.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding; padding, other alphabets and
/// non-canonical trailing bits are refused.
pub(crate) fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes = [0x00, 0x01, 0x7f, 0x80, 0xab, 0xff];
        let text = hex_lower(&bytes);
        assert_eq!(text, "00017f80abff");
        assert_eq!(decode_hex_lower::<6>(&text), Some(bytes));
    }

    #[test]
    fn hex_decode_refuses_uppercase_wrong_length_and_junk() {
        assert_eq!(decode_hex_lower::<1>("AB"), None);
        assert_eq!(decode_hex_lower::<1>("abc"), None);
        assert_eq!(decode_hex_lower::<1>("a"), None);
        assert_eq!(decode_hex_lower::<1>("g0"), None);
        assert_eq!(decode_hex_lower::<1>("é"), None);
    }

    #[test]
    fn base64url_is_unpadded_and_strict() {
        assert_eq!(base64url(b"ab"), "YWI");
        assert_eq!(decode_base64url("YWI"), Some(b"ab".to_vec()));
        assert_eq!(decode_base64url("YWI="), None);
        assert_eq!(decode_base64url("YW+"), None);
        // "YWJ" carries non-zero trailing bits: a second spelling of "ab", refused.
        assert_eq!(decode_base64url("YWJ"), None);
    }
}
