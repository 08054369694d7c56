//! `tfesi demo`: the platform's whole loop on a small synthetic cohort, through the same APIs a
//! hospital uses. It generates the cohort, uses the running stack (or starts the embedded
//! development stack when none answers), sends half the studies over DICOM C-STORE and half
//! over gRPC, registers the episodes and injections, waits for every prediction, plays the
//! 2-month follow-ups as the nurse desk would (Registry.RecordFollowUp, SetOutcomeStatus for
//! loss to follow-up), creates a snapshot, and prints per-stage timings, predictions by model and
//! the registry's prospective performance of the champion.
//!
//! Everything it creates is synthetic (patients `SYNTHETIC^PATIENT....`, MRNs `SYN...`).

mod predictions;
mod scu;
mod send;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tfesi_synth::CohortRow;
use tfesi_synth::DicomFile;
use tfesi_synth::api::{self as synth_api, FollowUpAction};

use crate::dev::{EmbeddedStack, StackConfigs};
use crate::endpoints::{AuthChannel, Endpoints, call_failed};

/// Options of `tfesi demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Synthetic patients, one MR study each (half go over DICOM C-STORE, half over gRPC). The
    /// images are rendered and sent a few dozen studies at a time, so memory does not grow with
    /// the cohort.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=5000))]
    pub patients: u32,
    /// Cohort seed; by default a new one each run (printed, so a run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ingest's DICOM C-STORE receiver, host:port (used with a running stack; a stack the demo
    /// starts listens where its configuration says).
    #[arg(long, default_value = "127.0.0.1:11112")]
    pub dicom: String,
    /// Called AE title of the DICOM receiver.
    #[arg(long, default_value = "TFESI")]
    pub called_ae: String,
    /// Data directory of the stack the demo starts when none answers.
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// How long to wait for every prediction once the last study is sent, seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_s: u64,
    /// Also write the cohort's key (CSV): each patient's episode and study ids beside what only
    /// the generator knows (its true probability of a good outcome, the best clinical-only
    /// probability, the drawn outcome and the label), for evaluating models against the
    /// Bayes-optimal AUC.
    #[arg(long)]
    pub cohort_key: Option<PathBuf>,
}

/// The stack the demo ran against.
#[derive(Debug, Serialize)]
struct StackReport {
    /// `running` (it answered) or `embedded` (started by the demo, stopped at its end).
    mode: &'static str,
    ingest: String,
    preprocess: String,
    inference: String,
    registry: String,
    dicom: String,
    data_dir: Option<String>,
}

/// One timed stage.
#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    count: u64,
    seconds: f64,
}

#[derive(Debug, Serialize, Default)]
struct StudyCounts {
    over_dicom: u64,
    over_grpc: u64,
    instances: u64,
    instance_warnings: u64,
    predicted: u64,
}

#[derive(Debug, Serialize)]
struct ModelCount {
    model: String,
    role: String,
    predictions: u64,
    mean_probability: f64,
}

#[derive(Debug, Serialize, Default)]
struct FollowUpCounts {
    /// Scores recorded (RecordFollowUp), confounded ones included.
    recorded: u64,
    /// Of them, with a repeat injection or surgery (excluded from labels by the default rule).
    confounded: u64,
    /// Set LOST_TO_FOLLOW_UP (SetOutcomeStatus).
    lost_to_follow_up: u64,
    /// Labels the cohort expects under the 50% rule (recorded, unconfounded).
    expected_labels: u64,
}

#[derive(Debug, Serialize)]
struct SnapshotReport {
    snapshot_id: String,
    created: bool,
    rows: u64,
    good: u64,
    poor: u64,
}

#[derive(Debug, Serialize)]
struct PerformanceReport {
    model: String,
    label_rule_version: String,
    labeled: u64,
    positive: u64,
    auc: Option<f64>,
    auc_ci_lower: Option<f64>,
    auc_ci_upper: Option<f64>,
    brier: Option<f64>,
}

/// What `tfesi demo` prints (`--json` prints it as is).
#[derive(Debug, Serialize)]
struct DemoReport {
    synthetic: bool,
    seed: u64,
    patients: u32,
    /// Days the cohort's calendar was moved (0 or negative) so no date is in the future.
    dates_shifted_days: i64,
    stack: StackReport,
    stages: Vec<Stage>,
    total_seconds: f64,
    studies: StudyCounts,
    predictions_by_model: Vec<ModelCount>,
    follow_ups: FollowUpCounts,
    snapshot: SnapshotReport,
    performance: PerformanceReport,
    next: Vec<String>,
}

/// One synthetic patient as it goes through the platform.
struct Patient {
    /// The generator's row (dates shifted to the past).
    row: CohortRow,
    /// The study's DICOM files while its chunk is being sent, then none.
    files: Vec<DicomFile>,
    over_dicom: bool,
    patient_id: String,
    episode_id: String,
    study_id: String,
    /// Whether the episode is linked to the study yet.
    linked: bool,
}

/// The clients of the four services.
struct Clients {
    ingest: IngestClient<AuthChannel>,
    preprocess: PreprocessClient<AuthChannel>,
    inference: InferenceClient<AuthChannel>,
    registry: RegistryClient<AuthChannel>,
}

/// Stage timings.
#[derive(Default)]
struct Stages(Vec<Stage>);

impl Stages {
    fn record(&mut self, stage: &'static str, count: usize, started: Instant) {
        self.0.push(Stage { stage, count: count as u64, seconds: started.elapsed().as_secs_f64() });
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn bar(length: u64, label: &str) -> ProgressBar {
    let progress =
        if std::io::stderr().is_terminal() { ProgressBar::new(length) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template(&format!("{label:<22} {{bar:30}} {{pos}}/{{len}}  {{elapsed}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    progress
}

/// Runs the demo and prints its report.
pub fn run(endpoints: &Endpoints, args: &DemoArgs, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(demo(endpoints, args))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Uses the running stack, or starts the embedded one and stops it at the end.
async fn demo(endpoints: &Endpoints, args: &DemoArgs) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(1)
    });
    let mut stages = Stages::default();

    let stage = Instant::now();
    let checks = [
        ("ingest", "tfesi.ingest.v1.Ingest", &endpoints.ingest),
        ("preprocess", "tfesi.preprocess.v1.Preprocess", &endpoints.preprocess),
        ("inference", "tfesi.inference.v1.Inference", &endpoints.inference),
        ("registry", "tfesi.registry.v1.Registry", &endpoints.registry),
    ];
    let mut health = Vec::new();
    for (name, grpc_name, endpoint) in checks {
        health.push((name, endpoint.clone(), crate::status::check(endpoint, grpc_name).await));
    }
    let serving = health.iter().filter(|(_, _, status)| status == "SERVING").count();
    if serving == health.len() {
        let stack = StackReport {
            mode: "running",
            ingest: endpoints.ingest.clone(),
            preprocess: endpoints.preprocess.clone(),
            inference: endpoints.inference.clone(),
            registry: endpoints.registry.clone(),
            dicom: args.dicom.clone(),
            data_dir: None,
        };
        stages.record("stack (running)", 4, stage);
        return exercise(endpoints, args, seed, stack, stages, started).await;
    }
    if serving > 0 {
        let states: Vec<String> =
            health.iter().map(|(name, endpoint, status)| format!("{name} {status} at {endpoint}")).collect();
        anyhow::bail!(
            "only part of a stack answers ({}): start the missing services (`tfesi dev`), or stop the \
             others so that the demo can start its own",
            states.join(", ")
        );
    }

    let mut configs = StackConfigs::load(&args.data_dir)?;
    // Completion is explicit (CompleteStudy); a short quiet period only tidies up.
    configs.ingest.dicom.quiet_period_s = 5.0;
    let mut stack = EmbeddedStack::start(configs).await.context(
        "cannot start the embedded stack (is another stack or program using its ports? `tfesi status` shows \
         what answers)",
    )?;
    let result = async {
        wait_until_serving(&mut stack).await?;
        let url =
            |name: &str| stack.address(name).map(|address| format!("http://{address}")).unwrap_or_default();
        let embedded = Endpoints {
            ingest: url("ingest"),
            preprocess: url("preprocess"),
            inference: url("inference"),
            registry: url("registry"),
            token: None,
            auth_secret_file: stack.auth_secret_file.clone(),
            ..endpoints.clone()
        };
        let Some((dicom, called_ae)) = stack.dicom.clone() else {
            anyhow::bail!("the embedded stack's DICOM receiver is disabled (TFESI_INGEST__DICOM__ENABLED)");
        };
        let report = StackReport {
            mode: "embedded",
            ingest: embedded.ingest.clone(),
            preprocess: embedded.preprocess.clone(),
            inference: embedded.inference.clone(),
            registry: embedded.registry.clone(),
            dicom: dicom.to_string(),
            data_dir: Some(stack.data_dir.display().to_string()),
        };
        stages.record("stack (started)", 4, stage);
        let args = DemoArgs {
            dicom: dicom.to_string(),
            called_ae,
            data_dir: args.data_dir.clone(),
            seed: args.seed,
            patients: args.patients,
            wait_s: args.wait_s,
            cohort_key: args.cohort_key.clone(),
        };
        let outcome = exercise(&embedded, &args, seed, report, stages, started).await;
        match (outcome, stack.failure_now().await) {
            (Err(error), Some(failure)) => {
                Err(error.context(format!("the embedded stack failed: {failure:#}")))
            }
            (outcome, _) => outcome,
        }
    }
    .await;
    let stopping = bar(1, "stopping the stack");
    stack.stop().await;
    stopping.finish_and_clear();
    result
}

/// Waits until every embedded service is SERVING (inference self-tests its model first).
async fn wait_until_serving(stack: &mut EmbeddedStack) -> anyhow::Result<()> {
    const WITHIN: Duration = Duration::from_secs(180);
    let names = [
        ("registry", "tfesi.registry.v1.Registry"),
        ("inference", "tfesi.inference.v1.Inference"),
        ("ingest", "tfesi.ingest.v1.Ingest"),
        ("preprocess", "tfesi.preprocess.v1.Preprocess"),
    ];
    let progress = bar(names.len() as u64, "starting the stack");
    let started = Instant::now();
    for (name, grpc_name) in names {
        let endpoint =
            format!("http://{}", stack.address(name).context("a service of the stack is missing")?);
        loop {
            if let Some(failure) = stack.failure_now().await {
                progress.finish_and_clear();
                return Err(failure.context(
                    "the embedded stack could not start (scripts/setup.sh installs and starts Postgres, Redis \
                     and ONNX Runtime)",
                ));
            }
            let status = crate::status::check(&endpoint, grpc_name).await;
            if status == "SERVING" {
                break;
            }
            if started.elapsed() > WITHIN {
                progress.finish_and_clear();
                anyhow::bail!(
                    "{name} of the embedded stack is not SERVING after {WITHIN:?} (last: {status})"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

async fn connect(endpoints: &Endpoints) -> anyhow::Result<Clients> {
    Ok(Clients {
        ingest: IngestClient::new(endpoints.connect("ingest", &endpoints.ingest).await?)
            .max_decoding_message_size(64 << 20),
        preprocess: PreprocessClient::new(endpoints.connect("preprocess", &endpoints.preprocess).await?),
        inference: InferenceClient::new(endpoints.connect("inference", &endpoints.inference).await?),
        registry: RegistryClient::new(endpoints.connect("registry", &endpoints.registry).await?),
    })
}

/// Every step after the stack answers.
async fn exercise(
    endpoints: &Endpoints,
    args: &DemoArgs,
    seed: u64,
    stack: StackReport,
    mut stages: Stages,
    started: Instant,
) -> anyhow::Result<DemoReport> {
    let mut clients = connect(endpoints).await?;

    let stage = Instant::now();
    let mut rows = cohort_rows(seed, args.patients).await?;
    stages.record("draw cohort rows", rows.len(), stage);
    // Follow-ups are played now: the cohort's calendar moves back so that its last date is
    // yesterday at the latest (the registry refuses dates in the future).
    let today = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs() / 86_400).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let dates_shifted_days =
        synth_api::shift_to_end_by(rows.iter(), tfesi_synth::calendar::Date::from_days(today - 1));
    for row in &mut rows {
        synth_api::shift_dates(row, dates_shifted_days);
    }
    let mut patients: Vec<Patient> = rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| Patient {
            row,
            files: Vec::new(),
            over_dicom: index % 2 == 0,
            patient_id: String::new(),
            episode_id: String::new(),
            study_id: String::new(),
            linked: false,
        })
        .collect();

    let stage = Instant::now();
    register(&mut clients, seed, &mut patients).await?;
    stages.record("register episodes", patients.len(), stage);

    let mut counts = StudyCounts::default();
    stages.0.extend(send::send_cohort(args, &mut clients, seed, &mut patients, &mut counts).await?);

    let stage = Instant::now();
    let predictions =
        predictions::wait_for_predictions(&mut clients, &patients, Duration::from_secs(args.wait_s)).await?;
    counts.predicted = predictions.len() as u64;
    stages.record("predictions", predictions.len(), stage);
    let predictions_by_model = by_model(&predictions);

    let stage = Instant::now();
    let follow_ups = play_follow_ups(&mut clients, seed, &patients).await?;
    stages.record("follow-ups", patients.len(), stage);

    let stage = Instant::now();
    let snapshot = snapshot(&mut clients, seed).await?;
    stages.record("snapshot", 1, stage);
    if let Some(path) = &args.cohort_key {
        write_cohort_key(path, seed, &patients)?;
    }
    let stage = Instant::now();
    let performance = performance(&mut clients).await?;
    stages.record("performance", 1, stage);

    let next = vec![
        "tfesi study list".to_owned(),
        format!("tfesi model performance {}", performance.model),
        "tfesi jobs status".to_owned(),
        "tfesi model list".to_owned(),
        "tfesi followup due".to_owned(),
        "tfesi audit verify".to_owned(),
        "the nurse desk: http://127.0.0.1:8080 while `tfesi dev` runs (user nurse, password in data/dev/desk/nurse-password)"
            .to_owned(),
    ];
    Ok(DemoReport {
        synthetic: true,
        seed,
        patients: args.patients,
        dates_shifted_days,
        stack,
        stages: stages.0,
        total_seconds: started.elapsed().as_secs_f64(),
        studies: counts,
        predictions_by_model,
        follow_ups,
        snapshot,
        performance,
        next,
    })
}

/// Every patient's cohort row, drawn without rendering images (fast), in patient order.
async fn cohort_rows(seed: u64, patients: u32) -> anyhow::Result<Vec<CohortRow>> {
    tokio::task::spawn_blocking(move || {
        let options = tfesi_synth::PatientOptions::default();
        (0..patients).map(|index| tfesi_synth::patient_row(seed, index, &options)).collect()
    })
    .await
    .context("drawing the cohort rows failed")
}

/// Writes the cohort key: one CSV line per patient joining the platform's ids to what only the
/// generator knows. Synthetic data only; it holds no identifier of a real person.
fn write_cohort_key(path: &std::path::Path, seed: u64, patients: &[Patient]) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let latents =
        |row: &CohortRow| tfesi_synth::cohort::csv_columns(row, tfesi_synth::cohort::is_latent_column);
    let mut out = String::from(
        "synthetic,seed,patient_index,episode_id,study_id,p_true,p_clinical,outcome_drawn,label",
    );
    for (name, _) in patients.first().map(|patient| latents(&patient.row)).unwrap_or_default() {
        write!(out, ",{name}")?;
    }
    out.push('\n');
    for patient in patients {
        let row = &patient.row;
        let label = match row.label() {
            Some(true) => "1",
            Some(false) => "0",
            None => "",
        };
        write!(
            out,
            "true,{seed},{},{},{},{},{},{},{label}",
            row.patient_index,
            patient.episode_id,
            patient.study_id,
            row.p_true,
            row.p_clinical,
            u8::from(row.outcome_drawn)
        )?;
        for (_, field) in latents(row) {
            write!(out, ",{field}")?;
        }
        out.push('\n');
    }
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, out).with_context(|| format!("cannot write the cohort key {}", path.display()))
}

/// The app's side: surrogate patient ids from the MRNs, episodes and injections.
async fn register(clients: &mut Clients, seed: u64, patients: &mut [Patient]) -> anyhow::Result<()> {
    let progress = bar(patients.len() as u64, "registering episodes");
    for patient in patients.iter_mut() {
        let row = &patient.row;
        let lookup = clients
            .ingest
            .lookup_ids(ingest::LookupIdsRequest {
                key: Some(ingest::lookup_ids_request::Key::Mrn(row.patient_id.clone())),
                mrn_issuer: String::new(),
                create_patient_if_missing: true,
                identity: None,
            })
            .await
            .map_err(call_failed("Ingest.LookupIds"))?
            .into_inner();
        patient.patient_id = lookup.patient_id;
        let key = format!("demo-{seed}-{}", row.patient_index);
        let episode = clients
            .registry
            .create_episode(registry::CreateEpisodeRequest {
                idempotency_key: key.clone(),
                details: Some(synth_api::episode_details(row, &patient.patient_id)),
            })
            .await
            .map_err(call_failed("Registry.CreateEpisode"))?
            .into_inner()
            .episode
            .context("Registry.CreateEpisode answered no episode")?;
        patient.episode_id = episode.episode_id;
        clients
            .registry
            .record_injection(registry::RecordInjectionRequest {
                idempotency_key: format!("{key}-injection"),
                episode_id: patient.episode_id.clone(),
                injection: Some(synth_api::injection_details(row)),
            })
            .await
            .map_err(call_failed("Registry.RecordInjection"))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

fn model_name(model: Option<&common::ModelRef>) -> String {
    model.map_or_else(|| "?".to_owned(), |model| format!("{}:{}", model.name, model.version))
}

fn by_model(predictions: &[registry::PredictionRecord]) -> Vec<ModelCount> {
    let mut groups: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for prediction in predictions {
        let role = common::ModelRole::try_from(prediction.role)
            .map(|role| role.as_str_name().trim_start_matches("MODEL_ROLE_").to_ascii_lowercase())
            .unwrap_or_else(|_| "unknown".to_owned());
        let entry = groups.entry((model_name(prediction.model.as_ref()), role)).or_default();
        entry.0 += 1;
        entry.1 += prediction.probability;
    }
    groups
        .into_iter()
        .map(|((model, role), (count, sum))| ModelCount {
            model,
            role,
            predictions: count,
            mean_probability: sum / count.max(1) as f64,
        })
        .collect()
}

/// The nurse desk's side: the 2-month follow-up of every patient on the cohort's dates.
async fn play_follow_ups(
    clients: &mut Clients,
    seed: u64,
    patients: &[Patient],
) -> anyhow::Result<FollowUpCounts> {
    let progress = bar(patients.len() as u64, "follow-ups (2 months)");
    let mut counts = FollowUpCounts::default();
    for patient in patients {
        let row = &patient.row;
        let action = synth_api::follow_up(row).with_context(|| {
            format!("synthetic patient {} has an incomplete follow-up", row.patient_index)
        })?;
        match action {
            FollowUpAction::Record(input) => {
                let confounded = input.repeat_injection == Some(true) || input.surgery == Some(true);
                clients
                    .registry
                    .record_follow_up(synth_api::record_follow_up_request(
                        format!("demo-{seed}-{}-follow-up", row.patient_index),
                        &patient.episode_id,
                        input,
                    ))
                    .await
                    .map_err(call_failed("Registry.RecordFollowUp"))?;
                counts.recorded += 1;
                counts.confounded += u64::from(confounded);
            }
            FollowUpAction::LostToFollowUp => {
                clients
                    .registry
                    .set_outcome_status(registry::SetOutcomeStatusRequest {
                        episode_id: patient.episode_id.clone(),
                        status: registry::OutcomeStatus::LostToFollowUp as i32,
                        exclusion_reason: registry::ExclusionReason::Unspecified as i32,
                        note: "synthetic: not reached within the window".to_owned(),
                    })
                    .await
                    .map_err(call_failed("Registry.SetOutcomeStatus"))?;
                counts.lost_to_follow_up += 1;
            }
        }
        counts.expected_labels += u64::from(row.label().is_some());
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(counts)
}

async fn snapshot(clients: &mut Clients, seed: u64) -> anyhow::Result<SnapshotReport> {
    let now = SystemTime::now();
    let response = clients
        .registry
        .create_snapshot(registry::CreateSnapshotRequest {
            as_of: Some(prost_types::Timestamp::from(now)),
            filter: Some(registry::SnapshotFilter { require_study: true, ..Default::default() }),
            label_rule_version: String::new(),
            split_seed: seed,
            fractions: None,
            description: format!("tfesi demo, synthetic cohort (seed {seed})"),
        })
        .await
        .map_err(call_failed("Registry.CreateSnapshot"))?
        .into_inner();
    let snapshot = response.snapshot.context("Registry.CreateSnapshot answered no snapshot")?;
    Ok(SnapshotReport {
        snapshot_id: snapshot.snapshot_id,
        created: response.created,
        rows: snapshot.row_count,
        good: snapshot.good_count,
        poor: snapshot.poor_count,
    })
}

async fn performance(clients: &mut Clients) -> anyhow::Result<PerformanceReport> {
    let models = clients
        .inference
        .list_models(inference::ListModelsRequest::default())
        .await
        .map_err(call_failed("Inference.ListModels"))?
        .into_inner()
        .models;
    let champion = models
        .iter()
        .find(|model| model.serving_state == inference::ServingState::Champion as i32)
        .and_then(|model| model.card.as_ref()?.model.clone())
        .context("inference has no champion model (`tfesi model list`)")?;
    let response = clients
        .registry
        .get_model_performance(registry::GetModelPerformanceRequest {
            model: Some(champion.clone()),
            ..Default::default()
        })
        .await
        .map_err(call_failed("Registry.GetModelPerformance"))?
        .into_inner();
    let metrics = response.metrics.unwrap_or_default();
    Ok(PerformanceReport {
        model: model_name(Some(&champion)),
        label_rule_version: response.label_rule_version,
        labeled: metrics.labeled_count,
        positive: metrics.positive_count,
        auc: metrics.auc,
        auc_ci_lower: metrics.auc_ci_lower,
        auc_ci_upper: metrics.auc_ci_upper,
        brier: metrics.brier,
    })
}

fn print_report(report: &DemoReport) {
    let fmt = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.3}"));
    println!(
        "tfesi demo: {} SYNTHETIC patients (seed {}), stack {} ({})",
        report.patients, report.seed, report.stack.mode, report.stack.registry
    );
    println!();
    println!("{:<22} {:>8} {:>9}", "STAGE", "COUNT", "SECONDS");
    for stage in &report.stages {
        println!("{:<22} {:>8} {:>9.1}", stage.stage, stage.count, stage.seconds);
    }
    println!("{:<22} {:>8} {:>9.1}", "total", "", report.total_seconds);
    println!();
    println!(
        "studies: {} over DICOM C-STORE, {} over gRPC ({} instances), {} predicted",
        report.studies.over_dicom,
        report.studies.over_grpc,
        report.studies.instances,
        report.studies.predicted
    );
    println!("{:<22} {:<10} {:>11} {:>10}", "MODEL", "ROLE", "PREDICTIONS", "MEAN P");
    for model in &report.predictions_by_model {
        println!(
            "{:<22} {:<10} {:>11} {:>10.3}",
            model.model, model.role, model.predictions, model.mean_probability
        );
    }
    println!();
    let follow_ups = &report.follow_ups;
    println!(
        "follow-ups: {} recorded ({} confounded: repeat injection or surgery), {} lost to follow-up",
        follow_ups.recorded, follow_ups.confounded, follow_ups.lost_to_follow_up
    );
    let snapshot = &report.snapshot;
    println!(
        "snapshot {} ({}): {} rows, {} good, {} poor",
        snapshot.snapshot_id,
        if snapshot.created { "new" } else { "existing" },
        snapshot.rows,
        snapshot.good,
        snapshot.poor
    );
    let performance = &report.performance;
    println!(
        "champion {}: prospective AUC {} (95% CI {} to {}), n = {} labeled ({} good), Brier {} [label rule {}]",
        performance.model,
        fmt(performance.auc),
        fmt(performance.auc_ci_lower),
        fmt(performance.auc_ci_upper),
        performance.labeled,
        performance.positive,
        fmt(performance.brier),
        performance.label_rule_version
    );
    println!("  (the registry's figure over every labeled episode so far; the data are synthetic)");
    println!();
    println!("next:");
    for command in &report.next {
        println!("  {command}");
    }
}
