//! Builds a running Logbook from a [`Config`]: opens the queue and the store
//! under the data directory, starts the pipeline worker and the HTTP API, and
//! shuts them down in order.

mod backends;
mod backup;
mod config;
mod http;
mod outbox;
mod retention_settings;
mod syslog;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use pipeline::Progress;
use queue::Queue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use api::accounts::BootstrapCredentials;
pub use config::{
    AlertSettings, AuditSettings, AuthSettings, BootstrapSettings, Config, HttpSettings,
    IngestSettings, LimitSettings, MAX_DEPTH, MetricsSettings, PipelineSettings, QueueSettings,
    StoreSettings, TailSettings,
};
pub use retention_settings::RetentionSettings;
pub use syslog::SyslogSettings;

/// How long shutdown waits for requests in flight before cutting them off.
/// Their events are durable only if they were already answered.
const HTTP_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A server that is accepting requests.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop_http: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    stop_worker: watch::Sender<bool>,
    /// The pipeline worker, in roles that run one.
    worker: Option<JoinHandle<Result<(), pipeline::PipelineError>>>,
    stop_outbox: watch::Sender<bool>,
    /// Moves security events into the queue; every role but `worker` runs it.
    outbox: Option<JoinHandle<()>>,
    stop_alerts: watch::Sender<bool>,
    /// Evaluates alert rules while this process holds the alert lease; roles
    /// that serve queries run it unless `alerts.enabled` is off.
    alerts: Option<JoinHandle<()>>,
    stop_retention: watch::Sender<bool>,
    /// Applies retention while this process holds the retention lease; roles
    /// that store events (`all`, `worker`) run it.
    retention: Option<JoinHandle<()>>,
    queue: Arc<dyn Queue>,
    meta: meta::MetaStore,
    bootstrap: Option<BootstrapCredentials>,
    /// The listener serving only `/metrics` (`metrics.listen`), when asked for.
    metrics_http: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    /// Measures the queue, worker, store and trails for `/metrics`.
    sampler: Option<JoinHandle<()>>,
    /// Live tails, closed first at shutdown (they would otherwise never end).
    tail: Arc<api::tail::TailHub>,
    /// The syslog listeners, when asked for in a role that ingests.
    syslog: Option<syslog::Running>,
}

/// Opens the metadata store the configuration names: PostgreSQL when
/// `database_url` is set, else SQLite in the data directory (created, private
/// to its owner, when missing).
pub async fn open_meta(config: &Config) -> anyhow::Result<meta::MetaStore> {
    open_meta_with(config, true).await
}

/// Like [`open_meta`], for tools that must find an existing store rather than
/// create an empty one in the wrong place (`logbook admin`).
pub async fn open_existing_meta(config: &Config) -> anyhow::Result<meta::MetaStore> {
    open_meta_with(config, false).await
}

async fn open_meta_with(config: &Config, create: bool) -> anyhow::Result<meta::MetaStore> {
    // With a PostgreSQL store, the metadata lives in the same database unless
    // told otherwise, so every role of a deployment shares it.
    let shared = config.database_url.as_ref().or(config
        .store
        .url
        .as_ref()
        .filter(|url| url.starts_with("postgres")));
    if let Some(url) = shared {
        return meta::MetaStore::open(url)
            .await
            .context("cannot open the metadata database at database_url");
    }
    let path = config.data_dir.join(meta::SQLITE_FILE);
    if !create && !path.exists() {
        anyhow::bail!(
            "no Logbook metadata at {} (start `logbook serve` once, or pass --data-dir or --database-url)",
            path.display()
        );
    }
    create_private_dir(&config.data_dir)?;
    create_private_file(&path)?;
    meta::MetaStore::open_sqlite(&config.data_dir)
        .await
        .context("cannot open the metadata database in the data directory")
}

/// Creates a directory only its owner can enter; an existing one is left as it is.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Makes sure a file holding secrets exists and is readable by its owner only;
/// SQLite gives its journal files the same permissions.
fn create_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))
}

/// A server-wide secret from the metadata store, created on first use, so
/// every process sharing the database signs and checks with the same one.
pub async fn server_secret(meta: &meta::MetaStore, name: &str) -> anyhow::Result<Vec<u8>> {
    let candidate = auth::random_bytes::<32>().context("cannot generate a server secret")?;
    let candidate: String = candidate.iter().map(|byte| format!("{byte:02x}")).collect();
    let stored = meta.secret_or_insert(name, &candidate).await?;
    Ok(stored.into_bytes())
}

/// Opens everything under the data directory and starts serving on `config.listen`.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    start_on(config, listener).await
}

/// Like [`start`], on a listener the caller bound (tests bind `127.0.0.1:0`).
pub async fn start_on(
    config: Config,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<RunningServer> {
    let local_addr = listener.local_addr().context("listener has no address")?;
    backends::check_role(&config)?;
    let retention_config = config.retention.enforcer_config()?;
    // Bound before anything is opened, so a taken address fails the start cleanly.
    let metrics_listener = match (config.metrics.enabled, config.metrics.listen) {
        (true, Some(address)) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        _ => None,
    };
    let syslog_sockets = match (config.syslog.enabled(), config.role.ingests()) {
        (true, true) => Some(syslog::bind(&config.syslog).await?),
        (true, false) => {
            tracing::warn!(role = %config.role, "syslog listeners run only in roles that ingest; not starting them");
            None
        }
        (false, _) => None,
    };
    let recorder = match config.metrics.enabled {
        true => Some(telemetry::recorder()?),
        false => None,
    };
    create_private_dir(&config.data_dir)?;

    let opened_queue = backends::open_queue(&config).await?;
    let queue = opened_queue.queue;
    let opened = backends::open_store(&config).await?;
    let store = opened.events;
    let audit_log = opened.audit;
    let dead_letters = opened.dead_letters;

    let meta = open_meta(&config).await?;
    let bootstrap = api::accounts::bootstrap(
        &meta,
        config.bootstrap.admin_password.as_deref(),
        config.bootstrap.key.as_deref(),
    )
    .await
    .context("cannot set up the first tenant, admin and key")?;
    let jwt = auth::jwt::JwtKey::new(&server_secret(&meta, api::accounts::JWT_SECRET).await?)
        .context("the stored token secret is too short")?;
    let signing_master = server_secret(&meta, api::accounts::SIGNING_MASTER).await?;
    let auth_state = Arc::new(api::access::AuthState::new(
        meta.clone(),
        jwt,
        signing_master,
        config.access_config()?,
    ));
    // Before anything is spawned: a missing tenant fails the start cleanly.
    let syslog = match syslog_sockets {
        Some(sockets) => Some(
            syslog::start(
                sockets,
                syslog::Wiring {
                    settings: &config.syslog,
                    limits: config.ingest_limits().events,
                    queue: Arc::clone(&queue),
                    auth: Arc::clone(&auth_state),
                    meta: &meta,
                },
            )
            .await?,
        ),
        None => None,
    };

    let (stop_worker, worker_stop_signal) = watch::channel(false);
    let (progress_sender, progress) = watch::channel(Progress::default());
    let worker = config.role.works().then(|| {
        tokio::spawn(pipeline::run(
            Arc::clone(&queue),
            Arc::clone(&store),
            Arc::clone(&dead_letters),
            config.worker_config(),
            worker_stop_signal,
            progress_sender,
        ))
    });

    let (stop_http, http_stop_signal) = watch::channel(false);
    let metrics_endpoint = recorder.clone().map(telemetry::endpoint);
    let sampler = recorder.map(|handle| {
        let sampler = telemetry::Sampler {
            handle,
            interval: std::time::Duration::from_millis(config.metrics.sample_interval_ms.max(10)),
            role: config.role,
            queue: Arc::clone(&queue),
            store: Arc::clone(&store),
            audit: Arc::clone(&audit_log),
            meta: meta.clone(),
            progress: progress.clone(),
        };
        tokio::spawn(sampler.run(http_stop_signal.clone()))
    });
    let metrics_http = match (metrics_listener, &metrics_endpoint) {
        (Some(listener), Some(endpoint)) => {
            let address = listener
                .local_addr()
                .context("the metrics listener has no address")?;
            let serving = tokio::spawn(http::serve(
                listener,
                api::telemetry::metrics_router(Arc::clone(endpoint)),
                config.metrics_connection_limits(),
                http_stop_signal.clone(),
            ));
            Some((address, serving))
        }
        _ => None,
    };
    let tail = Arc::new(api::tail::TailHub::new(
        Arc::clone(&queue),
        config.tail_config(),
    ));
    let state = api::AppState {
        queue: Arc::clone(&queue),
        store,
        dead_letters,
        limits: Arc::new(config.ingest_limits()),
        progress,
        decode_permits: Arc::new(tokio::sync::Semaphore::new(api::CONCURRENT_DECODES)),
        body_budget: Arc::new(api::body::BodyBudget::new(config.ingest.max_buffered_bytes)),
        auth: auth_state,
        audit: audit_log,
        query_limits: config.query_limits(),
        role: config.role,
        metrics: metrics_endpoint,
        alert_policy: config.alert_policy(),
        tail: Arc::clone(&tail),
        backups: Arc::new(backup::ServerBackups::new(
            &config,
            meta.clone(),
            opened.embedded,
            opened_queue.embedded,
        )),
    };
    let (stop_alerts, alerts_stop_signal) = watch::channel(false);
    let alerts = (config.alerts.enabled && config.role.queries()).then(|| {
        tokio::spawn(alerts::run(
            meta.clone(),
            Arc::clone(&state.store),
            config.alert_evaluator_config(),
            alerts_stop_signal,
        ))
    });
    let (stop_retention, retention_stop_signal) = watch::channel(false);
    let retention = config.role.works().then(|| {
        let enforcer = retention::Enforcer {
            meta: meta.clone(),
            store: Arc::clone(&state.store),
            audit: Arc::clone(&state.audit),
            config: retention_config,
        };
        tokio::spawn(enforcer.run(retention_stop_signal))
    });
    let (stop_outbox, outbox_stop_signal) = watch::channel(false);
    let outbox = (config.role != api::Role::Worker).then(|| {
        tokio::spawn(outbox::run(
            meta.clone(),
            Arc::clone(&queue),
            outbox_stop_signal,
        ))
    });
    let http = tokio::spawn(http::serve(
        listener,
        api::router(state),
        config.connection_limits(),
        http_stop_signal,
    ));
    tracing::info!(
        listen = %local_addr,
        role = %config.role,
        queue = queue.stats().backend,
        data_dir = %config.data_dir.display(),
        "logbook is serving"
    );
    for warning in queue.stats().warnings {
        tracing::warn!("{warning}");
    }
    Ok(RunningServer {
        local_addr,
        stop_http,
        http,
        stop_worker,
        worker,
        stop_outbox,
        outbox,
        stop_alerts,
        alerts,
        stop_retention,
        retention,
        queue,
        meta,
        bootstrap,
        metrics_http,
        sampler,
        tail,
        syslog,
    })
}

impl RunningServer {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address serving only `/metrics` without credentials, when
    /// `metrics.listen` asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_http.as_ref().map(|(address, _)| *address)
    }

    /// The address syslog datagrams are received on, when `syslog.udp` is set
    /// and the role ingests.
    pub fn syslog_udp_addr(&self) -> Option<SocketAddr> {
        self.syslog.as_ref().and_then(|syslog| syslog.udp)
    }

    /// The address syslog TLS connections are accepted on, when `syslog.tls`
    /// is set (its port is known once bound).
    pub fn syslog_tls_addr(&self) -> Option<SocketAddr> {
        self.syslog.as_ref().and_then(|syslog| syslog.tls)
    }

    /// The address syslog TCP connections are accepted on, when `syslog.tcp`
    /// is set and the role ingests.
    pub fn syslog_tcp_addr(&self) -> Option<SocketAddr> {
        self.syslog.as_ref().and_then(|syslog| syslog.tcp)
    }

    /// What the first start created, when this start was the first: to be shown once.
    pub fn bootstrap_credentials(&self) -> Option<&BootstrapCredentials> {
        self.bootstrap.as_ref()
    }

    /// Resolves if the pipeline worker stops on its own, which only an error does.
    pub async fn failed(&mut self) -> anyhow::Error {
        let Some(worker) = &mut self.worker else {
            return std::future::pending().await;
        };
        match worker.await {
            Ok(Ok(())) => anyhow::anyhow!("the pipeline worker stopped unexpectedly"),
            Ok(Err(error)) => anyhow::Error::new(error).context("the pipeline worker failed"),
            Err(error) => anyhow::Error::new(error).context("the pipeline worker panicked"),
        }
    }

    /// Graceful shutdown: stop accepting, finish requests in flight (their events
    /// are durable in the queue once answered), commit what the worker staged,
    /// and close the queue.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop_http.send(true);
        self.tail.shut_down();
        // Syslog senders have no answer to wait for: the batches in hand go
        // to the queue while it is still open.
        if let Some(syslog) = self.syslog.take() {
            syslog.shutdown(HTTP_DRAIN_TIMEOUT).await;
        }
        let http = match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, &mut self.http).await {
            Ok(joined) => joined
                .context("the HTTP server panicked")
                .and_then(|served| served.context("the HTTP server failed")),
            Err(_) => {
                self.http.abort();
                Err(anyhow::anyhow!(
                    "requests still in flight after {} s were cut off",
                    HTTP_DRAIN_TIMEOUT.as_secs()
                ))
            }
        };
        // The metrics listener and the sampler stopped with the API.
        if let Some((_, mut metrics_http)) = self.metrics_http.take() {
            match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, &mut metrics_http).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the metrics listener failed"),
                Ok(Err(error)) => tracing::warn!(%error, "the metrics listener panicked"),
                Err(_) => {
                    metrics_http.abort();
                    tracing::warn!("scrapes still in flight were cut off");
                }
            }
        }
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
        let _ = self.stop_alerts.send(true);
        if let Some(alerts) = self.alerts
            && let Err(error) = alerts.await
        {
            tracing::warn!(%error, "the alert evaluator panicked");
        }
        // A round of retention in progress is cut off: the next start runs it again.
        let _ = self.stop_retention.send(true);
        if let Some(mut retention) = self.retention.take()
            && tokio::time::timeout(std::time::Duration::from_secs(5), &mut retention)
                .await
                .is_err()
        {
            retention.abort();
        }
        // Security events of the last requests go into the queue before it closes.
        let _ = self.stop_outbox.send(true);
        if let Some(outbox) = self.outbox
            && let Err(error) = outbox.await
        {
            tracing::warn!(%error, "the outbox drain panicked");
        }
        // Whatever happened to HTTP, commit what the worker staged and close the queue.
        let _ = self.stop_worker.send(true);
        let worker = match self.worker {
            None => Ok(()),
            Some(worker) => match worker.await {
                Ok(result) => result.context("the pipeline worker failed"),
                Err(error) => {
                    Err(anyhow::Error::new(error).context("the pipeline worker panicked"))
                }
            },
        };
        self.queue.close().await;
        self.meta.close().await;
        tracing::info!("logbook stopped");
        http.and(worker)
    }
}
