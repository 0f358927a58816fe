//! Server configuration: every setting, its default, and how the TOML file maps
//! onto it. The command line applies environment variables and flags on top.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

/// Everything `logbook serve` can be told. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which part of Logbook this process runs (`all`, `ingest`, `worker`, `query`).
    pub role: api::Role,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Where the queue and the index live.
    pub data_dir: PathBuf,
    pub ingest: IngestSettings,
    pub queue: QueueSettings,
    pub store: StoreSettings,
    pub pipeline: PipelineSettings,
    /// PostgreSQL URL of the metadata store (users, keys, tenants); SQLite
    /// `meta.db` in the data directory when absent.
    pub database_url: Option<String>,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    pub http: HttpSettings,
    pub query: QuerySettings,
    pub metrics: MetricsSettings,
    pub alerts: AlertSettings,
    pub tail: TailSettings,
    /// The syslog listeners (off unless `syslog.udp` or `syslog.tcp` is set).
    pub syslog: crate::syslog::SyslogSettings,
    /// Default retention of tenants that set none, and how often it runs.
    pub retention: crate::retention_settings::RetentionSettings,
    /// First-start credentials chosen by the operator; from the environment only.
    #[serde(skip)]
    pub bootstrap: BootstrapSettings,
}

/// The verifiable audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// The key that signs checkpoints; every process over one PostgreSQL
    /// store needs the same one. Default: `audit/checkpoint.key` in the data
    /// directory.
    pub key_file: Option<PathBuf>,
    /// Sign a checkpoint after this many new audit events of a tenant…
    pub checkpoint_every_events: u64,
    /// …or this long after the previous one, if there is anything new.
    pub checkpoint_interval_ms: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        let policy = store::embedded::CheckpointPolicy::default();
        AuditSettings {
            key_file: None,
            checkpoint_every_events: policy.every_events,
            checkpoint_interval_ms: policy.interval.as_millis() as u64,
        }
    }
}

/// Connections to the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// How long a client may take to send a request's headers (from the
    /// connection's start, or from the first byte of a later request).
    pub header_timeout_ms: u64,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout_ms: u64,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections one client address may hold at once (more from it are
    /// closed as soon as they are accepted); unset: a quarter of
    /// `max_connections` (at least 1); 0: no cap per address.
    pub max_connections_per_address: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1_024,
            max_connections_per_address: None,
        }
    }
}

/// Prometheus metrics at `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record metrics and serve `/metrics`; off, nothing is recorded (to
    /// measure what recording costs) and `/metrics` answers 404.
    pub enabled: bool,
    /// Also serve `/metrics` here, without credentials, for scrapers on a
    /// private network.
    pub listen: Option<SocketAddr>,
    /// How often the queue, worker, store and audit-trail figures are measured.
    pub sample_interval_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: None,
            sample_interval_ms: 10_000,
        }
    }
}

/// Bounds on the cost of searches, stats and histograms; see the README.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// The longest `q`, in bytes.
    pub max_bytes: usize,
    /// The most terms (words, phrases, prefixes, `field:value`) in one `q`.
    pub max_terms: usize,
    /// The fewest characters before the `*` of a prefix.
    pub min_prefix_chars: usize,
    /// The most index terms one prefix may match.
    pub max_prefix_terms: usize,
    /// A query still running after this long is stopped (`503 query_timeout`).
    pub timeout_ms: u64,
    /// Queries one tenant may run at once; one more answers `429 too_many_queries`.
    pub max_concurrent_per_tenant: usize,
    /// Queries run at once over all tenants (0: one less than the cores, at
    /// least 1), so indexing always keeps a core.
    pub max_concurrent: usize,
}

impl Default for QuerySettings {
    fn default() -> Self {
        let language = query::Limits::default();
        let store = store::embedded::QueryLimits::default();
        QuerySettings {
            max_bytes: language.max_bytes,
            max_terms: language.max_terms,
            min_prefix_chars: language.min_prefix_chars,
            max_prefix_terms: store.max_prefix_terms,
            timeout_ms: store.timeout.as_millis() as u64,
            max_concurrent_per_tenant: store.max_concurrent_per_tenant,
            max_concurrent: 0,
        }
    }
}

/// Alert rules, their evaluation and their webhooks; see the README.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Whether this process may evaluate rules (in roles that serve queries;
    /// one process at a time evaluates, see the README). The rules API is
    /// served either way.
    pub enabled: bool,
    /// Whether webhooks may point at loopback, private, link-local and other
    /// internal addresses. Off by default: webhooks are a way to make the
    /// server send requests.
    pub allow_private_targets: bool,
    /// The most rules one tenant may have.
    pub max_rules_per_tenant: usize,
    /// The shortest interval and window of a rule.
    pub min_interval_ms: u64,
    /// The longest window and interval of a rule.
    pub max_window_ms: u64,
    /// The most groups of one rule that may fire at once.
    pub max_groups_per_rule: usize,
    /// Attempts of one webhook delivery.
    pub delivery_attempts: u32,
    /// The bound on resolving, connecting, and waiting for the answer, each.
    pub delivery_timeout_ms: u64,
    /// The pause after a failed attempt, doubling after each.
    pub delivery_retry_ms: u64,
    /// The bound on one delivery, all attempts together.
    pub delivery_max_total_ms: u64,
    /// Deliveries running at once.
    pub max_concurrent_deliveries: usize,
}

impl Default for AlertSettings {
    fn default() -> Self {
        let rules = alerts::RulePolicy::default();
        let evaluator = alerts::EvaluatorConfig::default();
        let delivery = &evaluator.delivery;
        AlertSettings {
            enabled: true,
            allow_private_targets: rules.allow_private_targets,
            max_rules_per_tenant: rules.max_rules_per_tenant,
            min_interval_ms: rules.min_interval.as_millis() as u64,
            max_window_ms: rules.max_window.as_millis() as u64,
            max_groups_per_rule: evaluator.max_groups_per_rule,
            delivery_attempts: delivery.attempts,
            delivery_timeout_ms: delivery.timeout.as_millis() as u64,
            delivery_retry_ms: delivery.retry_base.as_millis() as u64,
            delivery_max_total_ms: delivery.max_total.as_millis() as u64,
            max_concurrent_deliveries: evaluator.max_concurrent_deliveries,
        }
    }
}

/// The live tail (`GET /v1/tail`, `GET /v1/audit/tail`); see the README.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TailSettings {
    /// Events waiting for one subscriber at most; beyond it events are
    /// dropped for that subscriber, which is told how many.
    pub buffer_events: usize,
    /// A subscriber that dropped more events than it received over this
    /// long, or took no bytes for this long, is closed.
    pub max_lag_seconds: u64,
    /// Live tails one tenant may have at once; one more answers `429 too_many_tails`.
    pub max_subscribers_per_tenant: usize,
    /// A keep-alive (SSE comment, WebSocket ping) after this long without events;
    /// kept below `http.idle_timeout_ms`.
    pub keepalive_seconds: u64,
    /// How long a ticket from `POST /v1/tail/ticket` can be used.
    pub ticket_ttl_seconds: u64,
    /// Unused tickets one caller may hold at once.
    pub max_tickets_per_principal: usize,
}

impl Default for TailSettings {
    fn default() -> Self {
        let tail = api::tail::TailConfig::default();
        TailSettings {
            buffer_events: tail.buffer_events,
            max_lag_seconds: tail.max_lag.as_secs(),
            max_subscribers_per_tenant: tail.max_subscribers_per_tenant,
            keepalive_seconds: tail.keepalive.as_secs(),
            ticket_ttl_seconds: tail.ticket_ttl.as_secs(),
            max_tickets_per_principal: tail.max_tickets_per_principal,
        }
    }
}

/// Tokens and signatures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// How far a signed request's timestamp may be from the server clock.
    pub signature_tolerance_seconds: u64,
    /// Signatures remembered per signing key to refuse replays; a key sending more
    /// within twice the tolerance is refused with 429 until they expire.
    pub signatures_per_key: usize,
    /// Signatures remembered over all keys; when full, expired ones are evicted,
    /// and if none has expired new signed requests are refused with 503.
    pub signatures_total: usize,
    /// How long a key the metadata store confirmed is used without asking it again.
    pub key_cache_ms: u64,
    /// How long confirmed keys keep working while the metadata store is down.
    pub key_outage_grace_seconds: u64,
}

/// Token-bucket rates (per second) and bursts; see the README.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub requests_per_second: f64,
    pub request_burst: f64,
    pub caller_events_per_second: f64,
    pub caller_event_burst: f64,
    pub tenant_events_per_second: f64,
    pub tenant_event_burst: f64,
    pub tenant_bytes_per_second: f64,
    pub tenant_byte_burst: f64,
    /// Failed logins an account may have in a row from one address before that
    /// address must wait for it.
    pub login_failures_per_account_and_address: f64,
    /// Failed logins an account may have in a row from all addresses together
    /// before it must wait: a ceiling well above the per-address throttle.
    pub login_failures_per_account: f64,
    /// Failed logins an address may have in a row before it must wait.
    pub login_failures_per_address: f64,
    /// Seconds for one failed login to be forgiven.
    pub login_failure_forgiven_after_seconds: f64,
    /// Password hashes (Argon2) computed at once, over all logins, password
    /// changes and registrations; more are answered 503 with Retry-After.
    pub concurrent_password_checks: usize,
}

/// `LOGBOOK_ADMIN_PASSWORD` and `LOGBOOK_BOOTSTRAP_KEY`.
#[derive(Clone, Default)]
pub struct BootstrapSettings {
    pub admin_password: Option<String>,
    pub key: Option<String>,
}

impl std::fmt::Debug for BootstrapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapSettings")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_token_ttl_seconds: 15 * 60,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            signature_tolerance_seconds: 300,
            // The default request rate (1,000/s, burst 2,000) over twice the tolerance.
            signatures_per_key: 602_000,
            // At some 50 to 100 bytes an entry, 100 to 200 MB of replay memory at most.
            signatures_total: 2_000_000,
            key_cache_ms: 0,
            key_outage_grace_seconds: 300,
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            requests_per_second: 1_000.0,
            request_burst: 2_000.0,
            caller_events_per_second: 250_000.0,
            caller_event_burst: 500_000.0,
            tenant_events_per_second: 500_000.0,
            tenant_event_burst: 1_000_000.0,
            tenant_bytes_per_second: 256.0 * 1024.0 * 1024.0,
            tenant_byte_burst: 512.0 * 1024.0 * 1024.0,
            login_failures_per_account_and_address: 5.0,
            login_failures_per_account: 100.0,
            login_failures_per_address: 20.0,
            login_failure_forgiven_after_seconds: 60.0,
            concurrent_password_checks: 4,
        }
    }
}

/// Limits on ingest requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_event_bytes: usize,
    /// At most [`MAX_DEPTH`]: deeper JSON would exceed the parser's recursion limit
    /// once wrapped in the stored event.
    pub max_depth: usize,
    pub max_batch_events: usize,
    /// The longest a client may take to send a request body.
    pub body_timeout_ms: u64,
    /// Request-body bytes buffered at once over all requests; beyond it ingest answers 503.
    pub max_buffered_bytes: usize,
}

/// The deepest nesting an event may be configured to allow.
pub const MAX_DEPTH: usize = 100;

/// The queue between ingest and the workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// A broker to use instead of the embedded queue: `redis://host:port[/db]`,
    /// `amqp://user:password@host:port/vhost`, or
    /// `kafka://host:port[,host:port]/topic?partitions=N&replication=R&group=G`
    /// (see [`queue::KafkaQueueConfig`]).
    pub url: Option<String>,
    /// Bytes waiting to be indexed before ingest answers 503.
    pub max_bytes: u64,
    /// Size of a segment file of the embedded queue.
    pub segment_bytes: u64,
    /// Records waiting to be indexed before ingest answers 503 (brokers only).
    pub max_records: u64,
    /// A record a worker took and did not acknowledge for this long is given
    /// to another worker (brokers only).
    pub visibility_timeout_ms: u64,
    /// Prefix of the broker's keys or names, so several Logbooks can share one.
    pub prefix: String,
    /// Records a RabbitMQ consumer holds unacknowledged at most.
    pub prefetch: u16,
    /// Delays of RabbitMQ's retry queues, in milliseconds: a batch the store
    /// refuses goes through one per retry, then its events are isolated.
    pub retry_delays_ms: Vec<u64>,
}

/// The store: embedded (tantivy) in the data directory unless `url` names
/// PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://…` to keep events in PostgreSQL instead of the data directory.
    pub url: Option<String>,
    pub writer_memory_bytes: usize,
    pub indexer_threads: usize,
    pub docstore_block_bytes: usize,
    pub docstore_zstd_level: i32,
}

/// The worker's commit policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Longest time between an event's acknowledgement and it being searchable, under light load.
    pub commit_interval_ms: u64,
    pub commit_events: usize,
    /// Start after the index was lost although the queue no longer holds all
    /// it had indexed (see [`pipeline::WorkerConfig::resume_after_index_loss`]).
    pub resume_after_index_loss: bool,
    /// Tries of an event the store refuses on its own before it becomes a dead letter.
    pub max_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: api::Role::All,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("logbook-data"),
            ingest: IngestSettings::default(),
            queue: QueueSettings::default(),
            store: StoreSettings::default(),
            pipeline: PipelineSettings::default(),
            database_url: None,
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            audit: AuditSettings::default(),
            http: HttpSettings::default(),
            query: QuerySettings::default(),
            metrics: MetricsSettings::default(),
            alerts: AlertSettings::default(),
            tail: TailSettings::default(),
            syslog: crate::syslog::SyslogSettings::default(),
            retention: crate::retention_settings::RetentionSettings::default(),
            bootstrap: BootstrapSettings::default(),
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        let api = api::IngestLimits::default();
        IngestSettings {
            max_body_bytes: api.max_body_bytes,
            max_decompressed_bytes: api.max_decompressed_bytes,
            max_event_bytes: api.events.max_event_bytes,
            max_depth: api.events.max_depth,
            max_batch_events: api.events.max_batch_events,
            body_timeout_ms: api.body_timeout.as_millis() as u64,
            max_buffered_bytes: api.max_buffered_bytes,
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        let queue = queue::EmbeddedQueueConfig::new("");
        let broker = queue::RedisQueueConfig::new("");
        let rabbitmq = queue::AmqpQueueConfig::new("");
        QueueSettings {
            url: None,
            max_bytes: queue.max_bytes,
            segment_bytes: queue.segment_bytes,
            max_records: broker.max_records,
            visibility_timeout_ms: broker.visibility_timeout.as_millis() as u64,
            prefix: broker.prefix,
            prefetch: rabbitmq.prefetch,
            retry_delays_ms: rabbitmq
                .retry_delays
                .iter()
                .map(|delay| delay.as_millis() as u64)
                .collect(),
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        let store = store::embedded::EmbeddedStoreConfig::new("");
        StoreSettings {
            url: None,
            writer_memory_bytes: store.writer_memory_bytes,
            indexer_threads: store.indexer_threads,
            docstore_block_bytes: store.docstore_block_bytes,
            docstore_zstd_level: store.docstore_zstd_level,
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        let worker = pipeline::WorkerConfig::default();
        PipelineSettings {
            commit_interval_ms: worker.commit_interval.as_millis() as u64,
            commit_events: worker.commit_events,
            resume_after_index_loss: worker.resume_after_index_loss,
            max_attempts: worker.max_attempts,
        }
    }
}

impl Config {
    /// Reads a TOML file; absent keys keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    pub(crate) fn queue_config(&self) -> queue::EmbeddedQueueConfig {
        // One request is one record: the normalised events of the largest body,
        // with room for what normalising adds to each event.
        let per_event_overhead = 512;
        let largest_request = self.ingest.max_decompressed_bytes.saturating_add(
            self.ingest
                .max_batch_events
                .saturating_mul(per_event_overhead),
        );
        queue::EmbeddedQueueConfig {
            max_bytes: self.queue.max_bytes,
            segment_bytes: self.queue.segment_bytes,
            max_record_bytes: largest_request,
            ..queue::EmbeddedQueueConfig::new(self.data_dir.join("queue"))
        }
    }

    /// The Redis queue's settings, for a `redis://` queue URL.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_queue_config(&self, url: &str) -> queue::RedisQueueConfig {
        queue::RedisQueueConfig {
            prefix: self.queue.prefix.clone(),
            max_bytes: self.queue.max_bytes,
            max_records: self.queue.max_records.max(1),
            max_record_bytes: self.queue_config().max_record_bytes,
            visibility_timeout: Duration::from_millis(self.queue.visibility_timeout_ms.max(1)),
            ..queue::RedisQueueConfig::new(url)
        }
    }

    /// The RabbitMQ queue's settings, for an `amqp://` queue URL.
    #[cfg(feature = "rabbitmq")]
    pub(crate) fn amqp_queue_config(&self, url: &str) -> queue::AmqpQueueConfig {
        queue::AmqpQueueConfig {
            prefix: self.queue.prefix.clone(),
            max_bytes: self.queue.max_bytes,
            max_records: self.queue.max_records.max(1),
            max_record_bytes: self.queue_config().max_record_bytes,
            prefetch: self.queue.prefetch.max(1),
            retry_delays: self
                .queue
                .retry_delays_ms
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            ..queue::AmqpQueueConfig::new(url)
        }
    }

    /// The Kafka queue's settings, for a `kafka://` queue URL.
    #[cfg(feature = "kafka")]
    pub(crate) fn kafka_queue_config(&self, url: &str) -> anyhow::Result<queue::KafkaQueueConfig> {
        let config = queue::KafkaQueueConfig::from_url(url, &self.queue.prefix)?;
        if self.ingest.max_batch_events > queue::MAX_RECORD_EVENTS {
            tracing::warn!(
                max_batch_events = self.ingest.max_batch_events,
                numbered = queue::MAX_RECORD_EVENTS,
                "over Kafka, events past this many in one request share arrival numbers with the next record's: equal timestamps may page out of order"
            );
        }
        Ok(queue::KafkaQueueConfig {
            max_record_bytes: self.queue_config().max_record_bytes,
            max_buffered_bytes: self.queue.max_bytes,
            ..config
        })
    }

    pub(crate) fn store_config(&self) -> store::embedded::EmbeddedStoreConfig {
        store::embedded::EmbeddedStoreConfig {
            dir: self.data_dir.join("index"),
            writer_memory_bytes: self.store.writer_memory_bytes,
            indexer_threads: self.store.indexer_threads,
            docstore_block_bytes: self.store.docstore_block_bytes,
            docstore_zstd_level: self.store.docstore_zstd_level,
            audit_dir: self.data_dir.join("audit"),
            checkpoints: store::embedded::CheckpointPolicy {
                every_events: self.audit.checkpoint_every_events.max(1),
                interval: Duration::from_millis(self.audit.checkpoint_interval_ms.max(1)),
            },
            queries: store::embedded::QueryLimits {
                timeout: Duration::from_millis(self.query.timeout_ms.max(1)),
                max_prefix_terms: self.query.max_prefix_terms.max(1),
                max_concurrent: match self.query.max_concurrent {
                    0 => store::embedded::default_concurrency(),
                    n => n,
                },
                max_concurrent_per_tenant: self.query.max_concurrent_per_tenant.max(1),
            },
        }
    }

    /// The PostgreSQL store's settings, for a `postgres://` store URL.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_store_options(&self) -> store::postgres::PostgresStoreOptions {
        let embedded = self.store_config();
        let key_file = self
            .audit
            .key_file
            .clone()
            .unwrap_or_else(|| embedded.audit_dir.join(store::embedded::KEY_FILE));
        store::postgres::PostgresStoreOptions {
            checkpoints: embedded.checkpoints,
            queries: embedded.queries,
            // A database that is down is reported within a second.
            acquire_timeout: Duration::from_secs(1),
            ..store::postgres::PostgresStoreOptions::new(key_file)
        }
    }

    pub(crate) fn query_limits(&self) -> query::Limits {
        query::Limits {
            max_bytes: self.query.max_bytes,
            max_terms: self.query.max_terms.max(1),
            min_prefix_chars: self.query.min_prefix_chars,
        }
    }

    pub(crate) fn alert_policy(&self) -> alerts::RulePolicy {
        let min_interval = Duration::from_millis(self.alerts.min_interval_ms.max(1));
        alerts::RulePolicy {
            max_rules_per_tenant: self.alerts.max_rules_per_tenant,
            min_interval,
            max_window: Duration::from_millis(self.alerts.max_window_ms).max(min_interval),
            allow_private_targets: self.alerts.allow_private_targets,
            query_limits: self.query_limits(),
        }
    }

    pub(crate) fn alert_evaluator_config(&self) -> alerts::EvaluatorConfig {
        let settings = &self.alerts;
        let min_interval = Duration::from_millis(settings.min_interval_ms.max(1));
        alerts::EvaluatorConfig {
            // Often enough for the shortest interval a rule may have.
            tick: min_interval.min(Duration::from_secs(1)),
            max_groups_per_rule: settings.max_groups_per_rule.max(1),
            max_concurrent_deliveries: settings.max_concurrent_deliveries.max(1),
            query_limits: self.query_limits(),
            delivery: alerts::DeliveryPolicy {
                attempts: settings.delivery_attempts.max(1),
                timeout: Duration::from_millis(settings.delivery_timeout_ms.max(1)),
                retry_base: Duration::from_millis(settings.delivery_retry_ms.max(1)),
                max_total: Duration::from_millis(settings.delivery_max_total_ms.max(1)),
                allow_private_targets: settings.allow_private_targets,
                extra_roots: Vec::new(),
            },
            ..alerts::EvaluatorConfig::default()
        }
    }

    pub(crate) fn worker_config(&self) -> pipeline::WorkerConfig {
        pipeline::WorkerConfig {
            commit_interval: Duration::from_millis(self.pipeline.commit_interval_ms.max(1)),
            commit_events: self.pipeline.commit_events.max(1),
            resume_after_index_loss: self.pipeline.resume_after_index_loss,
            max_attempts: self.pipeline.max_attempts.max(1),
            ..pipeline::WorkerConfig::default()
        }
    }

    pub(crate) fn access_config(&self) -> anyhow::Result<api::access::AccessConfig> {
        let limits = &self.limits;
        let quota = |name: &str, per_second: f64, burst: f64| {
            auth::ratelimit::Quota::new(per_second, burst)
                .with_context(|| format!("invalid rate limit {name}"))
        };
        let forgive = 1.0 / limits.login_failure_forgiven_after_seconds;
        Ok(api::access::AccessConfig {
            access_token_ttl: Duration::from_secs(self.auth.access_token_ttl_seconds.max(1)),
            refresh_token_ttl: Duration::from_secs(self.auth.refresh_token_ttl_seconds.max(1)),
            signature_tolerance: Duration::from_secs(self.auth.signature_tolerance_seconds),
            signatures_per_key: self.auth.signatures_per_key,
            signatures_total: self.auth.signatures_total,
            concurrent_password_checks: limits.concurrent_password_checks.max(1),
            key_cache: Duration::from_millis(self.auth.key_cache_ms),
            key_outage_grace: Duration::from_secs(self.auth.key_outage_grace_seconds),
            rates: api::access::RateSettings {
                requests: quota("requests", limits.requests_per_second, limits.request_burst)?,
                caller_events: quota(
                    "caller_events",
                    limits.caller_events_per_second,
                    limits.caller_event_burst,
                )?,
                tenant_events: quota(
                    "tenant_events",
                    limits.tenant_events_per_second,
                    limits.tenant_event_burst,
                )?,
                tenant_bytes: quota(
                    "tenant_bytes",
                    limits.tenant_bytes_per_second,
                    limits.tenant_byte_burst,
                )?,
                login_failures_per_account_and_address: quota(
                    "login_failures_per_account_and_address",
                    forgive,
                    limits.login_failures_per_account_and_address,
                )?,
                login_failures_per_account: quota(
                    "login_failures_per_account",
                    forgive,
                    limits.login_failures_per_account,
                )?,
                login_failures_per_address: quota(
                    "login_failures_per_address",
                    forgive,
                    limits.login_failures_per_address,
                )?,
            },
        })
    }

    pub(crate) fn connection_limits(&self) -> crate::http::ConnectionLimits {
        crate::http::ConnectionLimits {
            header_timeout: Duration::from_millis(self.http.header_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.http.idle_timeout_ms.max(1)),
            max_connections: self.http.max_connections.max(1),
            max_connections_per_address: self
                .http
                .max_connections_per_address
                .unwrap_or((self.http.max_connections / 4).max(1)),
            // A little beyond ingest's own body timeout, so ingest answers its
            // 408 first; other routes' bodies get the same bound.
            body_timeout: Duration::from_millis(self.ingest.body_timeout_ms.max(1))
                + Duration::from_secs(1),
        }
    }

    /// The metrics listener's connections: a few scrapers, no request bodies.
    pub(crate) fn metrics_connection_limits(&self) -> crate::http::ConnectionLimits {
        crate::http::ConnectionLimits {
            max_connections: 16,
            max_connections_per_address: 4,
            ..self.connection_limits()
        }
    }

    pub(crate) fn tail_config(&self) -> api::tail::TailConfig {
        // A keep-alive must come before the connection's idle timeout cuts a quiet tail.
        let idle = Duration::from_millis(self.http.idle_timeout_ms.max(2));
        api::tail::TailConfig {
            buffer_events: self.tail.buffer_events.max(1),
            max_lag: Duration::from_secs(self.tail.max_lag_seconds.max(1)),
            max_subscribers_per_tenant: self.tail.max_subscribers_per_tenant,
            keepalive: Duration::from_secs(self.tail.keepalive_seconds.max(1)).min(idle / 2),
            ticket_ttl: Duration::from_secs(self.tail.ticket_ttl_seconds.max(1)),
            max_tickets_per_principal: self.tail.max_tickets_per_principal.max(1),
        }
    }

    pub(crate) fn ingest_limits(&self) -> api::IngestLimits {
        api::IngestLimits {
            max_body_bytes: self.ingest.max_body_bytes,
            max_decompressed_bytes: self.ingest.max_decompressed_bytes,
            events: model::Limits {
                max_event_bytes: self.ingest.max_event_bytes,
                max_depth: self.ingest.max_depth.min(MAX_DEPTH),
                max_batch_events: self.ingest.max_batch_events,
            },
            body_timeout: Duration::from_millis(self.ingest.body_timeout_ms.max(1)),
            max_buffered_bytes: self.ingest.max_buffered_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let config: Config = toml::from_str(
            "listen = \"0.0.0.0:9000\"\n[queue]\nmax_bytes = 1000\n[pipeline]\ncommit_interval_ms = 50\n",
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.queue.max_bytes, 1000);
        assert_eq!(
            config.queue.segment_bytes,
            QueueSettings::default().segment_bytes
        );
        assert_eq!(
            config.worker_config().commit_interval,
            Duration::from_millis(50)
        );
        assert_eq!(config.data_dir, PathBuf::from("logbook-data"));
    }

    #[test]
    fn the_share_of_one_address_defaults_to_a_quarter_of_the_connections() {
        let share = |text: &str| {
            toml::from_str::<Config>(text)
                .expect("valid")
                .connection_limits()
                .max_connections_per_address
        };
        assert_eq!(share(""), 256);
        assert_eq!(share("[http]\nmax_connections = 100\n"), 25);
        assert_eq!(share("[http]\nmax_connections = 2\n"), 1);
        assert_eq!(share("[http]\nmax_connections_per_address = 0\n"), 0);
        assert_eq!(share("[http]\nmax_connections_per_address = 7\n"), 7);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[queue]\nmax = 1").is_err());
    }
}
