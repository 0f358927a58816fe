//! Whether the attributes a query names exist in the caller's partition, so a
//! typo (`levl:error`) is reported instead of silently matching nothing.
//!
//! An attribute counts as present when one of the terms indexed under its JSON
//! path belongs to an event of the partition. Only the first
//! [`MAX_TERMS_CHECKED`] terms of the path are looked at: a path with more terms
//! that none of the checked ones shares with the partition is treated as
//! unknown-but-unsure and gets no warning, so the check stays cheap and never
//! warns wrongly. The dictionary is shared by all tenants, but the answer only
//! depends on the caller's own events: nothing about other tenants leaks.

use tantivy::schema::IndexRecordOption;
use tantivy::{DocSet, Searcher, TERMINATED, Term};

use super::engine;
use super::schema::Fields;
use crate::StoreError;

/// How many of a path's terms are checked against the partition.
const MAX_TERMS_CHECKED: usize = 256;

/// Whether an event of `partition` has the attribute `path`: `None` if the
/// path has too many terms to tell cheaply.
pub(crate) fn has_attribute(
    fields: &Fields,
    searcher: &Searcher,
    partition: &str,
    path: &str,
    budget: &crate::limits::Budget,
) -> Result<Option<bool>, StoreError> {
    let prefix = Term::from_field_json_path(fields.attributes, path, true);
    let lower = prefix.serialized_value_bytes().to_vec();
    let mut upper = lower.clone();
    upper.push(0xff);
    let partition_term = Term::from_field_text(fields.tenant, partition);
    let mut checked = 0;
    for segment in searcher.segment_readers() {
        let attributes = segment
            .inverted_index(fields.attributes)
            .map_err(engine("looking up an attribute"))?;
        let tenants = segment
            .inverted_index(fields.tenant)
            .map_err(engine("looking up an attribute"))?;
        let mut terms = attributes
            .terms()
            .range()
            .ge(&lower)
            .lt(&upper)
            .into_stream()
            .map_err(|error| engine("looking up an attribute")(error.into()))?;
        while terms.advance() {
            if checked == MAX_TERMS_CHECKED {
                return Ok(None);
            }
            budget.check()?;
            checked += 1;
            let Some(mut members) = tenants
                .read_postings(&partition_term, IndexRecordOption::Basic)
                .map_err(|error| engine("looking up an attribute")(error.into()))?
            else {
                // No event of the partition in this segment.
                break;
            };
            let mut holders = attributes
                .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                .map_err(|error| engine("looking up an attribute")(error.into()))?;
            let alive = |doc| segment.alive_bitset().is_none_or(|bits| bits.is_alive(doc));
            if intersects(&mut members, &mut holders, alive) {
                return Ok(Some(true));
            }
        }
    }
    Ok(Some(false))
}

/// Whether two doc sets share a live document (leapfrog over their sorted ids).
fn intersects(
    left: &mut impl DocSet,
    right: &mut impl DocSet,
    alive: impl Fn(tantivy::DocId) -> bool,
) -> bool {
    let (mut a, mut b) = (left.doc(), right.doc());
    while a != TERMINATED && b != TERMINATED {
        if a == b {
            if alive(a) {
                return true;
            }
            a = left.advance();
        } else if a < b {
            a = left.seek(b);
        } else {
            b = right.seek(a);
        }
    }
    false
}
