//! `logbook verify`: checks every tenant's audit trail in a data directory
//! against its signed checkpoints, leaf by leaf, and names the first sequence
//! number where it breaks.
//!
//! It reads the files only (nothing is repaired), so it can run on a copy of a
//! data directory. Pin the public key with `--public-key`: a key read from the
//! same disk as the trail proves less than one kept elsewhere, and without it a
//! warning says so. With `--export` or `--url` it checks an export
//! (`GET /v1/audit/export`) instead, trusting nothing but the public key. Every
//! checkpoint and event must belong to the tenant being checked, and with
//! `--trusted-checkpoint` the trail must extend a checkpoint seen earlier.
//! Pruned events (audit retention) are checked by their recorded leaf hashes,
//! and each report says how many there are.

#[cfg(feature = "postgres")]
mod database;
mod export;

use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use audit::{Checkpoint, Expectations, Leaf, VerifyReport, VerifyingKey};
use clap::Args;
use store::embedded::{CHECKPOINTS_FILE, KEY_FILE, KEY_NAME};

/// Options of `logbook verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The server's data directory.
    #[arg(long, env = "LOGBOOK_DATA_DIR", default_value = "logbook-data")]
    data_dir: PathBuf,
    /// Only this tenant [default: every tenant with an audit trail]. With `--export` or
    /// `--url`: the tenant the export must belong to [default: the one its header names].
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
    /// Verify the trails in a PostgreSQL store, read straight from the database
    /// (`postgres://…`, read-only; needs `--public-key`).
    #[arg(long, conflicts_with_all = ["export", "url"])]
    store_url: Option<String>,
    /// API key or access token with `audit:read`, for `--url`.
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    key: Option<String>,
    /// A checkpoint seen earlier (a file, or `-` for standard input): the signed note, or
    /// the JSON of `GET /v1/audit/checkpoint`. The trail must extend it; a trail rolled
    /// back behind it, or rewritten before its size, fails. Needs `--public-key`.
    #[arg(long, value_name = "FILE|-")]
    trusted_checkpoint: Option<PathBuf>,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Reads the trusted checkpoint from `source` (`-` for standard input) and checks its
/// signature with `key`. Accepts the signed note itself, or a JSON object holding it as
/// `note` (`GET /v1/audit/checkpoint`, a line of `checkpoints.jsonl`) or `checkpoint` (an
/// export's header).
fn trusted_checkpoint(source: &Path, key: &VerifyingKey) -> anyhow::Result<Checkpoint> {
    let text = if source == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the trusted checkpoint from standard input")?;
        text
    } else {
        std::fs::read_to_string(source)
            .with_context(|| format!("cannot read {}", source.display()))?
    };
    let json = serde_json::from_str::<serde_json::Value>(&text).ok();
    let note = match json
        .as_ref()
        .and_then(|json| json.get("note").or_else(|| json.get("checkpoint")))
    {
        Some(note) => note
            .as_str()
            .context("the trusted checkpoint's note is not a string")?
            .to_owned(),
        // A signed note ends with exactly one newline; editors may add or strip one.
        None => format!("{}\n", text.trim_end_matches(['\n', '\r'])),
    };
    Checkpoint::verify(&note, key)
        .context("--trusted-checkpoint is not a checkpoint signed by the pinned --public-key")
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

/// Verifies one tenant's trail: the one in `dir`, named `tenant`.
fn verify_tenant(
    dir: &Path,
    tenant: &str,
    key: &VerifyingKey,
    trusted: Option<&Checkpoint>,
) -> anyhow::Result<VerifyReport> {
    let notes = checkpoints(dir)?;
    let expected = std::fs::metadata(dir.join("hashes.bin")).map_or(0, |meta| meta.len() / 32);
    let progress = progress_bar(expected);
    // The stored leaf hashes are not trusted (they sit on the same disk), only
    // used to point at the first altered leaf when a checkpoint root differs.
    let stored = std::fs::read(dir.join("hashes.bin")).unwrap_or_default();
    let stored_hash = |seq: u64| -> Option<audit::Hash> {
        let start = usize::try_from(seq).ok()?.checked_mul(32)?;
        stored.get(start..start.checked_add(32)?)?.try_into().ok()
    };
    let expect = Expectations {
        key,
        tenant,
        trusted,
        signed_only: false,
        stored_hashes: Some(&stored_hash),
    };
    // Pruned leaves are checked by their recorded hashes, the rest by their bytes.
    let bodies = audit::read_leaves(dir)?;
    let pruned = (0..bodies.first()).map(|seq| {
        stored_hash(seq)
            .map(Leaf::Pruned)
            .ok_or_else(|| audit::AuditError::Corrupt {
                path: dir.join("hashes.bin"),
                detail: format!("it lacks the hash of pruned leaf {seq}"),
            })
    });
    let leaves = pruned.chain(bodies.map(|leaf| leaf.map(Leaf::Body)));
    let report = audit::verify_trail(leaves, &notes, &expect, &mut |done| {
        progress.set_position(done)
    })?;
    progress.finish_and_clear();
    Ok(report)
}

/// Said on standard error before, and on standard output after, a check with an unpinned
/// key.
const UNPINNED: &str = "WARNING: no --public-key given: the checkpoint key was read from the \
     data directory itself, so \"verified\" only proves each trail is consistent with that key, \
     not that it is the trail the server signed. Pin the key (logbook verify \
     --print-public-key, kept elsewhere, or GET /v1/audit/public-key).";

/// Runs `logbook verify`; fails when any trail is broken.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if args.export.is_some() || args.url.is_some() {
        return run_export(args).await;
    }
    if let Some(url) = &args.store_url {
        #[cfg(not(feature = "postgres"))]
        anyhow::bail!(
            "this build has no PostgreSQL support (feature `postgres`), so it cannot read {url}"
        );
        #[cfg(feature = "postgres")]
        {
            let text = args.public_key.as_deref().context(
                "verifying a database needs --public-key: the database holds nothing worth trusting",
            )?;
            let key = pinned_key(text)?;
            let trusted = args
                .trusted_checkpoint
                .as_deref()
                .map(|source| trusted_checkpoint(source, &key))
                .transpose()?;
            let only = args
                .tenant
                .clone()
                .or_else(|| trusted.as_ref().map(|trusted| trusted.tenant.clone()));
            return database::verify_store(url, only, key, trusted).await;
        }
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
        Some(text) => pinned_key(text)?,
        None => {
            anyhow::ensure!(
                args.trusted_checkpoint.is_none(),
                "--trusted-checkpoint needs --public-key: its signature is checked with the pinned key"
            );
            eprintln!("{UNPINNED}");
            local_key(&audit_dir)?
        }
    };
    let trusted = args
        .trusted_checkpoint
        .as_deref()
        .map(|source| trusted_checkpoint(source, &key))
        .transpose()?;
    let mut tenants: Vec<String> = std::fs::read_dir(&audit_dir)?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    tenants.sort();
    // A trusted checkpoint is one tenant's: only that trail is checked.
    let only = match (&args.tenant, &trusted) {
        (Some(tenant), Some(trusted)) if *tenant != trusted.tenant => anyhow::bail!(
            "the trusted checkpoint is tenant {:?}'s, not {tenant:?}'s",
            trusted.tenant
        ),
        (Some(tenant), _) => Some(tenant.clone()),
        (None, Some(trusted)) => Some(trusted.tenant.clone()),
        (None, None) => None,
    };
    if let Some(only) = &only {
        anyhow::ensure!(tenants.contains(only), "tenant {only:?} has no audit trail");
        tenants.retain(|tenant| tenant == only);
    }
    let mut broken = 0;
    for tenant in &tenants {
        let report = verify_tenant(&audit_dir.join(tenant), tenant, &key, trusted.as_ref())?;
        println!("{tenant}: {report}");
        if !report.is_verified() {
            broken += 1;
        }
    }
    if args.public_key.is_none() {
        println!("{UNPINNED}");
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} of {} audit trails failed verification",
        tenants.len()
    );
    Ok(())
}

fn pinned_key(text: &str) -> anyhow::Result<VerifyingKey> {
    VerifyingKey::from_text(text.trim()).context("--public-key is not a verifier key")
}

/// `logbook verify --export` or `--url`.
async fn run_export(args: VerifyArgs) -> anyhow::Result<()> {
    let text = args
        .public_key
        .as_deref()
        .context("verifying an export needs --public-key: the one thing it trusts")?;
    let key = pinned_key(text)?;
    let trusted = args
        .trusted_checkpoint
        .as_deref()
        .map(|source| trusted_checkpoint(source, &key))
        .transpose()?;
    let source = match (&args.export, &args.url) {
        (Some(path), _) => export::open_file(path)?,
        (None, Some(url)) => export::open_url(url, args.key.as_deref()).await?,
        (None, None) => anyhow::bail!("give --export or --url"),
    };
    let tenant = args.tenant.clone();
    let export::ExportOutcome { tenant, report } = tokio::task::spawn_blocking(move || {
        export::verify_export(source, &key, tenant.as_deref(), trusted.as_ref())
    })
    .await
    .context("the verification thread failed")??;
    println!("{tenant}: {report}");
    anyhow::ensure!(report.is_verified(), "the audit trail failed verification");
    Ok(())
}
