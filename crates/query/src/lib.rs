//! Parser for Logbook's search query language (the `q` of `GET /v1/logs?q=...`).
//!
//! [`parse`] turns a query string into a [`Query`] syntax tree. This crate knows nothing
//! about storage (the store compiles the tree into index queries) nor about HTTP.
//!
//! # Query language
//!
//! | Syntax | Meaning |
//! |---|---|
//! | `timeout` | full-text word |
//! | `connect*` | full-text prefix |
//! | `"connection refused"` | full-text phrase; `\"` and `\\` are escapes inside quotes |
//! | `service:order-service`, `service:"order service"` | field equals value |
//! | `service:pay*` | field value starts with `pay` |
//! | `level:>=warn`, `retryCount:>1` (also `<`, `<=`) | comparison |
//! | `latency:[100 TO 500]`, `latency:[100 TO *]` | inclusive range, `*` = open end |
//! | `a AND b`, `a b` | both |
//! | `a OR b` | either |
//! | `NOT a`, `-a`, `-level:debug`, `-(a OR b)` | negation |
//! | `(...)` | grouping |
//! | empty query, `*` | everything |
//!
//! - Terms are separated by whitespace; a bare word or bare value also ends at `(` or `)`.
//! - A bare word containing `:` is always `field:value`: the field name (before the first `:`)
//!   must match `[A-Za-z_][A-Za-z0-9_.-]*`; the value may contain further colons
//!   (`url:http://x/y`). Quote a word to search it as text (`"12:30"`).
//! - `AND`, `OR`, `NOT` are keywords only in uppercase (`and` is an ordinary word).
//! - Precedence: `NOT`/`-` bind tightest, then `AND` (explicit or implicit), then `OR`:
//!   `a OR b c` is `a OR (b AND c)`, and `NOT a b` is `(NOT a) AND b`.
//! - `-` must be immediately followed by a term (`- a` is an error).
//! - Only a single trailing `*` means prefix (`pay*`); `*` elsewhere is literal, `pay**` is an
//!   error. Comparison operands and range bounds are always literal.
//! - Parentheses nest at most 64 deep.
//! - The tree is normalised: nested `AND`/`OR` are flattened, double negation cancels,
//!   `*` is dropped from an `AND` and turns an `OR` into "everything".
//!
//! [`parse_within`] also refuses a query beyond [`Limits`] (length, number of terms, characters
//! before a prefix's `*`) with a [`ParseErrorKind::TooComplex`] error at the offending term.
//! Every [`Query::Field`] and [`Query::TextPrefix`] keeps the byte offset of its term, so errors
//! found later (an unknown level, a prefix matching too many terms) can point at it too.
//!
//! Errors ([`ParseError`]) carry the byte offset of the problem: the opening quote of an
//! unterminated quote, the `(` of an unclosed group, the dangling operator (`a AND`,
//! `OR b`, `NOT`), the `:` of an empty value (`service:`), the operator of a comparison
//! without operand (`level:>`), the first character of a bad field name (`:foo`).
//!
//! ```
//! use query::{Predicate, Query, parse};
//!
//! let query = parse("level:error timeout").map_err(|e| e.to_string())?;
//! let expected = Query::And(vec![
//!     Query::Field {
//!         field: "level".into(),
//!         predicate: Predicate::Equals("error".into()),
//!         position: 0,
//!     },
//!     Query::Text("timeout".into()),
//! ]);
//! assert_eq!(query, expected);
//! # Ok::<(), String>(())
//! ```

mod lexer;
mod parser;
#[cfg(test)]
mod tests;

/// A parsed search query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Matches every record (empty query or `*`).
    All,
    /// All children must match; always has at least 2 children, none of them `And`.
    And(Vec<Query>),
    /// At least one child must match; always has at least 2 children, none of them `Or`.
    Or(Vec<Query>),
    /// The child must not match (`NOT x` or `-x`).
    Not(Box<Query>),
    /// A bare word searched in the full text.
    Text(String),
    /// A bare word with a trailing `*`, searched as a full-text prefix.
    TextPrefix {
        /// The word without the `*`.
        prefix: String,
        /// Byte offset of the word in the query.
        position: usize,
    },
    /// A quoted phrase searched in the full text (unescaped content).
    Phrase(String),
    /// A predicate on a named field (`field:value` and friends).
    Field {
        /// The field name, e.g. `service` or `metadata.orderId`.
        field: String,
        /// What the field's value must satisfy.
        predicate: Predicate,
        /// Byte offset of the term (its field name) in the query, for errors found later.
        position: usize,
    },
}

/// What a field's value must satisfy in a [`Query::Field`].
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Exact value: `field:value` or `field:"value"` (unescaped).
    Equals(String),
    /// Value starts with this (`field:pay*`, stored without the `*`).
    Prefix(String),
    /// Value compares to the operand (`field:>=warn`).
    Compare(Comparison, String),
    /// Value lies in the range, both ends inclusive; `None` is an open end (`*`).
    Range {
        /// Lower bound, or `None` if unbounded.
        lower: Option<String>,
        /// Upper bound, or `None` if unbounded.
        upper: Option<String>,
    },
}

/// Comparison operator of a [`Predicate::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// Why a query string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    /// Byte offset into the input where the problem is (always a char boundary, at most the
    /// input length).
    pub position: usize,
    /// Human-readable description of the problem.
    pub message: String,
    /// Whether the query is malformed or merely over a [`Limits`] bound.
    pub kind: ParseErrorKind,
}

/// What kind of problem a [`ParseError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The query is not valid in the language.
    Syntax,
    /// The query is valid but exceeds one of the [`Limits`]; the message names the limit.
    TooComplex,
}

impl ParseError {
    /// Builds a syntax error at byte offset `position`.
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
            kind: ParseErrorKind::Syntax,
        }
    }

    fn too_complex(position: usize, message: String) -> Self {
        Self {
            position,
            message,
            kind: ParseErrorKind::TooComplex,
        }
    }
}

/// Bounds on the cost of a query that can be checked without an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest query, in bytes.
    pub max_bytes: usize,
    /// The most terms (words, phrases, prefixes, `field:value` terms) a query may hold.
    pub max_terms: usize,
    /// The fewest characters before the `*` of a prefix (`pay*` has 3).
    pub min_prefix_chars: usize,
}

impl Limits {
    /// No bounds at all (for tests and tools, never for queries from the network).
    pub const UNLIMITED: Limits = Limits {
        max_bytes: usize::MAX,
        max_terms: usize::MAX,
        min_prefix_chars: 0,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4096,
            max_terms: 100,
            min_prefix_chars: 2,
        }
    }
}

/// Parses a search query without limits; an empty or whitespace-only query is
/// [`Query::All`].
///
/// Never panics, whatever the input.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    parse_within(input, &Limits::UNLIMITED)
}

/// Parses a search query, refusing one beyond `limits` with a
/// [`ParseErrorKind::TooComplex`] error that names the limit.
///
/// Never panics, whatever the input.
pub fn parse_within(input: &str, limits: &Limits) -> Result<Query, ParseError> {
    if input.len() > limits.max_bytes {
        let mut position = limits.max_bytes;
        while !input.is_char_boundary(position) {
            position -= 1;
        }
        return Err(ParseError::too_complex(
            position,
            format!(
                "the query is {} bytes long, over the limit of {} bytes (query.max_bytes)",
                input.len(),
                limits.max_bytes
            ),
        ));
    }
    let tokens = lexer::tokenize(input)?;
    check_terms(&tokens, limits)?;
    parser::parse_tokens(tokens, input.len())
}

/// Applies the term count and prefix length limits to the lexed terms.
fn check_terms(tokens: &[lexer::Token], limits: &Limits) -> Result<(), ParseError> {
    let terms = tokens.iter().filter_map(|token| match &token.kind {
        lexer::TokenKind::Term(term) => Some((token.pos, term)),
        _ => None,
    });
    for (count, (position, term)) in terms.enumerate() {
        if count == limits.max_terms {
            return Err(ParseError::too_complex(
                position,
                format!(
                    "the query has more than {} terms, the limit (query.max_terms)",
                    limits.max_terms
                ),
            ));
        }
        let prefix = match term {
            Query::TextPrefix { prefix, .. } => prefix,
            Query::Field {
                predicate: Predicate::Prefix(prefix),
                ..
            } => prefix,
            _ => continue,
        };
        if prefix.chars().count() < limits.min_prefix_chars {
            return Err(ParseError::too_complex(
                position,
                format!(
                    "the prefix '{prefix}*' is too short: a prefix needs at least {} characters before '*' (query.min_prefix_chars)",
                    limits.min_prefix_chars
                ),
            ));
        }
    }
    Ok(())
}
