//! End to end: from a study's upload to its prediction stored in the registry, on the whole
//! stack (the four service binaries on a fresh database and Redis prefix, as the end-to-end
//! tests start them) serving the shipped model `tfesi-cnn` as champion. Target (BENCHMARKS.md):
//! the pipeline's overhead, end-to-end p50 minus the sum of the stage medians measured alone,
//! under 10% of that sum.
//!
//! Synthetic studies are rendered and their episodes registered before anything is timed. Then:
//!
//! 1. **pipeline, one study at a time**: for each study, Ingest.Upload of its files,
//!    Registry.LinkStudy, Ingest.CompleteStudy, then the pipeline (outbox relay, Redis stream,
//!    preprocess worker, inference, registry) until the prediction is stored. "Stored" is the
//!    time of the registry's `prediction_recorded` event (the start of the transaction that
//!    stored it), read from a WatchEpisode stream opened beforehand; when the watcher saw it
//!    (the registry polls its event log every 50 ms) is reported beside it. Upload, link and
//!    complete are client-timed here: nothing else runs then, so they are stages measured alone.
//! 2. **stages alone**: the stack's tensor cache is emptied, then for each study the client
//!    times Preprocess.Prepare of its selected series (the whole stream read), Inference.Predict
//!    of that tensor with the champion's clinical features, and Registry.RecordPrediction of the
//!    answer under a new job id, one call at a time.
//! 3. **offered load**: open-loop arrivals (a study started on a clock whatever the answers) at
//!    each rate of TFESI_BENCH_RATES studies per minute, each study with a fresh patient,
//!    episode and study: end-to-end p50/p99, and the studies stored per minute between the first
//!    and the last stored prediction (it levels off at the stack's capacity).
//!
//! From the services' own JSON logs it also reports where a study's time went in phase 1 (ingest
//! publishing the job, the worker's steps). Prints Markdown tables; writes
//! bench/results/end-to-end.json (`bench/plot.py` draws latency against offered load from it).
//!
//! Run (release; the bench first runs `cargo build --release` of the four services):
//!   cargo bench -p tfesi-e2e --bench end_to_end      # or: bench/run.sh end_to_end
//! Smoke run on debug binaries (figures marked as not release figures):
//!   TFESI_BENCH_BUILD=0 TFESI_BENCH_PATIENTS=3 TFESI_BENCH_RATES=12 \
//!     cargo bench -p tfesi-e2e --bench end_to_end --profile dev
//! Knobs: TFESI_BENCH_PATIENTS (studies of phases 1 and 2, 10), TFESI_BENCH_RATES (offered
//! studies/min, "6,12,24,48"), TFESI_BENCH_LOAD_STUDIES (most studies per rate, 10),
//! TFESI_BENCH_LOAD_SECONDS (most seconds of arrivals per rate, 60), TFESI_BENCH_MAX_SECONDS
//! (no new study after this, 900), TFESI_BENCH_RESULTS (output directory, bench/results),
//! TFESI_BENCH_BUILD (1; 0 uses the binaries beside the bench as they are, e.g. a debug smoke
//! run with `--profile dev`, whose figures are then marked as not release figures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt as _;
use serde_json::{Value, json};
use tfesi_e2e::bench::{Spread, build_release_binaries, env_or, log_events, machine, percentile, repo_root};
use tfesi_e2e::stack::{Stack, StackOptions};
use tfesi_e2e::study::{
    Clients, Outcome, Sent, Study, clinical, ms, ms_between, new_job_id, prepare_studies, send, watch,
};
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::preprocess::v1 as preprocess;
use tfesi_proto::registry::v1 as registry;

const PACKAGES: [&str; 4] = ["tfesi-ingest", "tfesi-preprocess", "tfesi-inference", "tfesi-registry"];
/// The shipped default model (`models/tfesi-cnn/<version>`).
const MODEL: &str = "tfesi-cnn";
/// The cohort's seed (fixed, so runs compare).
const SEED: u64 = 29;
/// Pause between two studies of phase 1, so the worker's bookkeeping after a prediction (job
/// status, acknowledgement) does not overlap the next upload.
const BETWEEN_STUDIES: Duration = Duration::from_millis(250);
const OVERHEAD_TARGET: f64 = 0.10;
const COMMAND: &str = "cargo bench -p tfesi-e2e --bench end_to_end";

struct Settings {
    patients: usize,
    rates: Vec<f64>,
    load_studies: usize,
    load_seconds: f64,
    max_seconds: u64,
    out_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let rates = std::env::var("TFESI_BENCH_RATES").unwrap_or_else(|_| "6,12,24,48".to_owned());
        let rates = rates
            .split(',')
            .filter(|rate| !rate.trim().is_empty())
            .map(|rate| rate.trim().parse::<f64>().unwrap_or_else(|_| panic!("TFESI_BENCH_RATES: {rate:?}")))
            .inspect(|rate| assert!(*rate > 0.0, "TFESI_BENCH_RATES: rates are positive"))
            .collect();
        let out_dir = std::env::var_os("TFESI_BENCH_RESULTS")
            .map_or_else(|| repo_root().join("bench/results"), PathBuf::from);
        Self {
            patients: env_or("TFESI_BENCH_PATIENTS", 10).max(1),
            rates,
            load_studies: env_or("TFESI_BENCH_LOAD_STUDIES", 10).max(1),
            load_seconds: env_or("TFESI_BENCH_LOAD_SECONDS", 60).max(1) as f64,
            max_seconds: env_or("TFESI_BENCH_MAX_SECONDS", 900) as u64,
            out_dir,
        }
    }

    /// Studies offered at `rate` per minute: as many as arrive in the window, within the bound.
    fn load_count(&self, rate: f64) -> usize {
        ((rate * self.load_seconds / 60.0).floor() as usize).clamp(1, self.load_studies)
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Median, p99 (nearest rank) and range of a list of milliseconds.
fn summary(values: &[f64]) -> (Spread, f64) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    (Spread::of(&sorted), percentile(&sorted, 0.99))
}

fn summary_json(values: &[f64]) -> Value {
    let (spread, p99) = summary(values);
    json!({ "n": values.len(), "median_ms": round(spread.median), "p99_ms": round(p99),
            "min_ms": round(spread.min), "max_ms": round(spread.max) })
}

/// Client times of the three later stages for one study, called one at a time.
struct Alone {
    prepare_ms: f64,
    /// The server's own compute time for the tensor (TensorHeader.compute_time).
    prepare_compute_ms: f64,
    cache_hit: bool,
    predict_ms: f64,
    record_ms: f64,
}

async fn stages_alone(clients: &mut Clients, card: &inference::ModelCard, sent: &Sent) -> Alone {
    let request = preprocess::PrepareRequest {
        series_id: sent.series_id.clone(),
        spec_version: card.spec_version.clone(),
        max_chunk_bytes: 0,
    };
    let started = Instant::now();
    let mut stream = clients.preprocess.prepare(request).await.expect("Prepare").into_inner();
    let (mut header, mut data) = (None, Vec::new());
    while let Some(message) = stream.message().await.expect("the Prepare stream") {
        match message.part {
            Some(preprocess::prepare_response::Part::Header(first)) => {
                data.reserve(first.tensor.as_ref().map_or(0, |tensor| tensor.size_bytes as usize));
                header = Some(first);
            }
            Some(preprocess::prepare_response::Part::Chunk(chunk)) => data.extend_from_slice(&chunk.data),
            None => {}
        }
    }
    let prepare_ms = ms(started.elapsed());
    let header = header.expect("a Prepare header");
    let info = header.tensor.clone().expect("tensor info");
    assert_eq!(data.len() as u64, info.size_bytes, "the whole tensor arrived");
    let compute = header.compute_time.unwrap_or_default();
    let prepare_compute_ms = compute.seconds as f64 * 1000.0 + f64::from(compute.nanos) / 1e6;

    let job_id = new_job_id();
    let row = inference::PredictRow {
        row_id: job_id.clone(),
        image: Some(common::Tensor {
            shape: info.shape,
            dtype: common::DType::Float32.into(),
            data: data.into(),
        }),
        clinical: clinical(&card.clinical_features, &sent.details),
        spec_version: card.spec_version.clone(),
        study_id: sent.study_id.clone(),
        series_id: sent.series_id.clone(),
        job_id: job_id.clone(),
    };
    let predict = inference::PredictRequest { rows: vec![row], model: None, skip_shadow: true };
    let started = Instant::now();
    let answered = clients.inference.predict(predict).await.expect("Predict").into_inner();
    let predict_ms = ms(started.elapsed());
    let mut result = answered.results.into_iter().next().expect("one result");
    let answer = result.prediction.take().expect("the champion's prediction");

    // As the worker builds it (services/preprocess/src/worker.rs, `record`).
    let features = clinical(&card.clinical_features, &sent.details);
    let mut record = registry::PredictionRecord {
        prediction_id: String::new(),
        job_id: job_id.clone(),
        study_id: sent.study_id.clone(),
        series_id: sent.series_id.clone(),
        model: answer.model,
        role: common::ModelRole::Champion.into(),
        spec_version: answer.spec_version,
        probability: answer.probability,
        threshold: answer.threshold,
        predicted_label: answer.predicted_label,
        execution_provider: answer.execution_provider,
        predicted_at: None,
        tensor_sha256: info.sha256,
        clinical: features,
    };
    let now = Utc::now();
    let predicted_at = record.predicted_at.insert(Default::default());
    predicted_at.seconds = now.timestamp();
    predicted_at.nanos = i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0);
    let request = registry::RecordPredictionRequest {
        job_id,
        study_id: sent.study_id.clone(),
        series_id: sent.series_id.clone(),
        predictions: vec![record],
        series_content_sha256: header.series_content_sha256,
        instance_sha256: sent.series_objects.clone(),
    };
    let started = Instant::now();
    clients.registry.record_prediction(request).await.expect("RecordPrediction");
    let record_ms = ms(started.elapsed());
    Alone { prepare_ms, prepare_compute_ms, cache_hit: header.cache_hit, predict_ms, record_ms }
}

/// One row of where the time went: what, and its milliseconds per study.
type Step = (&'static str, Vec<f64>);

/// Where each study of phase 1 spent its time between the client's calls, from the services'
/// JSON logs (one line of each kind per study, in order, since the studies went one at a time);
/// `None` when the lines do not pair up that way (a retry, a republished job).
fn timeline(stack: &Stack, sent: &[Sent]) -> Option<Vec<Step>> {
    let published = log_events(&stack.ingest.log(), "outbox jobs published");
    let worker_log = stack.preprocess.log();
    let attempts = log_events(&worker_log, "pipeline attempt");
    let tensors = log_events(&worker_log, "tensor ready");
    let recorded = log_events(&worker_log, "predictions recorded");
    let counts = [published.len(), attempts.len(), tensors.len(), recorded.len()];
    if counts != [sent.len(); 4] || published.iter().any(|(_, line)| line["fields"]["published"] != 1) {
        println!(
            "end-to-end: the services' logs hold {counts:?} lines for {} studies: no timeline",
            sent.len()
        );
        return None;
    }
    let mut steps: Vec<Step> = vec![
        (
            "CompleteStudy returned → ingest's outbox relay published the job (woken by the completion)",
            vec![],
        ),
        ("published → the worker began the job (Redis stream)", vec![]),
        ("began → tensor ready (ListModels, GetModel, reading the objects, Prepare)", vec![]),
        ("  of which the tensor's compute (worker's compute_ms)", vec![]),
        (
            "tensor ready → predictions recorded (ListEpisodes, Predict, keep in Postgres, RecordPrediction)",
            vec![],
        ),
        ("  of which the registry's event time → the worker's log line", vec![]),
    ];
    for (index, study) in sent.iter().enumerate() {
        let values = [
            ms_between(study.completed_at, published[index].0),
            ms_between(published[index].0, attempts[index].0),
            ms_between(attempts[index].0, tensors[index].0),
            tensors[index].1["fields"]["compute_ms"].as_f64().unwrap_or(f64::NAN),
            ms_between(tensors[index].0, recorded[index].0),
            ms_between(study.stored_at, recorded[index].0),
        ];
        for (step, value) in steps.iter_mut().zip(values) {
            step.1.push(value);
        }
    }
    Some(steps)
}

/// One offered rate of phase 3.
struct LoadRun {
    rate: f64,
    offered: usize,
    stored_ms: Vec<f64>,
    seen_ms: Vec<f64>,
    no_job: usize,
    failed: Vec<String>,
    /// Studies stored per minute between the first and the last stored prediction (NaN with
    /// fewer than two): the completion rate, which levels off at the stack's capacity.
    achieved_per_min: f64,
}

/// Starts one study every 60/`rate` seconds whatever the answers (open loop), then waits for
/// every one of them.
async fn offer(clients: &Clients, rate: f64, studies: Vec<Study>, deadline: Instant) -> LoadRun {
    let mut watcher = clients.clone();
    let mut ready = Vec::with_capacity(studies.len());
    for study in studies {
        let stream = watch(&mut watcher, &study.episode_id).await;
        ready.push((study, stream));
    }
    let interval = Duration::from_secs_f64(60.0 / rate);
    let begun = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (study, stream)) in ready.into_iter().enumerate() {
        tokio::time::sleep_until((begun + interval * u32::try_from(index).expect("few studies")).into())
            .await;
        if Instant::now() > deadline {
            break;
        }
        tasks.spawn(send(clients.clone(), study, stream));
    }
    let mut run = LoadRun {
        rate,
        offered: tasks.len(),
        stored_ms: Vec::new(),
        seen_ms: Vec::new(),
        no_job: 0,
        failed: Vec::new(),
        achieved_per_min: f64::NAN,
    };
    let mut stored_at = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.expect("a study's task") {
            Outcome::Done(sent) => {
                run.stored_ms.push(sent.stored_ms);
                run.seen_ms.push(sent.seen_ms);
                stored_at.push(sent.stored_at);
            }
            Outcome::NoJob => run.no_job += 1,
            Outcome::Failed(error) => run.failed.push(error),
        }
    }
    stored_at.sort();
    if let (Some(first), Some(last)) = (stored_at.first(), stored_at.last())
        && last > first
    {
        let span_s = (*last - *first).num_milliseconds() as f64 / 1000.0;
        run.achieved_per_min = (stored_at.len() - 1) as f64 * 60.0 / span_s;
    }
    run
}

/// Everything measured.
struct Figures {
    champion: String,
    rendered: usize,
    pipeline: Vec<Sent>,
    pipeline_no_job: usize,
    timeline: Option<Vec<Step>>,
    cache_entries_cleared: usize,
    alone: Vec<Alone>,
    load: Vec<LoadRun>,
}

fn main() {
    let settings = Settings::from_env();
    let build = build_release_binaries("end-to-end", &PACKAGES);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(run(settings, build));
}

async fn run(settings: Settings, build: String) {
    let started = Instant::now();
    let options = StackOptions { default_model: Some(MODEL), ..StackOptions::default() };
    let stack = Stack::start_with(options).await;
    println!("end-to-end: stack up in {:.1} s", started.elapsed().as_secs_f64());
    let measured = std::panic::AssertUnwindSafe(measure(&stack, &settings)).catch_unwind().await;
    let figures = match measured {
        Ok(figures) => figures,
        Err(panic) => stack.abandon(panic).await,
    };
    stack.finish().await;
    report(&settings, &build, &figures);
}

async fn measure(stack: &Stack, settings: &Settings) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(settings.max_seconds);
    let mut clients = Clients::connect(stack).await;
    let listed =
        clients.inference.list_models(inference::ListModelsRequest::default()).await.expect("ListModels");
    let champion = listed.into_inner().champion.expect("a champion");
    assert_eq!(champion.name, MODEL, "the shipped model serves as champion");
    let request = inference::GetModelRequest { model: Some(champion.clone()) };
    let model = clients.inference.get_model(request).await.expect("GetModel").into_inner().model;
    let card = model.and_then(|model| model.card).expect("the champion's card");

    let total =
        settings.patients + settings.rates.iter().map(|rate| settings.load_count(*rate)).sum::<usize>();
    let rendering = Instant::now();
    let mut studies = prepare_studies(&mut clients, SEED, 0..u32::try_from(total).expect("a count")).await;
    let mut load_studies = studies.split_off(settings.patients.min(studies.len()));
    println!(
        "end-to-end: {total} synthetic studies rendered and registered in {:.1} s (untimed); champion {}/{}",
        rendering.elapsed().as_secs_f64(),
        champion.name,
        champion.version
    );

    // Phase 1: the pipeline, one study at a time.
    let (mut pipeline, mut pipeline_no_job) = (Vec::new(), 0);
    for study in studies {
        if Instant::now() > deadline {
            println!("end-to-end: TFESI_BENCH_MAX_SECONDS reached in phase 1");
            break;
        }
        let stream = watch(&mut clients, &study.episode_id).await;
        match send(clients.clone(), study, stream).await {
            Outcome::Done(sent) => pipeline.push(*sent),
            Outcome::NoJob => pipeline_no_job += 1,
            Outcome::Failed(error) => panic!("a study of phase 1 failed: {error}; logs:\n{}", stack.logs()),
        }
        tokio::time::sleep(BETWEEN_STUDIES).await;
    }
    assert!(!pipeline.is_empty(), "no study reached a stored prediction");
    println!("end-to-end: phase 1 done, {} studies", pipeline.len());
    let timeline = if pipeline_no_job == 0 { timeline(stack, &pipeline) } else { None };

    // Phase 2: the later stages alone, with the tensor cache emptied.
    let cache_entries_cleared = stack.clear_tensor_cache().await;
    let mut alone = Vec::with_capacity(pipeline.len());
    for sent in &pipeline {
        alone.push(stages_alone(&mut clients, &card, sent).await);
    }
    println!("end-to-end: phase 2 done ({cache_entries_cleared} cached tensors deleted first)");

    // Phase 3: offered load.
    let mut load = Vec::new();
    for rate in &settings.rates {
        let count = settings.load_count(*rate).min(load_studies.len());
        if count == 0 || Instant::now() > deadline {
            println!("end-to-end: no studies or time left for {rate}/min and above");
            break;
        }
        let batch: Vec<Study> = load_studies.drain(..count).collect();
        let run = offer(&clients, *rate, batch, deadline).await;
        println!(
            "end-to-end: {rate}/min: {} offered, {} stored, achieved {:.1}/min",
            run.offered,
            run.stored_ms.len(),
            run.achieved_per_min
        );
        load.push(run);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Figures {
        champion: format!("{}/{}", champion.name, champion.version),
        rendered: total,
        pipeline,
        pipeline_no_job,
        timeline,
        cache_entries_cleared,
        alone,
        load,
    }
}

/// Prints a Markdown table of named lists of milliseconds: n, median, p99 and range of each.
fn print_table(title: &str, rows: &[Step]) {
    println!("\n| {title} | n | median | p99 | min–max |");
    println!("|---|---|---|---|---|");
    for (name, values) in rows {
        let (spread, p99) = summary(values);
        let (median, min, max) = (spread.median, spread.min, spread.max);
        println!("| {name} | {} | {median:.1} | {p99:.1} | {min:.1}–{max:.1} |", values.len());
    }
}

fn rows_json(rows: &[Step]) -> Vec<Value> {
    let row = |(name, values): &Step| {
        let mut entry = summary_json(values);
        entry["what"] = json!(name);
        entry
    };
    rows.iter().map(row).collect()
}

/// Prints the tables and writes the JSON.
fn report(settings: &Settings, build: &str, figures: &Figures) {
    let column = |pick: fn(&Alone) -> f64| figures.alone.iter().map(pick).collect::<Vec<f64>>();
    let of_pipeline = |pick: fn(&Sent) -> f64| figures.pipeline.iter().map(pick).collect::<Vec<f64>>();
    let instances = figures.pipeline.iter().map(|sent| sent.series_objects.len()).sum::<usize>();
    let stages: Vec<Step> = vec![
        ("upload (Ingest.Upload, the study's files)", of_pipeline(|sent| sent.upload_ms)),
        ("link (Registry.LinkStudy)", of_pipeline(|sent| sent.link_ms)),
        ("complete (Ingest.CompleteStudy)", of_pipeline(|sent| sent.complete_ms)),
        ("prepare (Preprocess.Prepare, cache emptied)", column(|alone| alone.prepare_ms)),
        ("predict (Inference.Predict, batch 1)", column(|alone| alone.predict_ms)),
        ("record (Registry.RecordPrediction)", column(|alone| alone.record_ms)),
    ];
    let sum: f64 = stages.iter().map(|(_, values)| summary(values).0.median).sum();
    let end_to_end: Vec<Step> = vec![
        ("upload to stored prediction (registry event time)", of_pipeline(|sent| sent.stored_ms)),
        ("upload to prediction seen by a WatchEpisode client", of_pipeline(|sent| sent.seen_ms)),
    ];
    let e2e = summary(&end_to_end[0].1).0.median;
    let overhead = (e2e - sum) / sum;
    let met = overhead < OVERHEAD_TARGET;
    let cache_hits = figures.alone.iter().filter(|alone| alone.cache_hit).count();
    if build != "release" {
        println!("\n**{build} build: smoke figures, NOT release figures**");
    }
    print_table("stage, measured alone (ms)", &stages);
    println!("| **sum of the stage medians** | | **{sum:.1}** | | |");
    println!(
        "\nprepare: server compute {} ms (median (min–max)), {cache_hits} cache hits; {:.1} instances per \
         selected series",
        Spread::of(&column(|alone| alone.prepare_compute_ms)).show(1),
        instances as f64 / figures.pipeline.len() as f64
    );
    print_table("end to end, one study at a time (ms)", &end_to_end);
    println!("one study at a time: {:.1} studies/min", 60_000.0 / e2e);
    println!("\n| overhead | e2e p50 − sum (ms) | (e2e p50 − sum) / sum | target | met |");
    println!("|---|---|---|---|---|");
    let verdict = if met { "yes" } else { "no" };
    let (excess, percent, target) = (e2e - sum, overhead * 100.0, OVERHEAD_TARGET * 100.0);
    println!("| pipeline over its stages | {excess:.1} | {percent:.1}% | < {target:.0}% | {verdict} |");
    if let Some(steps) = &figures.timeline {
        print_table("phase 1, from the services' logs (ms per study)", steps);
    }
    if !met {
        let relay = figures.timeline.as_ref().map(|steps| Spread::of(&steps[0].1).median);
        let relay = relay.map_or_else(String::new, |ms| {
            format!("ingest's outbox relay ({ms:.1} ms median: it polls every 500 ms), ")
        });
        println!(
            "\nmissed: the pipeline adds {excess:.1} ms over the stages' sum, in waits no stage measures: \
             {relay}the Redis stream to the worker, the worker's own calls (ListModels, GetModel, \
             ListEpisodes) and keeping the prediction in Postgres before recording it (table above)"
        );
    }
    println!(
        "\n| offered studies/min | studies | stored | no job / failed | p50 ms | p99 ms | achieved studies/min |"
    );
    println!("|---|---|---|---|---|---|---|");
    let load: Vec<Value> = figures
        .load
        .iter()
        .map(|run| {
            let (spread, p99) = summary(&run.stored_ms);
            let (stored, failed) = (run.stored_ms.len(), run.failed.len());
            println!(
                "| {} | {} | {stored} | {} / {failed} | {:.1} | {p99:.1} | {:.1} |",
                run.rate, run.offered, run.no_job, spread.median, run.achieved_per_min
            );
            if let Some(error) = run.failed.first() {
                println!("  first failure at {}/min: {error}", run.rate);
            }
            json!({
                "offered_per_min": run.rate, "studies": run.offered, "stored": stored,
                "no_job": run.no_job, "failed": failed, "p50_ms": round(spread.median), "p99_ms": round(p99),
                "seen_by_watcher": summary_json(&run.seen_ms), "achieved_per_min": round(run.achieved_per_min),
            })
        })
        .collect();

    let results = json!({
        "bench": "end-to-end",
        "command": COMMAND,
        "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": machine(),
        "build": build,
        "release_figures": build == "release",
        "settings": {
            "patients": settings.patients,
            "seed": SEED,
            "rendered_studies": figures.rendered,
            "rates_per_min": settings.rates,
            "load_studies_per_rate": settings.load_studies,
            "load_seconds_per_rate": settings.load_seconds,
            "max_seconds": settings.max_seconds,
            "model": figures.champion,
            "chunk_bytes": tfesi_e2e::study::CHUNK_BYTES,
            "stored": "time of the registry's prediction_recorded event (start of the transaction that stored it)",
        },
        "target": { "overhead_below": OVERHEAD_TARGET },
        "stages": rows_json(&stages),
        "stage_sum_ms": round(sum),
        "prepare_server_compute_ms": summary_json(&column(|alone| alone.prepare_compute_ms)),
        "prepare_cache_hits": cache_hits,
        "cache_entries_cleared": figures.cache_entries_cleared,
        "end_to_end": {
            "stored": summary_json(&end_to_end[0].1),
            "seen_by_watcher": summary_json(&end_to_end[1].1),
            "studies_per_min": round(60_000.0 / e2e),
            "no_job": figures.pipeline_no_job,
        },
        "overhead": { "ms": round(excess), "fraction": (overhead * 1e4).round() / 1e4, "met": met },
        "timeline": figures.timeline.as_deref().map(rows_json),
        "load": load,
    });
    std::fs::create_dir_all(&settings.out_dir).expect("results directory");
    let path = settings.out_dir.join("end-to-end.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).expect("json") + "\n")
        .expect("write results");
    println!("\nend-to-end: wrote {}", path.display());
}
