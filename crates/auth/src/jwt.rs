//! Session tokens: HS256 JSON Web Tokens (RFC 7519) in compact serialisation.
//!
//! Logbook only ever verifies tokens it issued itself, so this is deliberately narrow:
//! the header is always exactly `{"alg":"HS256","typ":"JWT"}`, every other algorithm
//! (including `none`) is refused, and a header carrying any other field (`kid`, `jku`,
//! `crit`, …) is refused as malformed. The signature is checked, in constant time,
//! before the claims are even parsed.

use hmac::Mac as _;
use serde::{Deserialize, Serialize};

use crate::encoding::{base64url, decode_base64url};
use crate::mac::{HmacSha256, hmac_sha256};

/// The `iss` claim of every token Logbook issues, and the only one it accepts.
pub const ISSUER: &str = "logbook";

/// Longest token accepted by [`decode`], in bytes; anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Shortest accepted signing secret, in bytes (256 bits, the output size of SHA-256).
pub const MIN_SECRET_BYTES: usize = 32;

/// How far in the future `iat` may lie, in seconds, to tolerate clock differences.
const IAT_LEEWAY_SECONDS: i64 = 60;

/// The only algorithm accepted.
const ALGORITHM: &str = "HS256";

/// The only token type accepted.
const TOKEN_TYPE: &str = "JWT";

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded.
const ENCODED_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The secret that signs and verifies session tokens.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct JwtKey {
    mac: HmacSha256,
}

impl JwtKey {
    /// Makes a key from a secret of at least [`MIN_SECRET_BYTES`] random bytes.
    ///
    /// # Errors
    ///
    /// [`SecretTooShort`] if `secret` is shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<JwtKey, SecretTooShort> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretTooShort {
                min: MIN_SECRET_BYTES,
                actual: secret.len(),
            });
        }
        Ok(JwtKey {
            mac: hmac_sha256(secret),
        })
    }

    /// An HMAC instance over `header.payload`, ready to finalise or verify.
    fn mac_over(&self, signing_input: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac
    }
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A token signing secret was too short to be safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token signing secret must be at least {min} bytes long, got {actual}")]
pub struct SecretTooShort {
    /// The minimum length, [`MIN_SECRET_BYTES`].
    pub min: usize,
    /// The length that was given.
    pub actual: usize,
}

/// What a session token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; always [`ISSUER`].
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// The tenant the session acts in.
    pub tenant: String,
    /// The user's role in that tenant.
    pub role: String,
    /// Session id, so a session can be revoked before the token expires.
    pub sid: String,
    /// Whether the user administers the whole installation, across tenants.
    #[serde(default)]
    pub super_admin: bool,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expires at, in Unix seconds; the token is invalid from this second on.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// The token is not three base64url parts of JSON, or its header has unknown fields.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than HS256, `none` included.
    #[error("the token algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the header and payload.
    #[error("the token signature is invalid")]
    BadSignature,
    /// The token's `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The token is authentic but its claims are inconsistent; names the problem.
    #[error("the token claims are invalid: {0}")]
    InvalidClaims(&'static str),
}

/// Signs `claims` and returns the compact token `header.payload.signature`.
///
/// The header is exactly `{"alg":"HS256","typ":"JWT"}`.
pub fn encode(key: &JwtKey, claims: &Claims) -> String {
    // Serialising `Claims` cannot fail: it has only strings, integers and a bool. Were it
    // ever to fail, the empty payload makes a token that `decode` refuses as malformed,
    // so the failure cannot grant access.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{ENCODED_HEADER}.{}", base64url(&payload));
    let signature = key.mac_over(&signing_input).finalize().into_bytes();
    format!("{signing_input}.{}", base64url(&signature))
}

/// Verifies `token` and returns its claims.
///
/// Checks, in this order: the length; the three-part shape; the header (HS256 only,
/// `typ` if present must be `JWT`, no other fields); the signature, in constant time,
/// before the claims are parsed; then the claims: `iss` is [`ISSUER`], `exp` is after
/// `now_unix_seconds`, `iat` is at most 60 seconds in the future, and `exp` is after
/// `iat`.
///
/// # Errors
///
/// The first check that fails, as a [`TokenError`].
pub fn decode(key: &JwtKey, token: &str, now_unix_seconds: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(TokenError::Malformed);
    }

    check_header(header)?;

    let signature = decode_base64url(signature).ok_or(TokenError::Malformed)?;
    let signing_input_len = header.len() + 1 + payload.len();
    let signing_input = token
        .get(..signing_input_len)
        .ok_or(TokenError::Malformed)?;
    key.mac_over(signing_input)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;

    let payload = decode_base64url(payload).ok_or(TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    check_claims(&claims, now_unix_seconds)?;
    Ok(claims)
}

/// Accepts exactly the header [`encode`] writes, in any key order, `typ` optional.
fn check_header(encoded: &str) -> Result<(), TokenError> {
    let bytes = decode_base64url(encoded).ok_or(TokenError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or(TokenError::Malformed)?;
    if alg != ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm(alg.to_owned()));
    }
    match header.get("typ") {
        None => {}
        Some(typ) if typ.as_str() == Some(TOKEN_TYPE) => {}
        Some(_) => return Err(TokenError::Malformed),
    }
    if header.keys().any(|name| name != "alg" && name != "typ") {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

fn check_claims(claims: &Claims, now: i64) -> Result<(), TokenError> {
    if claims.iss != ISSUER {
        return Err(TokenError::InvalidClaims("wrong issuer"));
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat > now.saturating_add(IAT_LEEWAY_SECONDS) {
        return Err(TokenError::InvalidClaims("issued in the future"));
    }
    if claims.exp <= claims.iat {
        return Err(TokenError::InvalidClaims("expires before it was issued"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_900_000;

    fn key() -> JwtKey {
        JwtKey::new(&[7u8; 32]).expect("32-byte secret")
    }

    fn claims() -> Claims {
        Claims {
            iss: ISSUER.to_owned(),
            sub: "user_1".to_owned(),
            tenant: "default".to_owned(),
            role: "viewer".to_owned(),
            sid: "ses_1".to_owned(),
            super_admin: false,
            iat: NOW,
            exp: NOW + 3600,
        }
    }

    /// Builds a token with an arbitrary header JSON and signature bytes.
    fn forge(header_json: &str, claims: &Claims, signature: &[u8]) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        format!(
            "{}.{}.{}",
            base64url(header_json.as_bytes()),
            base64url(&payload),
            base64url(signature)
        )
    }

    /// Builds a token with an arbitrary header, correctly signed with `key`.
    fn sign_with_header(key: &JwtKey, header_json: &str, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        let input = format!(
            "{}.{}",
            base64url(header_json.as_bytes()),
            base64url(&payload)
        );
        let signature = key.mac_over(&input).finalize().into_bytes();
        format!("{input}.{}", base64url(&signature))
    }

    #[test]
    fn round_trip() {
        let token = encode(&key(), &claims());
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
        assert_eq!(decode(&key(), &token, NOW), Ok(claims()));
    }

    #[test]
    fn header_is_exactly_hs256_jwt() {
        let decoded = decode_base64url(ENCODED_HEADER).expect("valid base64url");
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn super_admin_defaults_to_false_and_round_trips_when_set() {
        let mut admin = claims();
        admin.super_admin = true;
        let token = encode(&key(), &admin);
        assert_eq!(decode(&key(), &token, NOW), Ok(admin));

        let json =
            br#"{"iss":"logbook","sub":"u","tenant":"t","role":"r","sid":"s","iat":1,"exp":2}"#;
        let parsed: Claims = serde_json::from_slice(json).expect("claims without super_admin");
        assert!(!parsed.super_admin);
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            JwtKey::new(&[1u8; 31]).map(|_| ()),
            Err(SecretTooShort {
                min: 32,
                actual: 31
            })
        );
        assert!(JwtKey::new(&[1u8; 64]).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = JwtKey::new(b"super-secret-signing-material-0123456789").expect("key");
        let shown = format!("{key:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let other = JwtKey::new(&[8u8; 32]).expect("key");
        let token = encode(&other, &claims());
        assert_eq!(decode(&key(), &token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_unsupported_with_or_without_signature() {
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"none"}"#] {
            let unsigned = forge(header, &claims(), b"");
            assert!(unsigned.ends_with('.'));
            assert_eq!(
                decode(&key(), &unsigned, NOW),
                Err(TokenError::UnsupportedAlgorithm("none".to_owned()))
            );
            let signed = forge(header, &claims(), &[0u8; 32]);
            assert_eq!(
                decode(&key(), &signed, NOW),
                Err(TokenError::UnsupportedAlgorithm("none".to_owned()))
            );
        }
        let upper = forge(r#"{"alg":"NONE"}"#, &claims(), b"");
        assert_eq!(
            decode(&key(), &upper, NOW),
            Err(TokenError::UnsupportedAlgorithm("NONE".to_owned()))
        );
    }

    #[test]
    fn other_algorithms_are_unsupported_even_when_signed_with_our_key() {
        for alg in ["HS512", "RS256", "ES256", "hs256", "HS256 "] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let token = sign_with_header(&key(), &header, &claims());
            assert_eq!(
                decode(&key(), &token, NOW),
                Err(TokenError::UnsupportedAlgorithm(alg.to_owned())),
                "{alg}"
            );
        }
    }

    #[test]
    fn header_must_be_ours() {
        // A signed token whose header differs from ours in a refused way.
        for header in [
            r#"{"alg":"HS256","typ":"jwt"}"#,
            r#"{"alg":"HS256","typ":1}"#,
            r#"{"alg":"HS256","typ":"JWT","kid":"../../etc/passwd"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":256}"#,
            r#"["HS256"]"#,
        ] {
            let token = sign_with_header(&key(), header, &claims());
            assert_eq!(
                decode(&key(), &token, NOW),
                Err(TokenError::Malformed),
                "{header}"
            );
        }
        // Key order and a missing typ are fine.
        for header in [r#"{"typ":"JWT","alg":"HS256"}"#, r#"{"alg":"HS256"}"#] {
            let token = sign_with_header(&key(), header, &claims());
            assert_eq!(decode(&key(), &token, NOW), Ok(claims()), "{header}");
        }
    }

    #[test]
    fn tampered_payload_is_bad_signature() {
        let token = encode(&key(), &claims());
        let signature = token.rsplit('.').next().expect("three parts");
        let mut elevated = claims();
        elevated.role = "admin".to_owned();
        elevated.super_admin = true;
        let payload = base64url(&serde_json::to_vec(&elevated).expect("serialise"));
        let tampered = format!("{ENCODED_HEADER}.{payload}.{signature}");
        assert_eq!(
            decode(&key(), &tampered, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_is_bad_signature() {
        let token = encode(&key(), &claims());
        let (input, _) = token.rsplit_once('.').expect("three parts");
        let forged = format!("{input}.{}", base64url(&[0u8; 32]));
        assert_eq!(decode(&key(), &forged, NOW), Err(TokenError::BadSignature));
        let truncated = format!("{input}.{}", base64url(&[0u8; 16]));
        assert_eq!(
            decode(&key(), &truncated, NOW),
            Err(TokenError::BadSignature)
        );
        let empty = format!("{input}.");
        assert_eq!(decode(&key(), &empty, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_is_exclusive() {
        let token = encode(&key(), &claims());
        let exp = claims().exp;
        assert!(decode(&key(), &token, exp - 1).is_ok());
        assert_eq!(decode(&key(), &token, exp), Err(TokenError::Expired));
        assert_eq!(decode(&key(), &token, exp + 1000), Err(TokenError::Expired));
    }

    #[test]
    fn claims_are_checked() {
        let mut foreign = claims();
        foreign.iss = "someone-else".to_owned();
        let token = encode(&key(), &foreign);
        assert_eq!(
            decode(&key(), &token, NOW),
            Err(TokenError::InvalidClaims("wrong issuer"))
        );

        let mut future = claims();
        future.iat = NOW + 61;
        future.exp = NOW + 3600;
        let token = encode(&key(), &future);
        assert_eq!(
            decode(&key(), &token, NOW),
            Err(TokenError::InvalidClaims("issued in the future"))
        );
        let mut slight = claims();
        slight.iat = NOW + 60;
        assert!(decode(&key(), &encode(&key(), &slight), NOW).is_ok());

        let mut backwards = claims();
        backwards.iat = NOW + 10;
        backwards.exp = NOW + 10;
        let token = encode(&key(), &backwards);
        assert_eq!(
            decode(&key(), &token, NOW),
            Err(TokenError::InvalidClaims("expires before it was issued"))
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut far = claims();
        far.iat = i64::MIN;
        far.exp = i64::MAX;
        let token = encode(&key(), &far);
        assert_eq!(decode(&key(), &token, i64::MAX - 1), Ok(far.clone()));
        assert_eq!(decode(&key(), &token, i64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn authentic_but_unparsable_claims_are_malformed() {
        let input = format!("{ENCODED_HEADER}.{}", base64url(br#"{"sub":"x"}"#));
        let signature = key().mac_over(&input).finalize().into_bytes();
        let token = format!("{input}.{}", base64url(&signature));
        assert_eq!(decode(&key(), &token, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn shapes_and_garbage() {
        let k = key();
        let good = encode(&k, &claims());
        let (input, signature) = good.rsplit_once('.').expect("three parts");
        let (header, payload) = input.split_once('.').expect("header.payload");
        let cases: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Malformed),
            ("garbage".to_owned(), TokenError::Malformed),
            ("..".to_owned(), TokenError::Malformed),
            (format!("{header}.{payload}"), TokenError::Malformed),
            (format!("{good}.{signature}"), TokenError::Malformed),
            (format!(".{payload}.{signature}"), TokenError::Malformed),
            (format!("{header}..{signature}"), TokenError::Malformed),
            (format!("{header}.{payload}.!!!"), TokenError::Malformed),
            (
                format!("{header}.{payload}.{signature}="),
                TokenError::Malformed,
            ),
            (format!("$$$.{payload}.{signature}"), TokenError::Malformed),
            (
                format!("{}.{payload}.{signature}", base64url(b"not json")),
                TokenError::Malformed,
            ),
            ("a".repeat(MAX_TOKEN_BYTES + 1), TokenError::TooLong),
            (
                format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES)),
                TokenError::TooLong,
            ),
        ];
        for (token, expected) in cases {
            let shown: String = token.chars().take(60).collect();
            assert_eq!(decode(&k, &token, NOW), Err(expected), "{shown}");
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic_and_never_verify() {
        let k = key();
        let good = encode(&k, &claims());
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: deterministic, so a failure reproduces.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"";
        for _ in 0..2000 {
            // Mutate one to four bytes of a valid token.
            let mut bytes = good.clone().into_bytes();
            for _ in 0..=(next() % 4) {
                let at = (next() % bytes.len() as u64) as usize;
                let with = alphabet[(next() % alphabet.len() as u64) as usize];
                bytes[at] = with;
            }
            if let Ok(mutated) = String::from_utf8(bytes)
                && mutated != good
            {
                let result = decode(&k, &mutated, NOW);
                // A mutation may be a no-op on the decoded value only where base64 would
                // allow two spellings, which the strict decoder refuses; so never Ok.
                assert!(result.is_err(), "{mutated} verified");
            }

            // Random strings of random length.
            let len = (next() % 200) as usize;
            let random: String = (0..len)
                .map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize]))
                .collect();
            assert!(decode(&k, &random, NOW).is_err());
        }
    }

    #[test]
    fn non_ascii_input_does_not_panic() {
        let k = key();
        for token in ["é.é.é", "ééé", "\u{0}.\u{0}.\u{0}", "a.b.\u{1F600}"] {
            assert_eq!(decode(&k, token, NOW), Err(TokenError::Malformed));
        }
    }
}
