//! Turns a parsed query language expression into a tantivy query over the schema.
//!
//! Field names resolve here: the modelled fields (`service`, `level`, `message`,
//! `timestamp`, ids…) map to their columns and anything else is a path into the
//! attributes, so `metadata.orderId` and `attributes.metadata.orderId` are the same.

use std::collections::BTreeSet;
use std::ops::Bound;

use model::{Level, Stream, Timestamp};
use query::{Comparison, Predicate, Query};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, InvertedIndexRangeQuery, Occur, PhraseQuery, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Searcher, Term};

use super::engine;
use super::keys::EventKeys;
use super::queries::Budget;
use super::schema::{Fields, partition};
use crate::{Filter, StoreError};

type BoxQuery = Box<dyn tantivy::query::Query>;

/// What a prefix may expand to: the index it is looked up in, the query's
/// budget and the most terms it may match.
pub(crate) struct Expansion<'a> {
    pub searcher: &'a Searcher,
    pub budget: &'a Budget,
    pub max_terms: usize,
}

/// Compiles a whole read filter: partition (tenant and stream), time range and
/// the user's query.
pub(crate) fn compile_filter(
    fields: &Fields,
    keys: &EventKeys,
    filter: &Filter,
    expansion: &Expansion<'_>,
) -> Result<BoxQuery, StoreError> {
    let partition = partition(&filter.tenant, filter.stream);
    let compiler = Compiler {
        fields,
        keys,
        partition: &partition,
        stream: filter.stream,
        analyzer: super::schema::text_analyzer(),
        expansion,
    };
    let mut clauses: Vec<(Occur, BoxQuery)> = vec![(
        Occur::Must,
        Box::new(TermQuery::new(
            Term::from_field_text(fields.tenant, &partition),
            IndexRecordOption::Basic,
        )),
    )];
    if filter.from.is_some() || filter.to.is_some() {
        let lower = filter
            .from
            .map_or(Bound::Unbounded, |t| Bound::Included(t.nanos()));
        let upper = filter
            .to
            .map_or(Bound::Unbounded, |t| Bound::Excluded(t.nanos()));
        clauses.push((Occur::Must, timestamp_range(fields.timestamp, lower, upper)));
    }
    match &filter.query {
        Query::All => {}
        Query::Not(inner) => clauses.push((Occur::MustNot, compiler.compile(inner)?)),
        other => clauses.push((Occur::Must, compiler.compile(other)?)),
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

struct Compiler<'a> {
    fields: &'a Fields,
    keys: &'a EventKeys,
    /// The filter's partition, which `id:` keys are computed in.
    partition: &'a str,
    stream: Stream,
    analyzer: TextAnalyzer,
    expansion: &'a Expansion<'a>,
}

/// Where a query field name points.
pub(crate) enum Target {
    Message,
    Exact(Field),
    Id,
    Level,
    Timestamp,
    Attribute(String),
}

impl Compiler<'_> {
    fn compile(&self, query: &Query) -> Result<BoxQuery, StoreError> {
        Ok(match query {
            Query::All => Box::new(AllQuery),
            Query::And(children) => {
                let mut clauses = Vec::with_capacity(children.len() + 1);
                for child in children {
                    match child {
                        Query::Not(inner) => clauses.push((Occur::MustNot, self.compile(inner)?)),
                        other => clauses.push((Occur::Must, self.compile(other)?)),
                    }
                }
                if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Or(children) => Box::new(BooleanQuery::new(
                children
                    .iter()
                    .map(|child| Ok((Occur::Should, self.compile(child)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?,
            )),
            Query::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as BoxQuery),
                (Occur::MustNot, self.compile(inner)?),
            ])),
            Query::Text(words) | Query::Phrase(words) => self.full_text(words),
            Query::TextPrefix { prefix, position } => {
                let prefix = prefix.to_lowercase();
                self.prefix(Term::from_field_text(self.fields.message, &prefix), &prefix)
                    .map_err(at(*position))?
            }
            Query::Field {
                field,
                predicate,
                position,
            } => self.field(field, predicate).map_err(at(*position))?,
        })
    }

    /// Words of the message, as a term or, if the text cuts into several tokens, a phrase.
    fn full_text(&self, text: &str) -> BoxQuery {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push((
                token.position,
                Term::from_field_text(self.fields.message, &token.text),
            ));
        }
        match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => {
                let (_, term) = terms.remove(0);
                Box::new(TermQuery::new(term, IndexRecordOption::Basic))
            }
            _ => Box::new(PhraseQuery::new_with_offset(terms)),
        }
    }

    fn field(&self, name: &str, predicate: &Predicate) -> Result<BoxQuery, StoreError> {
        let target = target(self.fields, self.stream, name)?;
        match (target, predicate) {
            (Target::Message, Predicate::Equals(text)) => Ok(self.full_text(text)),
            (Target::Message, Predicate::Prefix(prefix)) => {
                let prefix = prefix.to_lowercase();
                self.prefix(Term::from_field_text(self.fields.message, &prefix), &prefix)
            }
            (Target::Exact(field), Predicate::Equals(value)) => {
                Ok(term_query(Term::from_field_text(field, value)))
            }
            (Target::Exact(field), Predicate::Prefix(prefix)) => {
                self.prefix(Term::from_field_text(field, prefix), prefix)
            }
            (Target::Id, Predicate::Equals(id)) => Ok(term_query(Term::from_field_u64(
                self.fields.key,
                self.keys.key(self.partition, id),
            ))),
            (Target::Level, Predicate::Equals(text)) => Ok(term_query(Term::from_field_u64(
                self.fields.level,
                parse_level(text)?.rank(),
            ))),
            (Target::Level, Predicate::Compare(comparison, text)) => {
                let rank = parse_level(text)?.rank();
                let (lower, upper) = comparison_bounds(*comparison, rank);
                Ok(level_range(self.fields.level, lower, upper))
            }
            (Target::Level, Predicate::Range { lower, upper }) => {
                let lower = match lower {
                    Some(text) => Bound::Included(parse_level(text)?.rank()),
                    None => Bound::Unbounded,
                };
                let upper = match upper {
                    Some(text) => Bound::Included(parse_level(text)?.rank()),
                    None => Bound::Unbounded,
                };
                Ok(level_range(self.fields.level, lower, upper))
            }
            (Target::Timestamp, Predicate::Compare(comparison, text)) => {
                let nanos = parse_timestamp(text)?;
                let (lower, upper) = comparison_bounds(*comparison, nanos);
                Ok(timestamp_range(self.fields.timestamp, lower, upper))
            }
            (Target::Timestamp, Predicate::Range { lower, upper }) => {
                let lower = match lower {
                    Some(text) => Bound::Included(parse_timestamp(text)?),
                    None => Bound::Unbounded,
                };
                let upper = match upper {
                    Some(text) => Bound::Included(parse_timestamp(text)?),
                    None => Bound::Unbounded,
                };
                Ok(timestamp_range(self.fields.timestamp, lower, upper))
            }
            (Target::Attribute(path), Predicate::Equals(value)) => {
                Ok(self.attribute_equals(&path, value))
            }
            (Target::Attribute(path), Predicate::Prefix(prefix)) => {
                let prefix = prefix.to_lowercase();
                let mut term = self.attribute_term(&path);
                term.append_type_and_str(&prefix);
                self.prefix(term, &prefix)
            }
            (Target::Attribute(path), Predicate::Compare(comparison, text)) => {
                let value = parse_number(name, text)?;
                let (lower, upper) = match comparison {
                    Comparison::Gt => (Bound::Excluded(value), Bound::Unbounded),
                    Comparison::Ge => (Bound::Included(value), Bound::Unbounded),
                    Comparison::Lt => (Bound::Unbounded, Bound::Excluded(value)),
                    Comparison::Le => (Bound::Unbounded, Bound::Included(value)),
                };
                Ok(self.attribute_range(&path, lower, upper))
            }
            (Target::Attribute(path), Predicate::Range { lower, upper }) => {
                let lower = match lower {
                    Some(text) => Bound::Included(parse_number(name, text)?),
                    None => Bound::Unbounded,
                };
                let upper = match upper {
                    Some(text) => Bound::Included(parse_number(name, text)?),
                    None => Bound::Unbounded,
                };
                Ok(self.attribute_range(&path, lower, upper))
            }
            (Target::Timestamp, _) => Err(StoreError::InvalidQuery(
                "`timestamp` takes a comparison or a range, e.g. timestamp:>=2026-02-18T12:00:00Z"
                    .into(),
            )),
            (Target::Level, Predicate::Prefix(_)) => Err(StoreError::InvalidQuery(
                "`level` takes a level name or a comparison, e.g. level:>=warn".into(),
            )),
            (Target::Id, Predicate::Prefix(_)) => Err(StoreError::InvalidQuery(
                "`id` takes a whole id, not a prefix".into(),
            )),
            (_, Predicate::Compare(..) | Predicate::Range { .. }) => {
                Err(StoreError::InvalidQuery(format!(
                    "field `{name}` cannot be compared; comparisons apply to level, timestamp and numeric attributes"
                )))
            }
        }
    }

    /// Every term that starts with the bytes of `term` (the prefix `shown`), as
    /// a union of the terms the index holds: refused if there are more than
    /// the expansion allows, and looked up within the query's budget.
    fn prefix(&self, term: Term, shown: &str) -> Result<BoxQuery, StoreError> {
        let Expansion {
            searcher,
            budget,
            max_terms,
        } = self.expansion;
        let lower = term.serialized_value_bytes().to_vec();
        let mut upper = lower.clone();
        upper.push(0xff);
        let too_many = || StoreError::QueryTooComplex {
            position: None,
            message: format!(
                "the prefix '{shown}*' matches more than {max_terms} terms, the limit (query.max_prefix_terms); use a longer prefix"
            ),
        };
        let mut found: BTreeSet<Vec<u8>> = BTreeSet::new();
        for segment in searcher.segment_readers() {
            let index = segment
                .inverted_index(term.field())
                .map_err(engine("expanding a prefix"))?;
            let mut terms = index
                .terms()
                .range()
                .ge(&lower)
                .lt(&upper)
                .into_stream()
                .map_err(|error| engine("expanding a prefix")(error.into()))?;
            let mut seen = 0usize;
            while terms.advance() {
                seen += 1;
                if seen.is_multiple_of(256) {
                    budget.check()?;
                }
                if found.len() >= *max_terms && !found.contains(terms.key()) {
                    return Err(too_many());
                }
                found.insert(terms.key().to_vec());
            }
        }
        if found.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let clauses = found
            .into_iter()
            .map(|bytes| {
                let mut each = term.clone();
                each.truncate_value_bytes(0);
                each.append_bytes(&bytes);
                (Occur::Should, term_query(each))
            })
            .collect();
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn attribute_term(&self, path: &str) -> Term {
        Term::from_field_json_path(self.fields.attributes, path, true)
    }

    /// An attribute equal to `value` as a string (case-insensitively), or as a
    /// number or boolean when the text reads as one.
    fn attribute_equals(&self, path: &str, value: &str) -> BoxQuery {
        let mut alternatives: Vec<(Occur, BoxQuery)> = Vec::with_capacity(2);
        let mut text = self.attribute_term(path);
        text.append_type_and_str(&value.to_lowercase());
        alternatives.push((Occur::Should, term_query(text)));
        if let Ok(integer) = value.parse::<i64>() {
            let mut number = self.attribute_term(path);
            number.append_type_and_fast_value(integer);
            alternatives.push((Occur::Should, term_query(number)));
        } else if let Ok(large) = value.parse::<u64>() {
            // Only integers above i64::MAX are indexed as u64.
            let mut number = self.attribute_term(path);
            number.append_type_and_fast_value(large);
            alternatives.push((Occur::Should, term_query(number)));
        } else if let Ok(float) = value.parse::<f64>()
            && float.is_finite()
        {
            let mut number = self.attribute_term(path);
            if float.fract() == 0.0 && float.abs() < 9.0e18 {
                number.append_type_and_fast_value(float as i64);
            } else {
                number.append_type_and_fast_value(float);
            }
            alternatives.push((Occur::Should, term_query(number)));
        } else if let Ok(flag) = value.parse::<bool>() {
            let mut boolean = self.attribute_term(path);
            boolean.append_type_and_fast_value(flag);
            alternatives.push((Occur::Should, term_query(boolean)));
        }
        Box::new(BooleanQuery::new(alternatives))
    }

    /// A numeric attribute within bounds. Integers and fractional numbers are
    /// indexed as different term types, so both ranges are searched.
    fn attribute_range(&self, path: &str, lower: Bound<f64>, upper: Bound<f64>) -> BoxQuery {
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
        let integer_term = |value: f64| {
            let mut term = self.attribute_term(path);
            term.append_type_and_fast_value(value.clamp(i64::MIN as f64, i64::MAX as f64) as i64);
            term
        };
        let float_term = |value: f64| {
            let mut term = self.attribute_term(path);
            term.append_type_and_fast_value(value);
            term
        };
        let float_bound = |bound: Bound<f64>, open: f64| match bound {
            Bound::Included(v) => Bound::Included(float_term(v)),
            Bound::Excluded(v) => Bound::Excluded(float_term(v)),
            Bound::Unbounded => Bound::Included(float_term(open)),
        };
        let mut alternatives: Vec<(Occur, BoxQuery)> = vec![(
            Occur::Should,
            Box::new(InvertedIndexRangeQuery::new(
                float_bound(lower, f64::NEG_INFINITY),
                float_bound(upper, f64::INFINITY),
            )),
        )];
        if integer_lower <= integer_upper {
            alternatives.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(integer_term(integer_lower)),
                    Bound::Included(integer_term(integer_upper)),
                )),
            ));
        }
        // Integers above i64::MAX are indexed as u64 (bounds this large are only
        // as precise as an f64).
        let above_i64 = (i64::MAX as u64 + 1) as f64;
        let large_upper = match upper {
            Bound::Unbounded => u64::MAX as f64,
            _ => integer_upper,
        };
        if large_upper >= above_i64 {
            let large_term = |value: f64| {
                let mut term = self.attribute_term(path);
                term.append_type_and_fast_value(value as u64);
                term
            };
            alternatives.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(large_term(integer_lower.max(above_i64))),
                    Bound::Included(large_term(large_upper.min(u64::MAX as f64))),
                )),
            ));
        }
        Box::new(BooleanQuery::new(alternatives))
    }
}

/// Where the field `name` of a query on `stream` points.
pub(crate) fn target(fields: &Fields, stream: Stream, name: &str) -> Result<Target, StoreError> {
    Ok(match name {
        "message" | "msg" => Target::Message,
        "service" => Target::Exact(fields.service),
        "host" | "hostname" => Target::Exact(fields.host),
        "trace_id" | "traceId" => Target::Exact(fields.trace_id),
        "span_id" | "spanId" => Target::Exact(fields.span_id),
        "user_id" | "userId" => Target::Exact(fields.user_id),
        "source_ip" => Target::Exact(fields.source_ip),
        // Logbook's own field on the audit stream; on logs, still an attribute.
        "source" if stream == Stream::Audit => Target::Exact(fields.source),
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

/// The events of `tenant`'s `stream` whose key is that of `id`: the event with
/// that id, and in theory another whose key collides (callers that must be
/// exact check the id of what they find).
pub(crate) fn key_query(
    fields: &Fields,
    keys: &EventKeys,
    tenant: &str,
    stream: Stream,
    id: &str,
) -> BoxQuery {
    let partition = partition(tenant, stream);
    Box::new(BooleanQuery::new(vec![
        (
            Occur::Must,
            term_query(Term::from_field_text(fields.tenant, &partition)),
        ),
        (
            Occur::Must,
            term_query(Term::from_field_u64(fields.key, keys.key(&partition, id))),
        ),
    ]))
}

fn term_query(term: Term) -> BoxQuery {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// Places a term's error at its byte offset in the query.
fn at(position: usize) -> impl Fn(StoreError) -> StoreError {
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

fn timestamp_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> BoxQuery {
    let lower = match lower {
        Bound::Unbounded => Bound::Included(i64::MIN),
        other => other,
    };
    Box::new(RangeQuery::new(
        lower.map(|v| Term::from_field_i64(field, v)),
        upper.map(|v| Term::from_field_i64(field, v)),
    ))
}

fn level_range(field: Field, lower: Bound<u64>, upper: Bound<u64>) -> BoxQuery {
    let lower = match lower {
        Bound::Unbounded => Bound::Included(0),
        other => other,
    };
    Box::new(RangeQuery::new(
        lower.map(|v| Term::from_field_u64(field, v)),
        upper.map(|v| Term::from_field_u64(field, v)),
    ))
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
