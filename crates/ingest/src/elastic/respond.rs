//! The bulk answer: `{"took","errors","items":[…]}`, compact, with
//! `"errors":…,"items":[` adjacent (Fluent Bit looks for that literal).

use model::DecodedBatch;
use serde::Serialize;
use serde_json::json;

use super::Action;

#[derive(Serialize)]
struct BulkResponse<'a> {
    took: u64,
    errors: bool,
    items: Vec<Item<'a>>,
}

/// One item: `{"<action>": {…}}`.
struct Item<'a> {
    action: &'a str,
    outcome: Outcome<'a>,
}

#[derive(Serialize)]
struct Outcome<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "_version", skip_serializing_if = "Option::is_none")]
    version: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

#[derive(Serialize)]
struct ItemError {
    #[serde(rename = "type")]
    kind: &'static str,
    reason: String,
}

impl Serialize for Item<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.action, &self.outcome)?;
        map.end()
    }
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
                        Item {
                            action: kind,
                            outcome: refused(
                                index,
                                "document_parsing_exception",
                                format!("{}: {}", rejection.code, rejection.message),
                            ),
                        }
                    }
                    None => Item {
                        action: kind,
                        outcome: Outcome {
                            index,
                            id: Some(accepted.next().map(String::as_str).unwrap_or_default()),
                            version: Some(1),
                            result: Some("created"),
                            status: 201,
                            error: None,
                        },
                    },
                }
            }
            Action::Unsupported { kind, index } => {
                errors = true;
                Item {
                    action: kind,
                    outcome: refused(
                        index,
                        "action_request_validation_exception",
                        format!("Logbook takes only create and index actions, not {kind}"),
                    ),
                }
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

/// A refused item: status 400 with an Elasticsearch error kind and reason.
fn refused<'a>(index: &'a str, kind: &'static str, reason: String) -> Outcome<'a> {
    Outcome {
        index,
        id: None,
        version: None,
        result: None,
        status: 400,
        error: Some(ItemError { kind, reason }),
    }
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
