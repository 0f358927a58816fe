//! `logbook bench dataset`: writes a reproducible NDJSON file of events built from
//! real log lines (the Loghub samples), varied the way real traffic is, so that the
//! store's compression and the searches are not flattered by the same few thousand
//! lines repeating byte for byte.
//!
//! Each event takes the next line of a service picked at random (so services
//! interleave), with every run of digits replaced by random digits of the same length,
//! a host out of [`HOSTS_PER_SERVICE`] of that service, sometimes a `request_id`
//! attribute and a `user_id`, the line's number as `metadata.line`, and a timestamp
//! that follows arrival order over the requested days, up to a second early. The same seed and end time give the same
//! bytes. Events are written as they are made: the file may be far larger than memory.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::events::{EventFields, Shape, Source, XorShift, now_ms, write_event};
use crate::stats::{ratio, thousands};

/// Hosts each service's events come from.
const HOSTS_PER_SERVICE: u64 = 20;
/// Percent of events with a `request_id` attribute.
const REQUEST_ID_PERCENT: u64 = 30;
/// Percent of events with a `user_id`.
const USER_ID_PERCENT: u64 = 12;
/// Distinct users.
const USERS: u64 = 50_000;
/// An event's timestamp is up to this much before its arrival.
const MAX_JITTER_MS: u64 = 1_000;
/// Bytes gathered before they are written out.
const WRITE_CHUNK: usize = 1 << 20;
const DAY_MS: f64 = 86_400_000.0;

/// Options of `logbook bench dataset`.
#[derive(clap::Args, Debug, Clone)]
pub struct DatasetArgs {
    /// Log files whose lines become the events (e.g. the Loghub `*/*_2k.log` samples;
    /// several may follow one --file). The service is the file's stem.
    #[arg(long = "file", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// How many events to write.
    #[arg(long)]
    pub events: u64,
    /// The NDJSON file to write (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// The same seed (and end time) gives the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The days the timestamps span, ending now.
    #[arg(long, default_value_t = 1.0)]
    pub days: f64,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `logbook bench dataset` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    /// The file written.
    pub path: PathBuf,
    /// Events written.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// `bytes / events`.
    pub mean_event_bytes: f64,
    /// The services (one per file).
    pub services: usize,
    /// The earliest and latest event timestamps, in Unix milliseconds.
    pub first_ms: u64,
    pub last_ms: u64,
    /// Seconds spent writing.
    pub elapsed_secs: f64,
}

/// Writes the dataset `args` describes, with timestamps ending now.
pub fn run_dataset(args: &DatasetArgs) -> anyhow::Result<DatasetReport> {
    let started = Instant::now();
    let sources = args
        .files
        .iter()
        .map(|path| Source::read(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut dataset = Dataset::new(&sources, args.events, args.days, now_ms(), args.seed)?;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK + 4096);
    let (mut bytes, mut first_ms, mut last_ms) = (0u64, u64::MAX, 0u64);
    while let Some(timestamp) = dataset.write_next(&mut chunk)? {
        first_ms = first_ms.min(timestamp);
        last_ms = last_ms.max(timestamp);
        if chunk.len() >= WRITE_CHUNK {
            out.write_all(&chunk)?;
            bytes += chunk.len() as u64;
            chunk.clear();
        }
    }
    out.write_all(&chunk)?;
    bytes += chunk.len() as u64;
    out.flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(DatasetReport {
        path: args.out.clone(),
        events: args.events,
        bytes,
        mean_event_bytes: ratio(bytes, args.events),
        services: sources.len(),
        first_ms: first_ms.min(last_ms),
        last_ms,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// The event generator: one event per [`Dataset::write_next`].
pub(crate) struct Dataset<'a> {
    sources: &'a [Source],
    /// Per source, how many of its lines were used.
    used: Vec<usize>,
    /// Per source, its host names.
    hosts: Vec<Vec<String>>,
    rng: XorShift,
    /// The arrival time of event 0 and the span all arrivals cover, in milliseconds.
    start_ms: u64,
    span_ms: u64,
    events: u64,
    written: u64,
    message: String,
}

impl<'a> Dataset<'a> {
    /// `events` events from `sources`, arriving evenly over `days` days up to `end_ms`.
    pub(crate) fn new(
        sources: &'a [Source],
        events: u64,
        days: f64,
        end_ms: u64,
        seed: u64,
    ) -> anyhow::Result<Self> {
        if sources.is_empty() {
            bail!("no log files to build events from");
        }
        if !(days.is_finite() && days > 0.0) {
            bail!("--days must be a positive number");
        }
        let span_ms = (days * DAY_MS) as u64;
        let hosts = sources
            .iter()
            .map(|source| {
                (1..=HOSTS_PER_SERVICE)
                    .map(|n| format!("{}-{n:02}", source.service()))
                    .collect()
            })
            .collect();
        Ok(Dataset {
            sources,
            used: vec![0; sources.len()],
            hosts,
            rng: XorShift::new(splitmix(seed)),
            start_ms: end_ms.saturating_sub(span_ms),
            span_ms,
            events,
            written: 0,
            message: String::new(),
        })
    }

    /// Appends the next event (with its newline) to `out` and returns its timestamp,
    /// or `None` once all events were written.
    pub(crate) fn write_next(&mut self, out: &mut Vec<u8>) -> anyhow::Result<Option<u64>> {
        if self.written >= self.events {
            return Ok(None);
        }
        let index = self.rng.below(self.sources.len() as u64) as usize;
        let source = &self.sources[index];
        let lines = source.numbered_lines();
        let (number, line) = &lines[self.used[index] % lines.len()];
        self.used[index] += 1;
        perturb_digits(line, &mut self.rng, &mut self.message);
        let host = &self.hosts[index][self.rng.below(HOSTS_PER_SERVICE) as usize];
        let request_id =
            (self.rng.below(100) < REQUEST_ID_PERCENT).then(|| format!("{:016x}", self.rng.next()));
        let user_id = (self.rng.below(100) < USER_ID_PERCENT)
            .then(|| format!("u{:05}", self.rng.below(USERS)));
        // Arrivals are spread evenly, the last one at the end time; an event happened
        // up to a second before it arrived.
        let arrival = self.start_ms
            + ((u128::from(self.written) + 1) * u128::from(self.span_ms) / u128::from(self.events))
                as u64;
        let timestamp = arrival.saturating_sub(self.rng.below(MAX_JITTER_MS + 1));
        write_event(
            out,
            &EventFields {
                timestamp_ms: timestamp,
                service: source.service(),
                host,
                message: &self.message,
                // The file would repeat the service: only the line number is kept.
                file: None,
                line: *number,
                shape: Shape::Log,
                user_id: user_id.as_deref(),
                request_id: request_id.as_deref(),
            },
        )?;
        self.written += 1;
        Ok(Some(timestamp))
    }
}

/// Copies `line` into `out` with every digit replaced by a random one; the first digit
/// of a run stays non-zero if it was, so numbers keep their length.
fn perturb_digits(line: &str, rng: &mut XorShift, out: &mut String) {
    out.clear();
    let mut previous_digit = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            let keep_nonzero = !previous_digit && c != '0';
            let digit = if keep_nonzero {
                1 + rng.below(9)
            } else {
                rng.below(10)
            };
            out.push(char::from(b'0' + digit as u8));
            previous_digit = true;
        } else {
            out.push(c);
            previous_digit = false;
        }
    }
}

/// SplitMix64's finaliser: spreads nearby seeds (1, 2, …) over the whole state space.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset {}", self.path.display())?;
        writeln!(
            f,
            "  {:<18}{} from {} services",
            "events",
            thousands(self.events),
            self.services
        )?;
        writeln!(
            f,
            "  {:<18}{} ({:.1} MB)",
            "bytes",
            thousands(self.bytes),
            self.bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "  {:<18}{:.0} bytes",
            "mean event", self.mean_event_bytes
        )?;
        writeln!(
            f,
            "  {:<18}{} to {} (Unix ms)",
            "timestamps", self.first_ms, self.last_ms
        )?;
        write!(f, "  {:<18}{:.2} s", "written in", self.elapsed_secs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::path::Path;

    const END_MS: u64 = 1_700_000_000_000;

    /// Two small services, written as log files in `dir`.
    fn sources(dir: &Path) -> Vec<Source> {
        let files = [
            (
                "Alpha_2k.log",
                "2015-10-18 18:01:47,978 INFO worker 17 started in 305 ms\n\
                 2015-10-18 18:01:48,003 ERROR block blk_-6952295868487656571 lost\n\
                 2015-10-18 18:01:49,120 WARN slow disk on node-42\n",
            ),
            (
                "Beta_2k.log",
                "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n\
                 Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]\n",
            ),
        ];
        files
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                Source::read(&path).unwrap()
            })
            .collect()
    }

    fn build(sources: &[Source], events: u64, days: f64, seed: u64) -> Vec<u8> {
        let mut dataset = Dataset::new(sources, events, days, END_MS, seed).unwrap();
        let mut out = Vec::new();
        while dataset.write_next(&mut out).unwrap().is_some() {}
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let first = build(&sources, 2_000, 1.0, 7);
        assert_eq!(first, build(&sources, 2_000, 1.0, 7));
        assert_ne!(first, build(&sources, 2_000, 1.0, 8));
    }

    #[test]
    fn events_are_valid_varied_and_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        // 5,000 events over 15 minutes: about 180 ms apart, so the jitter reorders some.
        let (count, days) = (5_000, 0.01);
        let span_ms = 864_000;
        let out = build(&sources, count, days, 1);
        let events: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(events.len() as u64, count);
        assert_eq!(out.last(), Some(&b'\n'));

        // Timestamps cover the span up to the end time, in arrival order but for a
        // jitter of at most a second.
        let stamps: Vec<u64> = events
            .iter()
            .map(|e| e["timestamp"].as_u64().unwrap())
            .collect();
        assert!(
            stamps
                .iter()
                .all(|&t| t <= END_MS && t + span_ms + MAX_JITTER_MS >= END_MS)
        );
        assert!(stamps[0] < END_MS - span_ms + 2_000, "{}", stamps[0]);
        assert!(stamps[stamps.len() - 1] >= END_MS - MAX_JITTER_MS);
        let mut latest = 0;
        for &t in &stamps {
            assert!(t + MAX_JITTER_MS >= latest, "{t} after {latest}");
            latest = latest.max(t);
        }
        assert!(stamps.windows(2).any(|w| w[1] < w[0]), "no jitter at all");

        // Services interleave, each with its own hosts, and levels come from the lines.
        let services: Vec<&str> = events
            .iter()
            .map(|e| e["service"].as_str().unwrap())
            .collect();
        assert!(services[..20].contains(&"alpha") && services[..20].contains(&"beta"));
        let mut hosts: HashMap<&str, HashSet<&str>> = HashMap::new();
        for event in &events {
            let service = event["service"].as_str().unwrap();
            let host = event["host"].as_str().unwrap();
            assert!(host.starts_with(&format!("{service}-")), "{host}");
            hosts.entry(service).or_default().insert(host);
            let message = event["message"].as_str().unwrap();
            let level = event["level"].as_str().unwrap();
            assert_eq!(level, crate::events::level_of(message), "{message}");
            assert!(event["metadata"]["line"].is_u64());
            assert!(event["metadata"].get("file").is_none());
        }
        assert!(
            hosts
                .values()
                .all(|h| h.len() == HOSTS_PER_SERVICE as usize)
        );

        // Digits vary between the copies of a line; the words do not.
        let copies: Vec<&str> = events
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .filter(|m| m.contains("Invalid user webmaster from "))
            .collect();
        assert!(copies.len() > 100);
        let distinct: HashSet<&&str> = copies.iter().collect();
        assert!(distinct.len() > copies.len() * 9 / 10);
        assert!(copies.iter().all(|m| m.len() == copies[0].len()));

        // Some events carry a request id or a user, in about the set shares.
        let share = |field: &str| {
            events.iter().filter(|e| e.get(field).is_some()).count() as f64 / count as f64
        };
        let requests = share("request_id");
        assert!((0.25..0.35).contains(&requests), "{requests}");
        let users = share("user_id");
        assert!((0.08..0.16).contains(&users), "{users}");
        let ids: HashSet<&str> = events
            .iter()
            .filter_map(|e| e["request_id"].as_str())
            .collect();
        assert!(ids.iter().all(|id| id.len() == 16));
        assert!(ids.len() as f64 > requests * count as f64 * 0.99);
    }

    #[test]
    fn digit_runs_keep_their_length() {
        let mut rng = XorShift::new(splitmix(3));
        let mut out = String::new();
        let line = "blk_-6952295868487656571 at 0x0 port 5070, é 7";
        for _ in 0..100 {
            perturb_digits(line, &mut rng, &mut out);
            assert_eq!(out.len(), line.len());
            let shape = |s: &str| -> String {
                s.chars()
                    .map(|c| if c.is_ascii_digit() { '9' } else { c })
                    .collect()
            };
            assert_eq!(shape(&out), shape(line));
            assert!(!out.contains("_-0") && !out.contains("port 0"), "{out}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        assert!(Dataset::new(&[], 10, 1.0, END_MS, 1).is_err());
        assert!(Dataset::new(&sources, 10, 0.0, END_MS, 1).is_err());
        assert!(Dataset::new(&sources, 10, f64::NAN, END_MS, 1).is_err());
        assert!(build(&sources, 0, 1.0, 1).is_empty());
    }

    #[test]
    fn writes_a_file_and_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        sources(dir.path());
        let out = dir.path().join("events.ndjson");
        let report = run_dataset(&DatasetArgs {
            files: vec![
                dir.path().join("Alpha_2k.log"),
                dir.path().join("Beta_2k.log"),
            ],
            events: 1_000,
            out: out.clone(),
            seed: 1,
            days: 0.5,
            json: false,
        })
        .unwrap();
        let written = std::fs::read(&out).unwrap();
        assert_eq!(report.bytes, written.len() as u64);
        assert_eq!(report.events, 1_000);
        assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), 1_000);
        assert_eq!(report.services, 2);
        assert!(report.last_ms - report.first_ms > 43_000_000);
        assert!(
            report.to_string().contains("1,000 from 2 services"),
            "{report}"
        );
    }
}
