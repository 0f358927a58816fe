//! The `logbook` binary: parses the command line and hands over to the server
//! or the benchmark tool.

mod admin;
mod backup;
mod dead_letters;
mod import;
mod serve;
mod tail;
mod verify;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Logbook: a centralized logging and audit backend.
#[derive(Parser)]
#[command(name = "logbook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole server (API, queue, workers, store) in this process.
    Serve(Box<serve::ServeArgs>),
    /// Manage tenants, users and API keys in the metadata store, and a running server's dead letters.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Print the events matching a query as a running server accepts them.
    Tail(tail::TailArgs),
    /// Send existing logs (NDJSON, a JSON array or text lines, gzip or not) to a running server.
    Import(import::ImportArgs),
    /// Check the audit trails of a data directory against their signed checkpoints.
    Verify(verify::VerifyArgs),
    /// Copy a running server's data directory, consistently, into a new directory (the super-admin's).
    Backup(backup::BackupArgs),
    /// Lay a backup down as a new data directory, checking every file against its manifest.
    Restore(backup::RestoreArgs),
    /// Drive a running server with load and report throughput and latency.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Write a reproducible NDJSON dataset of varied events built from log files.
    Dataset(bench::DatasetArgs),
    /// Send batches of events over concurrent connections.
    Ingest(bench::IngestArgs),
    /// Run a mix of searches (or the benchmark's query classes) and report latency percentiles.
    Query(bench::QueryArgs),
    /// Tail while sending at a set rate; report delivery latency from 202 to subscriber.
    Tail(bench::TailArgs),
    /// Send RFC 5424 messages over syslog TCP connections; report events/s into the queue.
    Syslog(bench::SyslogArgs),
}

/// Runs the command; an error is printed as its chain of causes (never a backtrace,
/// whatever `RUST_BACKTRACE` says) and the process exits with status 1 (3 when
/// `logbook import` sent everything but some events were rejected).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            match error.downcast_ref::<import::SomeRejected>() {
                Some(_) => ExitCode::from(import::EXIT_REJECTED),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// The log filter `LOGBOOK_LOG` asks for (default `info`). The RabbitMQ
/// client logs every broken connection as errors of its own, several per
/// outage; the queue reports each outage once, with what it does about it, so
/// the client's own lines are off unless the filter names `lapin`.
fn log_filter(asked: Option<String>) -> tracing_subscriber::EnvFilter {
    let mut directives = asked.unwrap_or_else(|| "info".to_owned());
    if !directives.contains("lapin") {
        directives.push_str(",lapin=off");
    }
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=off"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("LOGBOOK_LOG").ok()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Admin(command) => admin::run(command).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Tail(args) => tail::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Bench(BenchCommand::Dataset(args)) => {
                let json = args.json;
                let report =
                    tokio::task::spawn_blocking(move || bench::run_dataset(&args)).await??;
                println!("{}", bench::render(&report, json)?);
                Ok(())
            }
            Command::Bench(BenchCommand::Ingest(args)) => {
                let report = bench::run_ingest(&args).await?;
                println!("{}", bench::render(&report, args.json)?);
                Ok(())
            }
            Command::Bench(BenchCommand::Tail(args)) => {
                let report = bench::run_tail(&args).await?;
                println!("{}", bench::render(&report, args.json)?);
                Ok(())
            }
            Command::Bench(BenchCommand::Syslog(args)) => {
                let report = bench::run_syslog(&args).await?;
                println!("{}", bench::render(&report, args.json)?);
                Ok(())
            }
            Command::Bench(BenchCommand::Query(args)) => {
                let report = bench::run_query(&args).await?;
                println!("{}", bench::render(&report, args.json)?);
                Ok(())
            }
        }
    })
}
