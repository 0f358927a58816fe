//! The bulk answer: `{"took","errors","items":[…]}`, compact, with
//! `"errors":…,"items":[` adjacent (Fluent Bit looks for that literal).

use model::{DecodedBatch, Rejection};
use serde::Serialize;
use serde_json::{Value, json};

use super::Action;

#[derive(Serialize)]
struct BulkResponse {
    took: u64,
    errors: bool,
    items: Vec<Value>,
}

/// The answer to a bulk request whose accepted events are durable: one item
/// per action, in order; refused documents and unsupported actions carry
/// their status and reason.
pub fn bulk_response(actions: &[Action], batch: &DecodedBatch, took_ms: u64) -> Vec<u8> {
    let mut accepted = batch.ids.iter();
    let mut rejected = batch.rejected.iter().peekable();
    let mut items = Vec::with_capacity(actions.len());
    let mut errors = false;
    for action in actions {
        let item = match action {
            Action::Write { kind, index, event } => {
                match rejected.next_if(|rejection| rejection.index == *event) {
                    Some(rejection) => {
                        errors = true;
                        json!({ *kind: refused(index, rejection) })
                    }
                    None => {
                        let id = accepted.next().map(String::as_str).unwrap_or_default();
                        json!({ *kind: {
                            "_index": index,
                            "_id": id,
                            "_version": 1,
                            "result": "created",
                            "_shards": {"total": 1, "successful": 1, "failed": 0},
                            "_seq_no": 0,
                            "_primary_term": 1,
                            "status": 201,
                        }})
                    }
                }
            }
            Action::Unsupported { kind, index } => {
                errors = true;
                json!({ kind.as_str(): {
                    "_index": index,
                    "status": 400,
                    "error": {
                        "type": "action_request_validation_exception",
                        "reason": format!("Logbook takes only create and index actions, not {kind}"),
                    },
                }})
            }
        };
        items.push(item);
    }
    let response = BulkResponse {
        took: took_ms,
        errors,
        items,
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

fn refused(index: &str, rejection: &Rejection) -> Value {
    json!({
        "_index": index,
        "status": 400,
        "error": {
            "type": "document_parsing_exception",
            "reason": format!("{}: {}", rejection.code, rejection.message),
        },
    })
}

/// Elasticsearch's error body for a whole request: `{"error":{…},"status":N}`.
pub fn error_body(status: u16, kind: &str, reason: &str) -> Vec<u8> {
    let cause = json!({"type": kind, "reason": reason});
    let body = json!({
        "error": {"root_cause": [cause.clone()], "type": kind, "reason": reason},
        "status": status,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
