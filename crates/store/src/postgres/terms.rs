//! The terms of an event as the PostgreSQL store indexes them, cut exactly as
//! the embedded store cuts them, so both stores match the same events.
//!
//! Every term becomes one lexeme of the event's `terms` tsvector, built here
//! and never by PostgreSQL's own text parser (which splits differently):
//!
//! - a message word is the lexeme itself (alphanumeric and lowercased by the
//!   text analyzer), with its positions for phrases;
//! - an exact field's value is U+0001, the field's code, then the value;
//! - an attribute's value is U+0002, the path's key, U+0002, a type letter
//!   (`s` string, `i` integer, `u` integer above `i64::MAX`, `f` fraction,
//!   `b` boolean) and the value; `n` (no value) marks a path that holds a
//!   number, for ranges, whose values are kept in the `nums` column;
//! - a lexeme too long for PostgreSQL is U+0003 and its SHA-256.
//!
//! Bytes U+0000 to U+0003 inside values and paths are escaped (U+0001 and a
//! digit), so text PostgreSQL cannot hold (U+0000) is kept faithfully and the
//! markers stay unambiguous. Message words never start with a control
//! character, so a word prefix never reaches the other kinds.

use std::collections::{BTreeMap, BTreeSet};

use model::Event;
use sha2::{Digest, Sha256};
use tantivy::columnar::NumericalValue;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value};
use tantivy::tokenizer::TextAnalyzer;

use crate::analysis;
use crate::fields::Exact;

/// Starts the lexemes of exact fields.
const EXACT: char = '\u{1}';
/// Starts the lexemes of attributes, and ends an attribute's path key.
const ATTRIBUTE: char = '\u{2}';
/// Starts a lexeme that stands for a longer one by its hash.
const HASHED: char = '\u{3}';
/// PostgreSQL refuses lexemes over 2,047 bytes; longer ones are hashed.
const MAX_LEXEME_BYTES: usize = 2000;
/// Path keys longer than this are hashed, so that many values under one long
/// path stay small.
const MAX_PATH_KEY_BYTES: usize = 64;
/// The largest word position a tsvector holds; later positions are dropped.
const MAX_POSITION: usize = 16_383;
/// The most positions a tsvector keeps per lexeme.
const MAX_POSITIONS: usize = 256;
/// What a tsvector may hold in lexemes and positions (PostgreSQL stops at 1 MiB).
const MAX_TSVECTOR_BYTES: usize = 1_000_000;

/// Appends `text` with bytes U+0000 to U+0003 escaped as U+0001 and a digit.
/// Escaping is per character, so the escape of a prefix is a prefix of the escape.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if c <= HASHED {
            out.push(EXACT);
            out.push(char::from(b'0' + c as u8));
        } else {
            out.push(c);
        }
    }
}

/// `text` escaped as [`escape_into`] does: how text columns hold strings that
/// PostgreSQL text cannot (U+0000).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

/// The inverse of [`escape`].
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            EXACT => match chars.next() {
                Some(digit @ '0'..='3') => out.push(char::from(digit as u8 - b'0')),
                Some(other) => out.push(other),
                None => {}
            },
            other => out.push(other),
        }
    }
    out
}

/// A lexeme PostgreSQL accepts: `lexeme` itself, or its hash if too long.
fn finish(lexeme: String) -> String {
    if lexeme.len() <= MAX_LEXEME_BYTES {
        return lexeme;
    }
    let mut hashed = String::with_capacity(65);
    hashed.push(HASHED);
    hashed.push_str(&hex(&Sha256::digest(lexeme.as_bytes())));
    hashed
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn exact_code(field: Exact) -> char {
    match field {
        Exact::Service => 's',
        Exact::Host => 'h',
        Exact::TraceId => 't',
        Exact::SpanId => 'p',
        Exact::UserId => 'u',
        Exact::SourceIp => 'i',
        Exact::Source => 'o',
    }
}

fn exact_start(field: Exact, value: &str) -> String {
    let mut lexeme = String::with_capacity(value.len() + 2);
    lexeme.push(EXACT);
    lexeme.push(exact_code(field));
    escape_into(value, &mut lexeme);
    lexeme
}

/// The lexeme of an exact field's value.
pub(crate) fn exact_lexeme(field: Exact, value: &str) -> String {
    finish(exact_start(field, value))
}

/// The lexeme prefix of an exact field's values starting with `prefix`;
/// `None` if no indexed lexeme can be that long.
pub(crate) fn exact_prefix(field: Exact, prefix: &str) -> Option<String> {
    let lexeme = exact_start(field, prefix);
    (lexeme.len() <= MAX_LEXEME_BYTES).then_some(lexeme)
}

/// The key of an attribute path whose segments are joined by U+0001 (the
/// embedded index's own separator, dots inside keys included).
fn path_key(joined: &str) -> String {
    let escaped = escape(joined);
    if escaped.len() <= MAX_PATH_KEY_BYTES {
        return escaped;
    }
    let mut key = String::with_capacity(33);
    key.push(HASHED);
    key.push_str(&hex(&Sha256::digest(joined.as_bytes())[..16]));
    key
}

/// The key of an attribute path as a query names it (`metadata.orderId`):
/// split on dots as the embedded index splits it.
pub(crate) fn query_path_key(path: &str) -> String {
    let joined = tantivy::json_utils::split_json_path(path)
        .iter()
        .map(|segment| segment.replace('.', "\u{1}"))
        .collect::<Vec<_>>()
        .join("\u{1}");
    path_key(&joined)
}

fn attribute_start(key: &str, kind: char, value: &str) -> String {
    let mut lexeme = String::with_capacity(key.len() + value.len() + 3);
    lexeme.push(ATTRIBUTE);
    lexeme.push_str(key);
    lexeme.push(ATTRIBUTE);
    lexeme.push(kind);
    escape_into(value, &mut lexeme);
    lexeme
}

/// The lexeme of an attribute value of `kind` (`s`, `i`, `u`, `f`, `b`, `n`).
pub(crate) fn attribute_lexeme(key: &str, kind: char, value: &str) -> String {
    finish(attribute_start(key, kind, value))
}

/// The lexeme prefix of string attribute values starting with `prefix`.
pub(crate) fn attribute_prefix(key: &str, prefix: &str) -> Option<String> {
    let lexeme = attribute_start(key, 's', prefix);
    (lexeme.len() <= MAX_LEXEME_BYTES).then_some(lexeme)
}

/// Whether a prefix query can reach `lexeme`: message words, exact values
/// and attribute strings (the lexicon holds only these).
pub(crate) fn prefixable(lexeme: &str) -> bool {
    match lexeme.chars().next() {
        Some(EXACT) => true,
        Some(ATTRIBUTE) => lexeme[1..]
            .split_once(ATTRIBUTE)
            .is_some_and(|(_, rest)| rest.starts_with('s')),
        Some(HASHED) | None => false,
        Some(_) => true,
    }
}

/// The lexeme of a fractional number: its bits, so equality is exact.
pub(crate) fn float_text(value: f64) -> String {
    format!("{:016x}", value.to_bits())
}

/// The `nums` key of the values of `kind` (`i`, `u`, `f`) under a path key.
pub(crate) fn nums_key(kind: char, key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    out.push(kind);
    out.push_str(key);
    out
}

/// What the store keeps to find one event.
#[derive(Debug, Default)]
pub(crate) struct EventTerms {
    /// Lexemes in byte order, with their 1-based word positions.
    pub lexemes: BTreeMap<String, Vec<u16>>,
    /// Numeric attribute values by [`nums_key`], for ranges.
    pub nums: BTreeMap<String, Vec<serde_json::Value>>,
    /// Keys of the attribute paths that hold an indexed value.
    pub paths: BTreeSet<String>,
    bytes: usize,
    /// Whether lexemes were left out to keep the tsvector within its limit.
    pub truncated: bool,
}

impl EventTerms {
    fn add(&mut self, lexeme: String, position: Option<usize>) {
        if let Some(positions) = self.lexemes.get_mut(&lexeme) {
            if let Some(position) = position
                && position <= MAX_POSITION
                && positions.len() < MAX_POSITIONS
            {
                self.bytes += 2;
                positions.push(position as u16);
            }
            return;
        }
        // The lexeme, its terminator, its count and a position, aligned.
        let cost = lexeme.len() + 6;
        if self.bytes + cost > MAX_TSVECTOR_BYTES {
            self.truncated = true;
            return;
        }
        self.bytes += cost;
        let positions = match position {
            Some(position) if position <= MAX_POSITION => vec![position as u16],
            _ => Vec::new(),
        };
        self.lexemes.insert(lexeme, positions);
    }

    /// The `nums` column: `None` when the event has no numeric attribute.
    pub fn nums_json(&self) -> Option<String> {
        (!self.nums.is_empty()).then(|| serde_json::json!(self.nums).to_string())
    }
}

/// Cuts events into terms; holds the analyzers, reused from event to event.
pub(crate) struct Indexer {
    text: TextAnalyzer,
    keyword: TextAnalyzer,
}

impl Indexer {
    pub fn new() -> Self {
        Indexer {
            text: analysis::text_analyzer(),
            keyword: analysis::keyword_analyzer(),
        }
    }

    /// The terms of `event`, as the embedded schema indexes it.
    pub fn terms(&mut self, event: &Event) -> EventTerms {
        let mut terms = EventTerms::default();
        let mut words = self.text.token_stream(&event.message);
        while let Some(token) = words.next() {
            terms.add(token.text.clone(), Some(token.position + 1));
        }
        drop(words);
        let exact = [
            (Exact::Service, &event.service),
            (Exact::Host, &event.host),
            (Exact::TraceId, &event.trace_id),
            (Exact::SpanId, &event.span_id),
            (Exact::UserId, &event.user_id),
            (Exact::SourceIp, &event.source_ip),
        ];
        for (field, value) in exact {
            if let Some(value) = value
                && value.len() < analysis::MAX_EXACT_BYTES
            {
                terms.add(exact_lexeme(field, value), None);
            }
        }
        if let Some(source) = event.source {
            terms.add(exact_lexeme(Exact::Source, source.as_str()), None);
        }
        let mut path = Vec::new();
        for (key, value) in &event.attributes {
            self.object_entry(key, value, &mut path, &mut terms);
        }
        terms
    }

    /// One key of an attributes object; keys holding U+0000 are skipped with
    /// their values, as the embedded index skips them.
    fn object_entry<'a>(
        &mut self,
        key: &'a str,
        value: &'a serde_json::Value,
        path: &mut Vec<&'a str>,
        terms: &mut EventTerms,
    ) {
        if key.contains('\0') {
            return;
        }
        path.push(key);
        self.value(value, path, terms);
        path.pop();
    }

    fn value<'a>(
        &mut self,
        value: &'a serde_json::Value,
        path: &mut Vec<&'a str>,
        terms: &mut EventTerms,
    ) {
        let leaf = match value.as_value() {
            ReferenceValue::Leaf(leaf) => leaf,
            ReferenceValue::Array(items) => {
                for item in items {
                    self.value(item, path, terms);
                }
                return;
            }
            ReferenceValue::Object(entries) => {
                for (key, item) in entries {
                    self.object_entry(key, item, path, terms);
                }
                return;
            }
        };
        let joined = path
            .iter()
            .map(|segment| segment.replace('.', "\u{1}"))
            .collect::<Vec<_>>()
            .join("\u{1}");
        let key = path_key(&joined);
        let number = match leaf {
            ReferenceValueLeaf::Str(text) => {
                let mut tokens = self.keyword.token_stream(text);
                let Some(token) = tokens.next() else {
                    // Too long (or empty) to be a term: no value matches, but
                    // the event has the attribute, as the embedded store says.
                    terms.paths.insert(key);
                    return;
                };
                let lexeme = attribute_lexeme(&key, 's', &token.text);
                drop(tokens);
                terms.add(lexeme, None);
                None
            }
            ReferenceValueLeaf::I64(value) => Some(NumericalValue::I64(value)),
            ReferenceValueLeaf::U64(value) => Some(NumericalValue::U64(value)),
            ReferenceValueLeaf::F64(value) if value.is_finite() => Some(NumericalValue::F64(value)),
            ReferenceValueLeaf::Bool(value) => {
                terms.add(
                    attribute_lexeme(&key, 'b', if value { "t" } else { "f" }),
                    None,
                );
                None
            }
            // A string that reads as an RFC 3339 time is indexed as a date, which
            // no query term compares with: the path is known, no value matches.
            ReferenceValueLeaf::Date(_) => None,
            _ => return,
        };
        if let Some(number) = number {
            let (kind, text, json) = match number.normalize() {
                NumericalValue::I64(value) => ('i', value.to_string(), value.into()),
                NumericalValue::U64(value) => ('u', value.to_string(), value.into()),
                NumericalValue::F64(value) => ('f', float_text(value), value.into()),
            };
            terms.add(attribute_lexeme(&key, kind, &text), None);
            terms.add(attribute_lexeme(&key, 'n', ""), None);
            terms
                .nums
                .entry(nums_key(kind, &key))
                .or_default()
                .push(json);
        }
        terms.paths.insert(key);
    }
}

/// Appends the binary form of a tsvector (as `COPY … BINARY` reads it) of
/// `lexemes`, which are in byte order, unique and with rising positions.
pub(crate) fn tsvector_binary(lexemes: &BTreeMap<String, Vec<u16>>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(lexemes.len() as i32).to_be_bytes());
    for (lexeme, positions) in lexemes {
        out.extend_from_slice(lexeme.as_bytes());
        out.push(0);
        out.extend_from_slice(&(positions.len() as u16).to_be_bytes());
        for position in positions {
            out.extend_from_slice(&position.to_be_bytes());
        }
    }
}

/// `lexeme` quoted for a tsquery.
pub(crate) fn quote(lexeme: &str, out: &mut String) {
    out.push('\'');
    for c in lexeme.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            other => out.push(other),
        }
    }
    out.push('\'');
}
