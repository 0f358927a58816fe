//! The standard `process_*` figures (CPU seconds, resident and virtual
//! memory, open and maximum file descriptors, start time), read from
//! `/proc/self` at each scrape. They are rendered here rather than recorded,
//! because CPU seconds are a fractional counter, which the `metrics` facade
//! does not have. Where `/proc` is missing (not Linux) nothing is added.

use std::fmt::Write as _;

/// What Linux reports CPU times and the start time in: `USER_HZ`, which the
/// kernel fixes at 100 for `/proc` on every architecture it supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends the process figures that could be read to an exposition.
pub(super) fn append_exposition(text: &mut String) {
    let figures = read_figures();
    let families = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            figures.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            figures.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            figures.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            figures.open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            figures.max_fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            figures.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(value) = value {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}

/// What `/proc` said; `None` for what it did not.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    start_time_seconds: Option<f64>,
}

fn read_figures() -> Figures {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut figures = Figures::default();
    if let Some(stat) = read("/proc/self/stat") {
        let boot_time = read("/proc/stat").as_deref().and_then(boot_time);
        figures.cpu_seconds = cpu_seconds(&stat);
        figures.start_time_seconds = start_ticks(&stat)
            .zip(boot_time)
            .map(|(ticks, boot)| boot + ticks / TICKS_PER_SECOND);
    }
    if let Some(status) = read("/proc/self/status") {
        figures.resident_bytes = status_kib(&status, "VmRSS:").map(|kib| kib * 1024.0);
        figures.virtual_bytes = status_kib(&status, "VmSize:").map(|kib| kib * 1024.0);
    }
    if let Some(limits) = read("/proc/self/limits") {
        figures.max_fds = max_open_files(&limits);
    }
    figures.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as f64);
    figures
}

/// The fields of `/proc/self/stat` after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().collect())
}

/// `utime + stime` (fields 14 and 15; 12 and 13 after the name) in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields = stat_fields(stat)?;
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// `starttime` (field 22; 20 after the name): ticks after boot.
fn start_ticks(stat: &str) -> Option<f64> {
    stat_fields(stat)?.get(19)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// A `kB` line of `/proc/self/status`, such as `VmRSS:   1234 kB`.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find_map(|line| line.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let soft = line.split_whitespace().next()?;
    match soft {
        "unlimited" => None,
        number => number.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_field_by_field() {
        // A command name with a space and a parenthesis, as `comm` allows.
        let stat = "4242 (log book) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(start_ticks(stat), Some(12345.0));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        let status = "Name:\tlogbook\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(2048.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[test]
    fn this_process_is_measured_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("skipped: no /proc here");
            return;
        }
        let figures = read_figures();
        assert!(figures.resident_bytes.is_some_and(|bytes| bytes > 0.0));
        assert!(figures.open_fds.is_some_and(|fds| fds >= 3.0));
        assert!(figures.start_time_seconds.is_some_and(|start| start > 1e9));
        assert!(figures.cpu_seconds.is_some());
    }
}
