//! Randomness from the operating system.

/// The operating system's random number generator failed.
///
/// On the platforms Logbook runs on this does not happen in practice (Linux's
/// `getrandom(2)` blocks until the pool is seeded and then never fails), so callers may
/// treat it as an internal server error. It is still returned rather than panicking so a
/// broken environment shows up as an error response and a log line, never as a crash.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(#[source] getrandom::Error);

/// Returns `N` bytes from the operating system's cryptographically secure random number
/// generator.
///
/// # Errors
///
/// [`RandomError`] if the operating system cannot provide randomness.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_calls() {
        let a: [u8; 32] = random_bytes().expect("os randomness");
        let b: [u8; 32] = random_bytes().expect("os randomness");
        assert_ne!(a, b);
    }

    #[test]
    fn zero_bytes_is_fine() {
        let empty: [u8; 0] = random_bytes().expect("os randomness");
        assert!(empty.is_empty());
    }
}
