//! Latency histograms (HdrHistogram, nanoseconds, 3 significant digits) and their summary.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds, 1 ns to 60 s, 3 significant digits.
pub fn new() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Record one latency (saturating at the top bound).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_nanos() as u64).max(1));
}

/// The figures every latency table shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

pub fn summary(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_nanos(h.max()),
    }
}

/// (x, latency in µs) points of the percentile distribution, x in "nines":
/// x = -log10(1 - q), so 1 is p90, 2 is p99, 3 is p99.9.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    let mut x = 0.0_f64;
    // Stop at the resolution the sample count supports.
    let top = (h.len() as f64).log10().clamp(1.0, 5.0);
    while x <= top {
        let q = 1.0 - 10f64.powf(-x);
        points.push((x, h.value_at_quantile(q) as f64 / 1_000.0));
        x += 0.05;
    }
    points.push((top + 0.05, h.max() as f64 / 1_000.0));
    points
}

/// `1.23 µs`, `456 ns`, `12.3 ms`.
pub fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}
