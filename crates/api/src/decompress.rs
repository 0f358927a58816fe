//! Content-Encoding of request bodies: identity, gzip or zstd, with a bound on
//! the decompressed size so a small bomb cannot exhaust memory.

use std::io::Read;

use axum::http::StatusCode;

use crate::ApiError;

/// The largest zstd window a body may use (2^23 = 8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// A supported `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// Reads the header value; `None` if absent.
    pub(crate) fn from_header(value: Option<&str>) -> Result<Encoding, ApiError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some("zstd") => Ok(Encoding::Zstd),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {other:?} is not supported; use gzip, zstd or none"),
            )),
        }
    }
}

/// Decompresses `body`, refusing to produce more than `max` bytes.
pub(crate) fn decompress(
    encoding: Encoding,
    body: bytes::Bytes,
    max: usize,
) -> Result<bytes::Bytes, ApiError> {
    let reader: Box<dyn Read> = match encoding {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Zstd => {
            let invalid = |error: std::io::Error| {
                ApiError::bad_request(
                    "invalid_compression",
                    format!("body is not valid zstd: {error}"),
                )
            };
            let mut decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(invalid)?;
            // A frame may ask for a window of up to 2 GiB; 8 MiB is plenty for request bodies.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(invalid)?;
            Box::new(decoder)
        }
    };
    let mut output = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut output)
        .map_err(|error| {
            ApiError::bad_request(
                "invalid_compression",
                format!("body could not be decompressed: {error}"),
            )
        })?;
    if output.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("decompressed body exceeds {max} bytes"),
        ));
    }
    Ok(output.into())
}
