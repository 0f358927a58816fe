//! Loki's push API (`POST /loki/api/v1/push`): a `PushRequest` in protobuf
//! compressed with snappy's block format, or the same in JSON (and the
//! legacy JSON of older clients). Success is `204`. The mapping of labels
//! and structured metadata is in the README.

mod decode;
mod labels;
pub mod proto;

pub use decode::decode;

/// How a push body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`: snappy-compressed protobuf (block format).
    SnappyProtobuf,
    /// `application/json`: `{"streams":[{"stream":{…},"values":[[ns, line, {…}?]]}]}`,
    /// or the legacy `{"streams":[{"labels":"{…}","entries":[{"ts","line"}]}]}`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; snappy protobuf when absent,
    /// as Loki reads it.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Encoding> {
        let Some(content_type) = content_type else {
            return Some(Encoding::SnappyProtobuf);
        };
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::SnappyProtobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
