//! Settings of the Kafka queue and the `kafka://` URL that carries them,
//! known to every build so that configurations read the same with or without
//! the `kafka` feature.

use std::time::Duration;

use crate::{MAX_PARTITIONS, QueueError};

/// The topic of a URL that names none.
pub const DEFAULT_TOPIC: &str = "logbook-events";

/// Settings of the Kafka queue (`KafkaQueue`, with the `kafka` feature).
///
/// The URL is `kafka://host:port[,host:port…]/topic?param=value&…`; every
/// parameter is optional:
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `partitions` | partitions of the topic when Logbook creates it (at most 64) | 4 |
/// | `replication` | replicas of each partition when Logbook creates the topic; with 2 or more, `min.insync.replicas` is set to a majority of them | 1 |
/// | `group` | the workers' consumer group | `<queue.prefix>-workers` |
/// | `delivery_timeout_ms` | how long an append waits for the brokers' acknowledgement before ingest answers 503 | 5000 |
/// | `linger_ms` | how long the producer gathers appends into one request | 5 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaQueueConfig {
    /// `host:port` of the bootstrap brokers, comma-separated.
    pub brokers: String,
    pub topic: String,
    /// Partitions of the topic when it is created; an existing topic keeps its own.
    pub partitions: u32,
    /// Replicas of each partition when the topic is created.
    pub replication: u32,
    /// The consumer group the workers share the partitions in.
    pub group: String,
    /// An append not acknowledged by the brokers within this time fails as
    /// unreachable (librdkafka's `message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How long the producer waits to batch appends (librdkafka's `linger.ms`).
    pub linger: Duration,
    /// Largest accepted payload; the topic is created to accept it.
    pub max_record_bytes: usize,
    /// Bytes the producer may hold waiting for the brokers before appends
    /// fail as full.
    pub max_buffered_bytes: u64,
    /// How long metadata and administrative requests may take.
    pub command_timeout: Duration,
}

impl KafkaQueueConfig {
    /// Reads a `kafka://` URL (see the type's documentation); `prefix` names
    /// the default consumer group.
    pub fn from_url(url: &str, prefix: &str) -> Result<Self, QueueError> {
        let bad = |why: String| QueueError::Config(format!("bad kafka URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("it must start with kafka://".into()))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (brokers, topic) = location.split_once('/').unwrap_or((location, ""));
        if brokers.is_empty() || brokers.split(',').any(|broker| !broker.contains(':')) {
            return Err(bad("name the brokers as host:port[,host:port…]".into()));
        }
        let topic = match topic.trim_end_matches('/') {
            "" => DEFAULT_TOPIC,
            topic if valid_topic(topic) => topic,
            topic => {
                return Err(bad(format!(
                    "{topic:?} is not a topic name (A-Za-z0-9._-, at most 249)"
                )));
            }
        };
        let mut config = KafkaQueueConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group: format!("{prefix}-workers"),
            ..KafkaQueueConfig::default()
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("parameter {pair:?} has no value")))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{name} must be a whole number, not {value:?}")))
            };
            match name {
                "partitions" => {
                    config.partitions = u32::try_from(number()?).unwrap_or(u32::MAX);
                    if !(1..=MAX_PARTITIONS).contains(&config.partitions) {
                        return Err(bad(format!("partitions must be 1 to {MAX_PARTITIONS}")));
                    }
                }
                "replication" => {
                    config.replication = u32::try_from(number()?).unwrap_or(u32::MAX);
                    if !(1..=32).contains(&config.replication) {
                        return Err(bad("replication must be 1 to 32".into()));
                    }
                }
                "group" if valid_topic(value) => config.group = value.to_owned(),
                "group" => return Err(bad(format!("{value:?} is not a group name"))),
                "delivery_timeout_ms" => {
                    config.delivery_timeout = Duration::from_millis(number()?.max(1))
                }
                "linger_ms" => config.linger = Duration::from_millis(number()?),
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?} (known: partitions, replication, group, delivery_timeout_ms, linger_ms)"
                    )));
                }
            }
        }
        Ok(config)
    }
}

impl Default for KafkaQueueConfig {
    fn default() -> Self {
        KafkaQueueConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: DEFAULT_TOPIC.to_owned(),
            partitions: 4,
            replication: 1,
            group: "logbook-workers".to_owned(),
            delivery_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(5),
            max_record_bytes: 64 << 20,
            max_buffered_bytes: 1 << 30,
            command_timeout: Duration::from_secs(5),
        }
    }
}

/// Kafka's rule for topic (and here group) names.
fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_brokers_topic_and_settings() {
        let config = KafkaQueueConfig::from_url(
            "kafka://a:9092,b:9093/audit.events?partitions=8&replication=3&group=g1&delivery_timeout_ms=2000&linger_ms=0",
            "logbook",
        )
        .unwrap();
        assert_eq!(config.brokers, "a:9092,b:9093");
        assert_eq!(config.topic, "audit.events");
        assert_eq!((config.partitions, config.replication), (8, 3));
        assert_eq!(config.group, "g1");
        assert_eq!(config.delivery_timeout, Duration::from_secs(2));
        assert_eq!(config.linger, Duration::ZERO);

        let plain = KafkaQueueConfig::from_url("kafka://127.0.0.1:9092", "lb").unwrap();
        assert_eq!(plain.topic, DEFAULT_TOPIC);
        assert_eq!(plain.group, "lb-workers");
        assert_eq!(plain.partitions, 4);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("redis://a:1", "kafka://"),
            ("kafka:///topic", "host:port"),
            ("kafka://a:1/no spaces", "topic name"),
            ("kafka://a:1/t?partitions=0", "partitions must be"),
            ("kafka://a:1/t?partitions=65", "partitions must be"),
            ("kafka://a:1/t?replication=x", "whole number"),
            ("kafka://a:1/t?acks=1", "unknown parameter"),
            ("kafka://a:1/t?linger_ms", "no value"),
        ] {
            let error = KafkaQueueConfig::from_url(url, "p")
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
