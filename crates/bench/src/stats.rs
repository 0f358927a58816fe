//! Number crunching shared by the ingest and query reports: latency percentiles and
//! readable counts.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds (all 0 when there are none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many latencies were measured.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises `latencies` (in any order).
    pub(crate) fn from_durations(latencies: &[Duration]) -> Self {
        let millis: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Self::from_millis(millis)
    }

    /// Summarises latencies given in milliseconds (in any order).
    pub(crate) fn from_millis(mut millis: Vec<f64>) -> Self {
        millis.sort_by(f64::total_cmp);
        let count = millis.len();
        let mean_ms = if count == 0 {
            0.0
        } else {
            millis.iter().sum::<f64>() / count as f64
        };
        LatencySummary {
            count,
            mean_ms,
            p50_ms: percentile(&millis, 50.0),
            p90_ms: percentile(&millis, 90.0),
            p99_ms: percentile(&millis, 99.0),
            max_ms: millis.last().copied().unwrap_or(0.0),
        }
    }
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values; 0 when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `numerator / denominator`, or 0 when the denominator is.
pub(crate) fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 90.0), 90.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0], 50.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn summary_sorts_and_averages() {
        let summary = LatencySummary::from_millis(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(summary.count, 4);
        assert_eq!(summary.mean_ms, 2.5);
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.p99_ms, 4.0);
        assert_eq!(summary.max_ms, 4.0);
        let durations = [Duration::from_millis(10), Duration::from_millis(30)];
        assert_eq!(LatencySummary::from_durations(&durations).max_ms, 30.0);
        assert_eq!(
            LatencySummary::from_millis(Vec::new()),
            LatencySummary::default()
        );
    }
}
