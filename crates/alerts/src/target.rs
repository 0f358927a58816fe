//! Where a webhook may point. A webhook makes the server send requests to an
//! address a tenant chose, so by default every address that reaches inside
//! the deployment is refused: loopback, private, link-local, shared (CGNAT),
//! unique-local, unspecified, multicast, broadcast and reserved ones. URLs
//! naming such an address are refused when the rule is saved; names are
//! resolved at send time, every answer is checked, and the connection goes to
//! the checked address itself, so a name that resolves differently later (DNS
//! rebinding) cannot slip past.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hyper::Uri;

/// The longest webhook URL, in bytes.
const MAX_URL_BYTES: usize = 2048;

/// A webhook URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub https: bool,
    /// The host as written (an IPv6 literal without its brackets).
    pub host: String,
    pub port: u16,
    /// What the `Host` header carries: the authority as written.
    pub authority: String,
    /// The path and query, `/` when empty.
    pub path: String,
}

impl WebhookUrl {
    /// Parses an `http` or `https` URL with a host and no user information.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        if text.len() > MAX_URL_BYTES {
            return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
        }
        let uri: Uri = text
            .parse()
            .map_err(|error| format!("{text:?} is not a URL: {error}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the URL must start with http:// or https://".to_owned()),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| "the URL has no host".to_owned())?;
        if authority.as_str().contains('@') {
            return Err("the URL may not carry a user name or password".to_owned());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err("the URL has no host".to_owned());
        }
        Ok(WebhookUrl {
            https,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or("/", |path| path.as_str())
                .to_owned(),
        })
    }

    /// Why the host, when it is an IP address, may not be a target.
    pub fn literal_refusal(&self) -> Option<String> {
        let address: IpAddr = self.host.parse().ok()?;
        refusal(address).map(|kind| format!("{address} is {kind}"))
    }
}

/// What kind of internal address `address` is, if it is one.
pub fn refusal(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(address) => refusal_v4(address),
        IpAddr::V6(address) => refusal_v6(address),
    }
}

fn refusal_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = address.octets();
    Some(match (a, b) {
        (0, _) => "an unspecified address",
        (127, _) => "a loopback address",
        (10, _) | (172, 16..=31) | (192, 168) => "a private address",
        (100, 64..=127) => "a shared (carrier-grade NAT) address",
        (169, 254) => "a link-local address",
        (224..=239, _) => "a multicast address",
        _ if address.is_broadcast() => "the broadcast address",
        (240..=255, _) => "a reserved address",
        _ => return None,
    })
}

fn refusal_v6(address: Ipv6Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        return Some("an unspecified address");
    }
    if address.is_loopback() {
        return Some("a loopback address");
    }
    // IPv4 carried in IPv6 (mapped, compatible, NAT64, 6to4) is judged as IPv4.
    let segments = address.segments();
    let octets = address.octets();
    let embedded = match segments {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            Some(Ipv4Addr::new(
                octets[12], octets[13], octets[14], octets[15],
            ))
        }
        [0x2002, ..] => Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])),
        _ => None,
    };
    if let Some(inner) = embedded {
        return refusal_v4(inner);
    }
    Some(match segments[0] {
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xfc00..=0xfdff => "a unique local address",
        0xff00..=0xffff => "a multicast address",
        _ => return None,
    })
}

/// The first resolved address that may be a target; when none may, why.
pub fn choose(
    host: &str,
    addresses: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Result<SocketAddr, String> {
    let mut refused = None;
    for address in addresses {
        match refusal(address.ip()) {
            Some(kind) if !allow_private => {
                refused
                    .get_or_insert_with(|| format!("{host} resolves to {}, {kind}", address.ip()));
            }
            _ => return Ok(address),
        }
    }
    Err(refused.unwrap_or_else(|| format!("{host} does not resolve to any address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_allowed() {
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
        ] {
            let address: IpAddr = internal.parse().expect(internal);
            assert!(refusal(address).is_some(), "{internal} should be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            let address: IpAddr = public.parse().expect(public);
            assert_eq!(refusal(address), None, "{public} should be allowed");
        }
    }

    #[test]
    fn urls_are_taken_apart() {
        let url = WebhookUrl::parse("https://hooks.example/x?y=1").expect("valid");
        assert_eq!(
            (url.https, url.host.as_str(), url.port, url.path.as_str()),
            (true, "hooks.example", 443, "/x?y=1")
        );
        let url = WebhookUrl::parse("http://[::1]:8080").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 8080, "/")
        );
        assert!(
            url.literal_refusal()
                .is_some_and(|why| why.contains("loopback"))
        );
        for bad in [
            "ftp://hooks.example/x",
            "hooks.example/x",
            "http://user:pass@hooks.example/x",
            "http:///x",
            "not a url",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_allowed_resolved_address_is_chosen() {
        let loopback: SocketAddr = "127.0.0.1:80".parse().expect("address");
        let public: SocketAddr = "93.184.215.14:80".parse().expect("address");
        assert_eq!(choose("h", [loopback, public], false), Ok(public));
        let refused = choose("localhost", [loopback], false).expect_err("loopback");
        assert!(
            refused.contains("localhost resolves to 127.0.0.1, a loopback address"),
            "{refused}"
        );
        assert_eq!(choose("localhost", [loopback], true), Ok(loopback));
        assert!(choose("h", [], true).is_err());
    }
}
