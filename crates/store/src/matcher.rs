//! A query evaluated on one event in memory, with the stores' meaning, for
//! the live tail: events stream to a subscriber as they are acknowledged,
//! before any index holds them, and must be the events a search would find.

use std::cell::RefCell;
use std::ops::{Bound, RangeBounds};

use model::{Event, Stream};
use query::Query;
use serde_json::Value as Json;
use tantivy::columnar::NumericalValue;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value as _};
use tantivy::tokenizer::TextAnalyzer;

use crate::StoreError;
use crate::analysis::{MAX_EXACT_BYTES, text_analyzer};
use crate::fields::{
    AttributeValue, Exact, NumberRange, Resolved, Typed, at, resolve, text_prefix,
};

/// A search query compiled once and evaluated on single events.
///
/// Guarantee: for any query the parser produces, [`Matcher::matches`] is true
/// for exactly the events of the matcher's stream that a store's search with
/// the same query (and no time bounds) returns, and [`Matcher::new`] refuses
/// exactly the queries a search refuses as invalid, with the same error. Its
/// rules come from where the stores take theirs: words are cut by the same
/// analyzer (`analysis.rs`), field names and operands resolve in `fields.rs`,
/// attribute values are typed by the same code the index uses (strings that
/// read as RFC 3339 times are dates, which no term matches; numbers are
/// normalised, so `2.0` is the integer 2), and keys are split on dots as the
/// index splits them.
///
/// What a store refuses because of what it holds (a prefix matching more than
/// `max_prefix_terms` terms) cannot be known for one event; the matcher
/// accepts such queries.
///
/// Tested by `tests/conformance/matcher_agreement.rs`, which loads the Loghub
/// samples and a varied generated set into every store and compares the ids
/// each query finds with the events the matcher accepts, for a table covering
/// every query form and for queries drawn from the data.
#[derive(Debug, Clone)]
pub struct Matcher {
    stream: Stream,
    root: Node,
    /// Whether any term reads the message's words (they are then cut once per event).
    reads_words: bool,
}

/// One compiled term or operator.
#[derive(Debug, Clone)]
enum Node {
    All,
    Nothing,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// Message words at these relative positions (one word, or a phrase).
    Words(Vec<(usize, String)>),
    /// A message word starting with this (lowercased).
    WordPrefix(String),
    ExactEquals(Exact, String),
    ExactPrefix(Exact, String),
    Id(String),
    Level(Bound<u64>, Bound<u64>),
    Time(Bound<i64>, Bound<i64>),
    Attribute {
        /// The path's segments, split as the index splits keys.
        path: Vec<String>,
        test: AttributeTest,
    },
}

/// What an attribute value at the path must be.
#[derive(Debug, Clone)]
enum AttributeTest {
    Equals(AttributeValue),
    /// A string value starting with this (lowercased).
    Prefix(String),
    Range(NumberRange),
}

impl Matcher {
    /// Compiles `query` for the logs stream.
    pub fn new(query: &Query) -> Result<Matcher, StoreError> {
        Matcher::for_stream(Stream::Logs, query)
    }

    /// Compiles `query` for `stream` (on the audit stream `source` is the
    /// server's field rather than an attribute).
    pub fn for_stream(stream: Stream, query: &Query) -> Result<Matcher, StoreError> {
        let mut compiler = Compiler {
            stream,
            analyzer: text_analyzer(),
            reads_words: false,
        };
        let root = compiler.compile(query)?;
        Ok(Matcher {
            stream,
            root,
            reads_words: compiler.reads_words,
        })
    }

    /// Whether a search of the matcher's stream would find `event`. The
    /// caller picks the events of one tenant; events of the other stream
    /// never match.
    pub fn matches(&self, event: &Event) -> bool {
        if event.stream != self.stream {
            return false;
        }
        if !self.reads_words {
            return self
                .root
                .eval(event, &mut Words::unread(&event.message, None));
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let mut words = Words::unread(&event.message, Some(&mut scratch));
                self.root.eval(event, &mut words)
            }
            // Only if a matcher ran inside another on this thread.
            Err(_) => {
                let mut own = Scratch::new();
                self.root
                    .eval(event, &mut Words::unread(&event.message, Some(&mut own)))
            }
        })
    }
}

struct Compiler {
    stream: Stream,
    analyzer: TextAnalyzer,
    reads_words: bool,
}

impl Compiler {
    fn compile(&mut self, query: &Query) -> Result<Node, StoreError> {
        Ok(match query {
            Query::All => Node::All,
            Query::And(children) => Node::And(self.compile_all(children)?),
            Query::Or(children) => Node::Or(self.compile_all(children)?),
            Query::Not(inner) => Node::Not(Box::new(self.compile(inner)?)),
            Query::Text(text) | Query::Phrase(text) => self.words(text),
            Query::TextPrefix { prefix, .. } => self.word_prefix(text_prefix(prefix)),
            Query::Field {
                field,
                predicate,
                position,
            } => {
                let resolved = resolve(self.stream, field, predicate).map_err(at(*position))?;
                self.resolved(resolved)
            }
        })
    }

    fn compile_all(&mut self, queries: &[Query]) -> Result<Vec<Node>, StoreError> {
        queries.iter().map(|query| self.compile(query)).collect()
    }

    /// Text cut as the message is: no word matches nothing, one word is a
    /// word, several are a phrase whose gaps (words too long to index) stay.
    fn words(&mut self, text: &str) -> Node {
        let mut stream = self.analyzer.token_stream(text);
        let mut words = Vec::new();
        while let Some(token) = stream.next() {
            words.push((token.position, token.text.clone()));
        }
        let Some(&(first, _)) = words.first() else {
            return Node::Nothing;
        };
        for (position, _) in &mut words {
            *position -= first;
        }
        self.reads_words = true;
        Node::Words(words)
    }

    fn word_prefix(&mut self, prefix: String) -> Node {
        self.reads_words = true;
        Node::WordPrefix(prefix)
    }

    fn resolved(&mut self, resolved: Resolved) -> Node {
        match resolved {
            Resolved::MessageText(text) => self.words(&text),
            Resolved::MessagePrefix(prefix) => self.word_prefix(prefix),
            Resolved::ExactEquals(field, value) => Node::ExactEquals(field, value),
            Resolved::ExactPrefix(field, prefix) => Node::ExactPrefix(field, prefix),
            Resolved::Id(id) => Node::Id(id),
            Resolved::Level(rank) => Node::Level(Bound::Included(rank), Bound::Included(rank)),
            Resolved::LevelRange(lower, upper) => Node::Level(lower, upper),
            Resolved::TimeRange(lower, upper) => Node::Time(lower, upper),
            Resolved::AttributeEquals { path, value } => Node::Attribute {
                path: path_segments(&path),
                test: AttributeTest::Equals(value),
            },
            Resolved::AttributePrefix { path, prefix } => Node::Attribute {
                path: path_segments(&path),
                test: AttributeTest::Prefix(prefix),
            },
            Resolved::AttributeRange { path, range } => Node::Attribute {
                path: path_segments(&path),
                test: AttributeTest::Range(range),
            },
        }
    }
}

/// The segments of an attribute path as a query names it: split on dots
/// (escaped ones too: the index expands dots in keys), as the index splits it.
fn path_segments(path: &str) -> Vec<String> {
    tantivy::json_utils::split_json_path(path)
        .iter()
        .flat_map(|segment| segment.split(is_segment_separator))
        .map(str::to_owned)
        .collect()
}

/// What separates segments of a path in the index: a dot inside a key, and
/// the index's own separator.
fn is_segment_separator(c: char) -> bool {
    c == '.' || c == '\u{1}'
}

impl Node {
    fn eval(&self, event: &Event, words: &mut Words<'_, '_>) -> bool {
        match self {
            Node::All => true,
            Node::Nothing => false,
            Node::And(children) => children.iter().all(|child| child.eval(event, words)),
            Node::Or(children) => children.iter().any(|child| child.eval(event, words)),
            Node::Not(inner) => !inner.eval(event, words),
            Node::Words(phrase) => words.contain(phrase),
            Node::WordPrefix(prefix) => words
                .cut()
                .iter()
                .any(|word| !word.is_empty() && word.starts_with(prefix.as_str())),
            Node::ExactEquals(field, value) => {
                exact_value(event, *field).is_some_and(|stored| stored == value)
            }
            Node::ExactPrefix(field, prefix) => {
                exact_value(event, *field).is_some_and(|stored| stored.starts_with(prefix.as_str()))
            }
            Node::Id(id) => event.id == *id,
            Node::Level(lower, upper) => (*lower, *upper).contains(&event.level.rank()),
            Node::Time(lower, upper) => (*lower, *upper).contains(&event.timestamp.nanos()),
            Node::Attribute { path, test } => event
                .attributes
                .iter()
                .any(|(key, value)| entry_matches(key, value, path, test)),
        }
    }
}

/// The value of an exact field as the index holds it: absent when too long
/// to be a term.
fn exact_value(event: &Event, field: Exact) -> Option<&str> {
    let value = match field {
        Exact::Service => event.service.as_deref(),
        Exact::Host => event.host.as_deref(),
        Exact::TraceId => event.trace_id.as_deref(),
        Exact::SpanId => event.span_id.as_deref(),
        Exact::UserId => event.user_id.as_deref(),
        Exact::SourceIp => event.source_ip.as_deref(),
        Exact::Source => event.source.map(|source| source.as_str()),
    }?;
    (value.len() < MAX_EXACT_BYTES).then_some(value)
}

/// Whether the object entry `key: value` holds a value at `path` passing
/// `test`. Keys are split on dots like paths; keys holding U+0000 are not
/// indexed, nor is anything below them.
fn entry_matches(key: &str, value: &Json, path: &[String], test: &AttributeTest) -> bool {
    if key.contains('\0') {
        return false;
    }
    let mut rest = path;
    for part in key.split(is_segment_separator) {
        match rest.split_first() {
            Some((segment, tail)) if segment == part => rest = tail,
            _ => return false,
        }
    }
    value_matches(value, rest, test)
}

/// Whether `value`, or a value within it (arrays are transparent), sits at
/// `path` below it and passes `test`.
fn value_matches(value: &Json, path: &[String], test: &AttributeTest) -> bool {
    match value.as_value() {
        ReferenceValue::Array(items) => items
            .into_iter()
            .any(|item| value_matches(item, path, test)),
        ReferenceValue::Object(entries) => entries
            .into_iter()
            .any(|(key, item)| entry_matches(key, item, path, test)),
        ReferenceValue::Leaf(leaf) => path.is_empty() && leaf_passes(leaf, test),
    }
}

/// Whether one attribute value, typed as the index types it, passes `test`.
fn leaf_passes(leaf: ReferenceValueLeaf<'_>, test: &AttributeTest) -> bool {
    let number = match leaf {
        ReferenceValueLeaf::Str(text) => {
            // The keyword analyzer: whole values under the length limit, lowercased.
            if text.len() >= MAX_EXACT_BYTES {
                return false;
            }
            return match test {
                AttributeTest::Equals(value) => lowercased(text).eq(value.text.chars()),
                AttributeTest::Prefix(prefix) => starts_with(lowercased(text), prefix),
                AttributeTest::Range(_) => false,
            };
        }
        ReferenceValueLeaf::Bool(flag) => {
            return match test {
                AttributeTest::Equals(value) => value.typed == Some(Typed::Bool(flag)),
                AttributeTest::Prefix(_) | AttributeTest::Range(_) => false,
            };
        }
        ReferenceValueLeaf::I64(value) => NumericalValue::I64(value),
        ReferenceValueLeaf::U64(value) => NumericalValue::U64(value),
        ReferenceValueLeaf::F64(value) if value.is_finite() => NumericalValue::F64(value),
        // Dates (strings that read as RFC 3339 times), nulls and the rest.
        _ => return false,
    };
    match (number.normalize(), test) {
        (NumericalValue::I64(value), AttributeTest::Equals(wanted)) => {
            wanted.typed == Some(Typed::Integer(value))
        }
        (NumericalValue::U64(value), AttributeTest::Equals(wanted)) => {
            wanted.typed == Some(Typed::Large(value))
        }
        (NumericalValue::F64(value), AttributeTest::Equals(wanted)) => {
            matches!(wanted.typed, Some(Typed::Fraction(float)) if float.to_bits() == value.to_bits())
        }
        (NumericalValue::I64(value), AttributeTest::Range(range)) => range
            .integers
            .is_some_and(|(low, high)| (low..=high).contains(&value)),
        (NumericalValue::U64(value), AttributeTest::Range(range)) => range
            .large
            .is_some_and(|(low, high)| (low..=high).contains(&value)),
        (NumericalValue::F64(value), AttributeTest::Range(range)) => {
            range.fractions.contains(&value)
        }
        (_, AttributeTest::Prefix(_)) => false,
    }
}

/// `text` lowercased as the analyzers' `LowerCaser` does it: character by
/// character (a final sigma stays `σ`, unlike `str::to_lowercase`).
fn lowercased(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

fn starts_with(mut text: impl Iterator<Item = char>, prefix: &str) -> bool {
    prefix.chars().all(|wanted| text.next() == Some(wanted))
}

thread_local! {
    /// The analyzer and word buffers of the events this thread matches.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Words beyond this many are not kept between events (a rare huge message
/// must not hold its buffers on the thread for good).
const KEPT_WORDS: usize = 4096;

/// Reusable space to cut a message into words.
struct Scratch {
    analyzer: TextAnalyzer,
    /// The word at each position of the last message cut; empty where a word
    /// too long to index was left out.
    slots: Vec<String>,
    /// How many of `slots` belong to the last message.
    len: usize,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            analyzer: text_analyzer(),
            slots: Vec::new(),
            len: 0,
        }
    }

    fn cut(&mut self, message: &str) {
        if self.slots.len() > KEPT_WORDS {
            self.slots.truncate(KEPT_WORDS);
            self.slots.shrink_to_fit();
        }
        self.len = 0;
        let mut stream = self.analyzer.token_stream(message);
        while let Some(token) = stream.next() {
            while self.slots.len() <= token.position {
                self.slots.push(String::new());
            }
            for skipped in &mut self.slots[self.len..token.position] {
                skipped.clear();
            }
            let slot = &mut self.slots[token.position];
            slot.clear();
            slot.push_str(&token.text);
            self.len = token.position + 1;
        }
    }
}

/// The words of one event's message, cut on first use.
struct Words<'m, 's> {
    message: &'m str,
    scratch: Option<&'s mut Scratch>,
    cut: bool,
}

impl<'m, 's> Words<'m, 's> {
    fn unread(message: &'m str, scratch: Option<&'s mut Scratch>) -> Self {
        Words {
            message,
            scratch,
            cut: false,
        }
    }

    /// The message's words by position.
    fn cut(&mut self) -> &[String] {
        let Some(scratch) = self.scratch.as_deref_mut() else {
            return &[];
        };
        if !self.cut {
            scratch.cut(self.message);
            self.cut = true;
        }
        &scratch.slots[..scratch.len]
    }

    /// Whether the words of `phrase` stand at their relative positions
    /// somewhere in the message.
    fn contain(&mut self, phrase: &[(usize, String)]) -> bool {
        let words = self.cut();
        let span = phrase.last().map_or(0, |(position, _)| *position);
        if words.len() <= span {
            return false;
        }
        (0..words.len() - span).any(|start| {
            phrase
                .iter()
                .all(|(offset, word)| words[start + offset] == *word)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use model::{
        BatchFormat, IngestContext, Limits, Timestamp, decode_batch, decode_record, encode_record,
    };

    use super::*;

    fn event(json: &str) -> Event {
        let context = IngestContext::new("t", Timestamp::from_nanos(0), None);
        let batch = decode_batch(
            json.as_bytes(),
            BatchFormat::Json,
            &context,
            &Limits::default(),
        )
        .expect("the event decodes");
        decode_record(&encode_record(&batch), 0)
            .expect("the record decodes")
            .remove(0)
            .event
    }

    #[test]
    fn one_matcher_serves_many_threads() {
        let matcher = Arc::new(
            Matcher::new(&query::parse("\"payment failed\" level:>=warn").expect("parses"))
                .expect("compiles"),
        );
        let hit = Arc::new(event(
            r#"{"message": "Payment failed: card declined", "level": "error"}"#,
        ));
        let miss = Arc::new(event(r#"{"message": "failed payment", "level": "error"}"#));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (matcher, hit, miss) = (matcher.clone(), hit.clone(), miss.clone());
                std::thread::spawn(move || matcher.matches(&hit) && !matcher.matches(&miss))
            })
            .collect();
        for thread in threads {
            assert!(thread.join().expect("the thread ends"));
        }
    }
}
