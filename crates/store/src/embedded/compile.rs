//! Turns a parsed query language expression into a tantivy query over the schema.
//!
//! Field names and operands resolve in `crate::fields`, the same for every
//! backend; this file maps each resolved term onto the schema's fields.

use std::collections::BTreeSet;
use std::ops::Bound;

use model::Stream;
use query::{Predicate, Query};
use tantivy::fastfield::FastValue;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, InvertedIndexRangeQuery, Occur, PhraseQuery, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Searcher, Term};

use super::engine;
use super::exclusion::Excluded;
use super::keys::EventKeys;
use super::schema::{Fields, partition};
use crate::fields::{
    AttributeValue, Exact, NumberRange, Resolved, Typed, at, resolve, text_prefix, too_many_terms,
};
use crate::limits::Budget;
use crate::{Filter, StoreError};

type BoxQuery = Box<dyn tantivy::query::Query>;

/// What a prefix may expand to: the index it is looked up in, the query's
/// budget and the most terms it may match.
pub(crate) struct Expansion<'a> {
    pub searcher: &'a Searcher,
    pub budget: &'a Budget,
    pub max_terms: usize,
}

/// Compiles a read filter's partition (tenant and stream) and the user's
/// query. The filter's time window is not part of it: `visit.rs` applies it
/// block by block.
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
        analyzer: crate::analysis::text_analyzer(),
        expansion,
    };
    let mut clauses: Vec<(Occur, BoxQuery)> = vec![(
        Occur::Must,
        Box::new(TermQuery::new(
            Term::from_field_text(fields.tenant, &partition),
            IndexRecordOption::Basic,
        )),
    )];
    match &filter.query {
        Query::All => {}
        Query::Not(inner) => clauses.push((Occur::MustNot, compiler.excluded(inner)?)),
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

impl Compiler<'_> {
    /// A query to exclude (see `exclusion.rs`).
    fn excluded(&self, query: &Query) -> Result<BoxQuery, StoreError> {
        Ok(Box::new(Excluded(self.compile(query)?)))
    }

    fn compile(&self, query: &Query) -> Result<BoxQuery, StoreError> {
        Ok(match query {
            Query::All => Box::new(AllQuery),
            Query::And(children) => {
                let mut clauses = Vec::with_capacity(children.len() + 1);
                for child in children {
                    match child {
                        Query::Not(inner) => clauses.push((Occur::MustNot, self.excluded(inner)?)),
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
                (Occur::MustNot, self.excluded(inner)?),
            ])),
            Query::Text(words) | Query::Phrase(words) => self.full_text(words),
            Query::TextPrefix { prefix, position } => {
                let prefix = text_prefix(prefix);
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
        Ok(match resolve(self.stream, name, predicate)? {
            Resolved::MessageText(text) => self.full_text(&text),
            Resolved::MessagePrefix(prefix) => {
                self.prefix(Term::from_field_text(self.fields.message, &prefix), &prefix)?
            }
            Resolved::ExactEquals(field, value) => {
                term_query(Term::from_field_text(self.exact(field), &value))
            }
            Resolved::ExactPrefix(field, prefix) => {
                self.prefix(Term::from_field_text(self.exact(field), &prefix), &prefix)?
            }
            Resolved::Id(id) => term_query(Term::from_field_u64(
                self.fields.key,
                self.keys.key(self.partition, &id),
            )),
            Resolved::Level(rank) => term_query(Term::from_field_u64(self.fields.level, rank)),
            Resolved::LevelRange(lower, upper) => level_range(self.fields.level, lower, upper),
            Resolved::TimeRange(lower, upper) => {
                timestamp_range(self.fields.timestamp, lower, upper)
            }
            Resolved::AttributeEquals { path, value } => self.attribute_equals(&path, &value),
            Resolved::AttributePrefix { path, prefix } => {
                let mut term = self.attribute_term(&path);
                term.append_type_and_str(&prefix);
                self.prefix(term, &prefix)?
            }
            Resolved::AttributeRange { path, range } => self.attribute_range(&path, &range),
        })
    }

    /// The column of an exact field.
    fn exact(&self, field: Exact) -> Field {
        let fields = self.fields;
        match field {
            Exact::Service => fields.service,
            Exact::Host => fields.host,
            Exact::TraceId => fields.trace_id,
            Exact::SpanId => fields.span_id,
            Exact::UserId => fields.user_id,
            Exact::SourceIp => fields.source_ip,
            Exact::Source => fields.source,
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
        let too_many = || too_many_terms(shown, *max_terms);
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

    /// The term of a typed attribute value.
    fn attribute_number(&self, path: &str, value: impl FastValue) -> Term {
        let mut term = self.attribute_term(path);
        term.append_type_and_fast_value(value);
        term
    }

    /// An attribute equal to `value` as a string (case-insensitively), or as a
    /// number or boolean when the text reads as one.
    fn attribute_equals(&self, path: &str, value: &AttributeValue) -> BoxQuery {
        let mut alternatives: Vec<(Occur, BoxQuery)> = Vec::with_capacity(2);
        let mut text = self.attribute_term(path);
        text.append_type_and_str(&value.text);
        alternatives.push((Occur::Should, term_query(text)));
        if let Some(typed) = value.typed {
            let term = match typed {
                Typed::Integer(integer) => self.attribute_number(path, integer),
                Typed::Large(large) => self.attribute_number(path, large),
                Typed::Fraction(float) => self.attribute_number(path, float),
                Typed::Bool(flag) => self.attribute_number(path, flag),
            };
            alternatives.push((Occur::Should, term_query(term)));
        }
        Box::new(BooleanQuery::new(alternatives))
    }

    /// A numeric attribute within bounds. Integers and fractional numbers are
    /// indexed as different term types, so each kind's range is searched.
    fn attribute_range(&self, path: &str, range: &NumberRange) -> BoxQuery {
        let float_bound = |bound: Bound<f64>, open: f64| match bound {
            Bound::Included(v) => Bound::Included(self.attribute_number(path, v)),
            Bound::Excluded(v) => Bound::Excluded(self.attribute_number(path, v)),
            Bound::Unbounded => Bound::Included(self.attribute_number(path, open)),
        };
        let (lower, upper) = range.fractions;
        let mut alternatives: Vec<(Occur, BoxQuery)> = vec![(
            Occur::Should,
            Box::new(InvertedIndexRangeQuery::new(
                float_bound(lower, f64::NEG_INFINITY),
                float_bound(upper, f64::INFINITY),
            )),
        )];
        if let Some((low, high)) = range.integers {
            alternatives.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(self.attribute_number(path, low)),
                    Bound::Included(self.attribute_number(path, high)),
                )),
            ));
        }
        if let Some((low, high)) = range.large {
            alternatives.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(self.attribute_number(path, low)),
                    Bound::Included(self.attribute_number(path, high)),
                )),
            ));
        }
        Box::new(BooleanQuery::new(alternatives))
    }
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

/// The events of one partition (tenant and stream) whose timestamp is before
/// `before` (nanoseconds): what retention deletes.
pub(crate) fn older_than_query(
    fields: &Fields,
    tenant: &str,
    stream: Stream,
    before: i64,
) -> BoxQuery {
    let partition = partition(tenant, stream);
    Box::new(BooleanQuery::new(vec![
        (
            Occur::Must,
            term_query(Term::from_field_text(fields.tenant, &partition)),
        ),
        (
            Occur::Must,
            timestamp_range(fields.timestamp, Bound::Unbounded, Bound::Excluded(before)),
        ),
    ]))
}

fn term_query(term: Term) -> BoxQuery {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
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
