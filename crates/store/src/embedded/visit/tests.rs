//! Block-by-block answers against the same answers computed event by event,
//! over segments with shuffled times, several partitions and deletes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query as _, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, TantivyDocument, Term};

use super::*;
use crate::embedded::collect::HistogramCollector;
use crate::embedded::schema::{self, Fields};

/// One stored test event.
#[derive(Debug, Clone)]
struct Event {
    partition: &'static str,
    timestamp: i64,
    arrival: u64,
    service: Option<&'static str>,
    level: u64,
    deleted: bool,
}

const PARTITIONS: [&str; 2] = ["acme", "globex"];
const SERVICES: [Option<&str>; 4] = [Some("api"), Some("db"), Some("web"), None];

/// A small deterministic generator, so failures reproduce.
struct Numbers(u64);

impl Numbers {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Four segments: mostly time-ordered, then shuffled, then mostly ordered
/// again overlapping the first, with two partitions and some events deleted;
/// then one partition alone in time order, nothing deleted (whole blocks and
/// parts of one partition).
/// How the fixture's segments are summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summaries {
    /// Not at all: every segment is read event by event.
    None,
    /// Each segment as it is.
    Exact,
    /// Before the deletes, and not again since: time bounds only.
    BeforeDeletes,
}

const MODES: [Summaries; 3] = [Summaries::None, Summaries::Exact, Summaries::BeforeDeletes];

fn build(mode: Summaries) -> (Fixture, Vec<Event>) {
    let (schema, fields) = schema::build();
    let index = Index::builder()
        .schema(schema)
        .tokenizers(crate::analysis::tokenizers())
        .create_in_ram()
        .unwrap();
    let mut writer = index.writer_with_num_threads(1, 50_000_000).unwrap();
    writer.set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
    let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
    let mut events = Vec::new();
    let sizes = [9_000u64, 5_000, 7_000, 6_000];
    for (segment, size) in sizes.into_iter().enumerate() {
        for n in 0..size {
            let timestamp = match segment {
                1 => numbers.below(30_000) as i64 * 1_000,
                _ => (n as i64 * 3 + numbers.below(50) as i64) * 1_000,
            };
            let alone = segment == 3;
            let event = Event {
                partition: if alone {
                    PARTITIONS[0]
                } else {
                    PARTITIONS[(numbers.below(10) / 8) as usize]
                },
                timestamp,
                arrival: events.len() as u64,
                service: SERVICES[numbers.below(4) as usize],
                level: numbers.below(6),
                deleted: !alone && numbers.below(50) == 0,
            };
            let mut document = TantivyDocument::new();
            document.add_text(fields.tenant, event.partition);
            document.add_i64(fields.timestamp, event.timestamp);
            document.add_u64(fields.key, event.arrival);
            document.add_u64(fields.arrival, event.arrival);
            if let Some(service) = event.service {
                document.add_text(fields.service, service);
            }
            document.add_u64(fields.level, event.level);
            document.add_text(fields.message, "hello");
            writer.add_document(document).unwrap();
            events.push(event);
        }
        writer.commit().unwrap();
    }
    let blocks = TimeBlocks::default();
    if mode == Summaries::BeforeDeletes {
        let searcher = index.reader().unwrap().searcher();
        blocks.refresh(&searcher, &fields).unwrap();
    }
    for event in events.iter().filter(|event| event.deleted) {
        writer.delete_term(Term::from_field_u64(fields.key, event.arrival));
    }
    writer.commit().unwrap();
    let fixture = Fixture {
        index,
        fields,
        blocks,
        mode,
    };
    (fixture, events)
}

/// The query of a partition, with one service if given: the tantivy query and
/// the query-language form the summaries read.
fn query_of(
    fields: &Fields,
    partition: &str,
    service: Option<&str>,
) -> (Box<dyn tantivy::query::Query>, Query) {
    let tenant: Box<dyn tantivy::query::Query> = Box::new(TermQuery::new(
        Term::from_field_text(fields.tenant, partition),
        IndexRecordOption::Basic,
    ));
    match service {
        None => (tenant, Query::All),
        Some(service) => (
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, tenant),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(fields.service, service),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
            Query::Field {
                field: "service".into(),
                predicate: Predicate::Equals(service.into()),
                position: 0,
            },
        ),
    }
}

fn window(first: Option<i64>, to: Option<i64>) -> Window {
    Window::of(&Filter {
        tenant: String::new(),
        stream: model::Stream::Logs,
        query: Query::All,
        from: first.map(model::Timestamp::from_nanos),
        to: to.map(model::Timestamp::from_nanos),
    })
}

/// The index and its summaries.
struct Fixture {
    index: Index,
    fields: Fields,
    blocks: TimeBlocks,
    mode: Summaries,
}

impl Fixture {
    /// Runs `work` on a plan over the index.
    fn plan<T>(
        &self,
        partition: &str,
        service: Option<&str>,
        window: Window,
        budget: &Budget,
        work: impl FnOnce(&Plan<'_>) -> T,
    ) -> T {
        let searcher = self.index.reader().unwrap().searcher();
        if self.mode != Summaries::None {
            self.blocks.refresh(&searcher, &self.fields).unwrap();
            let summarised = searcher
                .segment_readers()
                .iter()
                .filter_map(|reader| self.blocks.get(reader))
                .filter(|blocks| blocks.exact == (self.mode == Summaries::Exact))
                .count();
            assert!(
                summarised >= 3,
                "{summarised} segments summarised as {:?}",
                self.mode
            );
        }
        let (compiled, query) = query_of(&self.fields, partition, service);
        let weight = compiled
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .unwrap();
        let plan = Plan {
            searcher: &searcher,
            weight,
            blocks: &self.blocks,
            partition,
            query: &query,
            window,
            budget,
        };
        work(&plan)
    }
}

fn matching<'a>(
    events: &'a [Event],
    partition: &'a str,
    service: Option<&'a str>,
    window: Window,
) -> impl Iterator<Item = &'a Event> + 'a {
    events.iter().filter(move |event| {
        !event.deleted
            && event.partition == partition
            && service.is_none_or(|service| event.service == Some(service))
            && window.contains(event.timestamp)
    })
}

const WINDOWS: [(Option<i64>, Option<i64>); 4] = [
    (None, None),
    (Some(5_000_000), Some(12_345_000)),
    (Some(26_999_500), None),
    (None, Some(i64::MIN)),
];

#[test]
fn pages_are_the_first_events_in_order_after_the_cursor() {
    for mode in MODES {
        let (fixture, events) = build(mode);
        let budget = Budget::new(Duration::from_secs(60));
        for partition in PARTITIONS {
            for service in [None, Some("db")] {
                for (first, to) in WINDOWS {
                    let window = window(first, to);
                    for order in [Order::Descending, Order::Ascending] {
                        let mut expected: Vec<Cursor> =
                            matching(&events, partition, service, window)
                                .map(|event| Cursor {
                                    timestamp: event.timestamp,
                                    arrival: event.arrival,
                                })
                                .collect();
                        expected.sort_unstable();
                        if order == Order::Descending {
                            expected.reverse();
                        }
                        // Page through everything, 7 then 250 at a time.
                        for limit in [7, 250] {
                            let mut seen = Vec::new();
                            let mut after = None;
                            loop {
                                let page =
                                    fixture.plan(partition, service, window, &budget, |plan| {
                                        plan.page(limit, after, order).unwrap()
                                    });
                                seen.extend(page.iter().map(|(cursor, _)| *cursor));
                                if page.len() < limit || (limit == 7 && seen.len() >= 70) {
                                    break;
                                }
                                after = page.last().map(|(cursor, _)| *cursor);
                            }
                            let wanted = &expected[..seen.len().min(expected.len())];
                            assert_eq!(
                                seen, wanted,
                                "{mode:?} {partition} {service:?} {first:?}..{to:?} {order:?} by {limit}"
                            );
                            if limit == 250 {
                                assert_eq!(seen.len(), expected.len());
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn stats_and_histograms_count_what_the_events_say() {
    for mode in MODES {
        let (fixture, events) = build(mode);
        let budget = Budget::new(Duration::from_secs(60));
        for partition in PARTITIONS {
            for service in [None, Some("db"), Some("nothing")] {
                for (first, to) in WINDOWS {
                    let window = window(first, to);
                    let wanted: Vec<&Event> =
                        matching(&events, partition, service, window).collect();
                    let stats = fixture.plan(partition, service, window, &budget, |plan| {
                        plan.stats().unwrap()
                    });
                    assert_eq!(
                        stats.total,
                        wanted.len() as u64,
                        "{mode:?} {partition} {service:?}"
                    );
                    let mut by_service = BTreeMap::new();
                    let mut by_level = BTreeMap::new();
                    for event in &wanted {
                        *by_service
                            .entry(event.service.unwrap_or("").to_owned())
                            .or_insert(0) += 1;
                        let level = model::Level::ALL[event.level as usize].as_str().to_owned();
                        *by_level.entry(level).or_insert(0) += 1;
                    }
                    assert_eq!(
                        stats.by_service, by_service,
                        "{mode:?} {partition} {service:?}"
                    );
                    assert_eq!(stats.by_level, by_level, "{partition} {service:?}");

                    for interval in [10_000i64, 250_000, 7_000_000] {
                        let histogram = fixture.plan(partition, service, window, &budget, |plan| {
                            plan.histogram(&HistogramCollector {
                                interval_nanos: interval,
                            })
                            .unwrap()
                        });
                        let mut expected = BTreeMap::new();
                        for event in &wanted {
                            *expected
                                .entry(event.timestamp.div_euclid(interval) * interval)
                                .or_insert(0u64) += 1;
                        }
                        assert_eq!(
                            histogram, expected,
                            "{partition} {service:?} every {interval}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_search_past_its_deadline_reads_nothing() {
    let (fixture, _) = build(Summaries::Exact);
    let budget = Budget::new(Duration::ZERO);
    let error = fixture.plan("acme", None, window(None, None), &budget, |plan| {
        plan.stats().unwrap_err()
    });
    assert!(matches!(error, StoreError::QueryTimeout(_)), "{error:?}");
}

#[test]
fn a_cancelled_search_stops() {
    let (fixture, _) = build(Summaries::Exact);
    let budget = Budget::new(Duration::from_secs(60));
    drop(budget.cancel_on_drop());
    let error = fixture.plan("acme", Some("db"), window(None, None), &budget, |plan| {
        plan.page(10, None, Order::Descending).unwrap_err()
    });
    assert!(matches!(error, StoreError::Cancelled), "{error:?}");
}
