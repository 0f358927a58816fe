//! A client of Server-Sent Events over the small HTTP client: what
//! `logbook tail`, `logbook bench tail` and the tests read a live tail with.

use anyhow::{Context as _, bail};

use crate::client::{HttpClient, StreamingResponse, body_excerpt};

/// The longest event (all its `data` lines) a stream accepts.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// An open event stream.
pub struct SseStream {
    response: StreamingResponse,
    /// Bytes received and not yet parsed into events.
    pending: Vec<u8>,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").finish_non_exhaustive()
    }
}

impl SseStream {
    /// Sends `GET path_and_query` with `Accept: text/event-stream` over
    /// `client` and returns the stream once its head arrived; an answer
    /// other than 200 is an error quoting the server's message.
    pub async fn open(client: HttpClient, path_and_query: &str) -> anyhow::Result<SseStream> {
        let mut response = client
            .get_streaming_with(path_and_query, &[("accept", "text/event-stream")])
            .await?;
        if response.status != 200 {
            let mut body = Vec::new();
            while body.len() < 4096
                && let Some(chunk) = response.chunk().await?
            {
                body.extend_from_slice(&chunk);
            }
            bail!(
                "the server answered {}: {}",
                response.status,
                body_excerpt(&body)
            );
        }
        Ok(SseStream {
            response,
            pending: Vec::new(),
        })
    }

    /// The next event (comments are skipped); `None` when the server ended the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(end) = find_event_end(&self.pending) {
                let block: Vec<u8> = self.pending.drain(..end).collect();
                if let Some(event) = parse_event(&block)? {
                    return Ok(Some(event));
                }
                continue;
            }
            if self.pending.len() > MAX_EVENT_BYTES {
                bail!("an event of the stream is larger than {MAX_EVENT_BYTES} bytes");
            }
            match self.response.chunk().await? {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// Where the first complete event block ends (after its blank line).
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|at| at + 2)
}

/// Reads one block of lines; `None` for a block of comments only.
fn parse_event(block: &[u8]) -> anyhow::Result<Option<SseEvent>> {
    let text = std::str::from_utf8(block).context("the event stream is not UTF-8")?;
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    Ok(data.map(|data| SseEvent {
        event: event.unwrap_or_else(|| "message".to_owned()),
        data,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_events_and_comments_are_skipped() {
        let parsed = parse_event(b"event: dropped\ndata: {\"dropped\":3}\n\n").unwrap();
        assert_eq!(
            parsed,
            Some(SseEvent {
                event: "dropped".to_owned(),
                data: "{\"dropped\":3}".to_owned()
            })
        );
        let parsed = parse_event(b"data: a\ndata:b\n\n").unwrap();
        assert_eq!(parsed.unwrap().data, "a\nb");
        assert_eq!(parse_event(b": keep-alive\n\n").unwrap(), None);
        assert_eq!(find_event_end(b"data: x\n\ndata: y"), Some(9));
    }
}
