//! Recursive-descent parser building the boolean structure of a [`Query`] from tokens.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! query   := or_expr? EOF
//! or_expr := and_expr ("OR" and_expr)*
//! and_expr:= unary ("AND"? unary)*
//! unary   := ("NOT" | "-")* (term | "(" or_expr ")")
//! ```

use crate::lexer::{Token, TokenKind};
use crate::{ParseError, Query};

/// Maximum nesting depth of parentheses.
const MAX_DEPTH: usize = 64;

/// Parses a token stream produced from an input of `input_len` bytes.
pub(crate) fn parse_tokens(tokens: Vec<Token>, input_len: usize) -> Result<Query, ParseError> {
    if tokens.is_empty() {
        return Ok(Query::All);
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        input_len,
    };
    let query = parser.parse_or()?;
    match parser.advance() {
        None => Ok(query),
        Some(Token {
            kind: TokenKind::RParen,
            pos,
        }) => Err(ParseError::new(pos, "unmatched ')'")),
        Some(token) => Err(ParseError::new(token.pos, "unexpected input")),
    }
}

/// Cursor over the token stream.
struct Parser {
    /// All tokens of the input.
    tokens: Vec<Token>,
    /// Index of the next unconsumed token.
    next: usize,
    /// Current parenthesis nesting depth.
    depth: usize,
    /// Length of the input, used as the position of "end of input" errors.
    input_len: usize,
}

impl Parser {
    /// The next token's kind, without consuming it.
    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.next).map(|token| &token.kind)
    }

    /// Consumes and returns the next token.
    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        if token.is_some() {
            self.next += 1;
        }
        token
    }

    /// Consumes the next token if it is `kind`, returning its position.
    fn eat(&mut self, kind: &TokenKind) -> Option<usize> {
        let token = self.tokens.get(self.next)?;
        if &token.kind != kind {
            return None;
        }
        self.next += 1;
        Some(token.pos)
    }

    /// Whether the next token can start an operand (a term, a group or a negation).
    fn at_operand(&self) -> bool {
        matches!(
            self.peek(),
            Some(TokenKind::Term(_) | TokenKind::LParen | TokenKind::Not | TokenKind::Minus)
        )
    }

    /// Fails with a dangling-operator error at `pos` unless an operand follows.
    fn require_operand(&self, pos: usize, operator: &str) -> Result<(), ParseError> {
        if self.at_operand() {
            Ok(())
        } else {
            Err(ParseError::new(
                pos,
                format!("'{operator}' must be followed by a term"),
            ))
        }
    }

    /// `or_expr := and_expr ("OR" and_expr)*`
    fn parse_or(&mut self) -> Result<Query, ParseError> {
        let mut items = vec![self.parse_and()?];
        while let Some(pos) = self.eat(&TokenKind::Or) {
            self.require_operand(pos, "OR")?;
            items.push(self.parse_and()?);
        }
        Ok(combine_or(items))
    }

    /// `and_expr := unary ("AND"? unary)*`
    fn parse_and(&mut self) -> Result<Query, ParseError> {
        let mut items = vec![self.parse_unary()?];
        loop {
            if let Some(pos) = self.eat(&TokenKind::And) {
                self.require_operand(pos, "AND")?;
            } else if !self.at_operand() {
                break;
            }
            items.push(self.parse_unary()?);
        }
        Ok(combine_and(items))
    }

    /// `unary := ("NOT" | "-")* (term | "(" or_expr ")")`; negations are folded iteratively.
    fn parse_unary(&mut self) -> Result<Query, ParseError> {
        let mut negated = false;
        let operand = loop {
            let Some(token) = self.advance() else {
                return Err(ParseError::new(self.input_len, "expected a term"));
            };
            match token.kind {
                TokenKind::Not => {
                    self.require_operand(token.pos, "NOT")?;
                    negated = !negated;
                }
                TokenKind::Minus => {
                    self.require_operand(token.pos, "-")?;
                    negated = !negated;
                }
                TokenKind::Term(query) => break query,
                TokenKind::LParen => break self.parse_group(token.pos)?,
                TokenKind::RParen => return Err(ParseError::new(token.pos, "unmatched ')'")),
                TokenKind::And => {
                    return Err(ParseError::new(
                        token.pos,
                        "'AND' must be preceded by a term",
                    ));
                }
                TokenKind::Or => {
                    return Err(ParseError::new(
                        token.pos,
                        "'OR' must be preceded by a term",
                    ));
                }
            }
        };
        Ok(if negated { negate(operand) } else { operand })
    }

    /// Parses the inside of a group whose `(` (already consumed) is at `open`.
    fn parse_group(&mut self, open: usize) -> Result<Query, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                open,
                format!("parentheses nested too deeply (maximum {MAX_DEPTH})"),
            ));
        }
        match self.peek() {
            None => return Err(ParseError::new(open, "unclosed '('")),
            Some(TokenKind::RParen) => return Err(ParseError::new(open, "empty parentheses")),
            Some(_) => {}
        }
        let query = self.parse_or()?;
        if self.eat(&TokenKind::RParen).is_none() {
            return Err(ParseError::new(open, "unclosed '('"));
        }
        self.depth -= 1;
        Ok(query)
    }
}

/// Negates `query`, cancelling a double negation.
fn negate(query: Query) -> Query {
    match query {
        Query::Not(inner) => *inner,
        other => Query::Not(Box::new(other)),
    }
}

/// Builds a conjunction: flattens nested `And`s and drops `All` (the identity).
fn combine_and(items: Vec<Query>) -> Query {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Query::And(children) => flat.extend(children),
            Query::All => {}
            other => flat.push(other),
        }
    }
    if flat.len() > 1 {
        Query::And(flat)
    } else {
        flat.pop().unwrap_or(Query::All)
    }
}

/// Builds a disjunction: flattens nested `Or`s; any `All` operand makes the whole `All`.
fn combine_or(items: Vec<Query>) -> Query {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Query::Or(children) => flat.extend(children),
            Query::All => return Query::All,
            other => flat.push(other),
        }
    }
    if flat.len() > 1 {
        Query::Or(flat)
    } else {
        flat.pop().unwrap_or(Query::All)
    }
}
