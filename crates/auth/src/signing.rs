//! HMAC request signing and replay protection.
//!
//! # The scheme
//!
//! The string to sign is
//!
//! ```text
//! timestamp + "\n" + METHOD + "\n" + path_and_query + "\n" + body
//! ```
//!
//! where `timestamp` is the request time in decimal Unix seconds, `METHOD` the HTTP
//! method as sent (for example `POST`), `path_and_query` the request target as sent
//! (for example `/v1/logs?dry_run=true`), and `body` the raw body bytes, possibly empty.
//! The signature is the lowercase hex HMAC-SHA256 of the string to sign, keyed with the
//! UTF-8 bytes of the whole signing key, `lbk_` prefix included.
//!
//! The server accepts a signature only within [`DEFAULT_TOLERANCE_SECONDS`] (or the
//! configured tolerance) of its own clock, and a [`ReplayGuard`] refuses the same
//! signature twice within that window.
//!
//! # Example
//!
//! With key `lbk_example_signing_key_0123456789abcdef`, timestamp `1763900000`, method
//! `POST`, path `/v1/logs` and body `{"message":"hello"}`, the signature is
//!
//! ```text
//! 7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504
//! ```
//!
//! which `openssl` reproduces:
//!
//! ```text
//! printf '%s\n%s\n%s\n%s' 1763900000 POST /v1/logs '{"message":"hello"}' \
//!   | openssl dgst -sha256 -hmac 'lbk_example_signing_key_0123456789abcdef'
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use hmac::Mac as _;

use crate::encoding::{decode_hex_lower, hex_lower};
use crate::mac::{HmacSha256, hmac_sha256};

/// How far the request's timestamp may be from the server's clock, either way, by
/// default: five minutes.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Most digits a timestamp may have; 12 digits reach beyond the year 33000.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The timestamp is not 1 to 12 decimal digits.
    #[error("the signature timestamp must be Unix seconds in decimal digits")]
    MalformedTimestamp,
    /// The signature is not 64 lowercase hex characters.
    #[error("the signature must be 64 lowercase hex characters")]
    MalformedSignature,
    /// The timestamp is too far from the server's clock.
    #[error("the signature timestamp is {skew_seconds} seconds away from the server's clock")]
    OutsideWindow {
        /// Server time minus request time: positive when the request is old, negative
        /// when it is from the future.
        skew_seconds: i64,
    },
    /// The signature does not match the request.
    #[error("the signature does not match the request")]
    Mismatch,
}

/// The exact bytes that are signed; see the [module documentation](self).
pub fn string_to_sign(timestamp: &str, method: &str, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let head = format!("{timestamp}\n{method}\n{path_and_query}\n");
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Signs a request: the lowercase hex HMAC-SHA256 of [`string_to_sign`], keyed with the
/// UTF-8 bytes of `key`.
pub fn sign(key: &str, timestamp: &str, method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mac = mac_over(key, timestamp, method, path_and_query, body);
    hex_lower(&mac.finalize().into_bytes())
}

/// Verifies a request's signature.
///
/// Checks, in this order: `timestamp` is 1 to 12 decimal digits; it is within
/// `tolerance_seconds` of `now_unix_seconds` either way (a negative tolerance counts as
/// zero); `signature` is 64 lowercase hex characters; and it matches, compared in
/// constant time. A server checks the first three with [`check_headers`] before it
/// reads the body, and the last with a [`BodyVerifier`] while the body streams in.
///
/// # Errors
///
/// The first check that fails, as a [`SignatureError`].
#[allow(clippy::too_many_arguments)]
pub fn verify(
    key: &str,
    timestamp: &str,
    signature: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix_seconds: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let expected = check_headers(timestamp, signature, now_unix_seconds, tolerance_seconds)?;
    let mut verifier = BodyVerifier::new(key, timestamp, method, path_and_query);
    verifier.update(body);
    verifier.finish(&expected)
}

/// The checks that need no body: `timestamp` is 1 to 12 decimal digits within
/// `tolerance_seconds` of `now_unix_seconds`, and `signature` is 64 lowercase hex
/// characters. Returns the signature's bytes for [`BodyVerifier::finish`] and
/// [`ReplayGuard::first_use`].
///
/// # Errors
///
/// The first check that fails, as a [`SignatureError`].
pub fn check_headers(
    timestamp: &str,
    signature: &str,
    now_unix_seconds: i64,
    tolerance_seconds: i64,
) -> Result<[u8; 32], SignatureError> {
    let signed_at = parse_timestamp(timestamp).ok_or(SignatureError::MalformedTimestamp)?;
    let skew_seconds = now_unix_seconds.saturating_sub(signed_at);
    if skew_seconds.unsigned_abs() > tolerance_seconds.max(0).unsigned_abs() {
        return Err(SignatureError::OutsideWindow { skew_seconds });
    }
    decode_hex_lower(signature).ok_or(SignatureError::MalformedSignature)
}

/// Parses 1 to [`MAX_TIMESTAMP_DIGITS`] ASCII digits; no sign, spaces or other forms.
fn parse_timestamp(timestamp: &str) -> Option<i64> {
    if timestamp.is_empty()
        || timestamp.len() > MAX_TIMESTAMP_DIGITS
        || !timestamp.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    timestamp.parse().ok()
}

/// The HMAC over the string to sign, fed piecewise so a large body is not copied.
fn mac_over(
    key: &str,
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut verifier = BodyVerifier::new(key, timestamp, method, path_and_query);
    verifier.update(body);
    verifier.mac
}

/// Computes a request's HMAC while its body streams in, chunk by chunk.
pub struct BodyVerifier {
    mac: HmacSha256,
}

impl BodyVerifier {
    /// Starts the HMAC with everything signed before the body.
    pub fn new(key: &str, timestamp: &str, method: &str, path_and_query: &str) -> Self {
        let mut mac = hmac_sha256(key.as_bytes());
        for part in [timestamp, method, path_and_query] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        BodyVerifier { mac }
    }

    /// Adds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Compares the HMAC of the whole request with `expected`, in constant time.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Mismatch`] when they differ.
    pub fn finish(self, expected: &[u8; 32]) -> Result<(), SignatureError> {
        self.mac
            .verify_slice(expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

impl std::fmt::Debug for BodyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyVerifier").finish_non_exhaustive()
    }
}

/// Remembers recently accepted signatures so each can be used only once.
///
/// An entry for `(key_id, signature)` is kept until `now + 2 * window_seconds` after its
/// first use. A request accepted at `now` carries a timestamp no further than the
/// tolerance from `now`, so it stops verifying by `now + 2 * tolerance` at the latest:
/// with `window_seconds` at least the tolerance given to [`verify`], a replay is refused
/// for as long as the signature could verify.
///
/// Each key has its own share of at most `max_per_key` signatures, so one key (whose
/// requests passed every other check: signature, revocation, rate limit) can fill only
/// its own share, never another key's. When a key's share is full its expired entries
/// are dropped; if it is still full, [`ReplayGuard::first_use`] answers
/// [`Replay::Full`] for that key's new signatures until entries expire.
///
/// All keys together hold at most `max_total` signatures, so many keys cannot grow
/// memory without bound either. When the total is reached, the entries already outside
/// their replay window (expired: their signatures could no longer verify) are evicted
/// first, every key's; if none is, [`ReplayGuard::first_use`] answers
/// [`Replay::AllFull`] for every key's new signatures until entries expire. Such an
/// eviction pass reads every entry, but runs at most once per second of the clock: it
/// is skipped while nothing can have expired.
///
/// Both fail closed: a replay is never let through and memory stays within
/// `max_total` entries. Keys with nothing left to remember are forgotten.
pub struct ReplayGuard {
    window_seconds: i64,
    max_per_key: usize,
    max_total: usize,
    state: Mutex<Seen>,
}

/// What [`ReplayGuard::first_use`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "only Replay::Fresh lets the request through"]
pub enum Replay {
    /// Not seen within its window: now remembered.
    Fresh,
    /// Already used within its window.
    Replayed,
    /// The key's share is full of signatures that have not expired yet.
    Full,
    /// The guard as a whole is full of signatures that have not expired yet.
    AllFull,
}

/// The remembered signatures of every key, and when each may be forgotten.
struct Seen {
    keys: HashMap<String, KeySeen>,
    /// Signatures remembered over all keys.
    total: usize,
    /// No entry of any key expires before this (it may be earlier than the true
    /// earliest), so a sweep earlier than it would free nothing.
    earliest_expiry: Option<i64>,
    /// When every key is next swept, so keys that went quiet are forgotten.
    next_sweep: i64,
}

/// One key's remembered signatures.
#[derive(Default)]
struct KeySeen {
    expiries: HashMap<[u8; 32], i64>,
    /// No entry expires before this, so a sweep earlier than it would free nothing.
    earliest_expiry: Option<i64>,
}

impl ReplayGuard {
    /// Makes a guard remembering each signature for `2 * window_seconds` (a negative
    /// window counts as zero), holding at most `max_per_key` signatures per key and
    /// `max_total` over all keys.
    pub fn new(window_seconds: i64, max_per_key: usize, max_total: usize) -> Self {
        ReplayGuard {
            window_seconds: window_seconds.max(0),
            max_per_key,
            max_total,
            state: Mutex::new(Seen {
                keys: HashMap::new(),
                total: 0,
                earliest_expiry: None,
                next_sweep: i64::MIN,
            }),
        }
    }

    /// Records a verified signature of `key_id`: [`Replay::Fresh`] if it had not been
    /// seen within its window, else [`Replay::Replayed`]; [`Replay::Full`] when the
    /// key's share is full, [`Replay::AllFull`] when the guard is (see the type
    /// documentation).
    ///
    /// Call it only after the signature verified and the key passed its revocation
    /// check and rate limit, so neither forged signatures nor refused requests fill it.
    pub fn first_use(&self, key_id: &str, signature: &[u8; 32], now_unix_seconds: i64) -> Replay {
        // A panic elsewhere while holding the lock leaves the maps consistent (every
        // update is a single insert or retain), so a poisoned lock is safe to reuse.
        let mut seen = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = &mut *seen;
        if now_unix_seconds >= seen.next_sweep {
            seen.sweep(now_unix_seconds);
            seen.next_sweep = now_unix_seconds.saturating_add(self.window_seconds.max(1));
        }
        let known = match seen
            .keys
            .get(key_id)
            .and_then(|key| key.expiries.get(signature))
        {
            Some(&expiry) if expiry > now_unix_seconds => return Replay::Replayed,
            // Expired: its entry is reused, so it adds nothing to the total.
            Some(_) => true,
            None => false,
        };
        if !known {
            let held = seen.keys.get(key_id).map_or(0, |key| key.expiries.len());
            if held >= self.max_per_key {
                let freed = seen
                    .keys
                    .get_mut(key_id)
                    .map_or(0, |key| key.sweep(now_unix_seconds));
                seen.total -= freed;
                if held - freed >= self.max_per_key {
                    return Replay::Full;
                }
            }
            if seen.total >= self.max_total {
                seen.sweep(now_unix_seconds);
                if seen.total >= self.max_total {
                    return Replay::AllFull;
                }
            }
        }
        let key = seen.keys.entry(key_id.to_owned()).or_default();
        let expiry = now_unix_seconds.saturating_add(self.window_seconds.saturating_mul(2));
        key.earliest_expiry = Some(key.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
        if key.expiries.insert(*signature, expiry).is_none() {
            seen.total += 1;
        }
        seen.earliest_expiry = Some(seen.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
        Replay::Fresh
    }
}

impl Seen {
    /// Evicts every key's entries that have expired by `now` (none if the earliest
    /// expiry is later) and forgets keys left with none.
    fn sweep(&mut self, now: i64) {
        if self.earliest_expiry.is_none_or(|earliest| earliest > now) {
            return;
        }
        let mut total = 0;
        let mut earliest: Option<i64> = None;
        self.keys.retain(|_, key| {
            key.sweep(now);
            total += key.expiries.len();
            if let Some(expiry) = key.earliest_expiry {
                earliest = Some(earliest.map_or(expiry, |e| e.min(expiry)));
            }
            !key.expiries.is_empty()
        });
        self.total = total;
        self.earliest_expiry = earliest;
    }
}

impl ReplayGuard {
    /// Whether `signature` of `key_id` was already used within its window,
    /// without remembering it: lets a replay be refused before it costs the
    /// key's owner a unit of its rate limit.
    pub fn was_used(&self, key_id: &str, signature: &[u8; 32], now_unix_seconds: i64) -> bool {
        let seen = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        seen.keys
            .get(key_id)
            .and_then(|key| key.expiries.get(signature))
            .is_some_and(|expiry| *expiry > now_unix_seconds)
    }
}

impl KeySeen {
    /// Drops every entry that has expired by `now`; returns how many.
    fn sweep(&mut self, now: i64) -> usize {
        if self.earliest_expiry.is_none_or(|earliest| earliest > now) {
            return 0;
        }
        let before = self.expiries.len();
        self.expiries.retain(|_, expiry| *expiry > now);
        self.earliest_expiry = self.expiries.values().copied().min();
        before - self.expiries.len()
    }
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("window_seconds", &self.window_seconds)
            .field("max_per_key", &self.max_per_key)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "lbk_example_signing_key_0123456789abcdef";
    const TS: &str = "1763900000";
    const NOW: i64 = 1_763_900_000;
    const BODY: &[u8] = br#"{"message":"hello"}"#;

    #[test]
    fn known_answer() {
        assert_eq!(
            sign(KEY, TS, "POST", "/v1/logs", BODY),
            "7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504"
        );
    }

    #[test]
    fn string_to_sign_layout() {
        assert_eq!(
            string_to_sign(TS, "POST", "/v1/logs", BODY),
            b"1763900000\nPOST\n/v1/logs\n{\"message\":\"hello\"}".to_vec()
        );
        assert_eq!(
            string_to_sign(TS, "GET", "/v1/search?q=a", b""),
            b"1763900000\nGET\n/v1/search?q=a\n".to_vec()
        );
    }

    #[test]
    fn sign_is_the_hmac_of_string_to_sign() {
        let mut mac = hmac_sha256(KEY.as_bytes());
        mac.update(&string_to_sign(TS, "PUT", "/x?y=1", b"\x00\xffbinary"));
        assert_eq!(
            sign(KEY, TS, "PUT", "/x?y=1", b"\x00\xffbinary"),
            hex_lower(&mac.finalize().into_bytes())
        );
    }

    #[test]
    fn verify_accepts_a_good_signature() {
        let signature = sign(KEY, TS, "POST", "/v1/logs", BODY);
        assert_eq!(
            verify(
                KEY,
                TS,
                &signature,
                "POST",
                "/v1/logs",
                BODY,
                NOW,
                DEFAULT_TOLERANCE_SECONDS
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_detects_any_change() {
        let signature = sign(KEY, TS, "POST", "/v1/logs", BODY);
        let check = |key: &str, ts: &str, method: &str, path: &str, body: &[u8]| {
            verify(
                key,
                ts,
                &signature,
                method,
                path,
                body,
                NOW,
                DEFAULT_TOLERANCE_SECONDS,
            )
        };
        assert_eq!(
            check("lbk_other", TS, "POST", "/v1/logs", BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(KEY, "1763900001", "POST", "/v1/logs", BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(KEY, TS, "PUT", "/v1/logs", BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(KEY, TS, "POST", "/v1/logs?x=1", BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(KEY, TS, "POST", "/v1/logs", b"{}"),
            Err(SignatureError::Mismatch)
        );
        // Moving bytes between fields changes the string to sign.
        assert_eq!(
            check(KEY, TS, "POST\n/v1", "logs", BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_checks_the_window() {
        let sig = |ts: i64| sign(KEY, &ts.to_string(), "GET", "/", b"");
        let at = |ts: i64| verify(KEY, &ts.to_string(), &sig(ts), "GET", "/", b"", NOW, 300);
        assert_eq!(at(NOW - 300), Ok(()));
        assert_eq!(at(NOW + 300), Ok(()));
        assert_eq!(
            at(NOW - 301),
            Err(SignatureError::OutsideWindow { skew_seconds: 301 })
        );
        assert_eq!(
            at(NOW + 301),
            Err(SignatureError::OutsideWindow { skew_seconds: -301 })
        );
        assert_eq!(
            at(0),
            Err(SignatureError::OutsideWindow { skew_seconds: NOW })
        );
        // A negative tolerance counts as zero.
        let exact = verify(KEY, TS, &sig(NOW), "GET", "/", b"", NOW, -5);
        assert_eq!(exact, Ok(()));
        // Extreme clocks do not overflow.
        assert_eq!(
            verify(
                KEY,
                "999999999999",
                &sig(999_999_999_999),
                "GET",
                "/",
                b"",
                i64::MIN,
                300
            ),
            Err(SignatureError::OutsideWindow {
                skew_seconds: i64::MIN
            })
        );
    }

    #[test]
    fn verify_refuses_malformed_timestamps() {
        let signature = sign(KEY, TS, "GET", "/", b"");
        for ts in [
            "",
            "-1",
            "+1763900000",
            " 1763900000",
            "1763900000 ",
            "1.5",
            "0x10",
            "1e9",
            "1234567890123",
            "١٢٣",
        ] {
            assert_eq!(
                verify(KEY, ts, &signature, "GET", "/", b"", NOW, 300),
                Err(SignatureError::MalformedTimestamp),
                "{ts:?}"
            );
        }
        // Twelve digits are still a timestamp (then far outside the window).
        assert!(matches!(
            verify(KEY, "123456789012", &signature, "GET", "/", b"", NOW, 300),
            Err(SignatureError::OutsideWindow { .. })
        ));
    }

    #[test]
    fn verify_refuses_malformed_signatures() {
        let good = sign(KEY, TS, "GET", "/", b"");
        for bad in [
            String::new(),
            good[..63].to_owned(),
            format!("{good}0"),
            good.to_ascii_uppercase(),
            format!("{}g", &good[..63]),
            "é".repeat(32),
        ] {
            assert_eq!(
                verify(KEY, TS, &bad, "GET", "/", b"", NOW, 300),
                Err(SignatureError::MalformedSignature),
                "{bad:?}"
            );
        }
    }

    /// A distinct signature for each small number.
    fn sig(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn check_headers_needs_no_body() {
        let signature = sign(KEY, TS, "POST", "/v1/logs", BODY);
        let bytes = check_headers(TS, &signature, NOW, 300).expect("fresh and well-formed");
        let mut verifier = BodyVerifier::new(KEY, TS, "POST", "/v1/logs");
        for chunk in BODY.chunks(3) {
            verifier.update(chunk);
        }
        assert_eq!(verifier.finish(&bytes), Ok(()));
        assert_eq!(
            check_headers("1", &signature, NOW, 300),
            Err(SignatureError::OutsideWindow {
                skew_seconds: NOW - 1
            })
        );
        assert_eq!(
            check_headers(TS, "not-hex", NOW, 300),
            Err(SignatureError::MalformedSignature)
        );
    }

    #[test]
    fn replay_guard_refuses_a_second_use() {
        let guard = ReplayGuard::new(300, 100, 1_000);
        assert_eq!(guard.first_use("key_a", &sig(1), NOW), Replay::Fresh);
        assert_eq!(guard.first_use("key_a", &sig(1), NOW + 1), Replay::Replayed);
        assert_eq!(
            guard.first_use("key_b", &sig(1), NOW),
            Replay::Fresh,
            "per key"
        );
        assert_eq!(guard.first_use("key_a", &sig(2), NOW), Replay::Fresh);
        // Remembered for 2 * window, then forgotten.
        assert_eq!(
            guard.first_use("key_a", &sig(1), NOW + 599),
            Replay::Replayed
        );
        assert_eq!(guard.first_use("key_a", &sig(1), NOW + 600), Replay::Fresh);
    }

    #[test]
    fn replay_guard_is_bounded_per_key_and_fails_closed() {
        let guard = ReplayGuard::new(10, 3, 100);
        assert_eq!(guard.first_use("k", &sig(1), 0), Replay::Fresh);
        assert_eq!(guard.first_use("k", &sig(2), 5), Replay::Fresh);
        assert_eq!(guard.first_use("k", &sig(3), 5), Replay::Fresh);
        // Full, nothing expired: refuse new signatures, still refuse replays.
        assert_eq!(guard.first_use("k", &sig(4), 10), Replay::Full);
        assert_eq!(guard.first_use("k", &sig(1), 10), Replay::Replayed);
        // Another key's share is untouched.
        assert_eq!(guard.first_use("other", &sig(4), 10), Replay::Fresh);
        // At 20 sig 1 (expiry 20) has expired: it is swept and sig 4 fits.
        assert_eq!(guard.first_use("k", &sig(4), 20), Replay::Fresh);
        assert_eq!(guard.first_use("k", &sig(5), 20), Replay::Full);
        let count = |guard: &ReplayGuard| {
            let seen = guard.state.lock().expect("not poisoned");
            seen.keys
                .values()
                .map(|key| key.expiries.len())
                .sum::<usize>()
        };
        assert_eq!(count(&guard), 4);
        // Everything has expired by 100; quiet keys are forgotten.
        assert_eq!(guard.first_use("k", &sig(5), 100), Replay::Fresh);
        assert_eq!(count(&guard), 1);
        assert_eq!(guard.state.lock().expect("not poisoned").keys.len(), 1);
    }

    #[test]
    fn replay_guard_is_bounded_over_all_keys_and_evicts_only_expired_entries() {
        // Each key may hold 3, all together 4; entries expire 20 s after first use.
        let guard = ReplayGuard::new(10, 3, 4);
        let total = |guard: &ReplayGuard| guard.state.lock().expect("not poisoned").total;
        assert_eq!(guard.first_use("a", &sig(1), 0), Replay::Fresh);
        assert_eq!(guard.first_use("b", &sig(1), 5), Replay::Fresh);
        assert_eq!(guard.first_use("c", &sig(1), 5), Replay::Fresh);
        assert_eq!(guard.first_use("d", &sig(1), 6), Replay::Fresh);
        assert_eq!(total(&guard), 4);
        // Full, nothing expired: every key's new signatures are refused (fail closed),
        // replays still are, and nothing remembered is dropped to make room.
        assert_eq!(guard.first_use("e", &sig(1), 10), Replay::AllFull);
        assert_eq!(guard.first_use("a", &sig(2), 10), Replay::AllFull);
        assert_eq!(guard.first_use("d", &sig(1), 10), Replay::Replayed);
        assert_eq!(guard.first_use("a", &sig(1), 19), Replay::Replayed);
        // At 20, a's entry is outside its window: it is evicted, and e fits.
        assert_eq!(guard.first_use("e", &sig(1), 20), Replay::Fresh);
        assert_eq!(total(&guard), 4);
        assert_eq!(guard.first_use("f", &sig(1), 20), Replay::AllFull);
        // b's and c's expire at 25: both are evicted, room for two.
        assert_eq!(guard.first_use("f", &sig(1), 25), Replay::Fresh);
        assert_eq!(guard.first_use("a", &sig(3), 25), Replay::Fresh);
        assert_eq!(guard.first_use("g", &sig(1), 25), Replay::AllFull);
        assert_eq!(total(&guard), 4);
        assert_eq!(guard.state.lock().expect("not poisoned").keys.len(), 4);
        // Many keys together never hold more than the total.
        let guard = ReplayGuard::new(10, 3, 50);
        for key in 0..1_000 {
            let _ = guard.first_use(&format!("key{key}"), &sig(1), 0);
        }
        assert_eq!(total(&guard), 50);
    }

    #[test]
    fn replay_guard_with_zero_capacity_refuses_everything() {
        let guard = ReplayGuard::new(300, 0, 100);
        assert_eq!(guard.first_use("k", &sig(1), NOW), Replay::Full);
    }
}
