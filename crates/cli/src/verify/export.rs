//! `logbook verify --export` and `--url`: checks an export (`GET /v1/audit/export`) as it
//! streams by, line by line, holding O(log n) tree state rather than the export.
//!
//! A file is read through a buffer; a server's export is read from the HTTP response body
//! as it arrives, handed chunk by chunk through a small channel to the blocking
//! verification. For `--url` the leaf hashes (32 bytes per event) are kept too, so that an
//! altered event can be named exactly with the server's consistency proofs.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::Context as _;
use audit::{AuditError, Checkpoint, Expectations, Hash, VerifyReport, VerifyingKey};
use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

use super::progress_bar;

/// The first line of an export.
#[derive(serde::Deserialize)]
struct ExportHeader {
    tenant: String,
    size: u64,
    checkpoint: String,
}

/// What checking an export found.
pub(super) struct ExportOutcome {
    /// The tenant the export was checked as.
    pub(super) tenant: String,
    pub(super) report: VerifyReport,
    /// The header's checkpoint, if validly signed and the tenant's.
    checkpoint: Option<Checkpoint>,
    /// Every leaf hash, in order, when asked for.
    hashes: Vec<Hash>,
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

/// Checks an export: its header's checkpoint and every event line after it, which must
/// end at the checkpoint's size. The tenant is `tenant` if given, else the trusted
/// checkpoint's, else the header's; the header, the checkpoint and every event must name
/// it. Blocking: run it on a blocking thread for a [`open_url`] source.
pub(super) fn verify_export(
    source: Source,
    key: &VerifyingKey,
    tenant: Option<&str>,
    trusted: Option<&Checkpoint>,
    keep_hashes: bool,
) -> anyhow::Result<ExportOutcome> {
    let mut lines = Lines { source };
    let first = lines
        .next()
        .context("the export is empty")?
        .context("cannot read the export")?;
    let header: ExportHeader =
        serde_json::from_slice(&first).context("the export's first line is not its header")?;
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
        return Ok(ExportOutcome {
            tenant,
            report,
            checkpoint: None,
            hashes: Vec::new(),
        });
    }
    let checkpoint = Checkpoint::verify(&header.checkpoint, key)
        .ok()
        .filter(|checkpoint| checkpoint.tenant == tenant);
    let progress = progress_bar(header.size);
    let mut hashes = Vec::new();
    let leaves = lines.inspect(|leaf| {
        if keep_hashes && let Ok(leaf) = leaf {
            hashes.push(audit::leaf_hash(leaf));
        }
    });
    let expect = Expectations {
        key,
        tenant: &tenant,
        trusted,
        signed_only: true,
        stored_hashes: None,
    };
    let report = audit::verify_trail(leaves, &[header.checkpoint], &expect, &mut |done| {
        progress.set_position(done)
    })?;
    progress.finish_and_clear();
    Ok(ExportOutcome {
        tenant,
        report,
        checkpoint,
        hashes,
    })
}

/// For an export from `url` whose checkpoint does not match its leaves, names the first
/// altered leaf exactly: a binary search for the longest prefix of the leaves that the
/// server's consistency proofs, each checked against the export's signed checkpoint, show
/// to be the signed one. The server cannot make an altered prefix pass (the proofs are
/// verified); if it answers wrongly it can only make the named leaf an earlier one. Keeps
/// the report as it is when the server cannot help.
pub(super) async fn name_altered_leaf(
    outcome: ExportOutcome,
    url: &str,
    token: Option<&str>,
) -> VerifyReport {
    let ExportOutcome {
        report,
        checkpoint,
        hashes,
        ..
    } = outcome;
    let intact = match &report {
        VerifyReport::Broken {
            seq,
            kind: audit::BreakKind::Altered,
            ..
        } => *seq,
        _ => return report,
    };
    let Some(checkpoint) = checkpoint else {
        return report;
    };
    let size = checkpoint.size;
    if intact >= size || (hashes.len() as u64) < size {
        return report;
    }
    match first_unproven(url, token, &hashes, intact, &checkpoint).await {
        Ok(seq) => VerifyReport::Broken {
            seq,
            kind: audit::BreakKind::Altered,
            detail: format!(
                "the checkpoint at size {size} does not match the leaves; leaf {seq} is the \
                 first the server's consistency proofs (checked against that checkpoint) \
                 cannot account for: leaves 0..{seq} are the signed ones"
            ),
        },
        Err(error) => {
            eprintln!("cannot narrow the altered leaf down with the server's proofs: {error:#}");
            report
        }
    }
}

/// The first leaf after `intact` whose prefix the server cannot prove consistent with
/// `checkpoint`; every prefix up to `intact` is known to be good, the whole is not.
async fn first_unproven(
    url: &str,
    token: Option<&str>,
    hashes: &[Hash],
    intact: u64,
    checkpoint: &Checkpoint,
) -> anyhow::Result<u64> {
    let mut client = bench::client::HttpClient::connect(url)
        .await?
        .with_token(token)?;
    let cache = audit::SubtreeCache::from_leaves(hashes, 8);
    let tree = cache.over(hashes);
    let (mut good, mut bad) = (intact, checkpoint.size);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        let to = checkpoint.size;
        let answer = client
            .get(&format!("/v1/audit/consistency?from={mid}&to={to}"))
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "the server answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let proof = answer.json()?["proof"]
            .as_array()
            .context("the consistency answer has no proof")?
            .iter()
            .map(|hex| hex.as_str().and_then(parse_hex))
            .collect::<Option<Vec<Hash>>>()
            .context("the consistency proof is not a list of hex hashes")?;
        let root = audit::root(&tree, mid)?;
        let proven = audit::verify_consistency(mid, to, &root, &checkpoint.root, &proof).is_ok();
        if proven {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(good)
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
