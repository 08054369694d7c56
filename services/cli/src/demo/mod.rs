//! `tfesi demo`: the platform's whole loop on a small synthetic cohort, through the same APIs a
//! hospital uses. It generates the cohort, uses the running stack (or starts the embedded
//! development stack when none answers), sends half the studies over DICOM C-STORE and half
//! over gRPC, registers the episodes and injections, waits for every prediction, plays the
//! 2-month follow-ups as the nurse desk would (Registry.RecordFollowUp, SetOutcomeStatus for
//! loss to follow-up), creates a snapshot, and prints per-stage timings, predictions by model and
//! the registry's prospective performance of the champion.
//!
//! Everything it creates is synthetic (patients `SYNTHETIC^PATIENT....`, MRNs `SYN...`).

mod scu;

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
use tfesi_proto::preprocess::v1 as preprocess;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tfesi_synth::PatientStudy;
use tfesi_synth::api::{self as synth_api, FollowUpAction};

use crate::dev::{EmbeddedStack, StackConfigs};
use crate::endpoints::{AuthChannel, Endpoints, call_failed, describe};
use crate::ingest_cmd::{self, Source};

/// Options of `tfesi demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Synthetic patients, one MR study each (half go over DICOM C-STORE, half over gRPC).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=500))]
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
    /// How long to wait for every prediction, seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_s: u64,
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
    study: PatientStudy,
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
    let mut studies = generate(seed, args.patients).await?;
    stages.record("generate cohort", studies.len(), stage);
    // Follow-ups are played now: the cohort's calendar moves back so that its last date is
    // yesterday at the latest (the registry refuses dates in the future).
    let today = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs() / 86_400).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let dates_shifted_days = synth_api::shift_to_end_by(
        studies.iter().map(|study| &study.row),
        tfesi_synth::calendar::Date::from_days(today - 1),
    );
    for study in &mut studies {
        synth_api::shift_dates(&mut study.row, dates_shifted_days);
    }
    let mut patients: Vec<Patient> = studies
        .into_iter()
        .enumerate()
        .map(|(index, study)| Patient {
            study,
            over_dicom: index % 2 == 0,
            patient_id: String::new(),
            episode_id: String::new(),
            study_id: String::new(),
            linked: false,
        })
        .collect();
    let instances: u64 = patients.iter().map(|patient| patient.study.files.len() as u64).sum();

    let stage = Instant::now();
    register(&mut clients, seed, &mut patients).await?;
    stages.record("register episodes", patients.len(), stage);

    let mut counts = StudyCounts { instances, ..StudyCounts::default() };
    let stage = Instant::now();
    let (sent, warnings) = send_dicom(args, &clients, &mut patients).await?;
    counts.over_dicom = patients.iter().filter(|patient| patient.over_dicom).count() as u64;
    counts.instance_warnings += warnings;
    stages.record("C-STORE (DICOM)", sent, stage);

    let stage = Instant::now();
    let (sent, warnings) = send_grpc(&clients, &mut patients).await?;
    counts.over_grpc = patients.iter().filter(|patient| !patient.over_dicom).count() as u64;
    counts.instance_warnings += warnings;
    stages.record("upload (gRPC)", sent, stage);
    for patient in &mut patients {
        // The images are stored: keep only the cohort rows.
        patient.study.files = Vec::new();
    }

    let stage = Instant::now();
    complete(&mut clients, &mut patients).await?;
    stages.record("link + complete", patients.len(), stage);

    let stage = Instant::now();
    let predictions = wait_for_predictions(&mut clients, &patients, Duration::from_secs(args.wait_s)).await?;
    counts.predicted = predictions.len() as u64;
    stages.record("predictions", predictions.len(), stage);
    let predictions_by_model = by_model(&predictions);

    let stage = Instant::now();
    let follow_ups = play_follow_ups(&mut clients, seed, &patients).await?;
    stages.record("follow-ups", patients.len(), stage);

    let stage = Instant::now();
    let snapshot = snapshot(&mut clients, seed).await?;
    stages.record("snapshot", 1, stage);
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

/// Generates the cohort on every core, in patient order.
async fn generate(seed: u64, patients: u32) -> anyhow::Result<Vec<PatientStudy>> {
    let progress = bar(u64::from(patients), "generating (synthetic)");
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0_u32;
    let mut done: Vec<Option<PatientStudy>> = (0..patients).map(|_| None).collect();
    loop {
        while running.len() < workers && next < patients {
            let index = next;
            running.spawn_blocking(move || {
                (index, tfesi_synth::generate_patient(seed, index, &tfesi_synth::PatientOptions::default()))
            });
            next += 1;
        }
        let Some(joined) = running.join_next().await else { break };
        let (index, study) = joined.context("a generator task failed")?;
        let study = study.with_context(|| format!("cannot generate synthetic patient {index}"))?;
        if let Some(slot) = done.get_mut(index as usize) {
            *slot = Some(study);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    done.into_iter().collect::<Option<Vec<_>>>().context("a synthetic patient is missing")
}

/// The app's side: surrogate patient ids from the MRNs, episodes and injections.
async fn register(clients: &mut Clients, seed: u64, patients: &mut [Patient]) -> anyhow::Result<()> {
    let progress = bar(patients.len() as u64, "registering episodes");
    for patient in patients.iter_mut() {
        let row = &patient.study.row;
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

/// Sends the DICOM half, two studies at a time. A study's first instance goes on an
/// association of its own; the app then asks ingest for the study's surrogate id (by its Study
/// Instance UID) and links the episode before the rest arrive, so the study is linked before the
/// receiver's quiet period could complete it. Returns (instances sent, warnings).
async fn send_dicom(
    args: &DemoArgs,
    clients: &Clients,
    patients: &mut [Patient],
) -> anyhow::Result<(usize, u64)> {
    let total: usize =
        patients.iter().filter(|patient| patient.over_dicom).map(|patient| patient.study.files.len()).sum();
    let progress = bar(total as u64, "C-STORE (DICOM)");
    let mut warnings = 0_u64;
    let mut chosen: Vec<&mut Patient> = patients.iter_mut().filter(|patient| patient.over_dicom).collect();
    for pair in chosen.chunks_mut(2) {
        let sends = pair.iter_mut().map(|patient| {
            let progress = progress.clone();
            let mut ingest_client = clients.ingest.clone();
            let mut registry_client = clients.registry.clone();
            async move {
                let files: Vec<&[u8]> =
                    patient.study.files.iter().map(|file| file.bytes.as_slice()).collect();
                let (first, rest) = files.split_at(1.min(files.len()));
                let mut warned = scu::store_study(&args.dicom, &args.called_ae, first, &progress).await?;
                let lookup = ingest_client
                    .lookup_ids(ingest::LookupIdsRequest {
                        key: Some(ingest::lookup_ids_request::Key::StudyInstanceUid(
                            patient.study.row.study_instance_uid.clone(),
                        )),
                        mrn_issuer: String::new(),
                        create_patient_if_missing: false,
                        identity: None,
                    })
                    .await
                    .map_err(call_failed("Ingest.LookupIds (study sent over DICOM)"))?
                    .into_inner();
                patient.study_id = lookup
                    .study_ids
                    .first()
                    .cloned()
                    .context("ingest knows no study for a Study Instance UID it just stored")?;
                link(&mut registry_client, &patient.episode_id, &patient.study_id).await?;
                patient.linked = true;
                if !rest.is_empty() {
                    warned += scu::store_study(&args.dicom, &args.called_ae, rest, &progress).await?;
                }
                anyhow::Ok(warned)
            }
        });
        let results = futures::future::join_all(sends).await;
        for (patient, sent) in pair.iter().zip(results) {
            let warned = sent.with_context(|| {
                format!("sending synthetic patient {} over DICOM", patient.study.row.patient_index)
            })?;
            warnings += warned as u64;
        }
    }
    progress.finish_and_clear();
    Ok((total, warnings))
}

/// Links an episode to its study (Registry.LinkStudy).
async fn link(
    registry_client: &mut RegistryClient<AuthChannel>,
    episode_id: &str,
    study_id: &str,
) -> anyhow::Result<()> {
    registry_client
        .link_study(registry::LinkStudyRequest {
            episode_id: episode_id.to_owned(),
            study_id: study_id.to_owned(),
        })
        .await
        .map_err(call_failed("Registry.LinkStudy"))?;
    Ok(())
}

/// Sends the gRPC half, one upload stream per study (four at a time), as `tfesi ingest` does.
/// Returns (instances sent, instances with a quarantine outcome).
async fn send_grpc(clients: &Clients, patients: &mut [Patient]) -> anyhow::Result<(usize, u64)> {
    let total: usize =
        patients.iter().filter(|patient| !patient.over_dicom).map(|patient| patient.study.files.len()).sum();
    let progress = bar(total as u64, "upload (gRPC)");
    let mut running = tokio::task::JoinSet::new();
    let mut warnings = 0;
    let chosen: Vec<usize> = patients
        .iter()
        .enumerate()
        .filter(|(_, patient)| !patient.over_dicom)
        .map(|(index, _)| index)
        .collect();
    let mut queue = chosen.into_iter();
    loop {
        while running.len() < 4 {
            let Some(index) = queue.next() else { break };
            let Some(patient) = patients.get(index) else { break };
            let batch: Vec<(usize, Source)> = patient
                .study
                .files
                .iter()
                .enumerate()
                .map(|(file, dicom)| (file, Source::Bytes(dicom.bytes.clone())))
                .collect();
            let upload =
                ingest_cmd::upload_batch(clients.ingest.clone(), batch, 256 * 1024, progress.clone());
            running.spawn(async move { (index, upload.await) });
        }
        let Some(joined) = running.join_next().await else { break };
        let (index, results) = joined.context("an upload task failed")?;
        let results = results?;
        let Some(patient) = patients.get_mut(index) else { continue };
        for (_, result) in &results {
            match ingest_cmd::outcome_name(result.outcome) {
                "stored" | "duplicate" => {}
                "quarantined" => warnings += 1,
                outcome => anyhow::bail!(
                    "an instance of synthetic patient {} was {outcome}: {} ({})",
                    patient.study.row.patient_index,
                    ingest_cmd::reason_name(result.reason),
                    result.message
                ),
            }
            if patient.study_id.is_empty() && !result.study_id.is_empty() {
                patient.study_id = result.study_id.clone();
            }
        }
        anyhow::ensure!(
            !patient.study_id.is_empty(),
            "ingest named no study for synthetic patient {}",
            patient.study.row.patient_index
        );
    }
    progress.finish_and_clear();
    Ok((total, warnings))
}

/// Links each episode to its study (when not yet), then completes the study (selection,
/// pipeline job; explicit completion also covers studies received over DICOM).
async fn complete(clients: &mut Clients, patients: &mut [Patient]) -> anyhow::Result<()> {
    let progress = bar(patients.len() as u64, "link + complete");
    for patient in patients.iter_mut() {
        if !patient.linked {
            link(&mut clients.registry, &patient.episode_id, &patient.study_id).await?;
            patient.linked = true;
        }
        let completed = clients
            .ingest
            .complete_study(ingest::CompleteStudyRequest { study_id: patient.study_id.clone() })
            .await
            .map_err(call_failed("Ingest.CompleteStudy"))?
            .into_inner();
        let study = completed.study.unwrap_or_default();
        anyhow::ensure!(
            study.selection_outcome == ingest::SelectionOutcome::Selected as i32,
            "no T2 sagittal series was selected in study {} of synthetic patient {} (see `tfesi study show {}`)",
            patient.study_id,
            patient.study.row.patient_index,
            patient.study_id
        );
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

/// Polls every episode until it holds a prediction; on timeout, says which studies have none
/// and lists the pipeline's dead letters.
async fn wait_for_predictions(
    clients: &mut Clients,
    patients: &[Patient],
    within: Duration,
) -> anyhow::Result<Vec<registry::PredictionRecord>> {
    let progress = bar(patients.len() as u64, "waiting for predictions");
    let started = Instant::now();
    let mut last_check = Instant::now();
    let mut found: BTreeMap<&str, Vec<registry::PredictionRecord>> = BTreeMap::new();
    loop {
        for patient in patients {
            if found.contains_key(patient.episode_id.as_str()) {
                continue;
            }
            let episode = clients
                .registry
                .get_episode(registry::GetEpisodeRequest { episode_id: patient.episode_id.clone() })
                .await
                .map_err(call_failed("Registry.GetEpisode"))?
                .into_inner()
                .episode
                .unwrap_or_default();
            if !episode.predictions.is_empty() {
                found.insert(&patient.episode_id, episode.predictions);
                progress.inc(1);
            }
        }
        if found.len() == patients.len() {
            break;
        }
        if last_check.elapsed() > Duration::from_secs(5) {
            last_check = Instant::now();
            let ours: Vec<&str> = patients
                .iter()
                .filter(|patient| !found.contains_key(patient.episode_id.as_str()))
                .map(|patient| patient.study_id.as_str())
                .collect();
            if let Some(reasons) = our_dead_letters(clients, &ours).await? {
                progress.finish_and_clear();
                anyhow::bail!("the pipeline gave up on studies of the demo: {reasons}");
            }
        }
        if started.elapsed() > within {
            progress.finish_and_clear();
            let missing: Vec<&str> = patients
                .iter()
                .filter(|patient| !found.contains_key(patient.episode_id.as_str()))
                .map(|patient| patient.study_id.as_str())
                .collect();
            let dead = dead_letters(clients).await;
            anyhow::bail!(
                "{} of {} studies have no prediction after {within:?} (studies {}); {dead}",
                missing.len(),
                patients.len(),
                missing.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.finish_and_clear();
    Ok(found.into_values().flatten().collect())
}

/// The dead letters of `studies` as one line, `None` when there are none.
async fn our_dead_letters(clients: &mut Clients, studies: &[&str]) -> anyhow::Result<Option<String>> {
    let letters = clients
        .preprocess
        .list_dead_letters(preprocess::ListDeadLettersRequest {
            page: Some(common::PageRequest { page_size: 200, page_token: String::new() }),
        })
        .await
        .map_err(call_failed("Preprocess.ListDeadLetters"))?
        .into_inner()
        .dead_letters;
    let reasons: Vec<String> = letters
        .iter()
        .filter(|letter| studies.contains(&letter.study_id.as_str()))
        .map(|letter| format!("study {}: {}: {}", letter.study_id, letter.reason_code, letter.message))
        .collect();
    Ok((!reasons.is_empty()).then(|| format!("{} (`tfesi jobs dead`)", reasons.join("; "))))
}

/// The pipeline's dead letters as one line (for a failure message).
async fn dead_letters(clients: &mut Clients) -> String {
    let listed = clients
        .preprocess
        .list_dead_letters(preprocess::ListDeadLettersRequest {
            page: Some(common::PageRequest { page_size: 20, page_token: String::new() }),
        })
        .await;
    match listed {
        Ok(response) => {
            let letters = response.into_inner().dead_letters;
            if letters.is_empty() {
                "no dead letters: the jobs are still queued or running (`tfesi jobs status`)".to_owned()
            } else {
                let reasons: Vec<String> = letters
                    .iter()
                    .map(|letter| {
                        format!("study {}: {}: {}", letter.study_id, letter.reason_code, letter.message)
                    })
                    .collect();
                format!("dead letters (`tfesi jobs dead`): {}", reasons.join("; "))
            }
        }
        Err(status) => format!("Preprocess.ListDeadLetters failed too: {}", describe(&status)),
    }
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
        let row = &patient.study.row;
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
