//! `logbook verify --export` and `--url`: checks an export (`GET /v1/audit/export`) as it
//! streams by, line by line, holding O(log n) tree state rather than the export.
//!
//! A file is read through a buffer; a server's export is read from the HTTP response body
//! as it arrives, handed chunk by chunk through a small channel to the blocking
//! verification. An export of format 2 carries the leaf hash the server recorded for each
//! event on the line before it: verification rebuilds their tree beside the events' own
//! (O(log n) more hashes), and when it has the signed root while the events' does not,
//! the first event whose hash differs from its recorded one is named exactly. A format 1
//! export has no such lines: an altered event in it is placed in a range. A format 3
//! export is a format 2 export of a trail whose first `pruned` events (its header says
//! how many) were pruned: each of those has its leaf-hash line and no event line, and is
//! checked by that hash.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::Context as _;
use audit::{AuditError, Checkpoint, Expectations, Hash, Leaf, VerifyReport, VerifyingKey};
use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

use super::progress_bar;

/// The newest export format this verifier reads: 3 starts with the leaf-hash lines of
/// pruned events; 2 has a leaf-hash line before each event; 1 (a header without
/// `format`) has the events alone.
const NEWEST_FORMAT: u32 = 3;

/// The first line of an export.
#[derive(serde::Deserialize)]
struct ExportHeader {
    #[serde(default = "first_format")]
    format: u32,
    tenant: String,
    size: u64,
    checkpoint: String,
    /// How many events, from the first, are pruned (format 3).
    #[serde(default)]
    pruned: u64,
}

fn first_format() -> u32 {
    1
}

/// How a leaf-hash line of a format 2 export starts; no event line starts so.
const LEAF_HASH_LINE: &[u8] = br#"{"leaf_hash":"#;

/// A leaf-hash line: `{"leaf_hash":"<64 hex digits>"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LeafHashLine {
    leaf_hash: String,
}

/// What checking an export found.
pub(super) struct ExportOutcome {
    /// The tenant the export was checked as.
    pub(super) tenant: String,
    pub(super) report: VerifyReport,
}

/// Where an export comes from, for error messages.
pub(super) struct Source {
    name: String,
    reader: Box<dyn BufRead + Send>,
}

/// Opens an export file.
pub(super) fn open_file(path: &std::path::Path) -> anyhow::Result<Source> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        reader: Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
    })
}

/// Chunks of the body in flight between the network and the verification.
const CHANNEL_CHUNKS: usize = 16;

/// Starts fetching a running server's export; its body is read as verification proceeds.
pub(super) async fn open_url(url: &str, token: Option<&str>) -> anyhow::Result<Source> {
    let token = token.context("--url needs --key (or LOGBOOK_KEY) with audit:read")?;
    let client = bench::client::HttpClient::connect(url)
        .await?
        .with_token(Some(token))?;
    let mut response = client.get_streaming("/v1/audit/export").await?;
    if response.status != 200 {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await?
            && body.len() < 4096
        {
            body.extend_from_slice(&chunk);
        }
        anyhow::bail!(
            "the server answered {}: {}",
            response.status,
            String::from_utf8_lossy(&body)
        );
    }
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        loop {
            let item = match response.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => return,
                Err(error) => Err(std::io::Error::other(format!("{error:#}"))),
            };
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(Source {
        name: url.to_owned(),
        reader: Box::new(ChannelReader {
            receiver,
            chunk: Bytes::new(),
        }),
    })
}

/// A blocking reader over body chunks sent by an async task. Use from a blocking thread.
struct ChannelReader {
    receiver: mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.chunk.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => break,
            }
        }
        Ok(&self.chunk)
    }

    fn consume(&mut self, amount: usize) {
        self.chunk.advance(amount);
    }
}

/// The non-empty lines of a reader, without their `\n`, one at a time.
struct Lines {
    source: Source,
}

impl Iterator for Lines {
    type Item = Result<Vec<u8>, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut line = Vec::new();
            match self.source.reader.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if !line.is_empty() {
                        return Some(Ok(line));
                    }
                }
                Err(source) => {
                    return Some(Err(AuditError::Io {
                        action: "read",
                        path: PathBuf::from(&self.source.name),
                        source,
                    }));
                }
            }
        }
    }
}

/// The events of an export, without its leaf-hash lines: first its pruned events, each
/// as the hash of its leaf-hash line, then the others. Each event's recorded hash (the
/// leaf-hash line just before it, if well-formed) is left in `recorded` with the event's
/// position as the event is handed out, where verification looks it up right away.
struct Events<'a> {
    lines: Lines,
    /// Whether the export has leaf-hash lines (format 2 and up).
    hashed: bool,
    /// Pruned events still to read.
    pruned: u64,
    /// The hash of the last leaf-hash line, for the event that follows it.
    pending: Option<Hash>,
    recorded: &'a Cell<Option<(u64, Hash)>>,
    position: u64,
}

impl Iterator for Events<'_> {
    type Item = Result<Leaf, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(error) => return Some(Err(error)),
            };
            if self.pruned > 0 {
                self.pruned -= 1;
                self.position += 1;
                self.recorded.set(None);
                // Anything but a leaf-hash line here is taken as an event, which the
                // checkpoints then find out of place.
                let hash = serde_json::from_slice::<LeafHashLine>(&line)
                    .ok()
                    .and_then(|line| parse_hex(&line.leaf_hash));
                return Some(Ok(hash.map_or(Leaf::Body(line), Leaf::Pruned)));
            }
            if self.hashed && line.starts_with(LEAF_HASH_LINE) {
                // A malformed one leaves its event without a recorded hash: the recorded
                // hashes then cannot be proven, and only a range is named.
                self.pending = serde_json::from_slice::<LeafHashLine>(&line)
                    .ok()
                    .and_then(|line| parse_hex(&line.leaf_hash));
                continue;
            }
            let recorded = self.pending.take().map(|hash| (self.position, hash));
            self.recorded.set(recorded);
            self.position += 1;
            return Some(Ok(Leaf::Body(line)));
        }
    }
}

/// Checks an export: its header's checkpoint and every event line after it, which must
/// end at the checkpoint's size. The tenant is `tenant` if given, else the trusted
/// checkpoint's, else the header's; the header, the checkpoint and every event must name
/// it. Blocking: run it on a blocking thread for a [`open_url`] source.
pub(super) fn verify_export(
    source: Source,
    key: &VerifyingKey,
    tenant: Option<&str>,
    trusted: Option<&Checkpoint>,
) -> anyhow::Result<ExportOutcome> {
    let mut lines = Lines { source };
    let first = lines
        .next()
        .context("the export is empty")?
        .context("cannot read the export")?;
    let header: ExportHeader =
        serde_json::from_slice(&first).context("the export's first line is not its header")?;
    anyhow::ensure!(
        header.format <= NEWEST_FORMAT,
        "the export is in format {}, newer than this logbook reads (1 to {NEWEST_FORMAT}): \
         verify it with a newer logbook",
        header.format
    );
    let tenant = tenant
        .or(trusted.map(|trusted| trusted.tenant.as_str()))
        .unwrap_or(&header.tenant)
        .to_owned();
    if header.tenant != tenant {
        let report = VerifyReport::Broken {
            seq: 0,
            kind: audit::BreakKind::WrongTenant,
            detail: format!(
                "the export's header names tenant {:?}, not {tenant:?}",
                header.tenant
            ),
        };
        return Ok(ExportOutcome { tenant, report });
    }
    let progress = progress_bar(header.size);
    let hashed = header.format >= 2;
    let recorded = Cell::new(None);
    let recorded_hash = |seq: u64| {
        recorded
            .get()
            .filter(|(position, _)| *position == seq)
            .map(|(_, hash)| hash)
    };
    let leaves = Events {
        lines,
        hashed,
        pruned: if hashed { header.pruned } else { 0 },
        pending: None,
        recorded: &recorded,
        position: 0,
    };
    let expect = Expectations {
        key,
        tenant: &tenant,
        trusted,
        signed_only: true,
        stored_hashes: hashed.then_some(&recorded_hash as &dyn Fn(u64) -> Option<Hash>),
    };
    let report = audit::verify_trail(leaves, &[header.checkpoint], &expect, &mut |done| {
        progress.set_position(done)
    })?;
    progress.finish_and_clear();
    Ok(ExportOutcome { tenant, report })
}

/// A 32-byte hash from 64 hex digits.
fn parse_hex(text: &str) -> Option<Hash> {
    let mut hash = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}
