//! Retention ages as people write them: `30d`, `12h`, `90m`, `2w`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::RetentionError;

/// The shortest age a retention may have: anything shorter would delete
/// events about as fast as they arrive, which is never what a typo meant.
pub const MIN_AGE: Duration = Duration::from_secs(60);

/// The longest age a retention may have (about a hundred years).
pub const MAX_AGE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How long events are kept: a whole number of seconds, minutes, hours, days
/// or weeks between [`MIN_AGE`] and [`MAX_AGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age(Duration);

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Age {
    /// The age as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// An age of `seconds`, if within bounds.
    pub fn from_secs(seconds: u64) -> Result<Age, RetentionError> {
        let duration = Duration::from_secs(seconds);
        if !(MIN_AGE..=MAX_AGE).contains(&duration) {
            return Err(RetentionError::InvalidAge(format!(
                "{seconds}s is outside what a retention may be (1m to 100 years)"
            )));
        }
        Ok(Age(duration))
    }
}

/// The seconds of a whole number followed by a unit: `30d`, `5m`.
fn seconds(text: &str) -> Result<u64, RetentionError> {
    let invalid = || {
        RetentionError::InvalidAge(format!(
            "{text:?} is not a duration: write a whole number and a unit, s, m, h, d or w (as in \"30d\")"
        ))
    };
    let unit = text.chars().last().ok_or_else(invalid)?;
    let seconds_per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, seconds)| *seconds)
        .ok_or_else(invalid)?;
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = number.parse().map_err(|_| invalid())?;
    count.checked_mul(seconds_per_unit).ok_or_else(invalid)
}

/// A positive interval written like an age (`5m`, `30s`): how often
/// retention is checked.
pub fn parse_interval(text: &str) -> Result<Duration, RetentionError> {
    match seconds(text)? {
        0 => Err(RetentionError::InvalidAge(format!(
            "{text:?}: the interval must be at least 1s"
        ))),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}

impl FromStr for Age {
    type Err = RetentionError;

    fn from_str(text: &str) -> Result<Age, RetentionError> {
        Age::from_secs(seconds(text)?)
    }
}

impl fmt::Display for Age {
    /// The largest unit that divides the age exactly: `2w`, `36h`, `90m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let (unit, per) = UNITS
            .iter()
            .find(|(_, per)| seconds.is_multiple_of(*per))
            .copied()
            .unwrap_or(('s', 1));
        write!(f, "{}{unit}", seconds / per)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_in_every_unit_and_print_in_the_largest_exact_one() {
        let cases = [
            ("30d", 30 * 86_400, "30d"),
            ("2w", 14 * 86_400, "2w"),
            ("14d", 14 * 86_400, "2w"),
            ("36h", 36 * 3_600, "36h"),
            ("90m", 90 * 60, "90m"),
            ("120s", 120, "2m"),
            ("61s", 61, "61s"),
        ];
        for (text, seconds, shown) in cases {
            let age: Age = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(age.duration(), Duration::from_secs(seconds), "{text}");
            assert_eq!(age.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn intervals_are_positive_durations() {
        assert_eq!(parse_interval("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("1s").ok(), Some(Duration::from_secs(1)));
        assert!(parse_interval("0s").is_err() && parse_interval("5").is_err());
    }

    #[test]
    fn malformed_or_out_of_bounds_ages_are_refused() {
        for text in [
            "",
            "d",
            "30",
            "30x",
            "-1d",
            "1.5d",
            " 30d",
            "30 d",
            "30D",
            "59s",
            "0d",
            "5300w",
            "99999999999999999999d",
            "3é",
        ] {
            assert!(text.parse::<Age>().is_err(), "{text:?} was accepted");
        }
    }
}
