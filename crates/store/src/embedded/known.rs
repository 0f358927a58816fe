//! Whether the attributes a query names exist in the caller's partition, so a
//! typo (`levl:error`) is reported instead of silently matching nothing.
//!
//! Every event is indexed with one term per attribute path it has, under the
//! `attribute_paths` field, each prefixed with the event's partition
//! ([`path_token`]). Whether a partition has an attribute is then one exact
//! term lookup and a walk to its first live document: the answer, and what it
//! costs, depend on the caller's own events alone. (Walking the shared
//! attribute dictionary instead, with a cap on the terms looked at, answered
//! "cannot tell" exactly when other tenants had many values at the path: an
//! oracle for their fields.)

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::MAX_TOKEN_LEN;
use tantivy::{DocSet, Searcher, TERMINATED, Term};

use super::engine;
use super::schema::Fields;
use crate::StoreError;

/// Separates the segments of a path, as in tantivy's JSON terms.
const SEGMENT_SEPARATOR: char = '\u{1}';

/// How many deleted documents are passed between two checks of the budget.
const DOCS_PER_BUDGET_CHECK: u32 = 1024;

/// The attribute paths of an event, as tantivy indexes them (a dotted key
/// is split as nested objects are: `{"k8s.pod": 1}` is `k8s`, `pod`), segments
/// joined by [`SEGMENT_SEPARATOR`]: every path holding a value other than
/// `null`, at any depth, arrays taken element by element. It may name a path
/// that got no indexed term (an empty string), never miss one that did.
pub(crate) fn stored_paths(attributes: &Map<String, Value>) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut path = String::new();
    collect_paths(attributes, &mut path, &mut paths);
    paths
}

fn collect_paths(object: &Map<String, Value>, path: &mut String, paths: &mut BTreeSet<String>) {
    for (key, value) in object {
        let start = path.len();
        if start > 0 {
            path.push(SEGMENT_SEPARATOR);
        }
        path.extend(
            key.chars()
                .map(|c| if c == '.' { SEGMENT_SEPARATOR } else { c }),
        );
        collect_value(value, path, paths);
        path.truncate(start);
    }
}

fn collect_value(value: &Value, path: &mut String, paths: &mut BTreeSet<String>) {
    match value {
        Value::Null => {}
        Value::Object(object) => collect_paths(object, path, paths),
        Value::Array(items) => {
            for item in items {
                collect_value(item, path, paths);
            }
        }
        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            paths.insert(path.clone());
        }
    }
}

/// The `attribute_paths` term of `path` (as [`stored_paths`] spells it) in
/// `partition`; `None` if too long to be indexed. Partitions never contain
/// U+0000 (tenant names are `[a-z0-9-]`), so the token is unambiguous.
pub(crate) fn path_token(partition: &str, path: &str) -> Option<String> {
    let token = format!("{partition}\u{0}{path}");
    (token.len() <= MAX_TOKEN_LEN).then_some(token)
}

/// `path` as a query names it (`metadata.ip`, `a\.b`) spelled as
/// [`stored_paths`] spells paths, through tantivy's own reading of it.
fn query_path(fields: &Fields, path: &str) -> Option<String> {
    let term = Term::from_field_json_path(fields.attributes, path, true);
    let bytes = term.serialized_value_bytes();
    // The JSON path ends with tantivy's end-of-path marker, U+0000.
    let bytes = bytes.strip_suffix(&[0])?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// Whether a live event of `partition` has the attribute `path`: `None` if
/// the path is too long to tell.
pub(crate) fn has_attribute(
    fields: &Fields,
    searcher: &Searcher,
    partition: &str,
    path: &str,
    budget: &crate::limits::Budget,
) -> Result<Option<bool>, StoreError> {
    let Some(token) = query_path(fields, path).and_then(|path| path_token(partition, &path)) else {
        return Ok(None);
    };
    let term = Term::from_field_text(fields.attribute_paths, &token);
    for segment in searcher.segment_readers() {
        let index = segment
            .inverted_index(fields.attribute_paths)
            .map_err(engine("looking up an attribute"))?;
        let Some(mut holders) = index
            .read_postings(&term, IndexRecordOption::Basic)
            .map_err(|error| engine("looking up an attribute")(error.into()))?
        else {
            continue;
        };
        let mut passed = 0u32;
        let mut doc = holders.doc();
        while doc != TERMINATED {
            if segment.alive_bitset().is_none_or(|bits| bits.is_alive(doc)) {
                return Ok(Some(true));
            }
            passed += 1;
            if passed.is_multiple_of(DOCS_PER_BUDGET_CHECK) {
                budget.check()?;
            }
            doc = holders.advance();
        }
    }
    Ok(Some(false))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(attributes: Value) -> Vec<String> {
        let Value::Object(attributes) = attributes else {
            unreachable!("attributes are an object")
        };
        stored_paths(&attributes).into_iter().collect()
    }

    #[test]
    fn stored_paths_are_spelled_as_queries_read_them() {
        let (_, fields) = super::super::schema::build();
        let spelled = |path: &str| query_path(&fields, path).expect("a path");
        assert_eq!(
            paths(json!({"a": {"b": 1}, "k8s.pod": "x", "list": [{"c": true}, 2], "none": null})),
            [
                spelled("a.b"),
                spelled("k8s.pod"),
                spelled("list"),
                spelled("list.c")
            ]
        );
        // A dotted key and nested objects are the same path, as tantivy indexes them.
        assert_eq!(paths(json!({"a.b": 1})), paths(json!({"a": {"b": 1}})));
        assert_eq!(spelled("a\\.b"), spelled("a.b"));
        assert_eq!(paths(json!({"back\\slash": 1})), [spelled("back\\\\slash")]);
        // Only values that can be indexed count.
        assert!(paths(json!({"none": null, "empty": {}, "nothing": [null, []]})).is_empty());
    }

    #[test]
    fn a_token_names_its_partition() {
        assert_eq!(path_token("acme", "a"), Some("acme\u{0}a".to_owned()));
        assert_ne!(path_token("acme", "a"), path_token("acm", "ea"));
        assert_eq!(path_token("acme", &"x".repeat(MAX_TOKEN_LEN)), None);
    }
}
