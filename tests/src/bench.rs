//! What the benchmarks that start real services (`cargo bench` targets of ingest and registry)
//! share: their knobs and the summary of per-round figures as median (min–max).

use serde_json::{Value, json};

/// A count from the environment variable `name`, or `default` when it is not set; a value that
/// is not a count stops the bench with a message naming it.
pub fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a count")),
        Err(_) => default,
    }
}

/// The machine a bench ran on, for its results file: CPU model, CPU count, kernel.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
        .map(|(_, name)| name.trim().to_owned())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        "kernel": kernel.trim(),
    })
}

/// Postgres' durability settings (`synchronous_commit`, `fsync`, `wal_sync_method`) and its
/// version, each printed as `<bench>: postgres <name> = <value>`, for the results file.
pub async fn postgres_durability(admin_url: &str, bench: &str) -> serde_json::Map<String, Value> {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(admin_url).await.expect("connect to Postgres");
    let mut durability = serde_json::Map::new();
    for name in ["synchronous_commit", "fsync", "wal_sync_method", "server_version"] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&mut admin)
            .await
            .expect(name);
        println!("{bench}: postgres {name} = {value}");
        durability.insert(name.to_owned(), Value::String(value));
    }
    durability
}

/// The lines of a service's JSON log (as the stacks write it) whose message is `message`, in
/// order: each one's time and the whole line (`fields`, `span`). Lines that are not JSON are
/// skipped.
pub fn log_events(log: &str, message: &str) -> Vec<(chrono::DateTime<chrono::Utc>, Value)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .filter_map(|line| {
            let time = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok()?;
            Some((time.to_utc(), line))
        })
        .collect()
}

/// The repository's root (the e2e crate sits at `tests/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits at tests/").to_path_buf()
}

/// Builds the release binaries of `packages` so a bench never measures stale ones (a no-op when
/// they are up to date; `cargo bench` has released its build lock by then), unless
/// TFESI_BENCH_BUILD=0, which takes the binaries beside the bench as they are. Returns the
/// profile the binaries come from ("release", or e.g. "debug" for a smoke run, which is said).
pub fn build_release_binaries(bench: &str, packages: &[&str]) -> String {
    let dir = crate::process::binary_dir();
    let profile = dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    if env_or("TFESI_BENCH_BUILD", 1) == 0 {
        println!("{bench}: TFESI_BENCH_BUILD=0: using the binaries in {}", dir.display());
        if profile != "release" {
            println!("{bench}: these are `{profile}` binaries: the figures are NOT release figures");
        }
        return profile;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--release", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    println!("{bench}: building the release binaries ({})", packages.join(", "));
    assert!(command.status().expect("run cargo build").success(), "cargo build --release failed");
    assert_eq!(profile, "release", "run as a release bench (cargo bench), not from {}", dir.display());
    profile
}

/// Nearest-rank quantile `q` of values sorted ascending; NaN for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
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
    /// Summarises per-round values; NaN values (from empty runs) are left out.
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
        if sorted.is_empty() {
            return Self { median: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            f64::midpoint(sorted[middle - 1], sorted[middle])
        };
        Self { median, min: sorted[0], max: sorted[sorted.len() - 1] }
    }

    /// "median (min–max)" with `decimals` digits.
    pub fn show(self, decimals: usize) -> String {
        format!("{:.decimals$} ({:.decimals$}–{:.decimals$})", self.median, self.min, self.max)
    }

    /// `{"median", "min", "max"}`.
    pub fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_and_ignores_nan() {
        let spread = Spread::of(&[3.0, f64::NAN, 1.0, 2.0, 10.0]);
        assert_eq!((spread.median, spread.min, spread.max), (2.5, 1.0, 10.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0]).show(1), "2.0 (1.0–4.0)");
        assert!(Spread::of(&[]).median.is_nan());
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
    }
}
