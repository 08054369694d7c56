//! Inference serving, predictions/s and p50/p99 latency at batch 1 and under concurrent load:
//! the real `tfesi-inference` binary over gRPC beside the same model run in-process with ONNX
//! Runtime (the limit) and a plain Python grpcio + onnxruntime server (what a user would write),
//! on the same rows, in alternating rounds; then latency against offered load (open loop, each
//! offered rate to our service and to the Python server; sweep.rs). Prints tables; writes
//! bench/results/inference-serving.json (`bench/plot.py` draws the sweep).
//!
//! Run (release build; cargo builds the service binary too):
//!   cargo bench -p tfesi-inference --bench serving
//! Knobs: TFESI_BENCH_ROUNDS (5), TFESI_BENCH_SEQUENTIAL (requests per system and round at
//! batch 1, 200), TFESI_BENCH_CONCURRENT (requests per system and round under load, 400),
//! TFESI_BENCH_CALLERS (8), TFESI_BENCH_MAX_SECONDS (stop starting rounds after this, 900),
//! TFESI_BENCH_SWEEP_RATES (offered predictions/s, comma-separated, "25,50,100,200,300,400";
//! empty: no sweep), TFESI_BENCH_SWEEP_SECONDS (per rate and system, 5),
//! TFESI_PYTHON (default .venv/bin/python), TFESI_BENCH_RESULTS (output directory).
//! On a GPU machine (`scripts/gpu-bench.sh`, build with `--features cuda`): TFESI_BENCH_PROVIDER
//! (`cpu` or `cuda`: every system runs on that provider, CUDA with no CPU fallback, and each
//! server must report it in its answers), TFESI_BENCH_DEVICE (the card's name, for the report),
//! TFESI_BENCH_REPO_ROOT and TFESI_BENCH_INFERENCE_BIN (where the checkout and the service binary
//! are when the bench runs from a copy, not from cargo). TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL
//! sets the sessions of the servers and of the in-process limit alike. Tracing:
//! TFESI_BENCH_SERVICE_LOG_FILTER (the servers' log filter, default `warn`;
//! `warn,tfesi_inference::batcher=debug` logs every batch with its rows and run time) and
//! TFESI_BENCH_LOG_DIR (where the servers' logs are kept; default a temporary directory).
//! TFESI_BENCH_CLIENT_THREADS (the gRPC clients' tokio threads, 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inprocess;
mod inputs;
mod processes;
mod remote;
mod report;
mod stats;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inprocess::InProcess;
use inputs::Inputs;
use remote::Remote;
use report::{Figures, Results, Scenario, System};
use tfesi_e2e::bench::env_or;
use tfesi_inference::config::{BatchConfig, ProviderKind, RuntimeConfig};

/// Distinct rows cycled through (about 2.9 MB each).
const DISTINCT_ROWS: usize = 8;
/// Largest difference allowed between the systems' outputs for the same row.
const AGREEMENT: f64 = 1e-5;

/// How much to run, from the environment.
pub struct Settings {
    pub rounds: usize,
    pub sequential_requests: usize,
    pub concurrent_requests: usize,
    pub callers: usize,
    pub max_duration: Duration,
    pub sweep_rates: Vec<f64>,
    pub sweep_window: Duration,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            rounds: env_or("TFESI_BENCH_ROUNDS", 5).max(1),
            sequential_requests: env_or("TFESI_BENCH_SEQUENTIAL", 200).max(1),
            concurrent_requests: env_or("TFESI_BENCH_CONCURRENT", 400).max(1),
            callers: env_or("TFESI_BENCH_CALLERS", 8).max(1),
            max_duration: Duration::from_secs(env_or("TFESI_BENCH_MAX_SECONDS", 900) as u64),
            sweep_rates: sweep_rates(),
            sweep_window: Duration::from_secs(env_or("TFESI_BENCH_SWEEP_SECONDS", 5).max(1) as u64),
        }
    }
}

/// TFESI_BENCH_SWEEP_RATES: offered predictions per second, each > 0.
fn sweep_rates() -> Vec<f64> {
    let text =
        std::env::var("TFESI_BENCH_SWEEP_RATES").unwrap_or_else(|_| "25,50,100,200,300,400".to_owned());
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match part.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => rate,
            _ => panic!("TFESI_BENCH_SWEEP_RATES: `{part}` is not a rate per second above 0"),
        })
        .collect()
}

/// The checkout's root: TFESI_BENCH_REPO_ROOT, else two levels above this crate.
fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("TFESI_BENCH_REPO_ROOT") {
        return PathBuf::from(root);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).expect("the crate sits at services/inference").to_path_buf()
}

/// The execution provider every system runs on (TFESI_BENCH_PROVIDER, default `cpu`).
fn provider() -> ProviderKind {
    match std::env::var("TFESI_BENCH_PROVIDER").as_deref() {
        Err(_) | Ok("cpu") => ProviderKind::Cpu,
        Ok("cuda") => ProviderKind::Cuda,
        Ok(other) => panic!("TFESI_BENCH_PROVIDER: `{other}` is neither `cpu` nor `cuda`"),
    }
}

/// The device named in the report: TFESI_BENCH_DEVICE, else the CPU (the report's `machine`
/// describes it).
fn device() -> String {
    std::env::var("TFESI_BENCH_DEVICE").unwrap_or_else(|_| "the CPU".to_owned())
}

fn python() -> PathBuf {
    std::env::var_os("TFESI_PYTHON").map_or_else(|| repo_root().join(".venv/bin/python"), PathBuf::from)
}

/// A fresh 256-bit HS256 secret, hex encoded.
fn random_secret() -> String {
    let mut bytes = [0_u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"), &mut bytes)
        .expect("random bytes");
    hex::encode(bytes)
}

/// The systems under test, with what each needs to run.
struct Contenders {
    in_process: InProcess,
    ours: Remote,
    ours_no_delay: Remote,
    python: Remote,
}

impl Contenders {
    fn run(
        &mut self,
        system: System,
        scenario: Scenario,
        inputs: &Arc<Inputs>,
        settings: &Settings,
        runtime: &tokio::runtime::Runtime,
    ) -> stats::Run {
        let remote = match system {
            System::InProcess => {
                return match scenario {
                    Scenario::Sequential => self.in_process.sequential(inputs, settings.sequential_requests),
                    Scenario::Concurrent => self.in_process.concurrent(inputs, settings.concurrent_requests),
                };
            }
            System::Ours => &self.ours,
            System::OursNoDelay => &self.ours_no_delay,
            System::Python => &self.python,
        };
        runtime.block_on(async {
            match scenario {
                Scenario::Sequential => remote.sequential(inputs, settings.sequential_requests).await,
                Scenario::Concurrent => {
                    remote.concurrent(inputs, settings.concurrent_requests, settings.callers).await
                }
            }
        })
    }

    /// Every system's prediction for `row`, in [`System::ALL`] order; panics when a server
    /// answers from another execution provider than `provider`.
    fn agree_on(
        &mut self,
        inputs: &Inputs,
        row: usize,
        provider: ProviderKind,
        runtime: &tokio::runtime::Runtime,
    ) -> Vec<f64> {
        let local = f64::from(InProcess::predict(self.in_process.first_session(), inputs, row));
        let remote = runtime.block_on(futures::future::join_all(
            [&self.ours, &self.ours_no_delay, &self.python].map(|remote| remote.predict(inputs, row)),
        ));
        let expected = remote::provider_code(provider);
        for (system, (_, answered_by)) in System::ALL[1..].iter().zip(&remote) {
            assert_eq!(
                *answered_by,
                expected,
                "{} answered from execution provider {answered_by}, not {}",
                system.label(),
                provider.as_str()
            );
        }
        std::iter::once(local).chain(remote.into_iter().map(|(probability, _)| probability)).collect()
    }
}

fn main() {
    let settings = Settings::from_env();
    let root = repo_root();
    let model_dir = root.join("models/tfesi-test/1");
    let inputs = Arc::new(inputs::make(&model_dir, DISTINCT_ROWS));
    let provider = provider();
    let defaults = RuntimeConfig::default();
    // The servers read TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL from the environment they
    // inherit; the in-process limit follows the same setting.
    let sessions_per_model =
        env_or("TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL", defaults.sessions_per_model);
    let runtime_config = RuntimeConfig { provider, sessions_per_model, ..defaults };
    let provider_env = [
        ("TFESI_INFERENCE__RUNTIME__PROVIDER", provider.as_str()),
        ("TFESI_INFERENCE__RUNTIME__ALLOW_CPU_FALLBACK", "false"),
    ];
    let batching = BatchConfig::default();

    let workdir = tempfile::tempdir().expect("a temporary directory");
    // The servers' logs: TFESI_BENCH_LOG_DIR keeps them after the run, else they go with workdir.
    let log_dir =
        std::env::var_os("TFESI_BENCH_LOG_DIR").map_or_else(|| workdir.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&log_dir).expect("create the log directory");
    // One copy of the bundled repository per server: each may write its `state.json`.
    let repository = workdir.path().join("models");
    let repository_no_delay = workdir.path().join("models-no-delay");
    processes::copy_tree(&root.join("models/tfesi-test"), &repository.join("tfesi-test"));
    processes::copy_tree(&root.join("models/tfesi-test"), &repository_no_delay.join("tfesi-test"));
    let secret_file = workdir.path().join("hs256.secret");
    std::fs::write(&secret_file, random_secret()).expect("write the secret");
    let secret = std::fs::read(&secret_file).expect("read the secret");
    let token = tfesi_auth::mint_hs256(
        &secret,
        &tfesi_auth::AuthConfig::default(),
        "bench-serving",
        &[tfesi_auth::Role::Service],
        24 * 3600,
    )
    .expect("a token");

    // The clients' threads (TFESI_BENCH_CLIENT_THREADS, default 2: the development machine's
    // cores). On a bigger machine more threads tell whether the servers or the clients, which
    // encode 2.9 MB per request, set the pace.
    let client_threads = env_or("TFESI_BENCH_CLIENT_THREADS", 2).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let binary = std::env::var_os("TFESI_BENCH_INFERENCE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tfesi-inference")), PathBuf::from);
    let binary = binary.as_path();
    // Declared after `workdir`, so they are stopped before it is deleted (and on a panic).
    let ours_server = runtime.block_on(processes::start_inference(
        binary,
        "tfesi-inference",
        &repository,
        &secret_file,
        &provider_env,
        &log_dir,
    ));
    let ours_no_delay_server = runtime.block_on(processes::start_inference(
        binary,
        "tfesi-inference-no-delay",
        &repository_no_delay,
        &secret_file,
        &[provider_env[0], provider_env[1], ("TFESI_INFERENCE__BATCHING__MAX_DELAY_US", "0")],
        &log_dir,
    ));
    let python_server = processes::start_python(
        &python(),
        &root.join("bench/inference/python_server.py"),
        &repository.join("tfesi-test/1"),
        provider,
        settings.callers,
        &log_dir,
    );
    let mut servers = [ours_server, ours_no_delay_server, python_server];

    let mut contenders = Contenders {
        in_process: InProcess::new(&model_dir.join("model.onnx"), &runtime_config),
        ours: runtime.block_on(Remote::connect(servers[0].address, Some(&token))),
        ours_no_delay: runtime.block_on(Remote::connect(servers[1].address, Some(&token))),
        python: runtime.block_on(Remote::connect(servers[2].address, None)),
    };

    let answers = contenders.agree_on(&inputs, 0, provider, &runtime);
    eprintln!("row 0 on {}: {answers:?} (card: {})", provider.as_str(), inputs::ROW_ZERO_EXPECTED);
    for (system, answer) in System::ALL.iter().zip(&answers) {
        let error = (answer - f64::from(inputs::ROW_ZERO_EXPECTED)).abs();
        assert!(
            error < AGREEMENT,
            "{} predicts {answer} for row 0, the card says {}",
            system.label(),
            inputs::ROW_ZERO_EXPECTED
        );
    }

    let mut results = Results::new(&settings);
    // Warm-up: connections, allocators, ONNX Runtime's first runs; not recorded.
    for scenario in Scenario::ALL {
        for system in System::ALL {
            let warm = Settings {
                sequential_requests: 20,
                concurrent_requests: 40,
                sweep_rates: Vec::new(),
                ..settings
            };
            contenders.run(system, scenario, &inputs, &warm, &runtime);
        }
    }
    let started = Instant::now();
    for round in 0..settings.rounds {
        for scenario in Scenario::ALL {
            // Alternate: each round starts with the next system, so drift hits all alike.
            for offset in 0..System::ALL.len() {
                let system = System::ALL[(round + offset) % System::ALL.len()];
                let run = contenders.run(system, scenario, &inputs, &settings, &runtime);
                results.record(scenario, system, Figures::of(&run));
            }
        }
        for server in &mut servers {
            server.assert_running();
        }
        eprintln!(
            "round {} of {} done ({:.0} s)",
            round + 1,
            settings.rounds,
            started.elapsed().as_secs_f64()
        );
        if started.elapsed() > settings.max_duration && round + 1 < settings.rounds {
            eprintln!("stopping after {} rounds: TFESI_BENCH_MAX_SECONDS reached", round + 1);
            break;
        }
    }

    // Latency against offered load: each rate to both servers, the order alternating per rate.
    let mut sweep_points = Vec::new();
    for (index, &rate) in settings.sweep_rates.iter().enumerate() {
        let order =
            if index % 2 == 0 { [System::Ours, System::Python] } else { [System::Python, System::Ours] };
        for system in order {
            let remote = if system == System::Ours { &contenders.ours } else { &contenders.python };
            let point = runtime.block_on(sweep::offer(remote, &inputs, system, rate, settings.sweep_window));
            eprintln!(
                "sweep: {} at {rate}/s: answered {}, not sent {}, p50 {:.2} ms",
                system.label(),
                point.answered,
                point.not_sent,
                point.p50_ms
            );
            sweep_points.push(point);
        }
        for server in &mut servers {
            server.assert_running();
        }
    }
    sweep_points.sort_by(|a, b| a.system.cmp(&b.system).then(a.offered_per_s.total_cmp(&b.offered_per_s)));

    let context = report::Context {
        request_bytes: inputs.request_bytes(),
        client_encode_us: report::client_encode_us(&inputs),
        in_process_threads: contenders.in_process.threads(),
        intra_op_threads: runtime_config.intra_op_threads,
        batching,
        client_threads,
        service_env: std::env::vars()
            .filter(|(name, _)| name.starts_with("TFESI_INFERENCE__"))
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        answers,
        provider: provider.as_str(),
        device: device(),
    };
    results.print(&context);
    if !sweep_points.is_empty() {
        sweep::print(&sweep_points, settings.sweep_window);
    }
    let out_dir =
        std::env::var_os("TFESI_BENCH_RESULTS").map_or_else(|| root.join("bench/results"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).expect("create the results directory");
    let out_file = out_dir.join(match provider {
        ProviderKind::Cpu => "inference-serving.json",
        ProviderKind::Cuda => "inference-serving-cuda.json",
    });
    let mut document = results.to_json(&context);
    if !sweep_points.is_empty() {
        document["sweep"] = sweep::to_json(&sweep_points, settings.sweep_window);
    }
    let json = serde_json::to_string_pretty(&document).expect("JSON");
    std::fs::write(&out_file, json + "\n").expect("write the results");
    println!("\nwrote {}", out_file.display());
    drop(servers);
}
