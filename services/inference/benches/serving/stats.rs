//! Summaries of timings: percentiles of one run, and median with min-max over rounds.

use std::time::Duration;

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

/// Nearest-rank quantile of unsorted values; NaN for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    tfesi_e2e::bench::percentile(&sorted, q)
}
