//! The one error type of the crate: what can go wrong while building the layer.
//!
//! Once built, the layer never fails the application: delivery problems are
//! counted in [`crate::Stats`] instead.

/// Why [`crate::Builder::build`] refused its settings or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not an `http://host[:port][/prefix]` URL.
    #[error("the Logbook endpoint {url:?} is not a valid http:// URL: {reason}")]
    InvalidEndpoint { url: String, reason: &'static str },
    /// The endpoint is `https://`: this crate has no TLS client yet.
    #[error(
        "the Logbook endpoint {url:?} uses https, which logbook-tracing does not support yet \
         (it has no TLS client); use http:// to a server or a local TLS-terminating proxy"
    )]
    HttpsUnsupported { url: String },
    /// Neither an API key nor a signing key was given.
    #[error("no credentials: set an API key or a signing key")]
    MissingCredentials,
    /// Both an API key and a signing key were given; a request uses one of them.
    #[error("both an API key and a signing key are set; choose one")]
    ConflictingCredentials,
    /// A value cannot be sent in an HTTP header (it holds control characters).
    #[error("the {what} cannot be sent in an HTTP header")]
    InvalidHeader { what: &'static str },
    /// A size or interval setting is zero.
    #[error("{setting} must be greater than zero")]
    ZeroSetting { setting: &'static str },
    /// The background thread or its runtime could not be started.
    #[error("cannot start the background sender: {0}")]
    Start(#[source] std::io::Error),
}
