//! `logbook verify`: checks every tenant's audit trail in a data directory
//! against its signed checkpoints, leaf by leaf, and names the first sequence
//! number where it breaks.
//!
//! It reads the files only (nothing is repaired), so it can run on a copy of a
//! data directory. Pin the public key with `--public-key`: a key read from the
//! same disk as the trail proves less than one kept elsewhere. With `--export`
//! or `--url` it checks an export (`GET /v1/audit/export`) instead, trusting
//! nothing but the public key.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use audit::{VerifyReport, VerifyingKey};
use clap::Args;
use store::embedded::{CHECKPOINTS_FILE, KEY_FILE, KEY_NAME};

/// Options of `logbook verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The server's data directory.
    #[arg(long, env = "LOGBOOK_DATA_DIR", default_value = "logbook-data")]
    data_dir: PathBuf,
    /// Only this tenant [default: every tenant with an audit trail].
    #[arg(long)]
    tenant: Option<String>,
    /// The checkpoint key to trust, as `logbook verify --print-public-key` or
    /// `GET /v1/audit/public-key` showed it [default: the key in the data directory].
    #[arg(long)]
    public_key: Option<String>,
    /// Print the data directory's checkpoint public key and exit.
    #[arg(long)]
    print_public_key: bool,
    /// Verify an export file (`GET /v1/audit/export`) instead of a data directory.
    #[arg(long, conflicts_with = "url")]
    export: Option<PathBuf>,
    /// Verify the trail of a running server: fetches its export (needs `--key`).
    #[arg(long)]
    url: Option<String>,
    /// API key or access token with `audit:read`, for `--url`.
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    key: Option<String>,
}

/// The first line of an export.
#[derive(serde::Deserialize)]
struct ExportHeader {
    tenant: String,
    size: u64,
    checkpoint: String,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Verifies an export: its header's checkpoint and every event line after it.
fn verify_export(text: &[u8], key: &VerifyingKey) -> anyhow::Result<(String, VerifyReport)> {
    let mut lines = text
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty());
    let header: ExportHeader = serde_json::from_slice(lines.next().context("the export is empty")?)
        .context("the export's first line is not its header")?;
    let mut position = 0u64;
    let leaves = lines.map(|leaf| {
        let claimed = serde_json::from_slice::<SeqOnly>(leaf)
            .ok()
            .and_then(|event| event.seq)
            .unwrap_or(position);
        position += 1;
        Ok((claimed, leaf.to_vec()))
    });
    let progress = progress_bar(header.size);
    let report = audit::verify_trail(leaves, &[header.checkpoint], key, None, &mut |done| {
        progress.set_position(done)
    })?;
    progress.finish_and_clear();
    Ok((header.tenant, report))
}

/// Fetches a running server's export.
async fn fetch_export(url: &str, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let token = token.context("--url needs --key (or LOGBOOK_KEY) with audit:read")?;
    let mut client = bench::client::HttpClient::connect(url)
        .await?
        .with_token(Some(token))?;
    let response = client.get("/v1/audit/export").await?;
    anyhow::ensure!(
        response.status == 200,
        "the server answered {}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    Ok(response.body.to_vec())
}

fn local_key(audit_dir: &Path) -> anyhow::Result<VerifyingKey> {
    let path = audit_dir.join(KEY_FILE);
    anyhow::ensure!(path.exists(), "no checkpoint key at {}", path.display());
    let key = audit::SigningKey::load_or_create(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(key.verifying_key(KEY_NAME)?)
}

fn checkpoints(dir: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Line {
        note: String,
    }
    let path = dir.join(CHECKPOINTS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut notes = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_str::<Line>(&line) {
            Ok(Line { note }) => notes.push(note),
            // Kept as is: a damaged checkpoint then fails its signature check.
            Err(_) => notes.push(line),
        }
    }
    Ok(notes)
}

/// The one member of an event the walk needs; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: Option<u64>,
}

/// Verifies one tenant's trail.
fn verify_tenant(dir: &Path, key: &VerifyingKey) -> anyhow::Result<VerifyReport> {
    let notes = checkpoints(dir)?;
    let expected = std::fs::metadata(dir.join("hashes.bin")).map_or(0, |meta| meta.len() / 32);
    let progress = progress_bar(expected);
    let mut position = 0u64;
    let leaves = audit::read_leaves(dir)?.map(|leaf| {
        let leaf = leaf?;
        // The sequence number the event claims; an unreadable event claims its
        // position, so the comparison with the checkpoints reports it altered.
        let claimed = serde_json::from_slice::<SeqOnly>(&leaf)
            .ok()
            .and_then(|event| event.seq)
            .unwrap_or(position);
        position += 1;
        Ok((claimed, leaf))
    });
    // The stored leaf hashes are not trusted (they sit on the same disk), only
    // used to point at the first altered leaf when a checkpoint root differs.
    let stored = std::fs::read(dir.join("hashes.bin")).unwrap_or_default();
    let stored_hash = |seq: u64| -> Option<audit::Hash> {
        let start = usize::try_from(seq).ok()?.checked_mul(32)?;
        stored.get(start..start.checked_add(32)?)?.try_into().ok()
    };
    let report = audit::verify_trail(leaves, &notes, key, Some(&stored_hash), &mut |done| {
        progress.set_position(done)
    })?;
    progress.finish_and_clear();
    Ok(report)
}

/// Runs `logbook verify`; fails when any trail is broken.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if args.export.is_some() || args.url.is_some() {
        let text = args
            .public_key
            .as_deref()
            .context("verifying an export needs --public-key: the one thing it trusts")?;
        let key = VerifyingKey::from_text(text).context("--public-key is not a verifier key")?;
        let export = match (&args.export, &args.url) {
            (Some(path), _) => {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
            }
            (None, Some(url)) => fetch_export(url, args.key.as_deref()).await?,
            (None, None) => anyhow::bail!("give --export or --url"),
        };
        let (tenant, report) = verify_export(&export, &key)?;
        println!("{tenant}: {report}");
        anyhow::ensure!(report.is_verified(), "the audit trail failed verification");
        return Ok(());
    }
    let audit_dir = args.data_dir.join("audit");
    anyhow::ensure!(
        audit_dir.is_dir(),
        "no audit trails in {} (is it a Logbook data directory?)",
        args.data_dir.display()
    );
    if args.print_public_key {
        println!("{}", local_key(&audit_dir)?.to_text());
        return Ok(());
    }
    let key = match &args.public_key {
        Some(text) => {
            VerifyingKey::from_text(text).context("--public-key is not a verifier key")?
        }
        None => local_key(&audit_dir)?,
    };
    let mut tenants: Vec<String> = std::fs::read_dir(&audit_dir)?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    tenants.sort();
    if let Some(only) = &args.tenant {
        anyhow::ensure!(tenants.contains(only), "tenant {only:?} has no audit trail");
        tenants.retain(|tenant| tenant == only);
    }
    let mut broken = 0;
    for tenant in &tenants {
        let report = verify_tenant(&audit_dir.join(tenant), &key)?;
        println!("{tenant}: {report}");
        if !report.is_verified() {
            broken += 1;
        }
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} of {} audit trails failed verification",
        tenants.len()
    );
    Ok(())
}
