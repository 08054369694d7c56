//! What else this machine is doing: tests whose criteria are times on a clock (overload) wait
//! for the CPUs to be quiet before they measure, instead of measuring whatever an earlier test
//! left running (a browser or a service still exiting).

use std::time::{Duration, Instant};

/// Busy and total CPU time over all cores from `/proc/stat`, in clock ticks; `None` where there
/// is no such file (not Linux).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of all cores that was idle over `window` (1.0 where it cannot be read).
pub fn idle_share(window: Duration) -> f64 {
    let Some((busy_before, total_before)) = cpu_ticks() else {
        return 1.0;
    };
    std::thread::sleep(window);
    let Some((busy_after, total_after)) = cpu_ticks() else {
        return 1.0;
    };
    let total = total_after.saturating_sub(total_before);
    if total == 0 {
        return 1.0;
    }
    1.0 - busy_after.saturating_sub(busy_before) as f64 / total as f64
}

/// Waits (at most `within`) until the CPUs were at least `idle` idle over half a second, and
/// returns the last idle share measured, so that the caller can report it.
pub fn wait_until_quiet(idle: f64, within: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let measured = idle_share(Duration::from_millis(500));
        if measured >= idle || started.elapsed() >= within {
            return measured;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_share_is_a_share() {
        let share = idle_share(Duration::from_millis(100));
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
}
