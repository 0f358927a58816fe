//! Cutting a TCP byte stream into syslog messages: octet counting
//! (`LEN SP MSG`, RFC 6587 and RFC 5425) when a message starts with digits
//! and a space, a newline at its end otherwise; decided per message.

use bytes::{Buf as _, BytesMut};
use tokio_util::codec::Decoder;

/// What the codec found next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One message, as sent (not yet checked to be UTF-8).
    Message(bytes::Bytes),
    /// A message longer than the limit, skipped; the stream goes on after it.
    TooLarge { size: usize },
}

/// A [`Decoder`] of syslog frames of at most `max_message` bytes.
#[derive(Debug)]
pub struct SyslogCodec {
    max_message: usize,
    /// Bytes still to skip of an oversized message, and whether it ends at a
    /// newline (else after a known count).
    skipping: Option<Skip>,
}

#[derive(Debug, Clone, Copy)]
enum Skip {
    ToNewline { seen: usize },
    Count { left: usize, size: usize },
}

/// The longest length prefix accepted: more digits than any limit needs.
const MAX_LENGTH_DIGITS: usize = 9;

impl SyslogCodec {
    pub fn new(max_message: usize) -> SyslogCodec {
        SyslogCodec {
            max_message,
            skipping: None,
        }
    }

    /// Goes on skipping an oversized message; `Some` once its end was seen.
    fn skip(&mut self, buffer: &mut BytesMut, skip: Skip) -> Option<Frame> {
        match skip {
            Skip::ToNewline { seen } => match buffer.iter().position(|byte| *byte == b'\n') {
                Some(end) => {
                    buffer.advance(end + 1);
                    self.skipping = None;
                    Some(Frame::TooLarge { size: seen + end })
                }
                None => {
                    let seen = seen + buffer.len();
                    buffer.clear();
                    self.skipping = Some(Skip::ToNewline { seen });
                    None
                }
            },
            Skip::Count { left, size } => {
                let taken = left.min(buffer.len());
                buffer.advance(taken);
                if taken == left {
                    self.skipping = None;
                    Some(Frame::TooLarge { size })
                } else {
                    self.skipping = Some(Skip::Count {
                        left: left - taken,
                        size,
                    });
                    None
                }
            }
        }
    }
}

impl Decoder for SyslogCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(skip) = self.skipping {
            match self.skip(buffer, skip) {
                Some(frame) => return Ok(Some(frame)),
                None => return Ok(None),
            }
        }
        // Blank lines between messages carry nothing.
        while matches!(buffer.first(), Some(b'\n' | b'\r')) {
            buffer.advance(1);
        }
        let Some(first) = buffer.first() else {
            return Ok(None);
        };
        if first.is_ascii_digit() {
            self.octet_counted(buffer)
        } else {
            Ok(self.newline_ended(buffer))
        }
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        match self.decode(buffer)? {
            Some(frame) => Ok(Some(frame)),
            // The stream ended inside an octet-counted message: its end
            // never came, so neither did the whole message.
            None if buffer.first().is_some_and(u8::is_ascii_digit) && self.skipping.is_none() => {
                buffer.clear();
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection ended inside an octet-counted message",
                ))
            }
            // A last message without its newline still counts.
            None if !buffer.is_empty() && self.skipping.is_none() => {
                let message = buffer.split().freeze();
                Ok(Some(Frame::Message(message)))
            }
            None => {
                buffer.clear();
                Ok(None)
            }
        }
    }
}

impl SyslogCodec {
    fn octet_counted(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        let digits = buffer
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let Some(separator) = buffer.get(digits) else {
            if digits > MAX_LENGTH_DIGITS {
                // Too many digits to be a count: a line that starts with a number.
                return Ok(self.newline_ended(buffer));
            }
            return Ok(None);
        };
        // Digits not followed by a space are not a count: a message (a line
        // starting with a date, say) framed by its newline, as rsyslog reads it.
        if *separator != b' ' || digits > MAX_LENGTH_DIGITS {
            return Ok(self.newline_ended(buffer));
        }
        let length: usize = std::str::from_utf8(&buffer[..digits])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| invalid("unreadable octet count"))?;
        if length > self.max_message {
            buffer.advance(digits + 1);
            let skip = Skip::Count {
                left: length,
                size: length,
            };
            return Ok(self.skip(buffer, skip));
        }
        if buffer.len() < digits + 1 + length {
            buffer.reserve(digits + 1 + length - buffer.len());
            return Ok(None);
        }
        buffer.advance(digits + 1);
        Ok(Some(Frame::Message(buffer.split_to(length).freeze())))
    }

    fn newline_ended(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        match buffer.iter().position(|byte| *byte == b'\n') {
            // The message is the line without its CR, if it has one.
            Some(end)
                if end - usize::from(end > 0 && buffer[end - 1] == b'\r') > self.max_message =>
            {
                buffer.advance(end + 1);
                Some(Frame::TooLarge { size: end })
            }
            Some(end) => {
                let line = buffer.split_to(end + 1);
                let mut line = line.freeze();
                line.truncate(end - usize::from(end > 0 && line[end - 1] == b'\r'));
                Some(Frame::Message(line))
            }
            None if buffer.len() > self.max_message => {
                let skip = Skip::ToNewline { seen: 0 };
                self.skip(buffer, skip)
            }
            None => None,
        }
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}
