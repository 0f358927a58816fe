//! The syslog listeners of `logbook serve`: their settings, binding them,
//! the tenant they write to, and the rate limit they share with HTTP ingest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ingest::syslog::{Admission, Listener, ListenerSettings, Rfc3164Zone};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Syslog over UDP, TCP and TLS (RFC 5424 and RFC 3164; TLS as RFC 5425);
/// off unless an address is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSettings {
    /// Address to receive datagrams on, one message each.
    pub udp: Option<SocketAddr>,
    /// Address to accept TCP connections on (octet counting or newlines).
    pub tcp: Option<SocketAddr>,
    /// Address to accept TLS connections on (RFC 5425); needs `tls_cert`
    /// and `tls_key`.
    pub tls: Option<SocketAddr>,
    /// The server's certificate chain for `tls`, PEM.
    pub tls_cert: Option<PathBuf>,
    /// The private key of that certificate, PEM (PKCS #8, PKCS #1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// The tenant every syslog message belongs to; it must exist.
    pub tenant: String,
    /// The longest message; longer ones are skipped and counted.
    pub max_message_bytes: usize,
    /// The zone of RFC 3164 time stamps, which carry none: `+01:00`, `-05:00`, `Z`.
    pub rfc3164_timezone: String,
    /// TCP connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            udp: None,
            tcp: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            tenant: model::DEFAULT_TENANT.to_owned(),
            max_message_bytes: 64 * 1024,
            rfc3164_timezone: "+00:00".to_owned(),
            max_connections: 1_024,
        }
    }
}

/// Messages of one connection or sender gathered into one queue record at most.
const BATCH_EVENTS: usize = 1_000;
/// The longest a message waits for others to share its record.
const BATCH_WAIT: Duration = Duration::from_millis(20);

impl SyslogSettings {
    /// Whether any listener is asked for.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some()
    }

    fn zone(&self) -> anyhow::Result<Rfc3164Zone> {
        let text = self.rfc3164_timezone.trim();
        if text.eq_ignore_ascii_case("z") || text.eq_ignore_ascii_case("utc") {
            return Ok(Rfc3164Zone::default());
        }
        text.parse().map(Rfc3164Zone).with_context(|| {
            format!(
                "syslog.rfc3164_timezone {text:?} is not a fixed offset such as +01:00 or -05:30"
            )
        })
    }

    /// The TLS acceptor of `tls`, from the certificate and key files.
    fn tls_acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            anyhow::bail!("syslog.tls needs syslog.tls_cert and syslog.tls_key (PEM files)");
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the certificates in {}", cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read the private key in {}", key.display()))?;
        // ring, already in the tree, rather than aws-lc (a C and cmake
        // build): rustls deprecates it only for its lack of post-quantum key
        // exchange, which syslog senders do not offer yet.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS 1.2 and 1.3 are not available")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the syslog TLS certificate and key do not go together")?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// The listeners' settings, with the per-event limits HTTP ingest applies.
    fn listener_settings(&self, limits: model::Limits) -> anyhow::Result<ListenerSettings> {
        if self.max_message_bytes == 0 {
            anyhow::bail!("syslog.max_message_bytes must be at least 1");
        }
        Ok(ListenerSettings {
            tenant: self.tenant.clone(),
            max_message_bytes: self.max_message_bytes,
            rfc3164_zone: self.zone()?,
            batch_events: BATCH_EVENTS.min(limits.max_batch_events.max(1)),
            limits,
            batch_wait: BATCH_WAIT,
            max_connections: self.max_connections.max(1),
        })
    }
}

/// The per-tenant event bucket of the HTTP API, charged for syslog too.
struct TenantEvents(Arc<api::access::AuthState>);

impl Admission for TenantEvents {
    fn admit(&self, tenant: &str, events: usize) -> Result<(), Duration> {
        self.0.admit_tenant_events(tenant, events)
    }
}

/// Sockets bound, not yet served: binding comes before anything is opened, so
/// a taken address fails the start cleanly.
pub(crate) struct Bound {
    udp: Option<tokio::net::UdpSocket>,
    tcp: Option<tokio::net::TcpListener>,
    tls: Option<(tokio::net::TcpListener, TlsAcceptor)>,
}

/// Binds the addresses the settings name.
pub(crate) async fn bind(settings: &SyslogSettings) -> anyhow::Result<Bound> {
    let udp = match settings.udp {
        Some(address) => Some(
            tokio::net::UdpSocket::bind(address)
                .await
                .with_context(|| format!("cannot receive syslog on udp://{address}"))?,
        ),
        None => None,
    };
    let tcp = match settings.tcp {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for syslog on tcp://{address}"))?,
        ),
        None => None,
    };
    let tls = match settings.tls {
        Some(address) => {
            // The files are read before the port is taken: a wrong path
            // fails the start before anything listens.
            let acceptor = settings.tls_acceptor()?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for syslog on tls://{address}"))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    Ok(Bound { udp, tcp, tls })
}

/// The listeners at work.
pub(crate) struct Running {
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) tls: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the listeners need from the rest of the server.
pub(crate) struct Wiring<'a> {
    pub(crate) settings: &'a SyslogSettings,
    pub(crate) limits: model::Limits,
    pub(crate) queue: Arc<dyn queue::Queue>,
    pub(crate) auth: Arc<api::access::AuthState>,
    pub(crate) meta: &'a meta::MetaStore,
}

/// Checks the tenant and serves the bound sockets.
pub(crate) async fn start(bound: Bound, wiring: Wiring<'_>) -> anyhow::Result<Running> {
    let tenant = &wiring.settings.tenant;
    let found = wiring
        .meta
        .tenant(tenant)
        .await
        .context("cannot look up syslog.tenant")?;
    if found.is_none() {
        anyhow::bail!(
            "syslog.tenant {tenant:?} does not exist; create it (logbook admin) or name another"
        );
    }
    let context = Listener {
        queue: wiring.queue,
        admission: Arc::new(TenantEvents(wiring.auth)),
        settings: Arc::new(wiring.settings.listener_settings(wiring.limits)?),
    };
    let (stop, stopped) = watch::channel(false);
    let mut running = Running {
        udp: None,
        tcp: None,
        tls: None,
        stop,
        tasks: Vec::new(),
    };
    if let Some(socket) = bound.udp {
        let address = socket
            .local_addr()
            .context("the syslog UDP socket has no address")?;
        tracing::info!("syslog listening on udp://{address}");
        running.udp = Some(address);
        let serving = ingest::syslog::serve_udp(socket, context.clone(), stopped.clone());
        running.tasks.push(tokio::spawn(serving));
    }
    if let Some(listener) = bound.tcp {
        let address = listener
            .local_addr()
            .context("the syslog TCP listener has no address")?;
        tracing::info!("syslog listening on tcp://{address}");
        running.tcp = Some(address);
        let serving = ingest::syslog::serve_tcp(listener, context.clone(), stopped.clone());
        running.tasks.push(tokio::spawn(serving));
    }
    if let Some((listener, acceptor)) = bound.tls {
        let address = listener
            .local_addr()
            .context("the syslog TLS listener has no address")?;
        tracing::info!("syslog listening on tls://{address}");
        running.tls = Some(address);
        let serving = ingest::syslog::serve_tls(listener, acceptor, context, stopped);
        running.tasks.push(tokio::spawn(serving));
    }
    Ok(running)
}

impl Running {
    /// Stops accepting and waits (at most `timeout`) for the batches in hand
    /// to reach the queue; the queue must still be open.
    pub(crate) async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(true);
        for mut task in self.tasks {
            match tokio::time::timeout(timeout, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "a syslog listener panicked"),
                Err(_) => {
                    task.abort();
                    tracing::warn!("syslog batches still waiting for the queue were dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_is_a_fixed_offset() {
        let zone = |text: &str| {
            SyslogSettings {
                rfc3164_timezone: text.to_owned(),
                ..SyslogSettings::default()
            }
            .zone()
            .map(|zone| zone.0.local_minus_utc())
        };
        assert_eq!(zone("+01:00").ok(), Some(3600));
        assert_eq!(zone("-05:30").ok(), Some(-19_800));
        assert_eq!(zone("Z").ok(), Some(0));
        assert_eq!(
            SyslogSettings::default().zone().ok(),
            Some(Rfc3164Zone::default())
        );
        assert!(zone("Europe/Paris").is_err());
        assert!(zone("+25:00").is_err());
    }

    #[test]
    fn defaults_and_toml() {
        let settings = SyslogSettings::default();
        assert!(!settings.enabled());
        assert_eq!(settings.tenant, "default");
        assert_eq!(settings.max_message_bytes, 65_536);
        assert_eq!(settings.max_connections, 1_024);
        let settings: SyslogSettings =
            toml::from_str("tcp = \"127.0.0.1:5514\"\ntenant = \"ops\"\nmax_message_bytes = 100\n")
                .expect("valid");
        assert!(settings.enabled());
        assert_eq!(settings.tcp, Some(SocketAddr::from(([127, 0, 0, 1], 5514))));
        assert_eq!(settings.udp, None);
        assert_eq!(settings.tenant, "ops");
        let limits = model::Limits {
            max_batch_events: 10,
            ..model::Limits::default()
        };
        let listener = settings.listener_settings(limits).expect("valid");
        assert_eq!(listener.max_message_bytes, 100);
        assert_eq!(
            listener.batch_events, 10,
            "never more than a batch may hold"
        );
        assert!(toml::from_str::<SyslogSettings>("port = 514").is_err());
    }
}
