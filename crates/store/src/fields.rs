//! What the terms of a query mean, whatever the backend: field names resolve
//! to the modelled fields or to attribute paths, operands parse into levels,
//! times and numbers, and misuse is refused with the same words everywhere.
//! Each backend then only decides how to look a [`Resolved`] term up.

use std::collections::BTreeSet;
use std::ops::Bound;

use model::{Level, Stream, Timestamp};
use query::{Comparison, Predicate, Query};

use crate::StoreError;

/// The modelled fields compared as sent, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exact {
    Service,
    Host,
    TraceId,
    SpanId,
    UserId,
    SourceIp,
    /// Who wrote an audit event (`client` or `logbook`).
    Source,
}

/// Where a query field name points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Message,
    Exact(Exact),
    Id,
    Level,
    Timestamp,
    /// A path into the attributes, dot-separated as written.
    Attribute(String),
}

/// Where the field `name` of a query on `stream` points: the modelled fields
/// by name, anything else into the attributes, so `metadata.orderId` and
/// `attributes.metadata.orderId` are the same.
pub(crate) fn target(stream: Stream, name: &str) -> Result<Target, StoreError> {
    Ok(match name {
        "message" | "msg" => Target::Message,
        "service" => Target::Exact(Exact::Service),
        "host" | "hostname" => Target::Exact(Exact::Host),
        "trace_id" | "traceId" => Target::Exact(Exact::TraceId),
        "span_id" | "spanId" => Target::Exact(Exact::SpanId),
        "user_id" | "userId" => Target::Exact(Exact::UserId),
        "source_ip" => Target::Exact(Exact::SourceIp),
        // Logbook's own field on the audit stream; on logs, still an attribute.
        "source" if stream == Stream::Audit => Target::Exact(Exact::Source),
        "id" => Target::Id,
        "level" => Target::Level,
        "timestamp" => Target::Timestamp,
        "tenant" | "received_at" | "attributes" => {
            return Err(StoreError::InvalidQuery(format!(
                "field `{name}` cannot be searched"
            )));
        }
        other => Target::Attribute(
            other
                .strip_prefix("attributes.")
                .unwrap_or(other)
                .to_owned(),
        ),
    })
}

/// A `field:…` term with its field resolved and its operand parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    /// Words of the message (cut by the text analyzer: one word or a phrase).
    MessageText(String),
    /// Message words starting with this (lowercased).
    MessagePrefix(String),
    ExactEquals(Exact, String),
    ExactPrefix(Exact, String),
    Id(String),
    /// A level rank.
    Level(u64),
    LevelRange(Bound<u64>, Bound<u64>),
    /// Nanoseconds since the epoch.
    TimeRange(Bound<i64>, Bound<i64>),
    /// The attribute at `path` equals `value`: as a string (case-insensitively),
    /// or as a number or boolean when the text reads as one.
    AttributeEquals {
        path: String,
        value: AttributeValue,
    },
    /// A string attribute starting with `prefix` (lowercased).
    AttributePrefix {
        path: String,
        prefix: String,
    },
    /// A numeric attribute within bounds.
    AttributeRange {
        path: String,
        range: NumberRange,
    },
}

/// What the text of `path:value` equals in the attributes: a string value
/// (compared lowercased), or a number or boolean when the text reads as one,
/// in the form the index keeps numbers (see [`AttributeValue::typed`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttributeValue {
    /// The text, lowercased as a string value it matches.
    pub text: String,
    /// The number or boolean the text reads as, if any.
    pub typed: Option<Typed>,
}

/// A typed attribute value as the index keeps it: integers that fit in an
/// `i64` as [`Typed::Integer`], larger ones as [`Typed::Large`], every other
/// finite number as [`Typed::Fraction`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed {
    Integer(i64),
    Large(u64),
    Fraction(f64),
    Bool(bool),
}

impl AttributeValue {
    /// The forms `value` matches: `12` an integer, `2.0` the integer 2, `2.5`
    /// a fraction, `true`/`false` (lowercase only) a boolean.
    pub(crate) fn parse(value: &str) -> AttributeValue {
        let typed = if let Ok(integer) = value.parse::<i64>() {
            Some(Typed::Integer(integer))
        } else if let Ok(large) = value.parse::<u64>() {
            // Only integers above i64::MAX are indexed as u64.
            Some(Typed::Large(large))
        } else if let Ok(float) = value.parse::<f64>()
            && float.is_finite()
        {
            if float.fract() == 0.0 && float.abs() < 9.0e18 {
                Some(Typed::Integer(float as i64))
            } else {
                Some(Typed::Fraction(float))
            }
        } else if let Ok(flag) = value.parse::<bool>() {
            Some(Typed::Bool(flag))
        } else {
            None
        };
        AttributeValue {
            text: value.to_lowercase(),
            typed,
        }
    }
}

/// The bounds of a numeric attribute comparison for each kind of number the
/// index holds. Integers and fractions are kept apart, so an integer is
/// compared with the bounds rounded inwards (and clamped to `i64`), and
/// integers above `i64::MAX` with bounds as precise as an `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumberRange {
    /// Bounds of fractional values, as written.
    pub fractions: (Bound<f64>, Bound<f64>),
    /// Inclusive bounds of integer values, if any integer can match.
    pub integers: Option<(i64, i64)>,
    /// Inclusive bounds of integers above `i64::MAX`, if any can match.
    pub large: Option<(u64, u64)>,
}

impl NumberRange {
    pub(crate) fn new(lower: Bound<f64>, upper: Bound<f64>) -> NumberRange {
        let integer_lower = match lower {
            Bound::Included(v) => v.ceil(),
            Bound::Excluded(v) => v.floor() + 1.0,
            Bound::Unbounded => i64::MIN as f64,
        };
        let integer_upper = match upper {
            Bound::Included(v) => v.floor(),
            Bound::Excluded(v) => v.ceil() - 1.0,
            Bound::Unbounded => i64::MAX as f64,
        };
        let clamp = |value: f64| value.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
        let integers =
            (integer_lower <= integer_upper).then(|| (clamp(integer_lower), clamp(integer_upper)));
        let above_i64 = (i64::MAX as u64 + 1) as f64;
        let large_upper = match upper {
            Bound::Unbounded => u64::MAX as f64,
            _ => integer_upper,
        };
        let large = (large_upper >= above_i64).then(|| {
            (
                integer_lower.max(above_i64) as u64,
                large_upper.min(u64::MAX as f64) as u64,
            )
        });
        NumberRange {
            fractions: (lower, upper),
            integers,
            large,
        }
    }
}

/// The lowercased prefix of a full-text `word*`.
pub(crate) fn text_prefix(prefix: &str) -> String {
    prefix.to_lowercase()
}

/// Resolves `name:predicate` on `stream`; errors are not yet placed (see [`at`]).
pub(crate) fn resolve(
    stream: Stream,
    name: &str,
    predicate: &Predicate,
) -> Result<Resolved, StoreError> {
    Ok(match (target(stream, name)?, predicate) {
        (Target::Message, Predicate::Equals(text)) => Resolved::MessageText(text.clone()),
        (Target::Message, Predicate::Prefix(prefix)) => {
            Resolved::MessagePrefix(text_prefix(prefix))
        }
        (Target::Exact(field), Predicate::Equals(value)) => {
            Resolved::ExactEquals(field, value.clone())
        }
        (Target::Exact(field), Predicate::Prefix(prefix)) => {
            Resolved::ExactPrefix(field, prefix.clone())
        }
        (Target::Id, Predicate::Equals(id)) => Resolved::Id(id.clone()),
        (Target::Level, Predicate::Equals(text)) => Resolved::Level(parse_level(text)?.rank()),
        (Target::Level, Predicate::Compare(comparison, text)) => {
            let (lower, upper) = comparison_bounds(*comparison, parse_level(text)?.rank());
            Resolved::LevelRange(lower, upper)
        }
        (Target::Level, Predicate::Range { lower, upper }) => {
            let (lower, upper) = range_bounds(lower, upper, |text| Ok(parse_level(text)?.rank()))?;
            Resolved::LevelRange(lower, upper)
        }
        (Target::Timestamp, Predicate::Compare(comparison, text)) => {
            let (lower, upper) = comparison_bounds(*comparison, parse_timestamp(text)?);
            Resolved::TimeRange(lower, upper)
        }
        (Target::Timestamp, Predicate::Range { lower, upper }) => {
            let (lower, upper) = range_bounds(lower, upper, parse_timestamp)?;
            Resolved::TimeRange(lower, upper)
        }
        (Target::Attribute(path), Predicate::Equals(value)) => Resolved::AttributeEquals {
            path,
            value: AttributeValue::parse(value),
        },
        (Target::Attribute(path), Predicate::Prefix(prefix)) => Resolved::AttributePrefix {
            path,
            prefix: prefix.to_lowercase(),
        },
        (Target::Attribute(path), Predicate::Compare(comparison, text)) => {
            let (lower, upper) = comparison_bounds(*comparison, parse_number(name, text)?);
            Resolved::AttributeRange {
                path,
                range: NumberRange::new(lower, upper),
            }
        }
        (Target::Attribute(path), Predicate::Range { lower, upper }) => {
            let (lower, upper) = range_bounds(lower, upper, |text| parse_number(name, text))?;
            Resolved::AttributeRange {
                path,
                range: NumberRange::new(lower, upper),
            }
        }
        (Target::Timestamp, _) => {
            return Err(StoreError::InvalidQuery(
                "`timestamp` takes a comparison or a range, e.g. timestamp:>=2026-02-18T12:00:00Z"
                    .into(),
            ));
        }
        (Target::Level, Predicate::Prefix(_)) => {
            return Err(StoreError::InvalidQuery(
                "`level` takes a level name or a comparison, e.g. level:>=warn".into(),
            ));
        }
        (Target::Id, Predicate::Prefix(_)) => {
            return Err(StoreError::InvalidQuery(
                "`id` takes a whole id, not a prefix".into(),
            ));
        }
        (_, Predicate::Compare(..) | Predicate::Range { .. }) => {
            return Err(StoreError::InvalidQuery(format!(
                "field `{name}` cannot be compared; comparisons apply to level, timestamp and numeric attributes"
            )));
        }
    })
}

/// The attribute paths a query names, with the field name as written.
pub(crate) fn attribute_paths(stream: Stream, query: &Query) -> Vec<(String, String)> {
    let mut found = BTreeSet::new();
    let mut pending = vec![query];
    while let Some(query) = pending.pop() {
        match query {
            Query::And(items) | Query::Or(items) => pending.extend(items),
            Query::Not(inner) => pending.push(inner),
            Query::Field { field, .. } => {
                if let Ok(Target::Attribute(path)) = target(stream, field) {
                    found.insert((field.clone(), path));
                }
            }
            Query::All | Query::Text(_) | Query::TextPrefix { .. } | Query::Phrase(_) => {}
        }
    }
    found.into_iter().collect()
}

/// The warning for an attribute no event of the caller's stream has.
pub(crate) fn unknown_attribute(name: &str, path: &str) -> String {
    format!(
        "field \"{name}\" is not a known field and no stored event has the attribute \"{path}\""
    )
}

/// Places a term's error at its byte offset in the query.
pub(crate) fn at(position: usize) -> impl Fn(StoreError) -> StoreError {
    move |error| match error {
        StoreError::InvalidQuery(message) => StoreError::InvalidTerm { position, message },
        StoreError::QueryTooComplex {
            position: None,
            message,
        } => StoreError::QueryTooComplex {
            position: Some(position),
            message,
        },
        other => other,
    }
}

/// The refusal of a prefix that matches more than `max_terms` terms.
pub(crate) fn too_many_terms(shown: &str, max_terms: usize) -> StoreError {
    StoreError::QueryTooComplex {
        position: None,
        message: format!(
            "the prefix '{shown}*' matches more than {max_terms} terms, the limit (query.max_prefix_terms); use a longer prefix"
        ),
    }
}

/// The inclusive bounds of `[lower TO upper]`, `*` (none) being open.
fn range_bounds<T>(
    lower: &Option<String>,
    upper: &Option<String>,
    parse: impl Fn(&str) -> Result<T, StoreError>,
) -> Result<(Bound<T>, Bound<T>), StoreError> {
    let bound = |text: &Option<String>| -> Result<Bound<T>, StoreError> {
        Ok(match text {
            Some(text) => Bound::Included(parse(text)?),
            None => Bound::Unbounded,
        })
    };
    Ok((bound(lower)?, bound(upper)?))
}

fn comparison_bounds<T>(comparison: Comparison, value: T) -> (Bound<T>, Bound<T>) {
    match comparison {
        Comparison::Gt => (Bound::Excluded(value), Bound::Unbounded),
        Comparison::Ge => (Bound::Included(value), Bound::Unbounded),
        Comparison::Lt => (Bound::Unbounded, Bound::Excluded(value)),
        Comparison::Le => (Bound::Unbounded, Bound::Included(value)),
    }
}

fn parse_level(text: &str) -> Result<Level, StoreError> {
    text.parse::<Level>()
        .map_err(|error| StoreError::InvalidQuery(error.to_string()))
}

fn parse_timestamp(text: &str) -> Result<i64, StoreError> {
    Timestamp::parse(text)
        .map(Timestamp::nanos)
        .map_err(|error| StoreError::InvalidQuery(error.to_string()))
}

fn parse_number(field: &str, text: &str) -> Result<f64, StoreError> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(StoreError::InvalidQuery(format!(
            "field `{field}` is compared with {text:?}, which is not a number"
        ))),
    }
}
