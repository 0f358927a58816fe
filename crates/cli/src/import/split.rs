//! Cuts an input into events: NDJSON lines, the elements of one JSON array,
//! or plain text lines that become `{"service", "message"}` events. Each
//! event is one NDJSON line for the body of `POST /v1/logs`, with the line of
//! the input it starts on and the byte offset just after it, which is where
//! a resumed import continues.

use anyhow::bail;

use super::input::Input;

/// How the input's bytes make events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, or one JSON array of objects (told apart
    /// by the first non-blank byte).
    Ndjson,
    /// Each non-blank line is the message of an event of `service`.
    Lines { service: String },
}

/// An event the client refuses before sending it, with the same kind of
/// code the server would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// One event of the input, or why it cannot be sent.
#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    /// The 1-based line of the input the event starts on.
    pub line: u64,
    /// The event as one line of JSON (without its newline).
    pub event: Result<Vec<u8>, Refusal>,
}

/// Where the reader is inside a JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Array {
    /// Not reading an array: NDJSON or text lines.
    No,
    /// After `[`: an event or `]`.
    First,
    /// After an event: `,` or `]`.
    AfterEvent,
    /// After `,`: an event.
    Next,
    /// After `]`: only blanks may follow.
    Closed,
}

/// Reads events one by one from an input.
pub struct Splitter {
    input: Input,
    format: Format,
    array: Array,
    /// Bytes of the (decompressed) input consumed so far.
    position: u64,
    /// Newlines consumed so far.
    line: u64,
    /// An event longer than this is refused (and skipped without being held in memory).
    max_event_bytes: usize,
}

impl Splitter {
    /// Reads `input` from its start; for NDJSON, a first non-blank byte `[`
    /// makes it one JSON array.
    pub fn from_start(
        input: Input,
        format: Format,
        max_event_bytes: usize,
    ) -> anyhow::Result<Splitter> {
        let mut splitter = Splitter::resumed(input, format, max_event_bytes, 0, 0, false);
        if splitter.format == Format::Ndjson && splitter.skip_blanks()? == Some(b'[') {
            splitter.advance(1);
            splitter.array = Array::First;
        }
        Ok(splitter)
    }

    /// Continues an input already positioned at `offset`, `line` newlines
    /// in, just after an event (inside the array when `array`).
    pub fn resumed(
        input: Input,
        format: Format,
        max_event_bytes: usize,
        offset: u64,
        line: u64,
        array: bool,
    ) -> Splitter {
        Splitter {
            input,
            format,
            array: if array { Array::AfterEvent } else { Array::No },
            position: offset,
            line,
            max_event_bytes,
        }
    }

    /// Whether the input is one JSON array.
    pub fn is_array(&self) -> bool {
        self.array != Array::No
    }

    /// Bytes consumed so far: after [`Splitter::next`], the offset just after its event.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Newlines consumed so far.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next event; `None` at the end of the input. An error means the
    /// input cannot be read on (it is not a JSON array after all, or reading failed).
    pub fn next(&mut self) -> anyhow::Result<Option<Item>> {
        if self.array != Array::No {
            return self.next_element();
        }
        loop {
            let line = self.line + 1;
            let mut bytes = Vec::new();
            let (read, complete) = self.read_line(&mut bytes)?;
            if read == 0 {
                return Ok(None);
            }
            if !complete {
                return Ok(Some(Item {
                    line,
                    event: Err(too_large(read)),
                }));
            }
            while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                bytes.pop();
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = match (&self.format, String::from_utf8(bytes)) {
                (_, Err(error)) => Err(Refusal {
                    code: "invalid_utf8",
                    message: format!(
                        "the line is not UTF-8 (at byte {})",
                        error.utf8_error().valid_up_to()
                    ),
                }),
                (Format::Ndjson, Ok(text)) => Ok(text.into_bytes()),
                (Format::Lines { service }, Ok(text)) => Ok(format!(
                    r#"{{"service":{},"message":{}}}"#,
                    serde_json::Value::from(service.as_str()),
                    serde_json::Value::from(text)
                )
                .into_bytes()),
            };
            return Ok(Some(Item { line, event }));
        }
    }

    /// Reads up to and including the next newline into `bytes`, keeping at
    /// most `max_event_bytes` + 2 of them; returns the bytes consumed and
    /// whether all of them were kept.
    fn read_line(&mut self, bytes: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
        let keep = self.max_event_bytes + 2;
        let mut read = 0;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (take, found) = match available.iter().position(|&byte| byte == b'\n') {
                Some(newline) => (newline + 1, true),
                None => (available.len(), false),
            };
            if bytes.len() < keep {
                bytes.extend_from_slice(&available[..take.min(keep - bytes.len())]);
            }
            self.input.consume(take);
            read += take;
            if found {
                self.line += 1;
                break;
            }
        }
        self.position += read as u64;
        Ok((read, read <= keep))
    }

    /// The next element of the array, as one line (its newlines become
    /// spaces: JSON strings cannot hold raw ones).
    fn next_element(&mut self) -> anyhow::Result<Option<Item>> {
        let found = self.skip_blanks()?;
        match (self.array, found) {
            (Array::Closed, None) => return Ok(None),
            (Array::Closed, Some(_)) => self.fail("something follows the JSON array")?,
            (_, None) => self.fail("the JSON array is not closed with `]`")?,
            (Array::First | Array::AfterEvent, Some(b']')) => {
                self.advance(1);
                self.array = Array::Closed;
                return self.next_element();
            }
            (Array::AfterEvent, Some(b',')) => {
                self.advance(1);
                self.array = Array::Next;
                return self.next_element();
            }
            (Array::AfterEvent, Some(_)) => self.fail("expected `,` or `]` after an event")?,
            (Array::Next, Some(b']')) => self.fail("expected an event after `,`")?,
            (Array::First | Array::Next, Some(_)) => {}
            (Array::No, _) => unreachable!("next_element is called inside an array"),
        }
        let line = self.line + 1;
        let mut bytes = Vec::new();
        let size = self.read_element(&mut bytes)?;
        self.array = Array::AfterEvent;
        let event = if size > self.max_event_bytes {
            Err(too_large(size))
        } else {
            Ok(bytes)
        };
        Ok(Some(Item { line, event }))
    }

    /// Reads one JSON value, tracking strings and nesting only far enough to
    /// find where it ends; whether it is valid JSON is the server's to say.
    /// Keeps at most `max_event_bytes` + 1 bytes; returns its whole size.
    fn read_element(&mut self, bytes: &mut Vec<u8>) -> std::io::Result<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        let mut size = 0;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let mut taken = 0;
            let mut done = false;
            for &byte in available {
                if !in_string && depth == 0 && size > 0 && matches!(byte, b',' | b']')
                    || !in_string && depth == 0 && byte.is_ascii_whitespace()
                {
                    // The end of a bare value (a number, `true`…): not part of it.
                    done = true;
                    break;
                }
                taken += 1;
                size += 1;
                let closes = if in_string {
                    match (escaped, byte) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                    !in_string && depth == 0
                } else {
                    match byte {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    depth == 0 && matches!(byte, b'}' | b']')
                };
                if byte == b'\n' {
                    self.line += 1;
                }
                if bytes.len() <= self.max_event_bytes {
                    bytes.push(if matches!(byte, b'\n' | b'\r') {
                        b' '
                    } else {
                        byte
                    });
                }
                if closes {
                    done = true;
                    break;
                }
            }
            self.input.consume(taken);
            self.position += taken as u64;
            if done {
                break;
            }
        }
        Ok(size)
    }

    /// Consumes blanks (counting newlines); the next byte, if any.
    fn skip_blanks(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let available = self.input.fill_buf()?;
            let Some(&first) = available.first() else {
                return Ok(None);
            };
            let blanks = available
                .iter()
                .take_while(|byte| byte.is_ascii_whitespace())
                .count();
            if blanks == 0 {
                return Ok(Some(first));
            }
            self.line += available[..blanks].iter().filter(|&&b| b == b'\n').count() as u64;
            self.advance(blanks);
        }
    }

    fn advance(&mut self, bytes: usize) {
        self.input.consume(bytes);
        self.position += bytes as u64;
    }

    fn fail(&self, what: &str) -> anyhow::Result<()> {
        bail!("line {}: not a JSON array of events: {what}", self.line + 1)
    }
}

fn too_large(size: usize) -> Refusal {
    Refusal {
        code: "event_too_large",
        message: format!("{size} bytes is more than one request may carry (--batch-bytes)"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn input(text: &[u8]) -> Input {
        Box::new(std::io::Cursor::new(text.to_vec()))
    }

    /// (line, event or refusal code, offset after it) of every item.
    fn split(text: &[u8], format: Format, max: usize) -> Vec<(u64, String, u64)> {
        let mut splitter = Splitter::from_start(input(text), format, max).unwrap();
        let mut items = Vec::new();
        while let Some(item) = splitter.next().unwrap() {
            let event = match item.event {
                Ok(bytes) => String::from_utf8(bytes).unwrap(),
                Err(refusal) => refusal.code.to_owned(),
            };
            items.push((item.line, event, splitter.position()));
        }
        items
    }

    #[test]
    fn ndjson_lines_keep_their_numbers_and_skip_blanks() {
        let text =
            b"{\"message\":\"a\"}\r\n\n  \n{\"message\":\"b\"}\nnot json\n{\"message\":\"c\"}";
        assert_eq!(
            split(text, Format::Ndjson, 100),
            [
                (1, r#"{"message":"a"}"#.to_owned(), 17),
                (4, r#"{"message":"b"}"#.to_owned(), 37),
                (5, "not json".to_owned(), 46),
                (6, r#"{"message":"c"}"#.to_owned(), 61),
            ]
        );
    }

    #[test]
    fn oversized_and_non_utf8_lines_are_refused_and_skipped() {
        let mut text = b"short\n".to_vec();
        text.extend([b'x'; 50]);
        text.extend(b"\n\xff\xfe\nafter\n");
        let format = Format::Lines {
            service: "svc".into(),
        };
        let items = split(&text, format, 20);
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].1, r#"{"service":"svc","message":"short"}"#);
        assert_eq!((items[1].0, items[1].1.as_str()), (2, "event_too_large"));
        assert_eq!((items[2].0, items[2].1.as_str()), (3, "invalid_utf8"));
        assert_eq!(items[3].0, 4);
        assert_eq!(items[3].2, text.len() as u64);
    }

    #[test]
    fn text_lines_starting_with_a_bracket_are_not_an_array() {
        let format = Format::Lines {
            service: "apache".into(),
        };
        let items = split(b"[Sun Dec 04] notice \"x\"\r\n", format, 100);
        assert_eq!(
            items,
            [(
                1,
                r#"{"service":"apache","message":"[Sun Dec 04] notice \"x\""}"#.to_owned(),
                25
            )]
        );
    }

    #[test]
    fn a_json_array_yields_its_elements_as_lines() {
        let text = b"\n [\n  {\"message\": \"a, ]\\\" {\",\n   \"n\": [1, {}]},\n  {\"message\":\"b\"}, 7 ,\"s\"\n]\n\n";
        assert_eq!(
            split(text, Format::Ndjson, 100),
            [
                (
                    3,
                    r#"{"message": "a, ]\" {",    "n": [1, {}]}"#.to_owned(),
                    46
                ),
                (5, r#"{"message":"b"}"#.to_owned(), 65),
                (5, "7".to_owned(), 68),
                (5, r#""s""#.to_owned(), 73),
            ]
        );
        assert!(split(b"[]", Format::Ndjson, 100).is_empty());
    }

    #[test]
    fn a_resumed_array_continues_after_its_last_event() {
        let text = b"[{\"message\":\"a\"},\n{\"message\":\"b\"}]";
        let mut input = input(text);
        std::io::copy(&mut (&mut input).take(16), &mut std::io::sink()).unwrap();
        let mut splitter = Splitter::resumed(input, Format::Ndjson, 100, 16, 0, true);
        let item = splitter.next().unwrap().unwrap();
        assert_eq!(
            (item.line, item.event.unwrap()),
            (2, br#"{"message":"b"}"#.to_vec())
        );
        assert!(splitter.next().unwrap().is_none());
    }

    #[test]
    fn a_broken_array_is_an_error_with_its_line() {
        for (text, expected) in [
            (
                &b"[{\"m\":1}\n{\"m\":2}]"[..],
                "line 2: not a JSON array of events: expected `,`",
            ),
            (
                b"[{\"m\":1},\n]",
                "line 2: not a JSON array of events: expected an event",
            ),
            (
                b"[{\"m\":1}",
                "line 1: not a JSON array of events: the JSON array is not closed",
            ),
            (
                b"[{\"m\":1}]\n{}",
                "line 2: not a JSON array of events: something follows",
            ),
        ] {
            let mut splitter = Splitter::from_start(input(text), Format::Ndjson, 100).unwrap();
            let error = loop {
                match splitter.next() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("no error for {text:?}"),
                    Err(error) => break error.to_string(),
                }
            };
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    fn an_oversized_array_element_is_refused_without_being_kept() {
        let text = format!(
            "[{{\"message\":\"{}\"}},{{\"message\":\"ok\"}}]",
            "x".repeat(200)
        );
        let items = split(text.as_bytes(), Format::Ndjson, 50);
        assert_eq!(items[0].1, "event_too_large");
        assert_eq!(items[1].1, r#"{"message":"ok"}"#);
    }
}
