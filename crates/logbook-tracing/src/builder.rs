//! The settings of a layer, checked once, and the start of its background sender.

use std::time::Duration;

use hyper::Uri;
use hyper::header::HeaderValue;
use tokio::sync::{mpsc, oneshot};

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::guard::Guard;
use crate::layer::LogbookLayer;
use crate::record::Origin;
use crate::signing::Signer;
use crate::stats::Stats;
use crate::transport::{Credentials, Transport};
use crate::worker::{Settings, Worker};

/// Settings for a [`LogbookLayer`]; see the crate docs for an example.
pub struct Builder {
    endpoint: String,
    service: String,
    host: Option<String>,
    api_key: Option<String>,
    signing_key: Option<(String, String)>,
    batch_size: usize,
    flush_interval: Duration,
    max_buffered_events: usize,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are never printed.
        f.debug_struct("Builder")
            .field("endpoint", &self.endpoint)
            .field("service", &self.service)
            .field("host", &self.host)
            .field(
                "signing_key_id",
                &self.signing_key.as_ref().map(|(id, _)| id),
            )
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_buffered_events", &self.max_buffered_events)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A layer sending to `endpoint` (`http://host:port`, optionally with a
    /// path prefix; events are posted to `<endpoint>/v1/logs`) as `service`.
    pub fn new(endpoint: impl Into<String>, service: impl Into<String>) -> Builder {
        Builder {
            endpoint: endpoint.into(),
            service: service.into(),
            host: None,
            api_key: None,
            signing_key: None,
            batch_size: 1000,
            flush_interval: Duration::from_secs(1),
            max_buffered_events: 10_000,
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// Sends `Authorization: Bearer <key>` (a key with the `logs:write` scope).
    pub fn api_key(mut self, key: impl Into<String>) -> Builder {
        self.api_key = Some(key.into());
        self
    }

    /// Signs every request with a signing key (created with `"signed": true`)
    /// instead of sending a key: see the server README's "Signed requests".
    pub fn signing_key(mut self, key_id: impl Into<String>, key: impl Into<String>) -> Builder {
        self.signing_key = Some((key_id.into(), key.into()));
        self
    }

    /// The `host` of every event; none when unset.
    pub fn host(mut self, host: impl Into<String>) -> Builder {
        self.host = Some(host.into());
        self
    }

    /// The most events per request (default 1,000).
    pub fn batch_size(mut self, events: usize) -> Builder {
        self.batch_size = events;
        self
    }

    /// How long the first event of a batch waits for the batch to fill
    /// before it is sent anyway (default 1 s).
    pub fn flush_interval(mut self, interval: Duration) -> Builder {
        self.flush_interval = interval;
        self
    }

    /// The most serialized events held in memory while waiting to be sent
    /// (default 10,000). When full, new events are dropped and counted in
    /// [`Stats::dropped`]; the application never waits.
    pub fn max_buffered_events(mut self, events: usize) -> Builder {
        self.max_buffered_events = events;
        self
    }

    /// How long [`Guard::shutdown`] (or dropping the guard) may spend sending
    /// what is buffered (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.shutdown_timeout = timeout;
        self
    }

    /// Checks the settings and starts the background sender. Keep the guard
    /// alive as long as the application logs: dropping it flushes and stops.
    pub fn build(self) -> Result<(LogbookLayer, Guard), Error> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        let uri: Uri = endpoint.path.parse().map_err(|_| Error::InvalidEndpoint {
            url: self.endpoint.clone(),
            reason: "its path is not valid",
        })?;
        let credentials = credentials(self.api_key, self.signing_key)?;
        for (setting, value) in [
            ("batch_size", self.batch_size),
            ("max_buffered_events", self.max_buffered_events),
        ] {
            if value == 0 {
                return Err(Error::ZeroSetting { setting });
            }
        }
        if self.flush_interval.is_zero() {
            return Err(Error::ZeroSetting {
                setting: "flush_interval",
            });
        }

        let stats = Stats::default();
        let (buffer, lines) = mpsc::channel(self.max_buffered_events);
        let (stop, stop_requested) = oneshot::channel();
        let worker = Worker::new(
            lines,
            stop_requested,
            Transport::new(endpoint, uri, credentials),
            Settings {
                batch_size: self.batch_size,
                flush_interval: self.flush_interval,
            },
            stats.clone(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Start)?;
        let thread = std::thread::Builder::new()
            .name("logbook-tracing".into())
            .spawn(move || {
                // Whatever this thread logs (hyper, tokio) must not come back
                // into the layer as events to send.
                let _quiet =
                    tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
                runtime.block_on(worker.run());
                // A connection still resolving its address is not waited for.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(Error::Start)?;

        let origin = Origin {
            service: self.service,
            host: self.host,
        };
        let layer = LogbookLayer::new(buffer, origin, stats.clone());
        Ok((
            layer,
            Guard::new(stop, thread, self.shutdown_timeout, stats),
        ))
    }
}

fn credentials(
    api_key: Option<String>,
    signing_key: Option<(String, String)>,
) -> Result<Credentials, Error> {
    match (api_key, signing_key) {
        (Some(key), None) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::InvalidHeader { what: "API key" })?;
            value.set_sensitive(true);
            Ok(Credentials::Bearer(value))
        }
        (None, Some((key_id, key))) => {
            HeaderValue::from_str(&key_id).map_err(|_| Error::InvalidHeader {
                what: "signing key id",
            })?;
            Ok(Credentials::Signed(Signer::new(&key_id, &key)?))
        }
        (None, None) => Err(Error::MissingCredentials),
        (Some(_), Some(_)) => Err(Error::ConflictingCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(builder: Builder) -> Error {
        match builder.build() {
            Ok(_) => panic!("built"),
            Err(error) => error,
        }
    }

    #[test]
    fn refuses_bad_settings_with_a_clear_error() {
        let https = refused(Builder::new("https://logs:443", "s").api_key("k"));
        assert!(matches!(https, Error::HttpsUnsupported { .. }));
        assert!(
            https.to_string().contains("does not support yet"),
            "{https}"
        );
        assert!(matches!(
            refused(Builder::new("http://127.0.0.1:1", "s")),
            Error::MissingCredentials
        ));
        assert!(matches!(
            refused(
                Builder::new("http://127.0.0.1:1", "s")
                    .api_key("k")
                    .signing_key("id", "k")
            ),
            Error::ConflictingCredentials
        ));
        assert!(matches!(
            refused(Builder::new("http://127.0.0.1:1", "s").api_key("bad\nkey")),
            Error::InvalidHeader { what: "API key" }
        ));
        assert!(matches!(
            refused(
                Builder::new("http://127.0.0.1:1", "s")
                    .api_key("k")
                    .batch_size(0)
            ),
            Error::ZeroSetting {
                setting: "batch_size"
            }
        ));
        assert!(matches!(
            refused(
                Builder::new("http://127.0.0.1:1", "s")
                    .api_key("k")
                    .flush_interval(Duration::ZERO)
            ),
            Error::ZeroSetting {
                setting: "flush_interval"
            }
        ));
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let text = format!(
            "{:?}",
            Builder::new("http://h", "s")
                .api_key("lbk_secret")
                .signing_key("key_1", "lbk_other")
        );
        assert!(!text.contains("lbk_"), "{text}");
        assert!(text.contains("key_1"), "{text}");
    }
}
