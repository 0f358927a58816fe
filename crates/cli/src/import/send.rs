//! Sends one batch to `POST /v1/logs` and reads the answer event by event:
//! waits out `429` and `503` as `Retry-After` says (a bounded number of
//! times), counts a `400 invalid_events` as every event refused, and stops
//! on any other answer with what the server said.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bench::client::{HttpClient, Response};
use bytes::Bytes;
use serde_json::Value;

use super::batch::Batch;

/// The longest one wait for `Retry-After` may be, whatever the server says.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Where batches go: the server, or a script in tests.
pub trait Transport {
    /// Posts one NDJSON body.
    async fn post(&mut self, body: Bytes) -> anyhow::Result<Response>;

    /// Waits before trying again.
    async fn pause(&mut self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

impl Transport for HttpClient {
    async fn post(&mut self, body: Bytes) -> anyhow::Result<Response> {
        HttpClient::post(self, "/v1/logs", "application/x-ndjson", body).await
    }
}

/// One event the server refused: its input line, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub code: String,
    pub message: String,
}

/// The server's answer to one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: u64,
    pub rejected: Vec<Rejected>,
}

/// Posts `batch` until the server answers it, trying at most `max_attempts`
/// times when it answers `429` or `503`.
pub async fn send(
    transport: &mut impl Transport,
    batch: &Batch,
    max_attempts: u32,
) -> anyhow::Result<Outcome> {
    let body = Bytes::copy_from_slice(&batch.body);
    let mut attempt = 1;
    loop {
        let response = transport.post(body.clone()).await.context(
            "the request failed; the server may or may not have accepted this batch, \
             which --resume sends again",
        )?;
        match response.status {
            202 => return outcome(batch, &response.json()?),
            400 if code(&response).as_deref() == Some("invalid_events") => {
                return outcome(batch, &response.json()?);
            }
            429 | 503 if attempt < max_attempts => {
                transport.pause(retry_after(&response, attempt)).await;
                attempt += 1;
            }
            429 | 503 => bail!(
                "{}; gave up after {attempt} attempts (--max-attempts)",
                describe(&response)
            ),
            413 => bail!(
                "{}: lower --batch-bytes or --batch-size below the server's limits",
                describe(&response)
            ),
            401 | 403 => bail!(
                "{}: pass an API key with logs:write as --key or LOGBOOK_KEY",
                describe(&response)
            ),
            _ => bail!("{}", describe(&response)),
        }
    }
}

/// What the answer says of each event of the batch.
fn outcome(batch: &Batch, answer: &Value) -> anyhow::Result<Outcome> {
    let sent = batch.lines.len();
    let accepted = answer["accepted"].as_u64().unwrap_or(0);
    let mut rejected = Vec::new();
    for error in answer["errors"].as_array().into_iter().flatten() {
        let index = error["index"]
            .as_u64()
            .and_then(|index| usize::try_from(index).ok());
        let Some((index, &line)) = index.and_then(|index| Some((index, batch.lines.get(index)?)))
        else {
            bail!("the server answered for an event this batch does not have: {error}");
        };
        let code = error["code"].as_str().unwrap_or("rejected").to_owned();
        let message = error["message"].as_str().unwrap_or_default();
        // The server numbers the lines of its body, one per event here.
        let body_line = format!("malformed JSON at line {}, ", index + 1);
        let message = match message.strip_prefix(&body_line) {
            Some(rest) => format!("malformed JSON at {rest}"),
            None => message.to_owned(),
        };
        rejected.push(Rejected {
            line,
            code,
            message,
        });
    }
    if accepted as usize + rejected.len() != sent {
        bail!(
            "the server answered for {accepted} accepted and {} rejected events of the {sent} sent",
            rejected.len()
        );
    }
    Ok(Outcome { accepted, rejected })
}

/// How long to wait before the next attempt: `Retry-After` in seconds, else
/// 1 s doubling with each attempt; at most [`MAX_WAIT`].
fn retry_after(response: &Response, attempt: u32) -> Duration {
    let asked = response
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match asked {
        Some(seconds) => Duration::from_secs(seconds),
        None => Duration::from_secs(1 << attempt.saturating_sub(1).min(6)),
    }
    .min(MAX_WAIT)
}

/// The `code` of an error answer.
fn code(response: &Response) -> Option<String> {
    let body = response.json().ok()?;
    body["code"].as_str().map(str::to_owned)
}

/// `the server answered 503 queue_full: the queue is full`.
fn describe(response: &Response) -> String {
    match response.json() {
        Ok(body) => format!(
            "the server answered {} {}: {}",
            response.status,
            body["code"].as_str().unwrap_or("?"),
            body["message"].as_str().unwrap_or_default()
        ),
        Err(_) => format!(
            "the server answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).trim()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::VecDeque;

    /// Answers from a script; counts the bodies it was sent and adds up the waits.
    struct Script {
        answers: VecDeque<(u16, Option<&'static str>, Value)>,
        posted: usize,
        waited: Duration,
    }

    impl Script {
        fn new(answers: impl IntoIterator<Item = (u16, Option<&'static str>, Value)>) -> Script {
            Script {
                answers: answers.into_iter().collect(),
                posted: 0,
                waited: Duration::ZERO,
            }
        }
    }

    impl Transport for Script {
        async fn post(&mut self, _body: Bytes) -> anyhow::Result<Response> {
            self.posted += 1;
            let (status, retry_after, body) = self.answers.pop_front().unwrap();
            let mut response = Response {
                status,
                headers: Default::default(),
                body: body.to_string().into(),
            };
            if let Some(seconds) = retry_after {
                response
                    .headers
                    .insert("retry-after", seconds.parse().unwrap());
            }
            Ok(response)
        }

        async fn pause(&mut self, duration: Duration) {
            self.waited += duration;
        }
    }

    fn batch(lines: &[u64]) -> Batch {
        Batch {
            body: lines
                .iter()
                .map(|_| "{}\n")
                .collect::<String>()
                .into_bytes(),
            lines: lines.to_vec(),
            ..Batch::default()
        }
    }

    fn accepted(count: u64) -> (u16, Option<&'static str>, Value) {
        (
            202,
            None,
            json!({"accepted": count, "rejected": 0, "ids": []}),
        )
    }

    fn error(status: u16, code: &str) -> Value {
        json!({"status": status, "code": code, "message": format!("{code} says no")})
    }

    #[tokio::test]
    async fn busy_answers_are_retried_as_retry_after_says() {
        let mut script = Script::new([
            (503, Some("30"), error(503, "queue_full")),
            (429, None, error(429, "rate_limited")),
            (429, Some("600"), error(429, "rate_limited")),
            accepted(2),
        ]);
        let outcome = send(&mut script, &batch(&[1, 2]), 4).await.unwrap();
        assert_eq!(
            outcome,
            Outcome {
                accepted: 2,
                rejected: vec![]
            }
        );
        assert_eq!(script.posted, 4);
        // 30 s asked, 2 s of backoff for the second attempt without a header, 600 s capped at 60.
        assert_eq!(script.waited, Duration::from_secs(30 + 2 + 60));
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let mut script = Script::new((0..3).map(|_| (503, Some("1"), error(503, "server_busy"))));
        let message = send(&mut script, &batch(&[1]), 3)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(script.posted, 3);
        assert!(
            message.contains("503 server_busy: server_busy says no"),
            "{message}"
        );
        assert!(message.contains("gave up after 3 attempts"), "{message}");
    }

    #[tokio::test]
    async fn other_errors_stop_at_once_with_what_the_server_said() {
        for (status, code, hint) in [
            (500, "internal", ""),
            (401, "unauthorized", "--key"),
            (413, "body_too_large", "--batch-bytes"),
            (400, "malformed_json", ""),
        ] {
            let mut script = Script::new([(status, None, error(status, code)), accepted(1)]);
            let message = send(&mut script, &batch(&[1]), 5)
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(script.posted, 1);
            assert!(
                message.contains(&format!("answered {status} {code}")),
                "{message}"
            );
            assert!(message.contains(hint), "{message}");
        }
    }

    #[tokio::test]
    async fn refused_events_are_named_by_their_input_line() {
        let mut script = Script::new([(
            202,
            None,
            json!({"accepted": 1, "rejected": 2, "ids": ["x"], "errors": [
                {"index": 1, "line": 2, "code": "malformed_json",
                 "message": "malformed JSON at line 2, column 3: expected value"},
                {"index": 2, "line": 3, "code": "invalid_level", "message": "unknown level \"loud\""},
            ]}),
        )]);
        let outcome = send(&mut script, &batch(&[10, 11, 15]), 1).await.unwrap();
        assert_eq!(outcome.accepted, 1);
        assert_eq!(
            outcome.rejected,
            [
                Rejected {
                    line: 11,
                    code: "malformed_json".into(),
                    message: "malformed JSON at column 3: expected value".into(),
                },
                Rejected {
                    line: 15,
                    code: "invalid_level".into(),
                    message: "unknown level \"loud\"".into(),
                },
            ]
        );

        // No event valid: 400 invalid_events with the same list.
        let mut body = error(400, "invalid_events");
        body["errors"] = json!([{"index": 0, "code": "missing_message", "message": "m"}]);
        let mut script = Script::new([(400, None, body)]);
        let outcome = send(&mut script, &batch(&[7]), 1).await.unwrap();
        assert_eq!((outcome.accepted, outcome.rejected[0].line), (0, 7));
    }

    #[tokio::test]
    async fn an_answer_that_does_not_add_up_is_an_error() {
        let mut script = Script::new([accepted(1)]);
        assert!(send(&mut script, &batch(&[1, 2]), 1).await.is_err());
        let mut script = Script::new([(
            202,
            None,
            json!({"accepted": 0, "rejected": 1, "errors": [{"index": 5, "code": "x", "message": ""}]}),
        )]);
        assert!(send(&mut script, &batch(&[1]), 1).await.is_err());
    }
}
