//! Turns log lines (from real files or a built-in generator) into the NDJSON request
//! bodies the ingest benchmark sends, all built before timing starts.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde::Serialize;

/// Where a set of lines comes from: one log file, or one generated service.
#[derive(Debug)]
pub(crate) struct Source {
    /// The `service` field of every event from this source.
    service: String,
    /// The `metadata.file` field.
    file: String,
    /// Non-empty lines with their 1-based line numbers.
    lines: Vec<(u64, String)>,
}

impl Source {
    /// Reads a log file, one event per non-empty line; invalid UTF-8 is replaced.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Source> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let lines: Vec<(u64, String)> = bytes
            .split(|&b| b == b'\n')
            .zip(1..)
            .filter_map(|(raw, number)| {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let text = String::from_utf8_lossy(raw);
                (!text.trim().is_empty()).then(|| (number, text.into_owned()))
            })
            .collect();
        if lines.is_empty() {
            bail!("{} has no non-empty lines", path.display());
        }
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Source {
            service: service_from_path(path),
            file,
            lines,
        })
    }

    /// The service its lines belong to.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Its lines, in file order.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|(_, line)| line.as_str())
    }

    /// Its non-empty lines with their 1-based line numbers, in file order.
    pub(crate) fn numbered_lines(&self) -> &[(u64, String)] {
        &self.lines
    }

    /// `count` synthetic lines spread over a few services.
    pub(crate) fn generated(count: usize, seed: u64) -> Vec<Source> {
        let mut rng = XorShift::new(seed);
        let mut sources: Vec<Source> = GENERATED_SERVICES
            .iter()
            .map(|service| Source {
                service: (*service).to_owned(),
                file: "generated".to_owned(),
                lines: Vec::new(),
            })
            .collect();
        for index in 0..count {
            let source = &mut sources[index % GENERATED_SERVICES.len()];
            let line = generated_line(&mut rng);
            let number = source.lines.len() as u64 + 1;
            source.lines.push((number, line));
        }
        sources.retain(|source| !source.lines.is_empty());
        sources
    }
}

/// Service names used by the built-in generator.
const GENERATED_SERVICES: [&str; 5] = ["checkout", "payments", "auth", "gateway", "inventory"];

/// One request body: a batch of NDJSON events.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    body: Bytes,
    /// The byte offset just past each event's newline.
    ends: Vec<usize>,
}

impl Batch {
    /// How many events the batch holds.
    pub(crate) fn events(&self) -> usize {
        self.ends.len()
    }

    /// A body with only the first `events` events (all of them if `events` is larger).
    pub(crate) fn prefix(&self, events: usize) -> Bytes {
        match events {
            0 => Bytes::new(),
            n if n >= self.ends.len() => self.body.clone(),
            n => self.body.slice(..self.ends[n - 1]),
        }
    }
}

/// Builds batches of `batch` events each, cycling through the lines of `sources`
/// (interleaved round-robin), until every line was used once and at least one batch
/// exists, with at most `max_events` events (rounded up to a whole batch) and stopping
/// once `max_bytes` is exceeded. Timestamps are one millisecond apart and the last
/// possible one is `end_ms`, so with `end_ms` now no event lies in the future.
pub(crate) fn build_pool(
    sources: &[Source],
    batch: usize,
    max_events: usize,
    max_bytes: usize,
    end_ms: u64,
    shape: Shape,
) -> anyhow::Result<Vec<Batch>> {
    if batch == 0 {
        bail!("batch size must be at least 1");
    }
    let order = interleave(sources);
    if order.is_empty() {
        bail!("no log lines to send");
    }
    let wanted = order.len().min(max_events).max(1);
    let batches = wanted.div_ceil(batch);
    let base_ms = end_ms.saturating_sub((batches * batch).saturating_sub(1) as u64);
    let mut pool = Vec::with_capacity(batches);
    let mut total_bytes = 0;
    let mut next = 0;
    for _ in 0..batches {
        let mut body = Vec::with_capacity(batch * 256);
        let mut ends = Vec::with_capacity(batch);
        for _ in 0..batch {
            let (source_index, line_index) = order[next % order.len()];
            let source = &sources[source_index];
            let (number, text) = &source.lines[line_index];
            write_event(
                &mut body,
                &EventFields {
                    timestamp_ms: base_ms + next as u64,
                    service: &source.service,
                    host: &format!("node-{}", (*number as usize + source_index) % 8 + 1),
                    message: text,
                    file: Some(&source.file),
                    line: *number,
                    shape,
                    user_id: None,
                    request_id: None,
                },
            )?;
            ends.push(body.len());
            next += 1;
        }
        total_bytes += body.len();
        pool.push(Batch {
            body: Bytes::from(body),
            ends,
        });
        if total_bytes > max_bytes {
            break;
        }
    }
    Ok(pool)
}

/// `(source, line)` indexes taking one line from each source in turn.
fn interleave(sources: &[Source]) -> Vec<(usize, usize)> {
    let longest = sources.iter().map(|s| s.lines.len()).max().unwrap_or(0);
    let mut order = Vec::with_capacity(sources.iter().map(|s| s.lines.len()).sum());
    for line in 0..longest {
        for (index, source) in sources.iter().enumerate() {
            if line < source.lines.len() {
                order.push((index, line));
            }
        }
    }
    order
}

/// Whether events are sent as logs or as audit events (which also need an
/// `action` and an actor: the file's service and the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Log,
    Audit,
}

/// What varies between events; the level is read from the message.
pub(crate) struct EventFields<'a> {
    pub(crate) timestamp_ms: u64,
    pub(crate) service: &'a str,
    pub(crate) host: &'a str,
    pub(crate) message: &'a str,
    /// `metadata.file`, when the event names its file.
    pub(crate) file: Option<&'a str>,
    pub(crate) line: u64,
    pub(crate) shape: Shape,
    /// The `user_id` field, when the event has one.
    pub(crate) user_id: Option<&'a str>,
    /// A `request_id` attribute, when the event has one.
    pub(crate) request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    timestamp: u64,
    service: &'a str,
    level: &'static str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    message: &'a str,
    metadata: WireMetadata<'a>,
}

#[derive(Serialize)]
struct WireMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    line: u64,
}

/// Appends one event as a JSON line (with its trailing newline) to `out`.
pub(crate) fn write_event(out: &mut Vec<u8>, fields: &EventFields<'_>) -> anyhow::Result<()> {
    let audit = fields.shape == Shape::Audit;
    let event = WireEvent {
        action: audit.then_some(fields.service),
        actor: audit.then_some(fields.host),
        timestamp: fields.timestamp_ms,
        service: fields.service,
        level: level_of(fields.message),
        host: fields.host,
        user_id: fields.user_id,
        request_id: fields.request_id,
        message: fields.message,
        metadata: WireMetadata {
            file: fields.file,
            line: fields.line,
        },
    };
    serde_json::to_writer(&mut *out, &event)?;
    out.push(b'\n');
    Ok(())
}

/// The service name for a log file: its stem, lowercased, without a Loghub-style size
/// suffix (`Apache_2k.log` → `apache`).
pub(crate) fn service_from_path(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let trimmed = match stem.rsplit_once('_') {
        Some((head, size)) if !head.is_empty() && is_size_suffix(size) => head,
        _ => stem.as_str(),
    };
    if trimmed.is_empty() {
        "unknown".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `2k`, `100`, `5m`: digits with an optional k/m.
fn is_size_suffix(text: &str) -> bool {
    let digits = text.trim_end_matches(['k', 'm']);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The level of a raw log line, as a canonical name: the level letter of an Android
/// logcat line, else the first word naming a level (case-insensitive), else `info`.
pub(crate) fn level_of(line: &str) -> &'static str {
    logcat_level(line).unwrap_or_else(|| level_word(line))
}

/// `03-17 16:13:38.811  1702  2395 E Tag: …`: the letter after date, time, pid and tid.
fn logcat_level(line: &str) -> Option<&'static str> {
    let mut tokens = line.split_whitespace();
    let date = tokens.next()?;
    let is_date = date.len() == 5
        && date.bytes().enumerate().all(|(i, b)| match i {
            2 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !is_date {
        return None;
    }
    match tokens.nth(3)? {
        "V" => Some("trace"),
        "D" => Some("debug"),
        "I" => Some("info"),
        "W" => Some("warn"),
        "E" => Some("error"),
        "F" | "A" => Some("fatal"),
        _ => None,
    }
}

/// The first word of `line` naming a level, or `info`.
fn level_word(line: &str) -> &'static str {
    line.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| (4..=8).contains(&word.len()))
        .find_map(|word| match word.to_ascii_lowercase().as_str() {
            "trace" => Some("trace"),
            "debug" => Some("debug"),
            "info" | "notice" => Some("info"),
            "warn" | "warning" => Some("warn"),
            "error" | "severe" => Some("error"),
            "fatal" | "critical" => Some("fatal"),
            _ => None,
        })
        .unwrap_or("info")
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// A seed that differs between runs.
pub(crate) fn time_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

/// Marsaglia's xorshift64: plenty random for synthetic log lines.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound`.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// One synthetic log line, mostly INFO with some DEBUG, WARN and ERROR.
fn generated_line(rng: &mut XorShift) -> String {
    let id = rng.next() & 0xffff_ffff;
    match rng.below(20) {
        0..=5 => format!(
            "INFO  GET /api/v1/orders/{} -> 200 in {}ms (user_id={})",
            rng.below(100_000),
            rng.below(300) + 1,
            rng.below(5_000)
        ),
        6..=8 => format!(
            "INFO  user {} signed in from 10.{}.{}.{} via password",
            rng.below(5_000),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        9..=10 => format!(
            "INFO  published {} messages to topic order-events partition {}",
            rng.below(500) + 1,
            rng.below(12)
        ),
        11..=13 => format!("DEBUG cache miss for key session:{id:08x}, loading from store"),
        14..=15 => format!(
            "WARN  slow query on orders_db took {}ms (threshold 500ms), rows={}",
            rng.below(4_000) + 500,
            rng.below(10_000)
        ),
        16..=17 => format!(
            "ERROR payment {id:08x} failed: card declined by issuer (code {})",
            rng.below(90) + 10
        ),
        _ => format!(
            "ERROR connection to db-{}.internal:5432 timed out after {}ms, retrying",
            rng.below(4) + 1,
            rng.below(5_000) + 1_000
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn levels_come_from_level_words() {
        let cases = [
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
                "error",
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                "info",
            ),
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
                "info",
            ),
            ("2015-10-18 18:01:47,978 WARN [main] retrying", "warn"),
            ("something Warning: disk low", "warn"),
            ("sshd[24324]: error: Received disconnect", "error"),
            ("17/06/09 20:10:40 DEBUG x: y", "debug"),
            ("FATAL kernel panic", "fatal"),
            (
                "Jun 14 15:16:01 combo sshd: authentication failure;",
                "info",
            ),
            ("terrors and informative words do not count", "info"),
            ("", "info"),
            (
                "03-17 16:13:38.811  1702  2395 D WindowManager: error in name",
                "debug",
            ),
            (
                "03-17 16:14:02.000  1702  2395 E ActivityManager: x",
                "error",
            ),
            ("03-17 16:14:02.000  1702  2395 W Tag: y", "warn"),
            ("03-17 16:14:02.000 ERROR", "error"),
        ];
        for (line, level) in cases {
            assert_eq!(level_of(line), level, "{line}");
        }
    }

    #[test]
    fn service_names_drop_size_suffix() {
        assert_eq!(service_from_path(Path::new("a/Apache_2k.log")), "apache");
        assert_eq!(service_from_path(Path::new("OpenSSH_2k.log")), "openssh");
        assert_eq!(service_from_path(Path::new("HDFS_100.log")), "hdfs");
        assert_eq!(service_from_path(Path::new("my_app.log")), "my_app");
        assert_eq!(service_from_path(Path::new("syslog")), "syslog");
    }

    #[test]
    fn events_are_valid_json_with_all_fields() {
        let mut out = Vec::new();
        let message = "say \"hi\"\tback\\ \u{1}é";
        write_event(
            &mut out,
            &EventFields {
                timestamp_ms: 1_700_000_000_000,
                service: "apache",
                host: "node-3",
                message,
                file: Some("Apache_2k.log"),
                line: 42,
                shape: Shape::Log,
                user_id: None,
                request_id: None,
            },
        )
        .unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["timestamp"], 1_700_000_000_000u64);
        assert_eq!(value["service"], "apache");
        assert_eq!(value["level"], "info");
        assert_eq!(value["host"], "node-3");
        assert_eq!(value["message"], message);
        assert_eq!(value["metadata"]["file"], "Apache_2k.log");
        assert_eq!(value["metadata"]["line"], 42);
    }

    #[test]
    fn files_become_batches_of_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Tiny_2k.log");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"first INFO line\r\n\n  \nsecond ERROR \xff line\nthird warn line")
            .unwrap();
        drop(file);
        let source = Source::read(&path).unwrap();
        assert_eq!(source.service, "tiny");
        assert_eq!(source.file, "Tiny_2k.log");
        let numbers: Vec<u64> = source.lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 4, 5]);

        let pool = build_pool(&[source], 2, usize::MAX, usize::MAX, 1000, Shape::Log).unwrap();
        // 3 lines in batches of 2: two batches, the last wrapping round to line 1.
        assert_eq!(pool.len(), 2);
        let events: Vec<serde_json::Value> = pool
            .iter()
            .flat_map(|batch| {
                assert_eq!(batch.events(), 2);
                let body = batch.prefix(usize::MAX);
                String::from_utf8(body.to_vec())
                    .unwrap()
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        let lines: Vec<u64> = events
            .iter()
            .map(|e| e["metadata"]["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [1, 4, 5, 1]);
        let levels: Vec<&str> = events
            .iter()
            .map(|e| e["level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["info", "error", "warn", "info"]);
        assert_eq!(events[1]["message"], "second ERROR \u{fffd} line");
        // One millisecond apart, the last at the end time given (now, in a real run).
        assert_eq!(events[0]["timestamp"], 997);
        assert_eq!(events[3]["timestamp"], 1000);
        assert!(events.iter().all(|e| e["service"] == "tiny"));

        let first = pool[0].prefix(1);
        assert!(first.ends_with(b"\n"));
        assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(pool[0].prefix(0).is_empty());
    }

    #[test]
    fn pool_respects_event_and_byte_caps() {
        let sources = Source::generated(1_000, 7);
        assert_eq!(sources.len(), GENERATED_SERVICES.len());
        let capped = build_pool(&sources, 100, 250, usize::MAX, 0, Shape::Log).unwrap();
        assert_eq!(capped.len(), 3);
        let small = build_pool(&sources, 100, usize::MAX, 1, 0, Shape::Log).unwrap();
        assert_eq!(small.len(), 1);
        let all = build_pool(&sources, 100, usize::MAX, usize::MAX, 0, Shape::Audit).unwrap();
        assert_eq!(all.len(), 10);
        for line in all[0]
            .prefix(100)
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let event: serde_json::Value = serde_json::from_slice(line).unwrap();
            let size = line.len();
            assert!((100..400).contains(&size), "{size}");
            assert!(GENERATED_SERVICES.contains(&event["service"].as_str().unwrap()));
        }
    }
}
