//! Points in time as nanoseconds since the Unix epoch, read from the forms clients send.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant with nanosecond precision (years 1678 to 2261).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error(
        "{0:?} is not an RFC 3339 timestamp (e.g. 2026-02-18T12:00:00Z) or a Unix epoch number"
    )]
    Malformed(String),
    #[error("timestamp {0} is outside the supported range (years 1678 to 2261)")]
    OutOfRange(String),
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc()).unwrap_or(Timestamp(i64::MAX))
    }

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    fn from_datetime(datetime: OffsetDateTime) -> Option<Timestamp> {
        i64::try_from(datetime.unix_timestamp_nanos())
            .ok()
            .map(Timestamp)
    }

    /// Parses an RFC 3339 string, or a decimal Unix epoch written as a string.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i64>() {
            return Timestamp::from_epoch(number);
        }
        if let Ok(number) = trimmed.parse::<f64>()
            && number.is_finite()
        {
            return Timestamp::from_epoch_seconds_f64(number);
        }
        let datetime = OffsetDateTime::parse(trimmed, &Rfc3339)
            .map_err(|_| TimestampError::Malformed(text.to_owned()))?;
        Timestamp::from_datetime(datetime)
            .ok_or_else(|| TimestampError::OutOfRange(text.to_owned()))
    }

    /// Reads an integer Unix epoch, inferring the unit from its magnitude:
    /// below 10^11 seconds, below 10^14 milliseconds, below 10^17 microseconds,
    /// otherwise nanoseconds. (Seconds cover the years up to 5138, milliseconds
    /// from 1973 on, so the ranges do not overlap for any date a log carries.)
    pub fn from_epoch(value: i64) -> Result<Timestamp, TimestampError> {
        let magnitude = value.unsigned_abs();
        let multiplier: i64 = if magnitude < 100_000_000_000 {
            1_000_000_000
        } else if magnitude < 100_000_000_000_000 {
            1_000_000
        } else if magnitude < 100_000_000_000_000_000 {
            1_000
        } else {
            1
        };
        value
            .checked_mul(multiplier)
            .map(Timestamp)
            .ok_or_else(|| TimestampError::OutOfRange(value.to_string()))
    }

    /// Reads fractional Unix seconds (`1739880000.123`), to the microsecond: an
    /// f64 holds no more digits than that for present-day dates.
    pub fn from_epoch_seconds_f64(seconds: f64) -> Result<Timestamp, TimestampError> {
        let micros = (seconds * 1e6).round();
        if micros.is_finite() && micros.abs() < (i64::MAX / 1_000) as f64 {
            Ok(Timestamp(micros as i64 * 1_000))
        } else {
            Err(TimestampError::OutOfRange(seconds.to_string()))
        }
    }

    /// Formats as RFC 3339 in UTC with as many fractional digits as needed.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .ok()
            .and_then(|datetime| datetime.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_771_416_000_000_000_000; // 2026-02-18T12:00:00Z

    #[test]
    fn rfc3339_forms_parse() {
        let cases = [
            ("2026-02-18T12:00:00Z", NOON),
            ("2026-02-18T13:00:00+01:00", NOON),
            ("2026-02-18T12:00:00.5Z", NOON + 500_000_000),
            ("2026-02-18t12:00:00.000000001z", NOON + 1),
        ];
        for (text, nanos) in cases {
            assert_eq!(Timestamp::parse(text), Ok(Timestamp(nanos)), "{text}");
        }
    }

    #[test]
    fn epoch_units_are_inferred() {
        let seconds = NOON / 1_000_000_000;
        for value in [seconds, seconds * 1_000, seconds * 1_000_000, NOON] {
            assert_eq!(Timestamp::from_epoch(value), Ok(Timestamp(NOON)), "{value}");
        }
        assert_eq!(Timestamp::parse("1771416000"), Ok(Timestamp(NOON)));
        assert_eq!(
            Timestamp::parse("1771416000.25"),
            Ok(Timestamp(NOON + 250_000_000))
        );
    }

    #[test]
    fn garbage_and_overflow_are_errors() {
        assert!(matches!(
            Timestamp::parse("yesterday"),
            Err(TimestampError::Malformed(_))
        ));
        assert!(matches!(
            Timestamp::parse("2026-02-30T00:00:00Z"),
            Err(TimestampError::Malformed(_))
        ));
        assert!(matches!(
            Timestamp::parse("9999-01-01T00:00:00Z"),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(
            Timestamp::from_epoch(99_999_999_999).is_err(),
            "year 5138 overflows"
        );
    }

    #[test]
    fn formatting_round_trips() {
        let stamp = Timestamp(NOON + 123_000_000);
        assert_eq!(stamp.to_rfc3339(), "2026-02-18T12:00:00.123Z");
        assert_eq!(Timestamp::parse(&stamp.to_rfc3339()), Ok(stamp));
    }
}
