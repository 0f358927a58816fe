//! Load generators for Logbook (`logbook bench ingest` and `logbook bench query`) and
//! the small keep-alive HTTP client they, and the integration tests, talk to a server with.
//!
//! [`run_dataset`] writes a reproducible NDJSON dataset from real log lines;
//! [`run_ingest`] posts NDJSON batches (replayed from log files, generated, or read
//! from such a dataset) to `/v1/logs` over several connections and reports
//! throughput, ack latency and, optionally, when everything became searchable;
//! [`run_query`] cycles a query mix over `/v1/logs`, `/v1/stats` and
//! `/v1/logs/histogram` and reports latency per query; [`run_tail`] measures the
//! live tail's delivery latency under a set ingest rate; [`run_syslog`] sends
//! RFC 5424 messages over TCP and times them into the queue. The reports print as aligned
//! text ([`std::fmt::Display`]) or JSON ([`render`]).

mod classes;
pub mod client;
mod dataset;
mod drain;
mod events;
pub mod fault_proxy;
mod ingest;
mod progress;
mod protocols;
mod query;
mod replay;
pub mod sse;
mod stats;
mod syslog;
mod tail;
#[cfg(test)]
mod test_server;

pub use client::{HttpClient, Response, StreamingResponse, percent_encode};
pub use dataset::{DatasetArgs, DatasetReport, run_dataset};
pub use drain::DrainReport;
pub use ingest::{IngestArgs, IngestReport, run_ingest};
pub use protocols::Protocol;
pub use query::{QueryArgs, QueryReport, QueryStats, run_query};
pub use stats::LatencySummary;
pub use syslog::{SyslogArgs, SyslogReport, run_syslog};
pub use tail::{TailArgs, TailReport, run_tail};

/// Formats a report for printing: one JSON object when `json`, else its text form.
pub fn render<R: serde::Serialize + std::fmt::Display>(
    report: &R,
    json: bool,
) -> anyhow::Result<String> {
    Ok(if json {
        serde_json::to_string(report)?
    } else {
        report.to_string()
    })
}
