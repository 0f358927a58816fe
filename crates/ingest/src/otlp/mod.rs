//! OTLP/HTTP logs (`POST /otlp/v1/logs`): an `ExportLogsServiceRequest` in
//! protobuf or JSON, answered with an `ExportLogsServiceResponse` in the
//! same encoding. The field-by-field mapping is in the README.

mod decode;
mod respond;
mod split;

pub use decode::decode;
pub use respond::respond;

/// How an OTLP body is encoded; the answer uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`: OTLP's JSON mapping (hex ids, integer enums,
    /// 64-bit integers as strings or numbers).
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, if it is one OTLP uses.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of an answer in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[cfg(test)]
mod tests;
