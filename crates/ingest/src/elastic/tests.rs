//! Bulk bodies: actions in order, ECS fields, per-item errors, answer shape.

use model::{Event, IngestContext, Level, Limits, Timestamp};
use serde_json::{Value, json};

use super::{Action, bulk_response, decode};
use crate::{Batch, IngestError};

fn run(body: &str, index: Option<&str>) -> Result<(Vec<Action>, model::DecodedBatch), IngestError> {
    let context = IngestContext::new("acme", Timestamp::from_nanos(1), None);
    let limits = Limits::default();
    let mut batch = Batch::new(&context, &limits, 0);
    let actions = decode(body.as_bytes(), index, &mut batch)?;
    Ok((actions, batch.finish()?))
}

fn events(batch: &model::DecodedBatch) -> Vec<Event> {
    batch
        .ndjson
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("an event"))
        .collect()
}

#[test]
fn items_answer_each_action_in_order() {
    let body = [
        r#"{"create":{"_index":"logs-app"}}"#,
        r#"{"@timestamp":"2026-12-07T10:00:00Z","message":"ok","host":{"name":"web-1","ip":["10.0.0.1"]},"log":{"level":"warn"},"service":{"name":"shop"}}"#,
        r#"{"index":{"_id":"doc-7"}}"#,
        r#"{"log":"from fluent bit"}"#,
        r#"{"create":{}}"#,
        r#"{"message":"bad","level":"nope","id":7,"time":"yesterday"}"#,
        r#"{"delete":{"_index":"x","_id":"1"}}"#,
        r#"{"create":{}}"#,
        r#""not an object""#,
        "",
    ]
    .join("\n");
    let (actions, batch) = run(&body, Some("default-index")).expect("decodes");
    let stored = events(&batch);
    assert_eq!(stored.len(), 3, "{:?}", batch.rejected);
    assert_eq!(stored[0].host.as_deref(), Some("web-1"));
    assert_eq!(stored[0].service.as_deref(), Some("shop"));
    assert_eq!(stored[0].level, Level::Warn);
    assert_eq!(stored[0].attributes.get("index"), Some(&json!("logs-app")));
    assert_eq!(
        stored[0].attributes.get("ecs.host"),
        Some(&json!({"name": "web-1", "ip": ["10.0.0.1"]}))
    );
    assert_eq!(stored[1].id, "doc-7");
    assert_eq!(stored[1].message, "from fluent bit");
    assert_eq!(
        stored[1].attributes.get("index"),
        Some(&json!("default-index"))
    );

    let answer = bulk_response(&actions, &batch, 3);
    let text = String::from_utf8(answer.clone()).expect("utf-8");
    assert!(
        text.starts_with(r#"{"took":3,"errors":true,"items":["#),
        "{text}"
    );
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    let items = answer["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[0]["create"]["_id"], json!(stored[0].id));
    assert_eq!(items[1]["index"]["status"], 201);
    assert_eq!(items[1]["index"]["_id"], "doc-7");
    assert_eq!(items[2]["create"]["status"], 201);
    assert_eq!(items[3]["delete"]["status"], 400);
    assert_eq!(items[4]["create"]["status"], 400);
    let reason = items[4]["create"]["error"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.starts_with("invalid_type"), "{reason}");
}

#[test]
fn a_clean_bulk_answers_errors_false_next_to_items() {
    let (actions, batch) = run("{\"create\":{}}\n{\"message\":\"a\"}\n", None).expect("decodes");
    let text = String::from_utf8(bulk_response(&actions, &batch, 0)).expect("utf-8");
    assert!(text.contains(r#""errors":false,"items":["#), "{text}");
}

#[test]
fn broken_action_lines_fail_the_request() {
    assert!(matches!(
        run("{not json\n{}\n", None),
        Err(IngestError::Malformed(_))
    ));
    assert!(matches!(
        run("{\"create\":{}}\n", None),
        Err(IngestError::Malformed(_))
    ));
    assert!(matches!(run("\n\n", None), Err(IngestError::Decode(_))));
}
