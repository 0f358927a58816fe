//! `logbook serve`: configuration from file, environment and flags, then run
//! until SIGTERM or ctrl-c.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use server::Config;

/// Settings of `logbook serve`. Each flag has an environment variable; a flag
/// wins over its variable, which wins over the configuration file, which wins
/// over the default.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "LOGBOOK_CONFIG")]
    config: Option<PathBuf>,
    /// Which part to run: all, ingest, worker or query [default: all].
    #[arg(long, env = "LOGBOOK_ROLE")]
    role: Option<api::Role>,
    /// A shared queue instead of the embedded one: redis://host:port[/db],
    /// amqp://user:password@host:port/vhost or
    /// kafka://host:port[,host:port]/topic?partitions=N.
    #[arg(long = "queue", env = "LOGBOOK_QUEUE_URL", hide_env_values = true)]
    queue_url: Option<String>,
    /// A shared store instead of the embedded one: postgres://user@host/db.
    #[arg(long = "store", env = "LOGBOOK_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "LOGBOOK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Also serve `/metrics` here, without credentials (a private network's scrapers).
    #[arg(long, env = "LOGBOOK_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Record metrics and serve `/metrics` (true by default).
    #[arg(long, env = "LOGBOOK_METRICS_ENABLED")]
    metrics_enabled: Option<bool>,
    /// Directory of the queue and the index [default: ./logbook-data].
    #[arg(long, env = "LOGBOOK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the metadata store [default: SQLite meta.db in the data directory].
    #[arg(long, env = "LOGBOOK_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Largest request body as sent [default: 16 MiB].
    #[arg(long, env = "LOGBOOK_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest request body after decompression [default: 64 MiB].
    #[arg(long, env = "LOGBOOK_MAX_DECOMPRESSED_BYTES")]
    max_decompressed_bytes: Option<usize>,
    /// Largest event, as normalised JSON [default: 256 KiB].
    #[arg(long, env = "LOGBOOK_MAX_EVENT_BYTES")]
    max_event_bytes: Option<usize>,
    /// Deepest nesting of an event's JSON, at most 100 [default: 16].
    #[arg(long, env = "LOGBOOK_MAX_DEPTH")]
    max_depth: Option<usize>,
    /// Most events in one request [default: 100000].
    #[arg(long, env = "LOGBOOK_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Longest time a client may take to send a body [default: 30000].
    #[arg(long, env = "LOGBOOK_BODY_TIMEOUT_MS")]
    body_timeout_ms: Option<u64>,
    /// Bytes waiting to be indexed before ingest answers 503 [default: 1 GiB].
    #[arg(long, env = "LOGBOOK_QUEUE_MAX_BYTES")]
    queue_max_bytes: Option<u64>,
    /// Records waiting to be indexed before ingest answers 503, brokers only [default: 1000000].
    #[arg(long, env = "LOGBOOK_QUEUE_MAX_RECORDS")]
    queue_max_records: Option<u64>,
    /// A record a worker took and did not acknowledge for this long goes to another worker [default: 30000].
    #[arg(long, env = "LOGBOOK_QUEUE_VISIBILITY_TIMEOUT_MS")]
    queue_visibility_timeout_ms: Option<u64>,
    /// Size of a queue segment file [default: 64 MiB].
    #[arg(long, env = "LOGBOOK_QUEUE_SEGMENT_BYTES")]
    queue_segment_bytes: Option<u64>,
    /// Indexing memory budget [default: 256 MiB].
    #[arg(long, env = "LOGBOOK_STORE_WRITER_MEMORY_BYTES")]
    store_writer_memory_bytes: Option<usize>,
    /// Indexing threads [default: 1].
    #[arg(long, env = "LOGBOOK_STORE_INDEXER_THREADS")]
    store_indexer_threads: Option<usize>,
    /// Document store block size [default: 256 KiB].
    #[arg(long, env = "LOGBOOK_STORE_DOCSTORE_BLOCK_BYTES")]
    store_docstore_block_bytes: Option<usize>,
    /// Document store zstd level [default: 9].
    #[arg(long, env = "LOGBOOK_STORE_DOCSTORE_ZSTD_LEVEL")]
    store_docstore_zstd_level: Option<i32>,
    /// Longest wait before acknowledged events become searchable [default: 500].
    #[arg(long, env = "LOGBOOK_COMMIT_INTERVAL_MS")]
    commit_interval_ms: Option<u64>,
    /// Commit as soon as this many events are staged [default: 500000].
    #[arg(long, env = "LOGBOOK_COMMIT_EVENTS")]
    commit_events: Option<usize>,
    /// Receive syslog datagrams on this address, e.g. 0.0.0.0:514 [default: off].
    #[arg(long, env = "LOGBOOK_SYSLOG_UDP")]
    syslog_udp: Option<SocketAddr>,
    /// Accept syslog over TCP on this address, e.g. 0.0.0.0:514 [default: off].
    #[arg(long, env = "LOGBOOK_SYSLOG_TCP")]
    syslog_tcp: Option<SocketAddr>,
    /// The tenant syslog messages belong to; it must exist [default: default].
    #[arg(long, env = "LOGBOOK_SYSLOG_TENANT")]
    syslog_tenant: Option<String>,
    /// Accept syslog over TLS (RFC 5425) on this address, e.g. 0.0.0.0:6514
    /// [default: off]; needs --syslog-tls-cert and --syslog-tls-key.
    #[arg(long, env = "LOGBOOK_SYSLOG_TLS")]
    syslog_tls: Option<SocketAddr>,
    /// The certificate chain (PEM) the TLS listener presents.
    #[arg(long, env = "LOGBOOK_SYSLOG_TLS_CERT")]
    syslog_tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of that certificate.
    #[arg(long, env = "LOGBOOK_SYSLOG_TLS_KEY")]
    syslog_tls_key: Option<std::path::PathBuf>,
    /// How often retention is applied, e.g. 5m [default: 5m].
    #[arg(long, env = "LOGBOOK_RETENTION_CHECK_INTERVAL")]
    retention_check_interval: Option<String>,
    /// Default age past which log events are deleted, e.g. 30d [default: kept].
    #[arg(long, env = "LOGBOOK_RETENTION_LOGS")]
    retention_logs: Option<String>,
    /// Default size limit of each tenant's log events, in bytes [default: none].
    #[arg(long, env = "LOGBOOK_RETENTION_LOGS_MAX_BYTES")]
    retention_logs_max_bytes: Option<u64>,
    /// Default age past which audit events lose their bodies, e.g. 365d
    /// [default: kept forever].
    #[arg(long, env = "LOGBOOK_RETENTION_AUDIT")]
    retention_audit: Option<String>,
    /// The longest any tenant's log events are kept, whatever it set, e.g.
    /// 90d [default: no cap].
    #[arg(long, env = "LOGBOOK_RETENTION_MAX_LOGS")]
    retention_max_logs: Option<String>,
    /// The most bytes any tenant's log events may take, whatever it set
    /// [default: no cap].
    #[arg(long, env = "LOGBOOK_RETENTION_MAX_LOGS_BYTES")]
    retention_max_logs_bytes: Option<u64>,
}

/// Where `logbook admin` finds the metadata store: the same settings as `serve`.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "LOGBOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: ./logbook-data].
    #[arg(long, env = "LOGBOOK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the metadata store [default: SQLite meta.db in the data directory].
    #[arg(long, env = "LOGBOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server's PostgreSQL store, which holds the metadata when no
    /// database URL is given.
    #[arg(long = "store", env = "LOGBOOK_STORE_URL", hide_env_values = true)]
    pub store_url: Option<String>,
}

impl StoreArgs {
    /// The configuration these point at.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(url) = self.database_url {
            config.database_url = Some(url);
        }
        if let Some(url) = self.store_url {
            config.store.url = Some(url);
        }
        Ok(config)
    }
}

/// Reads an environment variable that holds a secret; empty counts as unset.
fn secret_from_env(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{name} is not valid UTF-8"),
    }
}

impl ServeArgs {
    /// The file (or defaults), with environment and flags applied on top.
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut config.role, self.role);
        if self.queue_url.is_some() {
            config.queue.url = self.queue_url;
        }
        if self.store_url.is_some() {
            config.store.url = self.store_url;
        }
        set(&mut config.listen, self.listen);
        if self.metrics_listen.is_some() {
            config.metrics.listen = self.metrics_listen;
        }
        set(&mut config.metrics.enabled, self.metrics_enabled);
        set(&mut config.data_dir, self.data_dir);
        if self.database_url.is_some() {
            config.database_url = self.database_url;
        }
        config.bootstrap.admin_password = secret_from_env("LOGBOOK_ADMIN_PASSWORD")?;
        config.bootstrap.key = secret_from_env("LOGBOOK_BOOTSTRAP_KEY")?;
        set(&mut config.ingest.max_body_bytes, self.max_body_bytes);
        set(
            &mut config.ingest.max_decompressed_bytes,
            self.max_decompressed_bytes,
        );
        set(&mut config.ingest.max_event_bytes, self.max_event_bytes);
        set(&mut config.ingest.max_depth, self.max_depth);
        set(&mut config.ingest.max_batch_events, self.max_batch_events);
        set(&mut config.ingest.body_timeout_ms, self.body_timeout_ms);
        set(&mut config.queue.max_bytes, self.queue_max_bytes);
        set(&mut config.queue.segment_bytes, self.queue_segment_bytes);
        set(&mut config.queue.max_records, self.queue_max_records);
        set(
            &mut config.queue.visibility_timeout_ms,
            self.queue_visibility_timeout_ms,
        );
        set(
            &mut config.store.writer_memory_bytes,
            self.store_writer_memory_bytes,
        );
        set(
            &mut config.store.indexer_threads,
            self.store_indexer_threads,
        );
        set(
            &mut config.store.docstore_block_bytes,
            self.store_docstore_block_bytes,
        );
        set(
            &mut config.store.docstore_zstd_level,
            self.store_docstore_zstd_level,
        );
        set(
            &mut config.pipeline.commit_interval_ms,
            self.commit_interval_ms,
        );
        set(&mut config.pipeline.commit_events, self.commit_events);
        set(
            &mut config.retention.check_interval,
            self.retention_check_interval,
        );
        if self.retention_logs.is_some() {
            config.retention.logs = self.retention_logs;
        }
        if self.retention_logs_max_bytes.is_some() {
            config.retention.logs_max_bytes = self.retention_logs_max_bytes;
        }
        if self.retention_audit.is_some() {
            config.retention.audit = self.retention_audit;
        }
        if self.retention_max_logs.is_some() {
            config.retention.max_logs = self.retention_max_logs;
        }
        if self.retention_max_logs_bytes.is_some() {
            config.retention.max_logs_bytes = self.retention_max_logs_bytes;
        }
        if self.syslog_udp.is_some() {
            config.syslog.udp = self.syslog_udp;
        }
        if self.syslog_tcp.is_some() {
            config.syslog.tcp = self.syslog_tcp;
        }
        set(&mut config.syslog.tenant, self.syslog_tenant);
        if self.syslog_tls.is_some() {
            config.syslog.tls = self.syslog_tls;
        }
        if self.syslog_tls_cert.is_some() {
            config.syslog.tls_cert = self.syslog_tls_cert;
        }
        if self.syslog_tls_key.is_some() {
            config.syslog.tls_key = self.syslog_tls_key;
        }
        Ok(config)
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let serves_ui = config.role.queries();
    let mut server = server::start(config).await?;
    println!("logbook listening on http://{}", server.local_addr());
    if serves_ui {
        println!("web UI on http://{}/", server.local_addr());
    }
    println!("data directory: {}", data_dir.display());
    if let Some(address) = server.metrics_addr() {
        println!("metrics (no credentials) on http://{address}/metrics");
    }
    if let Some(address) = server.syslog_udp_addr() {
        println!("syslog listening on udp://{address}");
    }
    if let Some(address) = server.syslog_tcp_addr() {
        println!("syslog listening on tcp://{address}");
    }
    if let Some(address) = server.syslog_tls_addr() {
        println!("syslog listening on tls://{address}");
    }
    if let Some(credentials) = server.bootstrap_credentials() {
        print_bootstrap(credentials, server.local_addr());
    }
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing requests in flight and committing (signal again to exit at once)");
            tokio::select! {
                result = server.shutdown() => result,
                () = shutdown_signal() => {
                    // Acknowledged events are in the queue already; the next start replays them.
                    tracing::warn!("second signal: exiting without waiting");
                    std::process::exit(130);
                }
            }
        }
        error = server.failed() => Err(error),
    }
}

/// Shows what the first start created. Generated secrets appear here once
/// and are stored only as hashes.
fn print_bootstrap(credentials: &server::BootstrapCredentials, address: SocketAddr) {
    println!();
    println!(
        "First start: created tenant {:?}, super-admin user {:?} and an API key with every scope.",
        credentials.tenant, credentials.username
    );
    println!("They are shown only this once; keep them somewhere safe.");
    match &credentials.password {
        Some(password) => println!("  admin password: {password}"),
        None => println!("  admin password: the value of LOGBOOK_ADMIN_PASSWORD"),
    }
    match &credentials.key {
        Some(key) => println!("  API key ({}): {key}", credentials.key_id),
        None => println!(
            "  API key ({}): the value of LOGBOOK_BOOTSTRAP_KEY",
            credentials.key_id
        ),
    }
    println!("Try: curl -H \"Authorization: Bearer $LOGBOOK_KEY\" http://{address}/v1/logs");
    println!();
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only ctrl-c stops the server");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
