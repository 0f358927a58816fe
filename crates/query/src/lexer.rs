//! Tokenizer: splits a query string into operators, parentheses and fully decoded terms.
//!
//! Terms (words, phrases, `field:value` predicates) are decoded here because their
//! extent depends on their content (a quoted field value or a range may contain spaces);
//! the parser only deals with the boolean structure.

use crate::{Comparison, ParseError, Predicate, Query};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// The `AND` keyword.
    And,
    /// The `OR` keyword.
    Or,
    /// The `NOT` keyword.
    Not,
    /// The `-` negation shorthand, immediately followed by a term.
    Minus,
    /// A complete leaf term.
    Term(Query),
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    /// What the token is.
    pub(crate) kind: TokenKind,
    /// Byte offset of the token's first character in the input.
    pub(crate) pos: usize,
}

/// Splits `input` into tokens, or reports the first lexical error.
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(c) = char_at(input, pos) {
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let (kind, end) = match c {
            '(' => (TokenKind::LParen, pos + 1),
            ')' => (TokenKind::RParen, pos + 1),
            '-' => match char_at(input, pos + 1) {
                Some(next) if !is_word_end(next) || next == '(' => (TokenKind::Minus, pos + 1),
                _ => {
                    return Err(ParseError::new(
                        pos,
                        "'-' must be immediately followed by a term",
                    ));
                }
            },
            '"' => {
                let (text, end) = quoted(input, pos)?;
                check_boundary(input, end, "closing quote")?;
                if text.is_empty() {
                    return Err(ParseError::new(pos, "empty phrase"));
                }
                (TokenKind::Term(Query::Phrase(text)), end)
            }
            _ => word(input, pos)?,
        };
        tokens.push(Token { kind, pos });
        pos = end;
    }
    Ok(tokens)
}

/// The character starting at byte offset `at`, if any.
fn char_at(input: &str, at: usize) -> Option<char> {
    input.get(at..).and_then(|rest| rest.chars().next())
}

/// `input[start..end]`, or `""` if the range is not valid (it always is by construction).
fn slice(input: &str, start: usize, end: usize) -> &str {
    input.get(start..end).unwrap_or_default()
}

/// Whether `c` ends a bare word or bare value.
fn is_word_end(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

/// Byte offset of the first character at or after `start` satisfying `stop`, or the input length.
fn scan_until(input: &str, start: usize, stop: impl Fn(char) -> bool) -> usize {
    slice(input, start, input.len())
        .char_indices()
        .find(|&(_, c)| stop(c))
        .map_or(input.len(), |(offset, _)| start + offset)
}

/// Byte offset of the first non-whitespace character at or after `start`, or the input length.
fn skip_whitespace(input: &str, start: usize) -> usize {
    scan_until(input, start, |c| !c.is_whitespace())
}

/// Fails unless the construct ending at `end` is followed by whitespace, a parenthesis or the end.
fn check_boundary(input: &str, end: usize, what: &str) -> Result<(), ParseError> {
    match char_at(input, end) {
        Some(c) if !is_word_end(c) => Err(ParseError::new(
            end,
            format!("expected whitespace or ')' after {what}"),
        )),
        _ => Ok(()),
    }
}

/// Decodes the quoted string opening at `open`; returns its unescaped content and the
/// offset just past the closing quote.
fn quoted(input: &str, open: usize) -> Result<(String, usize), ParseError> {
    let body_start = open + 1;
    let mut out = String::new();
    let mut chars = slice(input, body_start, input.len()).char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((out, body_start + offset + 1)),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => out.push(escaped),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            _ => out.push(c),
        }
    }
    Err(ParseError::new(open, "unterminated quote"))
}

/// Lexes a bare word starting at `start`: a keyword, a full-text term or a `field:value` term.
fn word(input: &str, start: usize) -> Result<(TokenKind, usize), ParseError> {
    let end = scan_until(input, start, is_word_end);
    let text = slice(input, start, end);
    if let Some(colon) = text.find(':') {
        let name = slice(text, 0, colon);
        if name.is_empty() {
            return Err(ParseError::new(start, "empty field name"));
        }
        if !is_valid_field_name(name) {
            return Err(ParseError::new(
                start,
                format!("invalid field name '{name}'"),
            ));
        }
        let colon_pos = start + colon;
        let (predicate, end) = value(input, colon_pos + 1, colon_pos, name)?;
        let term = Query::Field {
            field: name.to_owned(),
            predicate,
            position: start,
        };
        return Ok((TokenKind::Term(term), end));
    }
    let kind = match text {
        "AND" => TokenKind::And,
        "OR" => TokenKind::Or,
        "NOT" => TokenKind::Not,
        _ => TokenKind::Term(text_term(text, start)?),
    };
    Ok((kind, end))
}

/// Whether `name` matches `[A-Za-z_][A-Za-z0-9_.-]*`.
fn is_valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Splits a single trailing `*` off a bare word; `Ok(None)` means no `*`, `Ok(Some(""))` a lone `*`.
fn strip_wildcard(text: &str, pos: usize) -> Result<Option<&str>, ParseError> {
    match text.strip_suffix('*') {
        Some(stem) if stem.ends_with('*') => Err(ParseError::new(
            pos,
            "only a single trailing '*' is supported",
        )),
        stripped => Ok(stripped),
    }
}

/// Builds the full-text term for a bare (non-keyword, non-field) word.
fn text_term(text: &str, pos: usize) -> Result<Query, ParseError> {
    Ok(match strip_wildcard(text, pos)? {
        None => Query::Text(text.to_owned()),
        Some("") => Query::All,
        Some(stem) => Query::TextPrefix {
            prefix: stem.to_owned(),
            position: pos,
        },
    })
}

/// Lexes the value of `field:` starting at `start` (just past the colon at `colon_pos`).
fn value(
    input: &str,
    start: usize,
    colon_pos: usize,
    field: &str,
) -> Result<(Predicate, usize), ParseError> {
    let rest = slice(input, start, input.len());
    for (symbol, comparison) in [
        (">=", Comparison::Ge),
        ("<=", Comparison::Le),
        (">", Comparison::Gt),
        ("<", Comparison::Lt),
    ] {
        if rest.starts_with(symbol) {
            let (operand, end) = comparison_operand(input, start + symbol.len())?;
            if operand.is_empty() {
                return Err(ParseError::new(
                    start,
                    format!("missing value after '{symbol}'"),
                ));
            }
            return Ok((Predicate::Compare(comparison, operand), end));
        }
    }
    let empty = || ParseError::new(colon_pos, format!("empty value for field '{field}'"));
    match char_at(input, start) {
        None => Err(empty()),
        Some(c) if is_word_end(c) => Err(empty()),
        Some('[') => range(input, start),
        Some('"') => {
            let (text, end) = quoted(input, start)?;
            check_boundary(input, end, "closing quote")?;
            if text.is_empty() {
                return Err(empty());
            }
            Ok((Predicate::Equals(text), end))
        }
        Some(_) => {
            let end = scan_until(input, start, is_word_end);
            let text = slice(input, start, end);
            let predicate = match strip_wildcard(text, start)? {
                None => Predicate::Equals(text.to_owned()),
                Some("") => {
                    return Err(ParseError::new(
                        start,
                        "a value cannot be just '*' (use a prefix like 'pay*' or a range)",
                    ));
                }
                Some(stem) => Predicate::Prefix(stem.to_owned()),
            };
            Ok((predicate, end))
        }
    }
}

/// Lexes the operand of a comparison (quoted or bare, taken literally); may be empty.
fn comparison_operand(input: &str, start: usize) -> Result<(String, usize), ParseError> {
    if char_at(input, start) == Some('"') {
        let (text, end) = quoted(input, start)?;
        check_boundary(input, end, "closing quote")?;
        return Ok((text, end));
    }
    let end = scan_until(input, start, is_word_end);
    Ok((slice(input, start, end).to_owned(), end))
}

/// Lexes `[lower TO upper]` with the `[` at `open`.
fn range(input: &str, open: usize) -> Result<(Predicate, usize), ParseError> {
    let unterminated = || ParseError::new(open, "unterminated range");
    let (lower, after_lower) = range_bound(input, skip_whitespace(input, open + 1), open)?;
    let to = skip_whitespace(input, after_lower);
    if to >= input.len() {
        return Err(unterminated());
    }
    let has_to = to > after_lower
        && slice(input, to, input.len()).starts_with("TO")
        && char_at(input, to + 2).is_none_or(char::is_whitespace);
    if !has_to {
        return Err(ParseError::new(to, "expected 'TO' in range"));
    }
    let (upper, after_upper) = range_bound(input, skip_whitespace(input, to + 2), open)?;
    let close = skip_whitespace(input, after_upper);
    match char_at(input, close) {
        None => Err(unterminated()),
        Some(']') => {
            check_boundary(input, close + 1, "']'")?;
            Ok((Predicate::Range { lower, upper }, close + 1))
        }
        Some(_) => Err(ParseError::new(close, "expected ']' to close range")),
    }
}

/// Lexes one range bound at `start` (`*` means open); returns it and the offset past it.
fn range_bound(
    input: &str,
    start: usize,
    open: usize,
) -> Result<(Option<String>, usize), ParseError> {
    match char_at(input, start) {
        None => Err(ParseError::new(open, "unterminated range")),
        Some(']') => Err(ParseError::new(start, "expected a range bound")),
        Some('"') => {
            let (text, end) = quoted(input, start)?;
            Ok((Some(text), end))
        }
        Some(_) => {
            let end = scan_until(input, start, |c| c.is_whitespace() || c == ']');
            let text = slice(input, start, end);
            Ok(((text != "*").then(|| text.to_owned()), end))
        }
    }
}
