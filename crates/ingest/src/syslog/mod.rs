//! Syslog over UDP, TCP and TLS (RFC 5425): RFC 5424 and RFC 3164 messages,
//! TCP framed by octet counting or newlines (detected per message), each
//! listener bound to one tenant in the configuration (syslog has no
//! credentials).

mod decode;
mod framing;
mod listener;

pub use decode::{Rfc3164Zone, decode};
pub use framing::{Frame, SyslogCodec};
pub use listener::{Admission, Listener, ListenerSettings, serve_tcp, serve_tls, serve_udp};

#[cfg(test)]
mod tests;
