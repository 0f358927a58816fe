//! Parsing the server URL once, at build time, into what every request needs.

use hyper::Uri;

use crate::error::Error;

/// The path the events are posted to, under the endpoint's own path.
const LOGS_PATH: &str = "/v1/logs";

/// Where batches go: the address to connect to, the `Host` header, and the
/// request path (which is also what a signature covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host:port`, as given to the resolver.
    pub address: String,
    /// The URL's authority, sent as the `Host` header.
    pub authority: String,
    /// The endpoint's path prefix followed by `/v1/logs`.
    pub path: String,
}

impl Endpoint {
    /// Reads `http://host[:port][/prefix]`; port 80 when absent.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let invalid = |reason| Error::InvalidEndpoint {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("it does not parse"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(Error::HttpsUnsupported {
                    url: url.to_owned(),
                });
            }
            Some(_) => return Err(invalid("the scheme must be http")),
            None => return Err(invalid("it has no scheme (http://host:port)")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        if authority.host().is_empty() {
            return Err(invalid("it has no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("it must not have a query"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let prefix = uri.path().trim_end_matches('/');
        Ok(Endpoint {
            address: format!("{}:{port}", authority.host()),
            authority: authority.as_str().to_owned(),
            path: format!("{prefix}{LOGS_PATH}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Endpoint {
        match Endpoint::parse(url) {
            Ok(endpoint) => endpoint,
            Err(error) => panic!("{url}: {error}"),
        }
    }

    #[test]
    fn reads_host_port_and_prefix() {
        assert_eq!(
            ok("http://127.0.0.1:8080"),
            Endpoint {
                address: "127.0.0.1:8080".into(),
                authority: "127.0.0.1:8080".into(),
                path: "/v1/logs".into(),
            }
        );
        let prefixed = ok("http://logs.internal/logbook/");
        assert_eq!(prefixed.address, "logs.internal:80");
        assert_eq!(prefixed.authority, "logs.internal");
        assert_eq!(prefixed.path, "/logbook/v1/logs");
        assert_eq!(ok("http://[::1]:9000").address, "[::1]:9000");
    }

    #[test]
    fn refuses_https_and_malformed_urls() {
        assert!(matches!(
            Endpoint::parse("https://logs.example:443"),
            Err(Error::HttpsUnsupported { .. })
        ));
        for url in [
            "127.0.0.1:8080",
            "ftp://host",
            "http://",
            "http://host/?a=b",
            "http://user:pw@host",
            "not a url",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(Error::InvalidEndpoint { .. })),
                "{url}"
            );
        }
    }
}
