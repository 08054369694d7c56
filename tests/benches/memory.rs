//! Resident memory of each service of the stack, idle and under load: the four real release
//! binaries (ingest, preprocess with its pipeline worker, inference, registry) on a fresh
//! database and Redis prefix, as the end-to-end tests start them; VmRSS of each process after
//! start-up, sampled every 100 ms while `tfesi demo` drives a synthetic cohort through the
//! stack (upload over C-STORE and gRPC, preprocessing, inference, predictions recorded in the
//! registry, follow-ups, a snapshot), and again once the load is over. Prints Markdown tables;
//! writes bench/results/memory.json. The target (BENCHMARKS.md): under 100 MB per service idle,
//! model weights aside.
//!
//! Run (release build; the bench builds the service binaries and `tfesi` first, in release):
//!   cargo bench -p tfesi-e2e --bench memory
//! Knobs: TFESI_BENCH_PATIENTS (20), TFESI_BENCH_SETTLE_S (seconds before the idle and the
//! after-load readings, 5), TFESI_BENCH_MAX_SECONDS (bound of the load, 300),
//! TFESI_BENCH_RESULTS (output directory, default bench/results), TFESI_BENCH_BUILD (1; 0 skips
//! the `cargo build --release` of the binaries and measures those already in target/release).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use serde_json::{Value, json};
use tfesi_e2e::bench::{Spread, build_release_binaries, env_or, machine, repo_root};
use tfesi_e2e::process::{rss_mb, status_mb};
use tfesi_e2e::stack::{Stack, TEST_MODEL};

/// What the bench starts: the four services and the `tfesi` command that drives the load.
const PACKAGES: [&str; 5] =
    ["tfesi-ingest", "tfesi-preprocess", "tfesi-inference", "tfesi-registry", "tfesi-cli"];
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Idle resident memory per service (BENCHMARKS.md), model weights aside.
const IDLE_TARGET_MB: f64 = 100.0;
/// The cohort's seed (fixed, so runs compare).
const SEED: u64 = 11;
const COMMAND: &str = "cargo bench -p tfesi-e2e --bench memory";

struct Settings {
    patients: usize,
    settle: Duration,
    max_load: Duration,
    out_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let out_dir = std::env::var_os("TFESI_BENCH_RESULTS")
            .map_or_else(|| repo_root().join("bench/results"), PathBuf::from);
        Self {
            patients: env_or("TFESI_BENCH_PATIENTS", 20).max(1),
            settle: Duration::from_secs(env_or("TFESI_BENCH_SETTLE_S", 5) as u64),
            max_load: Duration::from_secs(env_or("TFESI_BENCH_MAX_SECONDS", 300).max(30) as u64),
            out_dir,
        }
    }
}

/// One reading of a process's memory, in MB: resident in all, anonymous (heap, stacks) and
/// file-backed (the binary's and shared libraries' pages).
#[derive(Debug, Clone, Copy)]
struct Reading {
    rss: f64,
    anon: f64,
    file: f64,
}

impl Reading {
    fn of(pid: u32, name: &str) -> Self {
        let field =
            |field| status_mb(pid, field).unwrap_or_else(|| panic!("{name} (pid {pid}) has no {field}"));
        Self { rss: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile") }
    }

    fn to_json(self) -> Value {
        json!({ "rss_mb": round(self.rss), "anon_mb": round(self.anon), "file_mb": round(self.file) })
    }
}

fn round(mb: f64) -> f64 {
    (mb * 10.0).round() / 10.0
}

/// Resident MB of the mappings of `pid` whose path contains `needle` (from /proc/<pid>/smaps).
fn mapped_rss_mb(pid: u32, needle: &str) -> f64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut matching = false;
    let mut kb = 0.0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping's header: address range, permissions, offset, device, inode, path.
            matching = line.contains(needle);
        } else if matching && first == "Rss:" {
            kb += fields.next().and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
        }
    }
    kb / 1024.0
}

/// Files and bytes under `dir` (the model repository the inference service loads), depth-bounded.
fn tree_size(dir: &Path, depth: usize) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    let mut total = (0, 0);
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && depth > 0 {
            let (files, bytes) = tree_size(&entry.path(), depth - 1);
            total = (total.0 + files, total.1 + bytes);
        } else if kind.is_file() {
            total = (total.0 + 1, total.1 + entry.metadata().map_or(0, |meta| meta.len()));
        }
    }
    total
}

/// Samples the VmRSS of every pid every 100 ms until `stop` is set or `max_samples` are taken;
/// a process that is gone reads NaN.
async fn sample(pids: Vec<u32>, stop: Arc<AtomicBool>, max_samples: usize) -> Vec<Vec<f64>> {
    let mut interval = tokio::time::interval(SAMPLE_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    while samples.len() < max_samples && !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        samples.push(pids.iter().map(|pid| rss_mb(*pid).unwrap_or(f64::NAN)).collect());
    }
    samples
}

/// What one service used.
struct ServiceMemory {
    name: &'static str,
    pid: u32,
    idle: Reading,
    load_mean: f64,
    load_spread: Spread,
    load_peak_sampled: f64,
    /// The kernel's high-water mark of the resident set since start (catches what falls between
    /// two samples).
    peak_hwm: f64,
    after: Reading,
    /// Idle resident memory minus the model files it loaded (inference only; others: the same).
    idle_without_weights: f64,
}

impl ServiceMemory {
    fn met(&self) -> bool {
        self.idle_without_weights < IDLE_TARGET_MB
    }
}

fn main() {
    let settings = Settings::from_env();
    build_release_binaries("memory", &PACKAGES);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(run(settings));
}

async fn run(settings: Settings) {
    let started = Instant::now();
    let stack = Stack::start(&[]).await;
    let services: Vec<(&'static str, u32)> =
        stack.services().iter().map(|(process, name)| (*name, process.pid())).collect();
    println!(
        "memory: stack up in {:.1} s ({}); settling {} s",
        started.elapsed().as_secs_f64(),
        services.iter().map(|(name, pid)| format!("{name} pid {pid}")).collect::<Vec<_>>().join(", "),
        settings.settle.as_secs()
    );
    tokio::time::sleep(settings.settle).await;
    let idle: Vec<Reading> = services.iter().map(|(name, pid)| Reading::of(*pid, name)).collect();
    let inference_pid = stack.inference.pid();
    let onnxruntime_idle_mb = mapped_rss_mb(inference_pid, "libonnxruntime");
    let (model_files, model_bytes) = tree_size(&stack.dir.path().join("models"), 4);
    let model_mb = model_bytes as f64 / (1024.0 * 1024.0);

    // Under load: the demo's whole loop, every service sampled in the background.
    let stop = Arc::new(AtomicBool::new(false));
    let max_samples = (settings.max_load.as_millis() / SAMPLE_EVERY.as_millis()) as usize + 100;
    let pids: Vec<u32> = services.iter().map(|(_, pid)| *pid).collect();
    let sampler = tokio::spawn(sample(pids, Arc::clone(&stop), max_samples));
    let load_started = Instant::now();
    let patients = settings.patients as u64;
    let demo =
        std::panic::AssertUnwindSafe(stack.run_demo(patients, SEED, settings.max_load)).catch_unwind().await;
    let load_seconds = load_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("the sampler runs to its end");
    let report = match demo {
        Ok(report) => report,
        Err(panic) => stack.abandon(panic).await,
    };
    let peak_hwm: Vec<f64> =
        services.iter().map(|(_, pid)| status_mb(*pid, "VmHWM").unwrap_or(f64::NAN)).collect();
    println!(
        "memory: load of {patients} patients took {load_seconds:.1} s, {} samples; settling {} s",
        samples.len(),
        settings.settle.as_secs()
    );
    tokio::time::sleep(settings.settle).await;
    let after: Vec<Reading> = services.iter().map(|(name, pid)| Reading::of(*pid, name)).collect();
    stack.finish().await;

    let figures: Vec<ServiceMemory> = services
        .iter()
        .enumerate()
        .map(|(index, (name, pid))| {
            let series: Vec<f64> =
                samples.iter().map(|sample| sample[index]).filter(|mb| mb.is_finite()).collect();
            let load_mean = series.iter().sum::<f64>() / series.len().max(1) as f64;
            let weights = if *name == "inference" { model_mb } else { 0.0 };
            ServiceMemory {
                name,
                pid: *pid,
                idle: idle[index],
                load_mean,
                load_spread: Spread::of(&series),
                load_peak_sampled: series.iter().copied().fold(f64::NAN, f64::max),
                peak_hwm: peak_hwm[index],
                after: after[index],
                idle_without_weights: idle[index].rss - weights,
            }
        })
        .collect();
    print_tables(&figures, onnxruntime_idle_mb, (model_files, model_bytes));
    let results = json!({
        "bench": "memory",
        "command": COMMAND,
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": machine(),
        "unit": "MB = kB / 1024 from /proc/<pid>/status (VmRSS, RssAnon, RssFile, VmHWM)",
        "settings": {
            "patients": settings.patients,
            "seed": SEED,
            "settle_s": settings.settle.as_secs(),
            "sample_every_ms": SAMPLE_EVERY.as_millis() as u64,
            "max_load_s": settings.max_load.as_secs(),
            "model": TEST_MODEL,
            "build": "release",
            "load": "tfesi demo: half the studies over C-STORE, half over gRPC upload; waits for every \
                     prediction, then records the follow-ups and takes a snapshot",
        },
        "target": { "idle_rss_mb_below": IDLE_TARGET_MB, "model_weights": "excluded" },
        "load": {
            "seconds": load_seconds,
            "samples": samples.len(),
            "studies": report["studies"].clone(),
            "follow_ups": report["follow_ups"].clone(),
        },
        "inference_model": {
            "model": TEST_MODEL,
            "files": model_files,
            "bytes": model_bytes,
            "onnxruntime_library_resident_mb_idle": round(onnxruntime_idle_mb),
        },
        "services": figures.iter().map(|service| json!({
            "service": service.name,
            "pid": service.pid,
            "idle": service.idle.to_json(),
            "idle_without_model_weights_mb": round(service.idle_without_weights),
            "under_load": {
                "mean_mb": round(service.load_mean),
                "median_min_max_mb": service.load_spread.to_json(),
                "peak_sampled_mb": round(service.load_peak_sampled),
                "peak_vmhwm_mb": round(service.peak_hwm),
            },
            "after_load": service.after.to_json(),
            "idle_target_met": service.met(),
        })).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&settings.out_dir).expect("results directory");
    let path = settings.out_dir.join("memory.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).expect("json") + "\n")
        .expect("write results");
    println!("memory: wrote {}", path.display());
}

fn print_tables(
    figures: &[ServiceMemory],
    onnxruntime_idle_mb: f64,
    (model_files, model_bytes): (usize, u64),
) {
    println!();
    println!(
        "| service | idle RSS MB | mean under load MB | peak under load MB (sampled / VmHWM) | after load MB | target (<{IDLE_TARGET_MB:.0} MB idle) met |"
    );
    println!("|---|---|---|---|---|---|");
    for service in figures {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} | {} |",
            service.name,
            service.idle.rss,
            service.load_mean,
            service.load_peak_sampled,
            service.peak_hwm,
            service.after.rss,
            if service.met() { "yes" } else { "no" }
        );
    }
    println!();
    println!(
        "| service | idle anonymous MB (heap, stacks) | idle file-backed MB (binary, libraries) | after load anonymous MB |"
    );
    println!("|---|---|---|---|");
    for service in figures {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            service.name, service.idle.anon, service.idle.file, service.after.anon
        );
    }
    println!();
    println!(
        "inference: model `{TEST_MODEL}` files {model_files}, {model_bytes} bytes on disk; \
         libonnxruntime resident {onnxruntime_idle_mb:.1} MB idle (code, not weights)"
    );
}
