//! `logbook backup` and `logbook restore`: a running server's consistent copy
//! of its data directory (`POST /v1/admin/backup`, the super-admin's), unpacked
//! and checked against its manifest as it arrives; and a new data directory
//! laid down from such a copy, checked file by file again.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;

use crate::dead_letters::ServerArgs;

/// Options of `logbook backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The directory to write the backup into; created if missing, and it must be empty.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `logbook restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A directory `logbook backup` wrote.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The new data directory; created if missing, and it must be empty.
    #[arg(long, value_name = "NEW")]
    data_dir: PathBuf,
}

/// Chunks handed from the download to the unpacking thread ahead of it.
const CHUNKS_AHEAD: usize = 8;

/// Downloads the archive and unpacks it into `--to` as it arrives.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let client = args.server.client().await?;
    let mut response = client.post_streaming("/v1/admin/backup").await?;
    if response.status != 200 {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        bail!(
            "the server answered {} {}: {}",
            response.status,
            error["code"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("")
        );
    }
    let (sender, receiver) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
    let to = args.to.clone();
    let unpacking = tokio::task::spawn_blocking(move || {
        backup::unpack(
            ChunkReader {
                chunks: receiver,
                current: Bytes::new(),
            },
            &to,
        )
    });
    loop {
        let chunk = response.chunk().await.map_err(|error| format!("{error:#}"));
        let end = matches!(chunk, Ok(None) | Err(_));
        if let Some(chunk) = chunk.transpose()
            && sender.send(chunk).is_err()
        {
            // The unpacking stopped; its error says why.
            break;
        }
        if end {
            break;
        }
    }
    drop(sender);
    let manifest = unpacking
        .await?
        .with_context(|| format!("the backup into {} failed", args.to.display()))?;
    eprintln!(
        "backed up {} files, {} bytes, into {}; restore with `logbook restore --from {} --data-dir NEW`",
        manifest.files.len(),
        manifest.total_bytes(),
        args.to.display(),
        args.to.display()
    );
    Ok(())
}

/// Checks the backup and lays it down as a new data directory.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let (from, to) = (args.from.clone(), args.data_dir.clone());
    let manifest = tokio::task::spawn_blocking(move || backup::restore(&from, &to))
        .await?
        .with_context(|| {
            format!(
                "cannot restore {} into {}",
                args.from.display(),
                args.data_dir.display()
            )
        })?;
    eprintln!(
        "restored {} files, {} bytes, into {}; start it with `logbook serve --data-dir {}` \
         (the worker indexes what the queue copy holds) and check it with \
         `logbook verify --data-dir {}`",
        manifest.files.len(),
        manifest.total_bytes(),
        args.data_dir.display(),
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}

/// The downloaded chunks as a reader; a download error is a read error, and
/// the end of the download the end of the input.
struct ChunkReader {
    chunks: std::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => self.current = chunk,
                Ok(Err(error)) => return Err(std::io::Error::other(error)),
                Err(_) => return Ok(0),
            }
        }
        let taken = buf.len().min(self.current.len());
        buf[..taken].copy_from_slice(&self.current.split_to(taken));
        Ok(taken)
    }
}
