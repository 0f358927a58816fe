//! The answer to an export: an `ExportLogsServiceResponse`, with a partial
//! success naming how many records were refused and why.

use model::Rejection;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message as _;

use super::Encoding;

/// How many refusals the answer's message quotes; the count covers all.
const QUOTED_REJECTIONS: usize = 5;

/// The response body for a request whose `rejected` records were refused
/// (the others are durable), in `encoding`.
pub fn respond(encoding: Encoding, rejected: &[Rejection]) -> Vec<u8> {
    let partial_success = (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
        rejected_log_records: i64::try_from(rejected.len()).unwrap_or(i64::MAX),
        error_message: message(rejected),
    });
    let response = ExportLogsServiceResponse { partial_success };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // A full success is the empty message. Serialising a generated
        // message cannot fail; the empty object stands in if it ever did.
        Encoding::Json if response.partial_success.is_none() => b"{}".to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `record 3: missing_message: …; record 7: …` for the first few.
fn message(rejected: &[Rejection]) -> String {
    let mut message = rejected
        .iter()
        .take(QUOTED_REJECTIONS)
        .map(|rejection| {
            format!(
                "record {}: {}: {}",
                rejection.index, rejection.code, rejection.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if rejected.len() > QUOTED_REJECTIONS {
        message.push_str(&format!(
            "; and {} more",
            rejected.len() - QUOTED_REJECTIONS
        ));
    }
    message
}
