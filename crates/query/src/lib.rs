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
//!     Query::Field { field: "level".into(), predicate: Predicate::Equals("error".into()) },
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
    /// A bare word with a trailing `*`, searched as a full-text prefix (stored without the `*`).
    TextPrefix(String),
    /// A quoted phrase searched in the full text (unescaped content).
    Phrase(String),
    /// A predicate on a named field (`field:value` and friends).
    Field {
        /// The field name, e.g. `service` or `metadata.orderId`.
        field: String,
        /// What the field's value must satisfy.
        predicate: Predicate,
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
}

impl ParseError {
    /// Builds an error at byte offset `position`.
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Parses a search query; an empty or whitespace-only query is [`Query::All`].
///
/// Never panics, whatever the input.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    let tokens = lexer::tokenize(input)?;
    parser::parse_tokens(tokens, input.len())
}
