//! What `logbook import` prints when it ends: events accepted and rejected,
//! the first errors with their file and line, and the exit status that
//! tells a script whether everything arrived.

use std::fmt;
use std::time::Duration;

/// The errors the summary lists; the rest are only counted.
const FIRST_ERRORS: usize = 10;

/// The exit status when the import finished but some events were rejected
/// (1 is an import stopped by an error, 2 a command line clap refused).
pub const EXIT_REJECTED: u8 = 3;

/// The counts of one run.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub accepted: u64,
    pub rejected: u64,
    /// `file:line: code: message` of the first rejected events.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl Summary {
    /// Counts one rejected event of `file`.
    pub fn reject(&mut self, file: &str, line: u64, code: &str, message: &str) {
        self.rejected += 1;
        if self.errors.len() < FIRST_ERRORS {
            self.errors
                .push(format!("{file}:{line}: {code}: {message}"));
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} accepted, {} rejected, from {} input{} in {seconds:.1} s",
            self.accepted,
            self.rejected,
            self.files,
            if self.files == 1 { "" } else { "s" },
        )?;
        if seconds > 0.0 {
            write!(
                f,
                " ({:.0} events/s)",
                (self.accepted + self.rejected) as f64 / seconds
            )?;
        }
        if !self.errors.is_empty() {
            write!(f, "\nfirst errors:")?;
            for error in &self.errors {
                write!(f, "\n  {error}")?;
            }
            let more = self.rejected - self.errors.len() as u64;
            if more > 0 {
                write!(f, "\n  … and {more} more")?;
            }
        }
        Ok(())
    }
}

/// The error `logbook import` ends with when it sent everything but the
/// server (or the client) refused some events; `main` exits with
/// [`EXIT_REJECTED`] for it.
#[derive(Debug)]
pub struct SomeRejected(pub u64);

impl fmt::Display for SomeRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} events were rejected", self.0)
    }
}

impl std::error::Error for SomeRejected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_the_first_errors_and_counts_the_rest() {
        let mut summary = Summary {
            files: 2,
            accepted: 90,
            elapsed: Duration::from_secs(2),
            ..Summary::default()
        };
        for line in 1..=12 {
            summary.reject("app.ndjson", line, "malformed_json", "bad");
        }
        let text = summary.to_string();
        assert!(
            text.starts_with("90 accepted, 12 rejected, from 2 inputs in 2.0 s (51 events/s)\nfirst errors:\n  app.ndjson:1: malformed_json: bad\n"),
            "{text}"
        );
        assert!(text.contains("app.ndjson:10:"), "{text}");
        assert!(!text.contains("app.ndjson:11:"), "{text}");
        assert!(text.ends_with("… and 2 more"), "{text}");
    }
}
