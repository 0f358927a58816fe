//! Turns a parsed query into a condition on rows of the events table, with the
//! embedded store's meaning (see `crate::fields` for what terms mean and
//! `terms.rs` for the lexemes they are looked up as).
//!
//! Words, phrases, prefixes and `field:value` terms become one tsquery where
//! they can (`AND`, `OR` and `NOT` of them included), answered by the GIN index
//! on `terms`; levels, times, ids and numeric ranges become SQL beside it.
//! Every value reaches PostgreSQL as a bound parameter, never inside the SQL.

use std::ops::Bound;

use model::Stream;
use query::Query;
use tantivy::tokenizer::TextAnalyzer;

use super::terms::{self, quote};
use crate::fields::{AttributeValue, NumberRange, Resolved, Typed, at, resolve, text_prefix};
use crate::{Filter, StoreError};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int2(i16),
    Int8(i64),
}

/// The parameters of a statement, numbered as they are pushed.
#[derive(Debug, Default)]
pub(crate) struct Params(pub Vec<Param>);

impl Params {
    /// Adds a parameter; returns its placeholder (`$3`).
    pub fn push(&mut self, param: Param) -> String {
        self.0.push(param);
        format!("${}", self.0.len())
    }
}

/// A prefix to count in the lexicon before the query runs: more than the
/// limit's worth of matching terms refuses the query, as the embedded store does.
#[derive(Debug)]
pub(crate) struct PrefixCheck {
    /// A `LIKE` pattern over the lexicon.
    pub pattern: String,
    /// The prefix as the user wrote it, for the message.
    pub shown: String,
    /// The term's byte offset in the query.
    pub position: usize,
}

/// A compiled read filter: the `WHERE` clause, its parameters (the tenant and
/// the stream first) and the prefixes to check.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub clause: String,
    pub params: Params,
    pub prefixes: Vec<PrefixCheck>,
}

/// The stream's number in the `stream` column.
pub(crate) fn stream_code(stream: Stream) -> i16 {
    match stream {
        Stream::Logs => 0,
        Stream::Audit => 1,
    }
}

/// A condition on one row, before it is written as SQL.
enum Cond {
    True,
    False,
    /// A tsquery over `terms`, still open to be merged with others.
    Ts(String),
    Sql(String),
}

/// Compiles a whole read filter: partition (tenant and stream), time range and
/// the user's query.
pub(crate) fn compile_filter(filter: &Filter) -> Result<Compiled, StoreError> {
    let mut params = Params::default();
    let tenant = params.push(Param::Text(filter.tenant.clone()));
    let stream = params.push(Param::Int2(stream_code(filter.stream)));
    let mut clause = format!("tenant = {tenant} AND stream = {stream}");
    if let Some(from) = filter.from {
        let from = params.push(Param::Int8(from.nanos()));
        clause.push_str(&format!(" AND ts >= {from}"));
    }
    if let Some(to) = filter.to {
        let to = params.push(Param::Int8(to.nanos()));
        clause.push_str(&format!(" AND ts < {to}"));
    }
    let mut compiler = Compiler {
        stream: filter.stream,
        tenant,
        stream_param: stream,
        analyzer: crate::analysis::text_analyzer(),
        params: &mut params,
        prefixes: Vec::new(),
    };
    let condition = compiler.compile(&filter.query)?;
    let prefixes = std::mem::take(&mut compiler.prefixes);
    if let Some(sql) = compiler.render(condition) {
        clause.push_str(" AND ");
        clause.push_str(&sql);
    }
    Ok(Compiled {
        clause,
        params,
        prefixes,
    })
}

struct Compiler<'a> {
    stream: Stream,
    /// Placeholders of the filter's tenant and stream, for `id:` lookups.
    tenant: String,
    stream_param: String,
    analyzer: TextAnalyzer,
    params: &'a mut Params,
    prefixes: Vec<PrefixCheck>,
}

impl Compiler<'_> {
    fn compile(&mut self, query: &Query) -> Result<Cond, StoreError> {
        Ok(match query {
            Query::All => Cond::True,
            Query::And(children) => {
                let conds = children
                    .iter()
                    .map(|child| self.compile(child))
                    .collect::<Result<Vec<_>, _>>()?;
                self.all(conds)
            }
            Query::Or(children) => {
                let conds = children
                    .iter()
                    .map(|child| self.compile(child))
                    .collect::<Result<Vec<_>, _>>()?;
                self.any(conds)
            }
            Query::Not(inner) => {
                let inner = self.compile(inner)?;
                self.not(inner)
            }
            Query::Text(words) | Query::Phrase(words) => self.full_text(words),
            Query::TextPrefix { prefix, position } => {
                self.word_prefix(&text_prefix(prefix), prefix, *position)
            }
            Query::Field {
                field,
                predicate,
                position,
            } => {
                let resolved = resolve(self.stream, field, predicate).map_err(at(*position))?;
                self.resolved(resolved, *position)
            }
        })
    }

    fn all(&mut self, conds: Vec<Cond>) -> Cond {
        let mut tsqueries = Vec::new();
        let mut sql = Vec::new();
        for cond in conds {
            match cond {
                Cond::True => {}
                Cond::False => return Cond::False,
                Cond::Ts(query) => tsqueries.push(query),
                Cond::Sql(text) => sql.push(text),
            }
        }
        let merged = match tsqueries.len() {
            0 => None,
            1 => tsqueries.pop(),
            _ => Some(format!("({})", tsqueries.join(") & ("))),
        };
        match (merged, sql.is_empty()) {
            (None, true) => Cond::True,
            (Some(query), true) => Cond::Ts(query),
            (merged, false) => {
                if let Some(query) = merged {
                    sql.insert(0, self.tsquery(query));
                }
                Cond::Sql(format!("({})", sql.join(" AND ")))
            }
        }
    }

    fn any(&mut self, conds: Vec<Cond>) -> Cond {
        let mut tsqueries = Vec::new();
        let mut sql = Vec::new();
        for cond in conds {
            match cond {
                Cond::True => return Cond::True,
                Cond::False => {}
                Cond::Ts(query) => tsqueries.push(query),
                Cond::Sql(text) => sql.push(text),
            }
        }
        let merged = match tsqueries.len() {
            0 => None,
            1 => tsqueries.pop(),
            _ => Some(format!("({})", tsqueries.join(") | ("))),
        };
        match (merged, sql.is_empty()) {
            (None, true) => Cond::False,
            (Some(query), true) => Cond::Ts(query),
            (merged, false) => {
                if let Some(query) = merged {
                    sql.insert(0, self.tsquery(query));
                }
                Cond::Sql(format!("({})", sql.join(" OR ")))
            }
        }
    }

    fn not(&mut self, cond: Cond) -> Cond {
        match cond {
            Cond::True => Cond::False,
            Cond::False => Cond::True,
            Cond::Ts(query) => Cond::Ts(format!("!({query})")),
            Cond::Sql(text) => Cond::Sql(format!("(NOT {text})")),
        }
    }

    /// `terms` matching a tsquery, as SQL.
    fn tsquery(&mut self, query: String) -> String {
        let query = self.params.push(Param::Text(query));
        format!("terms @@ {query}::tsquery")
    }

    /// The condition as SQL; `None` when it holds for every row.
    fn render(&mut self, cond: Cond) -> Option<String> {
        match cond {
            Cond::True => None,
            Cond::False => Some("FALSE".to_owned()),
            Cond::Ts(query) => Some(self.tsquery(query)),
            Cond::Sql(text) => Some(text),
        }
    }

    /// Words of the message: one word, or a phrase whose words keep the
    /// distances the analyzer gave them (a word too long to index leaves a gap).
    fn full_text(&mut self, text: &str) -> Cond {
        let mut stream = self.analyzer.token_stream(text);
        let mut query = String::new();
        let mut previous: Option<usize> = None;
        while let Some(token) = stream.next() {
            if let Some(previous) = previous {
                query.push_str(&format!(" <{}> ", token.position - previous));
            }
            previous = Some(token.position);
            quote(&token.text, &mut query);
        }
        if query.is_empty() {
            Cond::False
        } else {
            Cond::Ts(query)
        }
    }

    /// A message word prefix. Words are alphanumeric: a prefix starting with a
    /// control character (the other kinds of lexeme) or holding U+0000 matches
    /// no word.
    fn word_prefix(&mut self, prefix: &str, shown: &str, position: usize) -> Cond {
        let unreachable = prefix.is_empty()
            || prefix.starts_with(|c: char| c <= '\u{3}')
            || prefix.contains('\0');
        if unreachable {
            return Cond::False;
        }
        self.prefix(prefix.to_owned(), shown, position)
    }

    /// Lexemes starting with `lexeme`, counted first against the limit.
    fn prefix(&mut self, lexeme: String, shown: &str, position: usize) -> Cond {
        let mut pattern = String::with_capacity(lexeme.len() + 1);
        for c in lexeme.chars() {
            if matches!(c, '\\' | '%' | '_') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        self.prefixes.push(PrefixCheck {
            pattern,
            shown: shown.to_owned(),
            position,
        });
        let mut query = String::with_capacity(lexeme.len() + 4);
        quote(&lexeme, &mut query);
        query.push_str(":*");
        Cond::Ts(query)
    }

    fn lexeme(lexeme: &str) -> Cond {
        let mut query = String::with_capacity(lexeme.len() + 2);
        quote(lexeme, &mut query);
        Cond::Ts(query)
    }

    fn resolved(&mut self, resolved: Resolved, position: usize) -> Cond {
        match resolved {
            Resolved::MessageText(text) => self.full_text(&text),
            Resolved::MessagePrefix(prefix) => self.word_prefix(&prefix, &prefix, position),
            Resolved::ExactEquals(field, value) => {
                Self::lexeme(&terms::exact_lexeme(field, &value))
            }
            Resolved::ExactPrefix(field, prefix) => match terms::exact_prefix(field, &prefix) {
                Some(lexeme) => self.prefix(lexeme, &prefix, position),
                None => Cond::False,
            },
            Resolved::Id(id) => {
                let id = self.params.push(Param::Text(id));
                Cond::Sql(format!(
                    "((ts, arrival) IN (SELECT ts, arrival FROM store_event_ids WHERE tenant = {} AND stream = {} AND id = {id}))",
                    self.tenant, self.stream_param
                ))
            }
            Resolved::Level(rank) => {
                let rank = self.params.push(Param::Int2(rank as i16));
                Cond::Sql(format!("level = {rank}"))
            }
            Resolved::LevelRange(lower, upper) => {
                let lower = lower.map(|rank| Param::Int2(rank as i16));
                let upper = upper.map(|rank| Param::Int2(rank as i16));
                self.range("level", lower, upper)
            }
            Resolved::TimeRange(lower, upper) => {
                self.range("ts", lower.map(Param::Int8), upper.map(Param::Int8))
            }
            Resolved::AttributeEquals { path, value } => self.attribute_equals(&path, &value),
            Resolved::AttributePrefix { path, prefix } => {
                let key = terms::query_path_key(&path);
                match terms::attribute_prefix(&key, &prefix) {
                    Some(lexeme) => self.prefix(lexeme, &prefix, position),
                    None => Cond::False,
                }
            }
            Resolved::AttributeRange { path, range } => self.attribute_range(&path, &range),
        }
    }

    fn range(&mut self, column: &str, lower: Bound<Param>, upper: Bound<Param>) -> Cond {
        let mut parts = Vec::new();
        for (bound, inclusive, exclusive) in [(lower, ">=", ">"), (upper, "<=", "<")] {
            match bound {
                Bound::Included(value) => {
                    let value = self.params.push(value);
                    parts.push(format!("{column} {inclusive} {value}"));
                }
                Bound::Excluded(value) => {
                    let value = self.params.push(value);
                    parts.push(format!("{column} {exclusive} {value}"));
                }
                Bound::Unbounded => {}
            }
        }
        if parts.is_empty() {
            Cond::True
        } else {
            Cond::Sql(format!("({})", parts.join(" AND ")))
        }
    }

    /// An attribute equal to `value` as a string (case-insensitively), or as
    /// a number or boolean when the text reads as one: the terms the embedded
    /// store would look up.
    fn attribute_equals(&mut self, path: &str, value: &AttributeValue) -> Cond {
        let key = terms::query_path_key(path);
        let mut alternatives = vec![terms::attribute_lexeme(&key, 's', &value.text)];
        match value.typed {
            Some(Typed::Integer(integer)) => {
                alternatives.push(terms::attribute_lexeme(&key, 'i', &integer.to_string()));
            }
            Some(Typed::Large(large)) => {
                alternatives.push(terms::attribute_lexeme(&key, 'u', &large.to_string()));
            }
            Some(Typed::Fraction(float)) => {
                let bits = terms::float_text(float);
                alternatives.push(terms::attribute_lexeme(&key, 'f', &bits));
            }
            Some(Typed::Bool(flag)) => {
                let flag = if flag { "t" } else { "f" };
                alternatives.push(terms::attribute_lexeme(&key, 'b', flag));
            }
            None => {}
        }
        let conds = alternatives
            .iter()
            .map(|lexeme| Self::lexeme(lexeme))
            .collect();
        self.any(conds)
    }

    /// A numeric attribute within bounds, with the embedded store's integer
    /// and fraction ranges ([`NumberRange`]), over the `nums` column; the `n`
    /// lexeme lets the GIN index find the candidates.
    fn attribute_range(&mut self, path: &str, range: &NumberRange) -> Cond {
        let key = terms::query_path_key(path);
        let (lower, upper) = range.fractions;
        let mut alternatives = vec![self.nums_within(
            'f',
            &key,
            lower.map(serde_json::Value::from),
            upper.map(serde_json::Value::from),
        )];
        if let Some((low, high)) = range.integers {
            alternatives.push(self.nums_within(
                'i',
                &key,
                Bound::Included(low.into()),
                Bound::Included(high.into()),
            ));
        }
        if let Some((low, high)) = range.large {
            alternatives.push(self.nums_within(
                'u',
                &key,
                Bound::Included(low.into()),
                Bound::Included(high.into()),
            ));
        }
        let candidates = self.tsquery({
            let mut query = String::new();
            quote(&terms::attribute_lexeme(&key, 'n', ""), &mut query);
            query
        });
        Cond::Sql(format!(
            "({candidates} AND ({}))",
            alternatives.join(" OR ")
        ))
    }

    /// Whether a value of `nums` under `kind` and `key` lies within bounds.
    fn nums_within(
        &mut self,
        kind: char,
        key: &str,
        lower: Bound<serde_json::Value>,
        upper: Bound<serde_json::Value>,
    ) -> String {
        let mut tests = Vec::new();
        let mut variables = serde_json::Map::new();
        for (name, bound, inclusive, exclusive) in
            [("lo", lower, ">=", ">"), ("hi", upper, "<=", "<")]
        {
            let (operator, value) = match bound {
                Bound::Included(value) => (inclusive, value),
                Bound::Excluded(value) => (exclusive, value),
                Bound::Unbounded => continue,
            };
            tests.push(format!("@ {operator} ${name}"));
            variables.insert(name.to_owned(), value);
        }
        let path = if tests.is_empty() {
            "$[*]".to_owned()
        } else {
            format!("$[*] ? ({})", tests.join(" && "))
        };
        let key = self.params.push(Param::Text(terms::nums_key(kind, key)));
        let path = self.params.push(Param::Text(path));
        let variables = self.params.push(Param::Text(
            serde_json::Value::Object(variables).to_string(),
        ));
        format!(
            "coalesce(jsonb_path_exists(nums -> {key}, {path}::jsonpath, {variables}::jsonb), false)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Filter;

    fn compile(q: &str) -> Compiled {
        compile_filter(&Filter {
            tenant: "t".into(),
            stream: Stream::Logs,
            query: query::parse(q).expect("parses"),
            from: None,
            to: None,
        })
        .expect("compiles")
    }

    fn texts(compiled: &Compiled) -> Vec<String> {
        compiled
            .params
            .0
            .iter()
            .filter_map(|param| match param {
                Param::Text(text) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn words_phrases_and_fields_merge_into_one_tsquery() {
        let compiled = compile("\"payment failed\" OR (service:api -timeout)");
        assert_eq!(
            compiled.clause,
            "tenant = $1 AND stream = $2 AND terms @@ $3::tsquery"
        );
        assert_eq!(
            texts(&compiled)[1],
            "('payment' <1> 'failed') | (('\u{1}sapi') & (!('timeout')))"
        );
    }

    #[test]
    fn a_word_too_long_to_index_leaves_a_gap_in_the_phrase() {
        let long = "x".repeat(300);
        let compiled = compile(&format!("\"a {long} b\""));
        assert_eq!(texts(&compiled)[1], "'a' <2> 'b'");
    }

    #[test]
    fn text_with_no_word_matches_nothing_and_its_negation_everything() {
        assert!(compile("\"...\"").clause.ends_with("AND FALSE"));
        assert_eq!(compile("NOT \"...\"").clause, "tenant = $1 AND stream = $2");
    }

    #[test]
    fn prefixes_are_counted_with_like_patterns() {
        let compiled = compile("pay_* service:a%b*");
        let patterns: Vec<&str> = compiled
            .prefixes
            .iter()
            .map(|check| check.pattern.as_str())
            .collect();
        assert_eq!(patterns, ["pay\\_%", "\u{1}sa\\%b%"]);
    }
}
