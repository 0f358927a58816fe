//! A bulk body → events: action lines and their documents, with the
//! Elastic Common Schema fields shippers send read as Logbook's.

use model::{EventError, Level};
use serde_json::{Map, Value};

use crate::value::{SHADOWED_PREFIX, insert_attribute};
use crate::{Batch, IngestError};

/// The longest index name, in bytes (Elasticsearch's own limit).
const MAX_INDEX_BYTES: usize = 255;

/// What one action line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `create` or `index` (`kind`): a document that became the batch's
    /// event at `event` (accepted or refused: the batch says which).
    Write {
        kind: &'static str,
        index: String,
        event: usize,
    },
    /// An action Logbook does not take (`delete`, `update`): answered with an
    /// error item of its own.
    Unsupported { kind: String, index: String },
}

/// The actions of a request, in order: one answer item each.
pub type Actions = Vec<Action>;

/// Reads a bulk body; `default_index` is the index of the URL, if any. An
/// unreadable action line fails the whole request, as in Elasticsearch; a
/// document that is not a valid event fails only its own item.
pub fn decode(
    body: &[u8],
    default_index: Option<&str>,
    batch: &mut Batch,
) -> Result<Actions, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| IngestError::malformed(format!("the bulk body is not UTF-8: {error}")))?;
    let mut actions = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line))
        .filter(|(_, line)| !line.trim().is_empty());
    while let Some((number, line)) = lines.next() {
        // Actions Logbook does not take add no event, but each is an item.
        if actions.len() == batch.max_messages() {
            return Err(model::DecodeError::TooManyEvents {
                max: batch.max_messages(),
            }
            .into());
        }
        let (kind, meta) = action_line(line, number)?;
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .unwrap_or("")
            .to_owned();
        if index.len() > MAX_INDEX_BYTES {
            return Err(IngestError::malformed(format!(
                "line {number}: an index name may take at most {MAX_INDEX_BYTES} bytes, as in Elasticsearch"
            )));
        }
        match kind.as_str() {
            "create" | "index" => {
                let kind = if kind == "create" { "create" } else { "index" };
                let Some((source_number, source)) = lines.next() else {
                    return Err(IngestError::malformed(format!(
                        "line {number}: the {kind} action has no document line after it"
                    )));
                };
                // Too large to be an event: refused before it is parsed.
                let event = match source.len() > batch.max_event_bytes() {
                    true => Err(EventError::TooLarge {
                        size: source.len(),
                        max: batch.max_event_bytes(),
                    }),
                    false => document(source, &meta, &index),
                };
                let event = batch.add_at(Some(source_number), event)?;
                actions.push(Action::Write { kind, index, event });
            }
            "update" => {
                // Its partial document follows; nothing to apply it to.
                lines.next();
                actions.push(Action::Unsupported { kind, index });
            }
            _ => actions.push(Action::Unsupported { kind, index }),
        }
    }
    if actions.is_empty() {
        return Err(IngestError::Decode(model::DecodeError::Empty));
    }
    Ok(actions)
}

/// `{"create": {"_index": …, "_id": …}}` → the action and its metadata.
fn action_line(line: &str, number: usize) -> Result<(String, Map<String, Value>), IngestError> {
    // What most shippers send for every document, read without a parser.
    match line.trim() {
        r#"{"create":{}}"# => return Ok(("create".to_owned(), Map::new())),
        r#"{"index":{}}"# => return Ok(("index".to_owned(), Map::new())),
        _ => {}
    }
    let malformed = |why: &str| {
        IngestError::malformed(format!(
            "line {number}: malformed action line ({why}); expected {{\"create\":{{…}}}} or {{\"index\":{{…}}}}"
        ))
    };
    let value: Value = serde_json::from_str(line).map_err(|error| malformed(&error.to_string()))?;
    let Value::Object(object) = value else {
        return Err(malformed("not an object"));
    };
    let mut entries = object.into_iter();
    match (entries.next(), entries.next()) {
        (Some((kind, Value::Object(meta))), None) => Ok((kind, meta)),
        (Some((kind, Value::Null)), None) => Ok((kind, Map::new())),
        _ => Err(malformed("it must hold exactly one action")),
    }
}

/// One document as an event object.
fn document(
    line: &str,
    meta: &Map<String, Value>,
    index: &str,
) -> Result<Map<String, Value>, EventError> {
    let mut object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(other) => return Err(EventError::NotAnObject(model::type_name(&other))),
        Err(_) => return Err(EventError::NotAnObject("malformed JSON")),
    };
    if let Some(Value::String(id)) = meta.get("_id") {
        object.insert("id".into(), Value::String(id.clone()));
    }
    ecs(&mut object);
    keep_unreadable_fields(&mut object);
    if !index.is_empty() && !object.contains_key("index") {
        insert_attribute(&mut object, "index".into(), Value::String(index.to_owned()));
    }
    Ok(object)
}

/// Reads the Elastic Common Schema fields shippers send as Logbook's own:
/// `host` and `service` objects give their `name` (the object is kept under
/// `ecs.host` / `ecs.service`), `log.level` is the level, and Fluent Bit's
/// `log` is the message when there is no `message`.
fn ecs(object: &mut Map<String, Value>) {
    for field in ["host", "service"] {
        if let Some(Value::Object(details)) = object.get(field) {
            let name = ["name", "hostname"]
                .iter()
                .find_map(|key| details.get(*key).and_then(Value::as_str))
                .map(str::to_owned);
            if let Some(Value::Object(details)) = object.remove(field) {
                object.insert(format!("ecs.{field}"), Value::Object(details));
            }
            if let Some(name) = name {
                object.insert(field.into(), Value::String(name));
            }
        }
    }
    if !object.contains_key("level") {
        let level = match object.get("log") {
            Some(Value::Object(log)) => log.get("level").and_then(Value::as_str),
            _ => object.get("log.level").and_then(Value::as_str),
        };
        if let Some(level) = level.filter(|level| Level::parse(level).is_some()) {
            let level = level.to_owned();
            object.insert("level".into(), Value::String(level));
        }
    }
    let has_message = object.contains_key("message") || object.contains_key("msg");
    if !has_message
        && matches!(object.get("log"), Some(Value::String(_)))
        && let Some(line) = object.remove("log")
    {
        object.insert("message".into(), line);
    }
}

/// Whether a field's value reads as the Logbook field of its name.
type Readable = dyn Fn(&Value) -> bool;

/// Application documents often carry fields named like Logbook's in other
/// formats (pino's `"level": 30`, a numeric `id`, a `time` that is not a
/// time). Refusing the document would lose it — shippers do not resend a
/// 400 item — so such a field is kept as `attribute.<name>` instead, and the
/// event gets the default (receive time, level info, a new id).
fn keep_unreadable_fields(object: &mut Map<String, Value>) {
    let level_readable = |value: &Value| match value {
        Value::String(text) => Level::parse(text).is_some(),
        Value::Number(number) => number.as_u64().is_some_and(|n| n <= 7),
        Value::Null => true,
        _ => false,
    };
    let time_readable = |value: &Value| match value {
        Value::String(text) => model::Timestamp::parse(text).is_ok(),
        Value::Number(number) => number
            .as_i64()
            .map(|n| model::Timestamp::from_epoch(n).is_ok())
            .or_else(|| {
                number
                    .as_f64()
                    .map(|n| model::Timestamp::from_epoch_seconds_f64(n).is_ok())
            })
            .unwrap_or(false),
        Value::Null => true,
        _ => false,
    };
    let id_readable = |value: &Value| match value {
        Value::String(id) => {
            !id.is_empty()
                && id.len() <= model::MAX_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        }
        _ => false,
    };
    let checks: [(&[&str], &Readable); 3] = [
        (&["level", "severity", "lvl"], &level_readable),
        (&["timestamp", "@timestamp", "time", "ts"], &time_readable),
        (&["id"], &id_readable),
    ];
    for (names, readable) in checks {
        // The event reads the first of the names present.
        let Some(name) = names.iter().find(|name| object.contains_key(**name)) else {
            continue;
        };
        if object.get(*name).is_some_and(|value| !readable(value))
            && let Some(value) = object.remove(*name)
        {
            object.insert(format!("{SHADOWED_PREFIX}{name}"), value);
        }
    }
}
