//! Counting a body's messages before decoding it. A few bytes of protobuf or
//! JSON (`{}` for an empty log record) decode into a struct of a hundred
//! bytes or more, so a body within the size limit could still ask for
//! gigabytes; the decoders first walk the body without keeping anything,
//! and refuse it when it holds more messages than a batch may.

use std::borrow::Cow;
use std::cell::Cell;

use model::DecodeError;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::IngestError;

/// Walks protobuf `body`, counting the messages at each step of `path` (the
/// field numbers of nested repeated message fields, outermost first), and
/// fails once more than `max` are found along it.
pub(crate) fn protobuf(body: &[u8], path: &[u32], max: usize) -> Result<(), IngestError> {
    let mut left = max;
    walk(body, path, &mut left, max)
}

/// Counts the messages along `path` below `buffer` against `left`.
fn walk(buffer: &[u8], path: &[u32], left: &mut usize, max: usize) -> Result<(), IngestError> {
    let Some((wanted, inner)) = path.split_first() else {
        return Ok(());
    };
    try_for_each_field(buffer, |tag, bytes| {
        if tag != *wanted {
            return Ok(());
        }
        *left = left
            .checked_sub(1)
            .ok_or(DecodeError::TooManyEvents { max })?;
        walk(bytes, inner, left, max)
    })
}

/// Calls `field` with the number and bytes of each length-delimited field
/// of one protobuf message, in order; other fields are skipped. Nothing is
/// kept here: what `field` keeps is what the caller bounds.
pub(crate) fn for_each_field<'a>(
    buffer: &'a [u8],
    mut field: impl FnMut(u32, &'a [u8]),
) -> Result<(), IngestError> {
    try_for_each_field(buffer, |tag, bytes| {
        field(tag, bytes);
        Ok(())
    })
}

/// Like [`for_each_field`], stopping at the first error `field` returns.
fn try_for_each_field<'a>(
    mut buffer: &'a [u8],
    mut field: impl FnMut(u32, &'a [u8]) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let malformed = || IngestError::malformed("the body is not valid protobuf");
    while !buffer.is_empty() {
        let (tag, wire_type) = decode_key(&mut buffer).map_err(|_| malformed())?;
        match wire_type {
            WireType::Varint => {
                decode_varint(&mut buffer).map_err(|_| malformed())?;
            }
            WireType::SixtyFourBit => buffer = buffer.get(8..).ok_or_else(malformed)?,
            WireType::ThirtyTwoBit => buffer = buffer.get(4..).ok_or_else(malformed)?,
            WireType::LengthDelimited => {
                let length = usize::try_from(decode_varint(&mut buffer).map_err(|_| malformed())?)
                    .map_err(|_| malformed())?;
                if length > buffer.len() {
                    return Err(malformed());
                }
                let (bytes, rest) = buffer.split_at(length);
                field(tag, bytes)?;
                buffer = rest;
            }
            WireType::StartGroup | WireType::EndGroup => return Err(malformed()),
        }
    }
    Ok(())
}

/// Walks JSON `body`, counting the elements of the arrays under each key of
/// `path` (`["resourceLogs", "scopeLogs", "logRecords"]`), with any of
/// `alternatives` accepted in place of the last key, and fails once more
/// than `max` are found. Malformed JSON is left for the decoder to report.
pub(crate) fn json(
    body: &[u8],
    path: &[&str],
    alternatives: &[&str],
    max: usize,
) -> Result<(), IngestError> {
    let left = Cell::new(max);
    let seed = JsonPath {
        path,
        alternatives,
        left: &left,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match seed.deserialize(&mut deserializer) {
        Err(error) if error.to_string().starts_with(TOO_MANY) => {
            Err(DecodeError::TooManyEvents { max }.into())
        }
        _ => Ok(()),
    }
}

const TOO_MANY: &str = "too many messages";

#[derive(Clone, Copy)]
struct JsonPath<'a> {
    path: &'a [&'a str],
    alternatives: &'a [&'a str],
    left: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for JsonPath<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.path.is_empty() {
            true => deserializer.deserialize_ignored_any(IgnoredAny).map(|_| ()),
            false => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for JsonPath<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((key, inner)) = self.path.split_first() else {
            return Ok(());
        };
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let matches = name == *key || (inner.is_empty() && self.alternatives.contains(&&*name));
            if matches {
                map.next_value_seed(Elements {
                    inner: JsonPath {
                        path: inner,
                        ..self
                    },
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The elements of one array on the path, each counted.
struct Elements<'a> {
    inner: JsonPath<'a>,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let left = self.inner.left;
        // Each element is counted once walked (nothing of it is kept).
        while seq.next_element_seed(self.inner)?.is_some() {
            let remaining = left
                .get()
                .checked_sub(1)
                .ok_or_else(|| serde::de::Error::custom(TOO_MANY))?;
            left.set(remaining);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_messages_are_counted_along_the_path() {
        // Field 1 holding two messages, each holding field 2 twice (empty).
        let inner = [0x12, 0x00, 0x12, 0x00];
        let mut body = Vec::new();
        for _ in 0..2 {
            body.extend_from_slice(&[0x0a, inner.len() as u8]);
            body.extend_from_slice(&inner);
        }
        body.extend_from_slice(&[0x18, 0x05]); // a varint field beside them
        assert!(protobuf(&body, &[1, 2], 6).is_ok());
        assert!(matches!(
            protobuf(&body, &[1, 2], 5),
            Err(IngestError::Decode(DecodeError::TooManyEvents { max: 5 }))
        ));
        assert!(matches!(
            protobuf(&[0x0a, 0x09], &[1], 5),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn json_elements_are_counted_along_the_path() {
        let body = br#"{"a": [{"b": [1, 2, 3], "c": [9, 9, 9, 9]}, {"x": {"b": [1]}}], "z": [1]}"#;
        assert!(json(body, &["a", "b"], &[], 5).is_ok());
        assert!(matches!(
            json(body, &["a", "b"], &[], 4),
            Err(IngestError::Decode(DecodeError::TooManyEvents { max: 4 }))
        ));
        assert!(json(body, &["a", "b"], &["c"], 9).is_ok());
        assert!(
            json(body, &["a", "b"], &["c"], 8).is_err(),
            "alternatives count too"
        );
        assert!(
            json(b"not json", &["a"], &[], 1).is_ok(),
            "left to the decoder"
        );
    }
}
