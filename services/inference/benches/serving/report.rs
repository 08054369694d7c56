//! The bench's tables and JSON: each system's figures per scenario over rounds, and the targets
//! of BENCHMARKS.md computed on rounds paired by index (each ratio uses runs of the same round).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use tfesi_inference::config::BatchConfig;

use crate::Settings;
use crate::inputs::{IMAGE_DIMS, Inputs};
use tfesi_e2e::bench::{Spread, machine};

use crate::stats::{Run, percentile};

/// What load the servers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// One caller, one row per request, the next sent when the previous is answered.
    Sequential,
    /// Several callers at once, one row per request each.
    Concurrent,
}

impl Scenario {
    pub const ALL: [Self; 2] = [Self::Sequential, Self::Concurrent];

    fn key(self) -> &'static str {
        match self {
            Self::Sequential => "batch1-sequential",
            Self::Concurrent => "batch1-concurrent",
        }
    }

    fn label(self, callers: usize) -> String {
        match self {
            Self::Sequential => "batch 1, 1 caller".to_owned(),
            Self::Concurrent => format!("batch 1, {callers} callers"),
        }
    }
}

/// Who answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    /// The model run with `ort` in the bench process, no network: the limit.
    InProcess,
    /// `tfesi-inference` with its default configuration.
    Ours,
    /// `tfesi-inference` with `batching.max_delay_us = 0` (no wait for a batch to fill).
    OursNoDelay,
    /// bench/inference/python_server.py.
    Python,
}

impl System {
    pub const ALL: [Self; 4] = [Self::InProcess, Self::Ours, Self::OursNoDelay, Self::Python];

    pub fn key(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Ours => "ours",
            Self::OursNoDelay => "ours-max-delay-0",
            Self::Python => "python",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::InProcess => "in-process onnxruntime (limit)",
            Self::Ours => "tfesi-inference, default config",
            Self::OursNoDelay => "tfesi-inference, batching.max_delay_us=0",
            Self::Python => "python grpcio + onnxruntime",
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    refused: usize,
}

impl Figures {
    pub fn of(run: &Run) -> Self {
        Self {
            throughput: run.throughput(),
            p50_us: run.percentile_us(0.5),
            p99_us: run.percentile_us(0.99),
            refused: run.refused,
        }
    }
}

/// What the tables need besides the figures.
pub struct Context {
    pub request_bytes: usize,
    pub client_encode_us: f64,
    pub in_process_threads: usize,
    pub intra_op_threads: usize,
    pub batching: BatchConfig,
    /// The gRPC clients' tokio threads.
    pub client_threads: usize,
    /// Every `TFESI_INFERENCE__*` variable of the bench's environment, as `NAME=value`: the
    /// servers inherit them, so they override the settings above.
    pub service_env: Vec<String>,
    /// Each system's prediction for row 0, in [`System::ALL`] order.
    pub answers: Vec<f64>,
    /// Execution provider of every system in this run (`cpu` or `cuda`).
    pub provider: &'static str,
    /// The accelerator, as `TFESI_BENCH_DEVICE` names it (the GPU script puts nvidia-smi's name
    /// there), or the CPU model when unset.
    pub device: String,
}

/// Median time to encode one request with prost, in microseconds (part of every gRPC call's
/// client side; the in-process baseline has no such step).
pub fn client_encode_us(inputs: &Inputs) -> f64 {
    let samples: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(prost::Message::encode_to_vec(&inputs.requests[0]));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentile(&samples, 0.5)
}

/// One target of BENCHMARKS.md, measured.
struct Target {
    what: String,
    scenario: Scenario,
    system: System,
    measured: Spread,
    unit: &'static str,
    target: &'static str,
    met: bool,
}

/// Every run's figures, by scenario and system, in round order.
pub struct Results {
    rounds_asked: usize,
    callers: usize,
    sequential_requests: usize,
    concurrent_requests: usize,
    figures: BTreeMap<(Scenario, System), Vec<Figures>>,
}

impl Results {
    pub fn new(settings: &Settings) -> Self {
        Self {
            rounds_asked: settings.rounds,
            callers: settings.callers,
            sequential_requests: settings.sequential_requests,
            concurrent_requests: settings.concurrent_requests,
            figures: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, scenario: Scenario, system: System, figures: Figures) {
        self.figures.entry((scenario, system)).or_default().push(figures);
    }

    fn rounds(&self) -> usize {
        self.figures.values().map(Vec::len).min().unwrap_or(0)
    }

    fn runs(&self, scenario: Scenario, system: System) -> &[Figures] {
        self.figures.get(&(scenario, system)).map_or(&[], Vec::as_slice)
    }

    fn spread(&self, scenario: Scenario, system: System, figure: impl Fn(&Figures) -> f64) -> Spread {
        let values: Vec<f64> = self.runs(scenario, system).iter().map(figure).collect();
        Spread::of(&values)
    }

    /// `figure(ours, baseline)` for each round, over the rounds both completed.
    fn paired(
        &self,
        scenario: Scenario,
        ours: System,
        baseline: System,
        figure: impl Fn(&Figures, &Figures) -> f64,
    ) -> Spread {
        let values: Vec<f64> = self
            .runs(scenario, ours)
            .iter()
            .zip(self.runs(scenario, baseline))
            .map(|(ours, baseline)| figure(ours, baseline))
            .collect();
        Spread::of(&values)
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for ours in [System::Ours, System::OursNoDelay] {
            for scenario in Scenario::ALL {
                let of_limit =
                    self.paired(scenario, ours, System::InProcess, |a, b| a.throughput / b.throughput);
                targets.push(Target {
                    what: "throughput, ours / in-process".to_owned(),
                    scenario,
                    system: ours,
                    measured: of_limit,
                    unit: "x",
                    target: ">= 0.95",
                    met: of_limit.median >= 0.95,
                });
            }
            let added =
                self.paired(Scenario::Sequential, ours, System::InProcess, |a, b| a.p50_us - b.p50_us);
            targets.push(Target {
                what: "added latency at p50, ours - in-process".to_owned(),
                scenario: Scenario::Sequential,
                system: ours,
                measured: added,
                unit: "µs",
                target: "< 50 µs",
                met: added.median < 50.0,
            });
            for scenario in Scenario::ALL {
                let of_python =
                    self.paired(scenario, ours, System::Python, |a, b| a.throughput / b.throughput);
                targets.push(Target {
                    what: "throughput, ours / python".to_owned(),
                    scenario,
                    system: ours,
                    measured: of_python,
                    unit: "x",
                    target: ">= 3",
                    met: of_python.median >= 3.0,
                });
            }
        }
        targets
    }

    pub fn print(&self, context: &Context) {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let [slices, height, width] = IMAGE_DIMS;
        println!(
            "\ninference serving: tfesi-test v1, one row per request (image {slices}x{height}x{width} float32 \
             + 8 clinical, {:.2} MB encoded), {} rounds of {} sequential and {} concurrent requests \
             per system, {cores} CPUs",
            context.request_bytes as f64 / 1e6,
            self.rounds(),
            self.sequential_requests,
            self.concurrent_requests,
        );
        println!(
            "in-process: {} sessions x {} intra-op thread (the service's defaults); service batching: up to {} rows \
             or {} µs; python: 1 session, {} gRPC worker threads, 1 intra-op thread; client: tonic, one HTTP/2 \
             connection per server, encoding one request takes {:.0} µs",
            context.in_process_threads,
            context.intra_op_threads,
            context.batching.max_batch_size,
            context.batching.max_delay_us,
            self.callers,
            context.client_encode_us,
        );
        println!("provider: {} on {}", context.provider, context.device);
        println!("figures: median (min–max) over rounds\n");
        println!("| scenario | system | predictions/s | p50 µs | p99 µs | refused |");
        println!("|---|---|---|---|---|---|");
        for scenario in Scenario::ALL {
            for system in System::ALL {
                let refused: usize = self.runs(scenario, system).iter().map(|figures| figures.refused).sum();
                println!(
                    "| {} | {} | {} | {} | {} | {refused} |",
                    scenario.label(self.callers),
                    system.label(),
                    self.spread(scenario, system, |figures| figures.throughput).show(1),
                    self.spread(scenario, system, |figures| figures.p50_us).show(0),
                    self.spread(scenario, system, |figures| figures.p99_us).show(0),
                );
            }
        }
        println!("\n| target | scenario | ours | measured, median (min–max) | target | met |");
        println!("|---|---|---|---|---|---|");
        for target in self.targets() {
            let decimals = if target.unit == "x" { 2 } else { 0 };
            println!(
                "| {} | {} | {} | {} {} | {} | {} |",
                target.what,
                target.scenario.label(self.callers),
                target.system.label(),
                target.measured.show(decimals),
                target.unit,
                target.target,
                if target.met { "yes" } else { "no" },
            );
        }
    }

    pub fn to_json(&self, context: &Context) -> Value {
        let mut results = Vec::new();
        for ((scenario, system), runs) in &self.figures {
            let per_round: Vec<Value> = runs
                .iter()
                .map(|figures| {
                    json!({
                        "predictions_per_s": figures.throughput,
                        "p50_us": figures.p50_us,
                        "p99_us": figures.p99_us,
                        "refused": figures.refused,
                    })
                })
                .collect();
            results.push(json!({
                "scenario": scenario.key(),
                "system": system.key(),
                "label": system.label(),
                "predictions_per_s": self.spread(*scenario, *system, |figures| figures.throughput).to_json(),
                "p50_us": self.spread(*scenario, *system, |figures| figures.p50_us).to_json(),
                "p99_us": self.spread(*scenario, *system, |figures| figures.p99_us).to_json(),
                "rounds": per_round,
            }));
        }
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|target| {
                json!({
                    "what": target.what,
                    "scenario": target.scenario.key(),
                    "system": target.system.key(),
                    "measured": target.measured.to_json(),
                    "unit": target.unit,
                    "target": target.target,
                    "met": target.met,
                })
            })
            .collect();
        let answers: BTreeMap<&str, f64> =
            System::ALL.iter().map(|system| system.key()).zip(context.answers.iter().copied()).collect();
        json!({
            "benchmark": "inference-serving",
            "command": if context.provider == "cpu" {
                "cargo bench -p tfesi-inference --bench serving"
            } else {
                "scripts/gpu-bench.sh run (on the GPU machine)"
            },
            "date": date_utc(),
            "machine": machine(),
            "provider": context.provider,
            "device": context.device,
            "model": { "name": "tfesi-test", "version": "1", "image": IMAGE_DIMS, "clinical": 8 },
            "settings": {
                "rounds_asked": self.rounds_asked,
                "rounds_done": self.rounds(),
                "sequential_requests": self.sequential_requests,
                "concurrent_requests": self.concurrent_requests,
                "callers": self.callers,
                "request_bytes": context.request_bytes,
                "client_encode_us": context.client_encode_us,
                "in_process_sessions": context.in_process_threads,
                "intra_op_threads": context.intra_op_threads,
                "service_batching": {
                    "max_batch_size": context.batching.max_batch_size,
                    "max_delay_us": context.batching.max_delay_us,
                },
                "client_threads": context.client_threads,
                "service_env": context.service_env,
            },
            "row0_predictions": answers,
            "results": results,
            "targets": targets,
        })
    }
}

fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}
