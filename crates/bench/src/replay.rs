//! `logbook bench ingest --ndjson FILE`: a file of events (one JSON object a line, as
//! `logbook bench dataset` writes) sent as it is, read while it is sent. A thread cuts
//! the file into request bodies and hands them over a bounded channel, so a
//! multi-gigabyte dataset never sits in memory and reading overlaps sending.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::{Mutex, mpsc};

/// The read buffer of the file.
const READ_BUFFER: usize = 1 << 20;

/// A request body of whole lines and how many events it holds.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) body: Bytes,
    pub(crate) events: usize,
}

/// The bodies the reader thread made, shared by the sending connections.
#[derive(Clone)]
pub(crate) struct Replay {
    receiver: Arc<Mutex<mpsc::Receiver<anyhow::Result<Chunk>>>>,
}

impl Replay {
    /// Opens `path` and starts reading it into bodies of `batch` events, at most
    /// `max_events` in all, keeping up to `ahead` bodies ready. The thread stops at
    /// the end of the file, at the budget, or when every [`Replay`] is dropped.
    pub(crate) fn start(
        path: &Path,
        batch: usize,
        max_events: Option<u64>,
        ahead: usize,
    ) -> anyhow::Result<Replay> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let (sender, receiver) = mpsc::channel(ahead.max(1));
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("bench-replay".to_owned())
            .spawn(move || {
                let reader = BufReader::with_capacity(READ_BUFFER, file);
                let mut budget = max_events.unwrap_or(u64::MAX);
                let mut chunks = Chunks::new(reader, batch);
                while budget > 0 {
                    let chunk = match chunks.next() {
                        None => break,
                        Some(Ok(chunk)) => chunk.truncated(budget),
                        Some(Err(error)) => {
                            let error =
                                anyhow::Error::new(error).context(format!("cannot read {name}"));
                            let _ = sender.blocking_send(Err(error));
                            break;
                        }
                    };
                    budget -= chunk.events as u64;
                    if sender.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the file reader")?;
        Ok(Replay {
            receiver: Arc::new(Mutex::new(receiver)),
        })
    }

    /// The next body, or `None` once the file (or the budget) is used up.
    pub(crate) async fn next(&self) -> Option<anyhow::Result<Chunk>> {
        self.receiver.lock().await.recv().await
    }
}

impl Chunk {
    /// The first `events` lines only (all of them if it has no more).
    fn truncated(self, events: u64) -> Chunk {
        if events >= self.events as u64 {
            return self;
        }
        let events = events as usize;
        let end = match events {
            0 => 0,
            n => self
                .body
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 1)
                .map_or(0, |(at, _)| at + 1),
        };
        Chunk {
            body: self.body.slice(..end),
            events,
        }
    }
}

/// Bodies of `batch` non-blank lines read from a buffered reader, each line ending
/// in a newline (one is added to a last line without).
pub(crate) struct Chunks<R> {
    reader: R,
    batch: usize,
    /// The body size seen last, to allocate the next one at once.
    last_len: usize,
    done: bool,
}

impl<R: std::io::BufRead> Chunks<R> {
    pub(crate) fn new(reader: R, batch: usize) -> Self {
        Chunks {
            reader,
            batch: batch.max(1),
            last_len: 0,
            done: false,
        }
    }
}

impl<R: std::io::BufRead> Iterator for Chunks<R> {
    type Item = std::io::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut body = Vec::with_capacity(self.last_len + self.last_len / 8);
        let mut events = 0;
        while events < self.batch {
            let start = body.len();
            match self.reader.read_until(b'\n', &mut body) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
            if body[start..].iter().all(u8::is_ascii_whitespace) {
                body.truncate(start);
                continue;
            }
            if body.last() != Some(&b'\n') {
                body.push(b'\n');
            }
            events += 1;
        }
        self.last_len = self.last_len.max(body.len());
        (events > 0).then(|| {
            Ok(Chunk {
                body: Bytes::from(body),
                events,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunks(text: &str, batch: usize) -> Vec<(String, usize)> {
        Chunks::new(text.as_bytes(), batch)
            .map(|chunk| {
                let chunk = chunk.unwrap();
                (
                    String::from_utf8(chunk.body.to_vec()).unwrap(),
                    chunk.events,
                )
            })
            .collect()
    }

    #[test]
    fn lines_become_bodies_of_a_batch_each() {
        let text = "{\"a\":1}\n{\"a\":2}\n\n  \n{\"a\":3}\r\n{\"a\":4}";
        assert_eq!(
            chunks(text, 2),
            [
                ("{\"a\":1}\n{\"a\":2}\n".to_owned(), 2),
                ("{\"a\":3}\r\n{\"a\":4}\n".to_owned(), 2)
            ]
        );
        assert_eq!(chunks(text, 3)[1], ("{\"a\":4}\n".to_owned(), 1));
        assert!(chunks("", 3).is_empty());
        assert!(chunks("\n\n", 3).is_empty());
    }

    #[test]
    fn truncation_keeps_whole_lines() {
        let chunk = Chunk {
            body: Bytes::from_static(b"a\nb\nc\n"),
            events: 3,
        };
        let cut = chunk.truncated(2);
        assert_eq!((cut.body.as_ref(), cut.events), (&b"a\nb\n"[..], 2));
        let none = cut.truncated(0);
        assert_eq!((none.body.as_ref(), none.events), (&b""[..], 0));
    }

    #[tokio::test]
    async fn a_file_is_read_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let lines: String = (0..25).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        std::fs::write(&path, lines).unwrap();

        let read_all = |max: Option<u64>| {
            let path = path.clone();
            async move {
                let replay = Replay::start(&path, 10, max, 1).unwrap();
                let mut counts = Vec::new();
                while let Some(chunk) = replay.next().await {
                    counts.push(chunk.unwrap().events);
                }
                counts
            }
        };
        assert_eq!(read_all(None).await, [10, 10, 5]);
        assert_eq!(read_all(Some(12)).await, [10, 2]);
        assert_eq!(read_all(Some(20)).await, [10, 10]);
        assert!(read_all(Some(0)).await.is_empty());
        assert!(Replay::start(&dir.path().join("missing"), 10, None, 1).is_err());
    }

    /// The client's own ceiling with a dataset file: cutting it into bodies alone, then
    /// sending it over 8 connections to a server that only counts the lines. A
    /// measurement, not a check, so ignored: run it on a release build with
    /// `LOGBOOK_BENCH_DATASET=file.ndjson cargo test --release -p bench client_ceiling
    /// -- --ignored --nocapture` (without the variable, 1M generated events are used).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement"]
    async fn client_ceiling() {
        use crate::ingest::{IngestArgs, run_ingest};
        use crate::test_server::{Reply, serve};
        use std::time::Instant;

        let dir = tempfile::tempdir().unwrap();
        let path = match std::env::var_os("LOGBOOK_BENCH_DATASET") {
            Some(path) => path.into(),
            None => {
                let path = dir.path().join("events.ndjson");
                let sources = crate::events::Source::generated(20_000, 1);
                let mut dataset =
                    crate::dataset::Dataset::new(&sources, 1_000_000, 1.0, 1 << 40, 1).unwrap();
                let mut out = Vec::new();
                while dataset.write_next(&mut out).unwrap().is_some() {}
                std::fs::write(&path, out).unwrap();
                path
            }
        };

        let started = Instant::now();
        let file = BufReader::with_capacity(READ_BUFFER, File::open(&path).unwrap());
        let events: usize = Chunks::new(file, 1000).map(|c| c.unwrap().events).sum();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "reading alone: {events} events in {seconds:.2} s, {:.0} events/s",
            events as f64 / seconds
        );

        let server = serve(|_, body| {
            let lines = body.iter().filter(|&&b| b == b'\n').count();
            Reply::new(202, format!(r#"{{"accepted":{lines},"rejected":0}}"#))
        })
        .await;
        let report = run_ingest(&IngestArgs {
            url: format!("http://{}", server.addr),
            key: None,
            connections: 8,
            batch: 1000,
            duration: None,
            events: None,
            files: Vec::new(),
            ndjson: Some(path),
            wait_drained: false,
            admin_password: None,
            admin_user: "admin".to_owned(),
            json: false,
            quiet: true,
            audit: false,
            protocol: crate::Protocol::Ndjson,
        })
        .await
        .unwrap();
        println!("against a counting server:\n{report}");
        assert_eq!(report.events_accepted as usize, events);
    }
}
