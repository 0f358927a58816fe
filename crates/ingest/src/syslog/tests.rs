//! Syslog parsing and TCP framing.

use bytes::BytesMut;
use chrono::{TimeZone as _, Utc};
use serde_json::json;
use tokio_util::codec::Decoder as _;

use super::{Frame, Rfc3164Zone, SyslogCodec, decode};

#[test]
fn rfc5424_with_structured_data() {
    let now = Utc
        .with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
        .single()
        .expect("a date");
    let text = r#"<165>1 2026-12-07T10:00:00.250Z web-1 checkout 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App"] card declined"#;
    let object = decode(text, Rfc3164Zone::default(), now);
    assert_eq!(object["level"], "info", "severity 5 (notice) is info");
    assert_eq!(object["message"], "card declined");
    assert_eq!(object["host"], "web-1");
    assert_eq!(object["service"], "checkout");
    assert_eq!(
        object["syslog"],
        json!({"facility": "local4", "severity": "notice", "procid": "4242", "msgid": "ID47", "protocol": "rfc5424"})
    );
    assert_eq!(
        object["structured_data"],
        json!({"exampleSDID@32473": {"iut": "3", "eventSource": "App"}})
    );
    assert_eq!(object["timestamp"], json!(1_796_637_600_250_000_000_i64));
}

#[test]
fn rfc3164_takes_the_configured_zone_and_the_nearest_year() {
    let now = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 30, 0)
        .single()
        .expect("a date");
    let zone = Rfc3164Zone(chrono::FixedOffset::east_opt(3600).expect("an offset"));
    let object = decode(
        "<11>Dec 31 23:59:00 db-2 postgres[77]: disk full",
        zone,
        now,
    );
    assert_eq!(object["level"], "error");
    assert_eq!(object["host"], "db-2");
    assert_eq!(object["service"], "postgres");
    assert_eq!(object["message"], "disk full");
    assert_eq!(object["syslog"]["facility"], "user");
    let expected = Utc
        .with_ymd_and_hms(2026, 12, 31, 22, 59, 0)
        .single()
        .expect("a date");
    assert_eq!(object["timestamp"], json!(expected.timestamp_nanos_opt()));
}

#[test]
fn tcp_frames_mix_octet_counting_and_newlines() {
    let mut codec = SyslogCodec::new(64);
    let mut buffer = BytesMut::from(&b"11 <13>1 - - a\n<13>plain line\r\n"[..]);
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::Message("<13>1 - - a".into()))
    );
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::Message("<13>plain line".into()))
    );
    assert_eq!(codec.decode(&mut buffer).expect("frames"), None);
    // A partial octet-counted frame waits for the rest.
    buffer.extend_from_slice(b"5 abc");
    assert_eq!(codec.decode(&mut buffer).expect("frames"), None);
    buffer.extend_from_slice(b"de");
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::Message("abcde".into()))
    );
}

#[test]
fn oversized_messages_are_skipped_and_the_stream_goes_on() {
    let mut codec = SyslogCodec::new(8);
    let mut buffer = BytesMut::from(&b"20 0123456789"[..]);
    assert_eq!(codec.decode(&mut buffer).expect("frames"), None);
    buffer.extend_from_slice(b"0123456789ok\n");
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::TooLarge { size: 20 })
    );
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::Message("ok".into()))
    );
    let mut buffer = BytesMut::from(&b"a very long line without end"[..]);
    assert_eq!(codec.decode(&mut buffer).expect("frames"), None);
    buffer.extend_from_slice(b" still\nnext\n");
    assert!(matches!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::TooLarge { .. })
    ));
    assert_eq!(
        codec.decode(&mut buffer).expect("frames"),
        Some(Frame::Message("next".into()))
    );
    // Digits that are not a count start a newline-framed message.
    let mut dated = BytesMut::from(&b"2026-12-07 12:00 started\n12345678901 x\n"[..]);
    assert_eq!(
        codec.decode(&mut dated).expect("frames"),
        Some(Frame::TooLarge { size: 24 }),
        "longer than this codec's 8 bytes, but framed by its newline"
    );
    let mut codec = SyslogCodec::new(64);
    assert_eq!(
        codec.decode(&mut dated).expect("frames"),
        Some(Frame::Message("12345678901 x".into()))
    );
}

#[test]
fn a_stream_ending_inside_an_octet_counted_message_is_an_error_not_a_message() {
    let mut codec = SyslogCodec::new(64);
    let mut buffer = BytesMut::from(&b"30 <13>1 - - cut"[..]);
    assert_eq!(codec.decode(&mut buffer).expect("frames"), None);
    let error = codec
        .decode_eof(&mut buffer)
        .expect_err("a truncated frame");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    // A newline-framed last message without its newline still counts.
    let mut buffer = BytesMut::from(&b"<13>no newline"[..]);
    assert_eq!(
        codec.decode_eof(&mut buffer).expect("frames"),
        Some(Frame::Message("<13>no newline".into()))
    );
}

#[test]
fn a_yearless_date_just_past_new_year_is_next_years() {
    let now = Utc
        .with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
        .single()
        .expect("a date");
    let object = decode(
        "<13>Jan  1 00:00:01 h app: hello",
        Rfc3164Zone::default(),
        now,
    );
    let expected = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 1)
        .single()
        .expect("a date");
    assert_eq!(object["timestamp"], json!(expected.timestamp_nanos_opt()));
    let object = decode(
        "<13>Dec 30 10:00:00 h app: hello",
        Rfc3164Zone::default(),
        now,
    );
    let expected = Utc
        .with_ymd_and_hms(2026, 12, 30, 10, 0, 0)
        .single()
        .expect("a date");
    assert_eq!(object["timestamp"], json!(expected.timestamp_nanos_opt()));
}
