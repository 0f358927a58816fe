//! `logbook import`: sends existing logs — NDJSON, a JSON array, or plain
//! text lines, gzip-compressed or not, from files or standard input — to a
//! running server's `POST /v1/logs` in batches, records after each answered
//! batch how far every file got (so `--resume` continues there), and ends
//! with a summary of what was accepted and rejected.
//!
//! A thread per input reads and cuts it into batches a couple ahead of the
//! one connection that sends them in order: the offset recorded is always
//! the end of the last batch the server answered.

mod batch;
mod input;
mod read;
mod send;
mod split;
mod state;
mod summary;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bench::client::HttpClient;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use batch::Batch;
use read::{Read, Reader};
use send::{Outcome, send};
use split::Format;
use state::{DEFAULT_STATE_FILE, Entry, Identity, StateFile, resume_point};
use summary::Summary;
pub use summary::{EXIT_REJECTED, SomeRejected};

/// Options of `logbook import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Files to send, `-` for standard input; gzip-compressed input is
    /// recognised by its first bytes.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// `ndjson`: one JSON event per line, or one JSON array of events;
    /// `lines`: each non-blank line is the message of an event of --service.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: FormatArg,
    /// The service of the events of `--format lines`.
    #[arg(long)]
    service: Option<String>,
    /// Events per request at most.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Bytes of NDJSON per request at most; keep it under the server's
    /// `ingest.max_body_bytes` (16 MiB by default).
    #[arg(long, default_value_t = 4 << 20)]
    batch_bytes: usize,
    /// Tries of one batch the server answers 429 or 503 (waiting as its
    /// `Retry-After` says, at most 60 s each) before giving up.
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Continue each file after what the state file records as answered,
    /// and skip files recorded as complete.
    #[arg(long)]
    resume: bool,
    /// The state file, written after every answered batch.
    #[arg(long, default_value = DEFAULT_STATE_FILE)]
    state: PathBuf,
    /// Base URL of the running server.
    #[arg(long, env = "LOGBOOK_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with logs:write.
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    key: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Ndjson,
    Lines,
}

/// One input of the run and where its reading starts.
struct Plan {
    /// The name errors give it: the path as given, or `stdin`.
    name: String,
    /// `None` for standard input.
    path: Option<PathBuf>,
    /// The state file's key (the canonical path) and the entry to keep up to
    /// date; `None` for standard input or a pipe, which cannot resume.
    record: Option<(String, Entry)>,
}

/// Sends every input in turn, prints the summary, and fails when an input
/// could not be sent to its end ([`SomeRejected`] when only events were refused).
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let format = match (args.format, &args.service) {
        (FormatArg::Lines, Some(service)) => Format::Lines {
            service: service.clone(),
        },
        (FormatArg::Lines, None) => {
            bail!("--format lines needs --service, the service of its events")
        }
        (FormatArg::Ndjson, Some(_)) => {
            bail!("--service goes with --format lines: NDJSON events name their own service")
        }
        (FormatArg::Ndjson, None) => Format::Ndjson,
    };
    if args.batch_size == 0 || args.batch_bytes < 1024 {
        bail!("--batch-size must be at least 1 and --batch-bytes at least 1024");
    }
    let stdin = args.files.iter().filter(|file| is_stdin(file)).count();
    if stdin > 1 {
        bail!("standard input (-) can be read only once");
    }
    if stdin > 0 && args.resume {
        bail!(
            "standard input cannot be resumed (it cannot be read again from where it stopped): \
             save it to a file and import that"
        );
    }
    let url = args.url.trim_end_matches('/').to_owned();
    let mut state = StateFile::load(&args.state)?;
    let plans = args
        .files
        .iter()
        .map(|file| plan(file, &args, &url, &format, &state))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Written once before anything is sent, so a state file that cannot be
    // written stops the import before it starts.
    for (key, entry) in plans.iter().filter_map(|plan| plan.record.as_ref()) {
        state.put(key, entry.clone())?;
    }
    let client = HttpClient::connect(&url)
        .await?
        .with_token(args.key.as_deref())?;
    let total = plans
        .iter()
        .map(|plan| plan.record.as_ref().map(|(_, entry)| entry.identity.size))
        .sum::<Option<u64>>();
    let mut run = Run {
        args: &args,
        format,
        client,
        state,
        progress: progress_bar(total)?,
        summary: Summary::default(),
        started: Instant::now(),
    };
    let mut stopped = None;
    for plan in plans {
        run.summary.files += 1;
        let name = plan.name.clone();
        if let Err(error) = run.import(plan).await {
            stopped = Some(error.context(format!("cannot import {name}")));
            break;
        }
    }
    run.progress.finish_and_clear();
    run.summary.elapsed = run.started.elapsed();
    println!("{}", run.summary);
    if let Some(error) = stopped {
        return Err(error);
    }
    if run.summary.rejected > 0 {
        return Err(SomeRejected(run.summary.rejected).into());
    }
    Ok(())
}

fn is_stdin(file: &Path) -> bool {
    file.as_os_str() == "-"
}

/// Where `file` starts, checked against the state file before anything is sent.
fn plan(
    file: &Path,
    args: &ImportArgs,
    url: &str,
    format: &Format,
    state: &StateFile,
) -> anyhow::Result<Plan> {
    if is_stdin(file) {
        return Ok(Plan {
            name: "stdin".to_owned(),
            path: None,
            record: None,
        });
    }
    let name = file.display().to_string();
    let canonical = std::fs::canonicalize(file).with_context(|| format!("cannot open {name}"))?;
    if !std::fs::metadata(&canonical)?.is_file() {
        if args.resume {
            bail!("{name} is not a regular file: it cannot be read again, so it cannot be resumed");
        }
        return Ok(Plan {
            name,
            path: Some(canonical),
            record: None,
        });
    }
    let identity = Identity::of(&canonical).with_context(|| format!("cannot read {name}"))?;
    let key = canonical.to_string_lossy().into_owned();
    let (format_name, service) = match format {
        Format::Ndjson => ("ndjson", None),
        Format::Lines { service } => ("lines", Some(service.clone())),
    };
    let fresh = Entry {
        url: url.to_owned(),
        format: format_name.to_owned(),
        service,
        identity,
        offset: 0,
        line: 0,
        array: false,
        complete: false,
    };
    let entry = match state.get(&key) {
        Some(recorded) if args.resume => {
            let (offset, line) =
                resume_point(recorded, &fresh).with_context(|| format!("cannot resume {name}"))?;
            Entry {
                offset,
                line,
                array: recorded.array,
                complete: recorded.complete,
                ..fresh
            }
        }
        Some(recorded) if recorded.offset > 0 => {
            eprintln!(
                "{name} was imported before (up to byte {}{}); sending it again from the start \
                 (--resume would continue instead)",
                recorded.offset,
                if recorded.complete { ", complete" } else { "" }
            );
            fresh
        }
        _ => fresh,
    };
    Ok(Plan {
        name,
        path: Some(canonical),
        record: Some((key, entry)),
    })
}

/// What the inputs of one run share.
struct Run<'a> {
    args: &'a ImportArgs,
    format: Format,
    client: HttpClient,
    state: StateFile,
    progress: ProgressBar,
    summary: Summary,
    started: Instant,
}

impl Run<'_> {
    /// Sends one input from where its plan starts, recording its progress
    /// after every answered batch.
    async fn import(&mut self, plan: Plan) -> anyhow::Result<()> {
        let Plan {
            name,
            path,
            mut record,
        } = plan;
        if let Some((_, entry)) = &record
            && entry.complete
        {
            let text = format!("{name} was imported completely before: skipped");
            note(&self.progress, &text);
            self.progress.inc(entry.identity.size);
            return Ok(());
        }
        let (offset, line, array) = record.as_ref().map_or((0, 0, false), |(_, entry)| {
            (entry.offset, entry.line, entry.array)
        });
        if offset > 0 {
            let text = format!("{name}: resuming at line {} (byte {offset})", line + 1);
            note(&self.progress, &text);
        }
        let (sender, mut reads) = mpsc::channel(2);
        let reader = Reader {
            regular: record.is_some(),
            path,
            format: self.format.clone(),
            offset,
            line,
            array,
            batch_size: self.args.batch_size,
            batch_bytes: self.args.batch_bytes,
            progress: self.progress.clone(),
        };
        // A thread, not a blocking task: one stuck reading standard input
        // must not keep the process from exiting once the sending has failed.
        std::thread::Builder::new()
            .name("import-reader".into())
            .spawn(move || reader.run(&sender))?;
        let mut array = false;
        while let Some(read) = reads.recv().await {
            let batch = match read {
                Read::Opened { array: is_array } => {
                    array = is_array;
                    continue;
                }
                Read::Batch(batch) => batch,
                Read::Failed(error) => return Err(error),
            };
            let outcome = if batch.lines.is_empty() {
                Outcome::default()
            } else {
                send(&mut self.client, &batch, self.args.max_attempts).await?
            };
            self.count(&name, &batch, &outcome);
            if let Some((key, entry)) = &mut record {
                entry.offset = batch.end;
                entry.line = batch.end_line;
                entry.array = array;
                self.state.put(key, entry.clone())?;
            }
        }
        if let Some((key, entry)) = &mut record {
            entry.complete = true;
            self.state.put(key, entry.clone())?;
        }
        Ok(())
    }

    /// Adds a batch's answer to the summary (its refused events in input
    /// order) and to the progress bar.
    fn count(&mut self, name: &str, batch: &Batch, outcome: &Outcome) {
        self.summary.accepted += outcome.accepted;
        let mut refused: Vec<(u64, &str, &str)> = batch
            .refused
            .iter()
            .map(|(line, refusal)| (*line, refusal.code, refusal.message.as_str()))
            .chain(outcome.rejected.iter().map(|rejected| {
                let (code, message) = (rejected.code.as_str(), rejected.message.as_str());
                (rejected.line, code, message)
            }))
            .collect();
        refused.sort_by_key(|(line, _, _)| *line);
        for (line, code, message) in refused {
            self.summary.reject(name, line, code, message);
        }
        let events = self.summary.accepted + self.summary.rejected;
        let rate = events as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.progress
            .set_message(format!("{events} events sent, {rate:.0}/s"));
    }
}

/// A bar of bytes read (of `total` when every input is a file) with the
/// events sent and their rate, on stderr when it is a terminal; hidden otherwise.
fn progress_bar(total: Option<u64>) -> anyhow::Result<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )?),
        None => ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bytes} read {msg}",
        )?),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

/// A line on stderr that does not tear the progress bar.
fn note(progress: &ProgressBar, text: &str) {
    if progress.is_hidden() {
        eprintln!("{text}");
    } else {
        progress.println(text);
    }
}
