//! Severity levels, normalised from the many spellings services use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A normalised severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// A small number that orders levels (trace = 0 … fatal = 5); the store indexes it
    /// so that `level:>=warn` is a range query.
    pub fn rank(self) -> u64 {
        self as u64
    }

    /// Maps a numeric syslog severity (RFC 5424: 0 emergency … 7 debug).
    pub fn from_syslog(severity: u64) -> Option<Level> {
        Some(match severity {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            _ => return None,
        })
    }

    /// Parses a level name case-insensitively, accepting common aliases and
    /// numeric syslog severities written as strings.
    pub fn parse(text: &str) -> Option<Level> {
        let text = text.trim();
        if let Ok(number) = text.parse::<u64>() {
            return Level::from_syslog(number);
        }
        let lower = text.to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "trc" | "finest" | "finer" | "verbose" => Level::Trace,
            "debug" | "dbg" | "fine" | "config" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" | "log" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" | "severe" | "failure" => Level::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => {
                Level::Fatal
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a level name that matches no known spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level {0:?}; expected trace, debug, info, warn, error or fatal (aliases and syslog severities 0-7 are accepted)"
)]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Level::parse(text).ok_or_else(|| UnknownLevel(text.to_owned()))
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_normalise() {
        let cases = [
            ("ERROR", Level::Error),
            ("Err", Level::Error),
            ("warning", Level::Warn),
            ("WARN", Level::Warn),
            ("notice", Level::Info),
            ("info", Level::Info),
            ("CRITICAL", Level::Fatal),
            ("panic", Level::Fatal),
            ("debug", Level::Debug),
            ("verbose", Level::Trace),
            (" trace ", Level::Trace),
            ("0", Level::Fatal),
            ("3", Level::Error),
            ("4", Level::Warn),
            ("6", Level::Info),
            ("7", Level::Debug),
        ];
        for (text, expected) in cases {
            assert_eq!(Level::parse(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn unknown_spellings_are_rejected() {
        for text in ["", "8", "banana", "-1", "warn!"] {
            assert_eq!(Level::parse(text), None, "{text}");
        }
    }

    #[test]
    fn levels_are_ordered_by_severity() {
        assert!(Level::Warn > Level::Info);
        assert!(Level::Fatal > Level::Error);
        let ranks: Vec<u64> = Level::ALL.iter().map(|l| l.rank()).collect();
        assert_eq!(ranks, vec![0, 1, 2, 3, 4, 5]);
    }
}
