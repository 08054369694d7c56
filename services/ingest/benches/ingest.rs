//! Ingest throughput with fsync on: instances/s and MB/s stored by the real `tfesi-ingest` binary
//! through gRPC `Upload` and through DICOM C-STORE (dcmtk's storescu), beside Debian's Orthanc
//! on the same files with the same durability (`SyncStorageArea`) through its REST API
//! (`POST /instances`) and through C-STORE with the same storescu command, in alternating rounds.
//! Every run starts its server fresh (empty store, fresh database or index, untimed), sends one
//! warm-up study (untimed), then the cohort (timed), and checks that the server holds every
//! instance afterwards, so a failed store can never look fast.
//! Prints tables; writes bench/results/ingest.json.
//!
//! Run (release build; cargo builds the service binary too):
//!   cargo bench -p tfesi-ingest --bench ingest
//! Knobs: TFESI_BENCH_ROUNDS (3), TFESI_BENCH_PATIENTS (10 synthetic studies, seed 1),
//! TFESI_BENCH_CLIENTS (4: gRPC streams, HTTP requests and storescu associations in flight),
//! TFESI_BENCH_CHUNK_KIB (256, gRPC chunk size), TFESI_BENCH_MAX_SECONDS (no new round after
//! this, 600), TFESI_BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres),
//! TFESI_BENCH_REDIS_URL (redis://127.0.0.1:6379/0), TFESI_BENCH_ORTHANC (/usr/sbin/Orthanc),
//! TFESI_BENCH_RESULTS (output directory, default bench/results).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The crate root's modules resolve beside it: the helpers live in benches/ingest/.
#[path = "ingest/orthanc.rs"]
mod orthanc;
#[path = "ingest/ours.rs"]
mod ours;
#[path = "ingest/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use orthanc::Orthanc;
use ours::Ours;
use support::{Scratch, Study};
use tfesi_e2e::bench::{Spread, env_or, machine, postgres_durability};

/// The target of issue 11: ours at least this multiple of Orthanc's rate.
const TARGET_RATIO: f64 = 3.0;
/// The largest PDU both receivers accept (our default; Orthanc is configured to match).
const MAX_PDU: u32 = 65_536;

const SYSTEMS: [&str; 4] =
    ["ours, gRPC Upload", "ours, C-STORE", "Orthanc, REST POST /instances", "Orthanc, C-STORE"];

struct Settings {
    rounds: usize,
    patients: u32,
    clients: usize,
    chunk_bytes: usize,
    max_duration: Duration,
    admin_url: String,
    redis_url: String,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            rounds: env_or("TFESI_BENCH_ROUNDS", 3).max(1),
            patients: u32::try_from(env_or("TFESI_BENCH_PATIENTS", 10).clamp(1, 500)).expect("small"),
            clients: env_or("TFESI_BENCH_CLIENTS", 4).clamp(1, 16),
            chunk_bytes: env_or("TFESI_BENCH_CHUNK_KIB", 256).clamp(1, 3072) * 1024,
            max_duration: Duration::from_secs(env_or("TFESI_BENCH_MAX_SECONDS", 600) as u64),
            admin_url: std::env::var("TFESI_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            redis_url: std::env::var("TFESI_BENCH_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned()),
        }
    }
}

/// The checkout's root (two levels above this crate).
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).expect("the crate sits at services/ingest").to_path_buf()
}

/// One system's timed send of the cohort in one round.
#[derive(Debug, Clone, Copy)]
struct Run {
    instances: usize,
    bytes: u64,
    wall: Duration,
    /// Server start and warm-up study, not timed.
    setup: Duration,
    /// CPU seconds the server process used during the timed send (ours: without Postgres).
    server_cpu_s: f64,
}

impl Run {
    fn instances_per_s(&self) -> f64 {
        self.instances as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Server CPU milliseconds per instance.
    fn cpu_ms_per_instance(&self) -> f64 {
        self.server_cpu_s * 1000.0 / self.instances.max(1) as f64
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// What every run shares.
struct Bench {
    settings: Settings,
    scratch: Scratch,
    stem: String,
    warm_up: Study,
    cohort: Vec<Study>,
    profile: PathBuf,
    orthanc_version: String,
}

impl Bench {
    fn cohort(&self) -> Vec<&Study> {
        self.cohort.iter().collect()
    }

    fn instances(&self) -> usize {
        self.cohort.iter().map(|study| study.files.len()).sum()
    }

    fn bytes(&self) -> u64 {
        self.cohort.iter().map(Study::bytes).sum()
    }

    /// Runs `system` once on a fresh server: start, warm-up study, the timed cohort, the check.
    async fn run(&mut self, system: usize, round: usize) -> Run {
        let expected = i64::try_from(self.warm_up.files.len() + self.instances()).expect("count");
        let clients = self.settings.clients;
        let setup_started = Instant::now();
        match system {
            0 | 1 => {
                let name = format!("{}_r{round}_{}", self.stem, if system == 0 { "grpc" } else { "cstore" });
                let mut ours = Ours::start(&self.scratch, &name, &self.settings.redis_url).await;
                let (setup, wall, server_cpu_s) = if system == 0 {
                    ours.upload(&[&self.warm_up], 1, self.settings.chunk_bytes).await;
                    let setup = setup_started.elapsed();
                    let (started, cpu) = (Instant::now(), support::cpu_seconds(ours.process.pid()));
                    let stored = ours.upload(&self.cohort(), clients, self.settings.chunk_bytes).await;
                    let wall = started.elapsed();
                    assert_eq!(stored, self.instances(), "instances the Upload streams reported STORED");
                    (setup, wall, support::cpu_seconds(ours.process.pid()) - cpu)
                } else {
                    support::storescu(ours.dicom, ours::AE_TITLE, &self.profile, &[&self.warm_up], 1).await;
                    let setup = setup_started.elapsed();
                    let (started, cpu) = (Instant::now(), support::cpu_seconds(ours.process.pid()));
                    support::storescu(ours.dicom, ours::AE_TITLE, &self.profile, &self.cohort(), clients)
                        .await;
                    (setup, started.elapsed(), support::cpu_seconds(ours.process.pid()) - cpu)
                };
                ours.assert_running();
                let stored = ours.count_stored().await;
                let objects = Ours::count_objects(&self.scratch.dir.join(&name).join("objects"));
                assert_eq!(
                    stored, expected,
                    "instances in tfesi-ingest's catalogue after {}",
                    SYSTEMS[system]
                );
                assert_eq!(
                    objects as i64, expected,
                    "objects in tfesi-ingest's store after {}",
                    SYSTEMS[system]
                );
                ours.stop().await;
                Run { instances: self.instances(), bytes: self.bytes(), wall, setup, server_cpu_s }
            }
            _ => {
                let dir = self.scratch.dir.join(format!("orthanc_r{round}_{system}"));
                let mut orthanc = Orthanc::start(&dir, MAX_PDU).await;
                self.orthanc_version.clone_from(&orthanc.version);
                let (setup, wall, server_cpu_s) = if system == 2 {
                    orthanc.post_instances(&[&self.warm_up], 1).await;
                    let setup = setup_started.elapsed();
                    let (started, cpu) = (Instant::now(), support::cpu_seconds(orthanc.pid()));
                    let stored = orthanc.post_instances(&self.cohort(), clients).await;
                    let wall = started.elapsed();
                    assert_eq!(stored, self.instances(), "instances Orthanc answered Success for");
                    (setup, wall, support::cpu_seconds(orthanc.pid()) - cpu)
                } else {
                    support::storescu(orthanc.dicom, orthanc::AE_TITLE, &self.profile, &[&self.warm_up], 1)
                        .await;
                    let setup = setup_started.elapsed();
                    let (started, cpu) = (Instant::now(), support::cpu_seconds(orthanc.pid()));
                    support::storescu(
                        orthanc.dicom,
                        orthanc::AE_TITLE,
                        &self.profile,
                        &self.cohort(),
                        clients,
                    )
                    .await;
                    (setup, started.elapsed(), support::cpu_seconds(orthanc.pid()) - cpu)
                };
                orthanc.assert_running();
                let stored = orthanc.count_instances().await;
                assert_eq!(
                    stored,
                    expected,
                    "CountInstances of Orthanc (pid {}) after {}",
                    orthanc.pid(),
                    SYSTEMS[system]
                );
                drop(orthanc);
                let _ = std::fs::remove_dir_all(&dir);
                Run { instances: self.instances(), bytes: self.bytes(), wall, setup, server_cpu_s }
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let settings = Settings::from_env();
    let started = Instant::now();
    let storescu_found = std::process::Command::new("storescu")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(storescu_found, "storescu not found (dcmtk; scripts/setup.sh installs it)");
    assert!(
        orthanc::binary().exists(),
        "{} is missing (scripts/setup.sh installs Debian's orthanc)",
        orthanc::binary().display()
    );
    let durability = postgres_durability(&settings.admin_url, "ingest").await;

    let stem = support::unique_stem();
    let scratch = Scratch::new(&settings.admin_url, std::env::temp_dir().join(&stem));
    let generating = Instant::now();
    let cohort_dir = scratch.dir.join("cohort");
    let patients = settings.patients;
    let mut cohort = tokio::task::spawn_blocking({
        let cohort_dir = cohort_dir.clone();
        move || support::generate_cohort(&cohort_dir, 1, 0, patients + 1)
    })
    .await
    .expect("the cohort");
    let warm_up = cohort.pop().expect("the warm-up study");
    let profile = support::storescu_profile(&scratch.dir);
    let mut bench =
        Bench { settings, scratch, stem, warm_up, cohort, profile, orthanc_version: String::new() };
    println!(
        "ingest: {} synthetic studies, {} instances, {:.1} MB (+ one warm-up study of {} instances), generated in {:.1?}",
        bench.cohort.len(),
        bench.instances(),
        bench.bytes() as f64 / 1e6,
        bench.warm_up.files.len(),
        generating.elapsed()
    );

    let mut rounds: Vec<[Run; 4]> = Vec::new();
    for round in 0..bench.settings.rounds {
        if round > 0 && started.elapsed() > bench.settings.max_duration {
            println!("ingest: stopping after {round} rounds (TFESI_BENCH_MAX_SECONDS)");
            break;
        }
        let mut runs: [Option<Run>; 4] = [None; 4];
        // The system that goes first rotates.
        for offset in 0..SYSTEMS.len() {
            let system = (round + offset) % SYSTEMS.len();
            let run = bench.run(system, round).await;
            println!(
                "ingest: round {} {}: {} instances in {:.2} s, {:.1} instances/s, {:.1} MB/s, server CPU {:.1} ms/instance (setup {:.1?})",
                round + 1,
                SYSTEMS[system],
                run.instances,
                run.wall.as_secs_f64(),
                run.instances_per_s(),
                run.mb_per_s(),
                run.cpu_ms_per_instance(),
                run.setup
            );
            runs[system] = Some(run);
        }
        rounds.push(runs.map(|run| run.expect("every system ran")));
    }
    report(&bench, &rounds, durability);
}

fn report(bench: &Bench, rounds: &[[Run; 4]], durability: serde_json::Map<String, Value>) {
    let settings = &bench.settings;
    let column = |system: usize, pick: fn(&Run) -> f64| -> Vec<f64> {
        rounds.iter().map(|runs| pick(&runs[system])).collect()
    };
    // Same files for every system: the ratio of instances/s equals the ratio of MB/s.
    let grpc_ratios: Vec<f64> =
        rounds.iter().map(|runs| runs[0].instances_per_s() / runs[2].instances_per_s()).collect();
    let cstore_ratios: Vec<f64> =
        rounds.iter().map(|runs| runs[1].instances_per_s() / runs[3].instances_per_s()).collect();
    let grpc = Spread::of(&grpc_ratios);
    let cstore = Spread::of(&cstore_ratios);

    println!();
    println!(
        "Ingest throughput, fsync on: {} synthetic studies ({} instances, {:.1} MB), {} in flight; \
         Orthanc {}; {} rounds",
        bench.cohort.len(),
        bench.instances(),
        bench.bytes() as f64 / 1e6,
        settings.clients,
        bench.orthanc_version,
        rounds.len()
    );
    println!();
    println!("| round | system | wall s | instances/s | MB/s | server CPU ms/instance |");
    println!("|---|---|---|---|---|---|");
    for (index, runs) in rounds.iter().enumerate() {
        for (system, run) in runs.iter().enumerate() {
            println!(
                "| {} | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
                index + 1,
                SYSTEMS[system],
                run.wall.as_secs_f64(),
                run.instances_per_s(),
                run.mb_per_s(),
                run.cpu_ms_per_instance()
            );
        }
    }
    println!();
    println!("| system | wall s | instances/s | MB/s | server CPU ms/instance |");
    println!("|---|---|---|---|---|");
    for (system, name) in SYSTEMS.iter().enumerate() {
        println!(
            "| {name} | {} | {} | {} | {} |",
            Spread::of(&column(system, |run| run.wall.as_secs_f64())).show(2),
            Spread::of(&column(system, Run::instances_per_s)).show(1),
            Spread::of(&column(system, Run::mb_per_s)).show(1),
            Spread::of(&column(system, Run::cpu_ms_per_instance)).show(1),
        );
    }
    println!();
    println!("| target | per round | measured, median (min–max) | target | met |");
    println!("|---|---|---|---|---|");
    let per_round =
        |ratios: &[f64]| ratios.iter().map(|ratio| format!("{ratio:.2}")).collect::<Vec<_>>().join(", ");
    let met = |spread: Spread| if spread.median >= TARGET_RATIO { "yes" } else { "no" };
    println!(
        "| instances/s, ours gRPC / Orthanc REST | {} | {} | >= {TARGET_RATIO} | {} |",
        per_round(&grpc_ratios),
        grpc.show(2),
        met(grpc)
    );
    println!(
        "| instances/s, ours C-STORE / Orthanc C-STORE | {} | {} | >= {TARGET_RATIO} | {} |",
        per_round(&cstore_ratios),
        cstore.show(2),
        met(cstore)
    );

    let per_round_json: Vec<Value> = rounds
        .iter()
        .enumerate()
        .map(|(index, runs)| {
            let systems: Vec<Value> = runs
                .iter()
                .enumerate()
                .map(|(system, run)| {
                    json!({
                        "system": SYSTEMS[system],
                        "instances": run.instances,
                        "bytes": run.bytes,
                        "wall_s": run.wall.as_secs_f64(),
                        "instances_per_s": run.instances_per_s(),
                        "mb_per_s": run.mb_per_s(),
                        "setup_s": run.setup.as_secs_f64(),
                        "server_cpu_s": run.server_cpu_s,
                        "server_cpu_ms_per_instance": run.cpu_ms_per_instance(),
                    })
                })
                .collect();
            json!({
                "round": index + 1,
                "first_system": SYSTEMS[index % SYSTEMS.len()],
                "systems": systems,
                "ratio_ours_grpc_over_orthanc_rest": grpc_ratios[index],
                "ratio_ours_cstore_over_orthanc_cstore": cstore_ratios[index],
            })
        })
        .collect();
    let summary: Vec<Value> = SYSTEMS
        .iter()
        .enumerate()
        .map(|(system, name)| {
            json!({
                "system": name,
                "wall_s": Spread::of(&column(system, |run| run.wall.as_secs_f64())).to_json(),
                "instances_per_s": Spread::of(&column(system, Run::instances_per_s)).to_json(),
                "mb_per_s": Spread::of(&column(system, Run::mb_per_s)).to_json(),
                "server_cpu_ms_per_instance": Spread::of(&column(system, Run::cpu_ms_per_instance)).to_json(),
            })
        })
        .collect();
    let results = json!({
        "benchmark": "ingest",
        "command": "cargo bench -p tfesi-ingest --bench ingest",
        "date": Utc::now().to_rfc3339(),
        "machine": machine(),
        "postgres": Value::Object(durability),
        "orthanc": {
            "version": bench.orthanc_version,
            "binary": orthanc::binary().display().to_string(),
            "config": orthanc::config(Path::new("<run dir>"), 0, 0, MAX_PDU),
        },
        "settings": {
            "rounds": rounds.len(),
            "patients": bench.cohort.len(),
            "seed": 1,
            "instances": bench.instances(),
            "bytes": bench.bytes(),
            "warm_up_instances": bench.warm_up.files.len(),
            "in_flight": settings.clients,
            "grpc_chunk_bytes": settings.chunk_bytes,
            "cstore": "storescu -nh -xf <profile> BENCH +sd +r <host> <port> <study dir>: one association per study",
            "mb": "10^6 bytes of Part 10 files as sent",
        },
        "rounds": per_round_json,
        "summary": summary,
        "targets": [
            {
                "name": "instances/s, ours gRPC / Orthanc REST",
                "measured": grpc.to_json(),
                "target": format!(">= {TARGET_RATIO}"),
                "met": grpc.median >= TARGET_RATIO,
            },
            {
                "name": "instances/s, ours C-STORE / Orthanc C-STORE",
                "measured": cstore.to_json(),
                "target": format!(">= {TARGET_RATIO}"),
                "met": cstore.median >= TARGET_RATIO,
            },
        ],
    });
    let out_dir = std::env::var_os("TFESI_BENCH_RESULTS")
        .map_or_else(|| repo_root().join("bench/results"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).expect("results directory");
    let path = out_dir.join("ingest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).expect("json") + "\n")
        .expect("write results");
    println!("ingest: wrote {}", path.display());
}
