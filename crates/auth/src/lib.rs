//! Security primitives of Logbook: HS256 session tokens, Argon2id password hashing and
//! password policy, bearer API keys, HMAC request signing with replay protection,
//! token-bucket rate limits, and the signatures of outgoing webhooks. No I/O: nothing
//! here touches the network, the disk or the clock (callers pass the current time in),
//! apart from reading the operating system's random number generator.
//!
//! Every function here is deterministic given its inputs and randomness, so the HTTP
//! layer owns the policy decisions (which header, which status code) and this crate owns
//! the cryptography and the arithmetic.

pub mod apikey;
pub mod cursor;
mod encoding;
pub mod jwt;
mod mac;
pub mod password;
mod random;
pub mod ratelimit;
pub mod signing;
pub mod webhook;

pub use random::{RandomError, random_bytes};
