//! The factories of the seams: which queue, which store and which
//! dead-letter store a configuration names, opened, and whether the
//! process's role can run on them.

use std::sync::Arc;

use anyhow::Context as _;
use queue::{EmbeddedQueue, Queue};
use store::dead_letters::DirectoryDeadLetters;
use store::embedded::EmbeddedStore;
use store::{AuditLog, DeadLetters, EventStore};
#[cfg(feature = "postgres")]
use store::{Breaker, BreakerPolicy};

use crate::Config;

/// Refuses a role that cannot work on the configured backends: every role
/// but `all` shares its queue and store with other processes, which the
/// embedded queue and store (one process's files) cannot be.
pub(crate) fn check_role(config: &Config) -> anyhow::Result<()> {
    let role = config.role;
    if role == api::Role::All {
        return Ok(());
    }
    let mut missing = Vec::new();
    if config.queue.url.is_none() {
        missing.push("a shared queue (--queue redis://… or amqp://…)");
    }
    if config.store.url.is_none() {
        missing.push("a shared store (--store postgres://…)");
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "--role {role} runs one part of a scale-out deployment, so it needs {}; \
             with the embedded queue and store, run everything in one process with --role all",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// The queue, and the embedded one itself when it is that (for backups).
pub(crate) struct OpenedQueue {
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) embedded: Option<Arc<EmbeddedQueue>>,
}

/// Opens the queue `queue.url` names, or the embedded one in the data directory.
pub(crate) async fn open_queue(config: &Config) -> anyhow::Result<OpenedQueue> {
    let Some(url) = config.queue.url.as_deref() else {
        let queue_config = config.queue_config();
        let queue = tokio::task::spawn_blocking(move || EmbeddedQueue::open(queue_config))
            .await?
            .context("cannot open the queue")?;
        let queue = Arc::new(queue);
        return Ok(OpenedQueue {
            queue: queue.clone(),
            embedded: Some(queue),
        });
    };
    Ok(OpenedQueue {
        queue: open_broker(config, url).await?,
        embedded: None,
    })
}

/// Opens the broker queue `url` names.
async fn open_broker(config: &Config, url: &str) -> anyhow::Result<Arc<dyn Queue>> {
    match scheme(url) {
        #[cfg(feature = "redis")]
        "redis" => {
            let queue = queue::RedisQueue::open(config.redis_queue_config(url))
                .await
                .with_context(|| format!("cannot open the Redis queue at {}", redacted(url)))?;
            Ok(queue)
        }
        #[cfg(feature = "rabbitmq")]
        "amqp" => {
            let queue = queue::AmqpQueue::open(config.amqp_queue_config(url))
                .await
                .with_context(|| format!("cannot open the RabbitMQ queue at {}", redacted(url)))?;
            Ok(queue)
        }
        #[cfg(feature = "kafka")]
        "kafka" => {
            let queue = queue::KafkaQueue::open(config.kafka_queue_config(url)?)
                .await
                .with_context(|| format!("cannot open the Kafka queue at {}", redacted(url)))?;
            Ok(queue)
        }
        other => anyhow::bail!(
            "queue.url {}: this build has no queue for {other:?} URLs (it knows: {})",
            redacted(url),
            QUEUE_SCHEMES.join(", ")
        ),
    }
}

/// The queue URL schemes this build opens.
const QUEUE_SCHEMES: &[&str] = &[
    #[cfg(feature = "redis")]
    "redis://",
    #[cfg(feature = "rabbitmq")]
    "amqp://",
    #[cfg(feature = "kafka")]
    "kafka://",
];

/// The store, its audit trails and its dead letters.
pub(crate) struct OpenedStore {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) dead_letters: Arc<dyn DeadLetters>,
    /// The embedded store itself, when it is that (for backups).
    pub(crate) embedded: Option<EmbeddedStore>,
}

/// Opens the store `store.url` names, or the embedded one in the data directory.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<OpenedStore> {
    let Some(url) = config.store.url.as_deref() else {
        let store_config = config.store_config();
        let embedded = Arc::new(
            tokio::task::spawn_blocking(move || EmbeddedStore::open(&store_config))
                .await?
                .context("cannot open the store")?,
        );
        return Ok(OpenedStore {
            events: embedded.clone(),
            audit: embedded.clone(),
            embedded: Some(EmbeddedStore::clone(&embedded)),
            dead_letters: Arc::new(DirectoryDeadLetters::new(
                config.data_dir.join("dead-letter"),
            )),
        });
    };
    match scheme(url) {
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let options = config.postgres_store_options();
            if let Some(dir) = options.audit_key_file.parent() {
                crate::create_private_dir(dir)?;
            }
            let store = store::postgres::PostgresStore::open(url, &options)
                .await
                .with_context(|| {
                    format!("cannot open the PostgreSQL store at {}", redacted(url))
                })?;
            let dead_letters = store::dead_letters::PostgresDeadLetters::connect(url)
                .await
                .with_context(|| format!("cannot open the dead letters at {}", redacted(url)))?;
            Ok(OpenedStore {
                // Queries fail fast while the database is down, instead of each
                // waiting out the connection timeout.
                events: Arc::new(Breaker::new(store.clone(), BreakerPolicy::default())),
                audit: Arc::new(store),
                dead_letters: Arc::new(dead_letters),
                embedded: None,
            })
        }
        other => anyhow::bail!(
            "store.url {}: this build has no store for {other:?} URLs (it knows: {})",
            redacted(url),
            STORE_SCHEMES.join(", ")
        ),
    }
}

/// The store URL schemes this build opens.
const STORE_SCHEMES: &[&str] = &[
    #[cfg(feature = "postgres")]
    "postgres://",
];

/// The scheme of a URL, without `://`.
fn scheme(url: &str) -> &str {
    url.split_once("://").map_or("", |(scheme, _)| scheme)
}

/// A URL without its password, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("postgres://app:secret@db:5432/logbook"),
            "postgres://app:***@db:5432/logbook"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn roles_that_share_engines_refuse_embedded_ones() {
        let mut config = Config {
            role: api::Role::Worker,
            ..Config::default()
        };
        let refusal = check_role(&config).expect_err("embedded engines");
        let message = refusal.to_string();
        assert!(message.contains("--role worker"), "{message}");
        assert!(message.contains("--queue redis://"), "{message}");
        assert!(message.contains("--store postgres://"), "{message}");
        config.role = api::Role::All;
        check_role(&config).expect("everything in one process");
    }
}
