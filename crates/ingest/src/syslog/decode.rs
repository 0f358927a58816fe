//! One syslog message → one event object: PRI gives the level and the
//! facility, the header the time, host and app, structured data is kept.

use chrono::{DateTime, Datelike as _, FixedOffset, Offset as _, TimeZone as _, Utc};
use model::Level;
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, Message, Protocol, Variant};

use crate::value::epoch_nanos;

/// The zone of RFC 3164 time stamps, which carry none (nor a year: the
/// year is the one that puts the time closest to now, never more than a
/// day ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3164Zone(pub FixedOffset);

impl Default for Rfc3164Zone {
    fn default() -> Self {
        Rfc3164Zone(Utc.fix())
    }
}

/// Parses one message (5424 first, then 3164; an unparseable one is kept
/// whole as the message) into the object [`model::Event::from_object`] reads.
pub fn decode(text: &str, zone: Rfc3164Zone, now: DateTime<Utc>) -> Map<String, Value> {
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    let year = |date: IncompleteDate| year_for(date, now, zone.0);
    let message =
        syslog_loose::parse_message_with_year_tz(text, year, Some(zone.0), Variant::Either);
    object(message)
}

/// The year that puts a yearless date closest to `now` without being more
/// than a day ahead of it (`Jan 1 00:00:01` received on 31 December is next
/// year's; `Dec 31` received on 1 January is last year's). The date is read
/// in `zone`, where its sender wrote it.
fn year_for(
    (month, day, hour, minute, second): IncompleteDate,
    now: DateTime<Utc>,
    zone: FixedOffset,
) -> i32 {
    let this_year = now.with_timezone(&zone).year();
    let latest = now + chrono::Duration::days(1);
    [this_year + 1, this_year, this_year - 1]
        .into_iter()
        .find(|year| {
            zone.with_ymd_and_hms(*year, month, day, hour, minute, second)
                .single()
                .is_some_and(|date| date <= latest)
        })
        .unwrap_or(this_year)
}

fn object(message: Message<&str>) -> Map<String, Value> {
    let mut object = Map::new();
    if let Some(nanos) = message
        .timestamp
        .and_then(|time| time.timestamp_nanos_opt())
    {
        object.insert("timestamp".into(), epoch_nanos(nanos));
    }
    let level = message
        .severity
        .and_then(|severity| Level::from_syslog(severity as u64))
        .unwrap_or(Level::Info);
    object.insert("level".into(), Value::from(level.as_str()));
    let body = message.msg.trim_start_matches('\u{feff}');
    object.insert("message".into(), Value::String(body.to_owned()));
    if let Some(host) = message.hostname {
        object.insert("host".into(), Value::String(host.to_owned()));
    }
    if let Some(app) = message.appname {
        object.insert("service".into(), Value::String(app.to_owned()));
    }
    let mut syslog = Map::new();
    if let Some(facility) = message.facility {
        syslog.insert("facility".into(), Value::from(facility.as_str()));
    }
    if let Some(severity) = message.severity {
        syslog.insert("severity".into(), Value::from(severity.as_str()));
    }
    if let Some(procid) = message.procid {
        syslog.insert("procid".into(), Value::String(procid.to_string()));
    }
    if let Some(msgid) = message.msgid {
        syslog.insert("msgid".into(), Value::String(msgid.to_owned()));
    }
    let protocol = match message.protocol {
        Protocol::RFC5424(_) => "rfc5424",
        Protocol::RFC3164 => "rfc3164",
    };
    syslog.insert("protocol".into(), Value::from(protocol));
    object.insert("syslog".into(), Value::Object(syslog));
    if !message.structured_data.is_empty() {
        let elements = message
            .structured_data
            .iter()
            .map(|element| {
                let params = element
                    .params()
                    .map(|(name, value)| (name.to_string(), Value::String(value.to_string())))
                    .collect();
                (element.id.to_owned(), Value::Object(params))
            })
            .collect();
        object.insert("structured_data".into(), Value::Object(elements));
    }
    object
}
