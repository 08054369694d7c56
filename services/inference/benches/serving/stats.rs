//! Summaries of timings: percentiles of one run, and median with min-max over rounds.

use std::time::Duration;

use serde_json::{Value, json};

/// What one system did in one run of a scenario.
#[derive(Debug, Clone)]
pub struct Run {
    /// Latency of each answered request, in microseconds, in completion order.
    pub latencies_us: Vec<f64>,
    /// Wall time from the first request sent to the last answer.
    pub wall: Duration,
    /// Requests refused with RESOURCE_EXHAUSTED (counted, not retried).
    pub refused: usize,
}

impl Run {
    /// Predictions per second (one row per request).
    pub fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The `q`-quantile (0 to 1) of the latencies, nearest rank.
    pub fn percentile_us(&self, q: f64) -> f64 {
        percentile(&self.latencies_us, q)
    }
}

/// Nearest-rank quantile; NaN for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median and range of one figure over rounds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Summarises the per-round values (NaN values, from empty runs, are left out).
    pub fn of(values: &[f64]) -> Self {
        let mut finite: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
        if finite.is_empty() {
            return Self { median: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        finite.sort_by(f64::total_cmp);
        let middle = finite.len() / 2;
        let median = if finite.len() % 2 == 1 {
            finite[middle]
        } else {
            f64::midpoint(finite[middle - 1], finite[middle])
        };
        Self { median, min: finite[0], max: finite[finite.len() - 1] }
    }

    /// "median (min–max)" with `decimals` digits.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.decimals$} ({:.decimals$}–{:.decimals$})", self.median, self.min, self.max)
    }

    pub fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}
