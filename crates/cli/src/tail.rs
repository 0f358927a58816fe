//! `logbook tail`: follows a running server's live tail over Server-Sent
//! Events and prints one line per event — readable on a terminal, NDJSON
//! when piped or with `--json`.

use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use bench::client::{HttpClient, percent_encode};
use bench::sse::{SseEvent, SseStream};
use clap::Args;
use serde_json::Value;

/// Options of `logbook tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// The query, in the search language (`level:>=warn service:payments`); every event when absent.
    #[arg(short = 'q', long = "query", default_value = "")]
    query: String,
    /// Tail the audit trail instead of the logs (needs audit:read).
    #[arg(long)]
    audit: bool,
    /// Print each event as one JSON line, even on a terminal.
    #[arg(long)]
    json: bool,
    /// Base URL of the running server.
    #[arg(long, env = "LOGBOOK_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with logs:read (audit:read with --audit), or an access token.
    #[arg(long, env = "LOGBOOK_KEY", hide_env_values = true)]
    key: Option<String>,
}

/// Prints events until the server ends the tail, or the reader of the output goes away.
pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let client = HttpClient::connect(&args.url)
        .await?
        .with_token(args.key.as_deref())?;
    let path = if args.audit {
        "/v1/audit/tail"
    } else {
        "/v1/tail"
    };
    let mut stream = SseStream::open(client, &format!("{path}?q={}", percent_encode(&args.query)))
        .await
        .with_context(|| format!("cannot tail {}{path}", args.url))?;
    let stdout = std::io::stdout();
    let json = args.json || !stdout.is_terminal();
    let mut out = stdout.lock();
    while let Some(event) = stream.next().await? {
        let line = match event.event.as_str() {
            "message" if json => event.data,
            "message" => human(&event)?,
            "close" => bail!("the server ended the tail: {}", reason(&event)),
            "dropped" | "missed" => {
                eprintln!("logbook tail: {}", notice(&event));
                continue;
            }
            _ => continue,
        };
        // A closed pipe (`| head`) is the reader saying it has enough.
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(error).context("cannot write to standard output"),
        }
    }
    bail!("the server ended the tail")
}

/// `2026-03-01T12:00:00.123Z WARN  payments  card declined  {attributes}`.
fn human(event: &SseEvent) -> anyhow::Result<String> {
    let item: Value =
        serde_json::from_str(&event.data).context("the server sent an event that is not JSON")?;
    let text = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or("");
    let mut line = format!(
        "{} {:<5} {}",
        text("timestamp"),
        text("level").to_uppercase(),
        text("service")
    );
    line.push_str("  ");
    line.push_str(text("message"));
    if let Some(attributes) = item
        .get("attributes")
        .filter(|value| value.as_object().is_some_and(|map| !map.is_empty()))
    {
        line.push_str("  ");
        line.push_str(&attributes.to_string());
    }
    Ok(line)
}

fn reason(event: &SseEvent) -> String {
    serde_json::from_str::<Value>(&event.data)
        .ok()
        .and_then(|data| {
            data.get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| event.data.clone())
}

fn notice(event: &SseEvent) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    match data.get("dropped").and_then(Value::as_u64) {
        Some(count) => format!("{count} events were dropped: this client did not keep up"),
        None => "the server fell behind its queue; some events may be missing".to_owned(),
    }
}
