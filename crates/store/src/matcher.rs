//! Decides whether one event matches a query without an index, for the live tail.
//!
//! This is a small stand-in covering full-text words, `service:`, `host:` and
//! `level:` (equality and comparisons) and boolean structure; the complete
//! matcher with the stores' semantics for every term replaces it.

use model::{Event, Level};
use query::{Comparison, Predicate, Query};

use crate::StoreError;

/// A query checked and prepared for matching single events.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    All,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// A lowercase word that must be a word of the message.
    Word(String),
    Service(String),
    Host(String),
    /// The level's rank must lie in this inclusive range.
    Level {
        low: u64,
        high: u64,
    },
}

impl Matcher {
    /// Prepares `query`; refuses what search refuses (an unknown level, a
    /// field or term this matcher cannot evaluate).
    pub fn new(query: &Query) -> Result<Matcher, StoreError> {
        Ok(Matcher {
            root: compile(query)?,
        })
    }

    /// Whether `event` matches the query.
    pub fn matches(&self, event: &Event) -> bool {
        self.root.matches(event)
    }
}

fn compile(query: &Query) -> Result<Node, StoreError> {
    Ok(match query {
        Query::All => Node::All,
        Query::And(children) => Node::And(children.iter().map(compile).collect::<Result<_, _>>()?),
        Query::Or(children) => Node::Or(children.iter().map(compile).collect::<Result<_, _>>()?),
        Query::Not(child) => Node::Not(Box::new(compile(child)?)),
        Query::Text(word) => Node::Word(word.to_lowercase()),
        Query::Field {
            field,
            predicate,
            position,
        } => field_node(field, predicate, *position)?,
        Query::TextPrefix { position, .. } => {
            return Err(unsupported(*position, "prefix searches"));
        }
        Query::Phrase(_) => {
            return Err(StoreError::InvalidQuery(
                "phrases cannot be tailed yet".to_owned(),
            ));
        }
    })
}

fn field_node(field: &str, predicate: &Predicate, position: usize) -> Result<Node, StoreError> {
    match (field, predicate) {
        ("service", Predicate::Equals(value)) => Ok(Node::Service(value.clone())),
        ("host", Predicate::Equals(value)) => Ok(Node::Host(value.clone())),
        ("level", Predicate::Equals(value)) => {
            let rank = level(value, position)?;
            Ok(Node::Level {
                low: rank,
                high: rank,
            })
        }
        ("level", Predicate::Compare(comparison, value)) => {
            let rank = level(value, position)?;
            let (low, high) = match comparison {
                Comparison::Ge => (rank, u64::MAX),
                Comparison::Gt => (rank + 1, u64::MAX),
                Comparison::Le => (0, rank),
                Comparison::Lt => match rank.checked_sub(1) {
                    Some(high) => (0, high),
                    // Nothing is below the lowest level.
                    None => (1, 0),
                },
            };
            Ok(Node::Level { low, high })
        }
        _ => Err(unsupported(
            position,
            &format!("`{field}:` terms of this kind"),
        )),
    }
}

fn level(value: &str, position: usize) -> Result<u64, StoreError> {
    value
        .parse::<Level>()
        .map(Level::rank)
        .map_err(|error| StoreError::InvalidTerm {
            position,
            message: error.to_string(),
        })
}

fn unsupported(position: usize, what: &str) -> StoreError {
    StoreError::InvalidTerm {
        position,
        message: format!("{what} cannot be tailed yet"),
    }
}

impl Node {
    fn matches(&self, event: &Event) -> bool {
        match self {
            Node::All => true,
            Node::And(children) => children.iter().all(|child| child.matches(event)),
            Node::Or(children) => children.iter().any(|child| child.matches(event)),
            Node::Not(child) => !child.matches(event),
            Node::Word(word) => event
                .message
                .split(|c: char| !c.is_alphanumeric())
                .any(|candidate| candidate.to_lowercase() == *word),
            Node::Service(service) => event.service.as_deref() == Some(service.as_str()),
            Node::Host(host) => event.host.as_deref() == Some(host.as_str()),
            Node::Level { low, high } => (*low..=*high).contains(&event.level.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str, service: &str, level: Level) -> Event {
        let mut event: Event = serde_json::from_value(serde_json::json!({
            "id": "01", "tenant": "t", "timestamp": "2026-01-01T00:00:00Z",
            "received_at": "2026-01-01T00:00:00Z", "level": "info", "message": message,
        }))
        .expect("a valid event");
        event.service = Some(service.to_owned());
        event.level = level;
        event
    }

    fn matches(query: &str, event: &Event) -> bool {
        let query = query::parse(query).expect("parses");
        Matcher::new(&query).expect("supported").matches(event)
    }

    #[test]
    fn words_fields_and_levels_combine() {
        let warn = event("Payment FAILED for order", "payments", Level::Warn);
        assert!(matches("failed", &warn));
        assert!(!matches("fail", &warn));
        assert!(matches("level:>=warn service:payments", &warn));
        assert!(!matches("level:>warn", &warn));
        assert!(matches("level:<error", &warn));
        assert!(!matches("level:<trace", &warn));
        assert!(matches("service:auth OR failed", &warn));
        assert!(!matches("NOT failed", &warn));
        assert!(matches("", &warn));
    }

    #[test]
    fn an_unknown_level_is_refused_at_its_position() {
        let query = query::parse("service:a level:loud").expect("parses");
        match Matcher::new(&query) {
            Err(StoreError::InvalidTerm { position, .. }) => assert_eq!(position, 10),
            other => panic!("expected an invalid term, got {other:?}"),
        }
    }
}
