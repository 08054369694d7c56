//! The images of `tfesi demo`, a chunk of patients at a time: each chunk is rendered, sent (half
//! over DICOM C-STORE, half over gRPC), linked and completed before the next is rendered. Memory
//! holds one chunk's DICOM files (about 15 MB a study) whatever the cohort's size, and the
//! pipeline predicts the first studies while later ones are still being rendered.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::ProgressBar;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tfesi_synth::PatientStudy;

use super::{Clients, DemoArgs, Patient, Stage, StudyCounts, bar, scu};
use crate::endpoints::{AuthChannel, call_failed};
use crate::ingest_cmd::{self, Source};

/// Patients rendered and sent together (about 0.5 GB of DICOM).
const CHUNK: usize = 32;

/// Renders, sends and completes every patient's study, a chunk at a time. Returns the stages
/// (summed over the chunks) and fills in the study counts.
pub(super) async fn send_cohort(
    args: &DemoArgs,
    clients: &mut Clients,
    seed: u64,
    patients: &mut [Patient],
    counts: &mut StudyCounts,
) -> anyhow::Result<Vec<Stage>> {
    let progress = bar(0, "render + send (inst.)");
    let (mut rendering, mut dicom, mut grpc, mut completing) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut over_dicom, mut over_grpc) = (0_u64, 0_u64);
    for chunk in patients.chunks_mut(CHUNK) {
        let started = Instant::now();
        let studies = render(seed, chunk.iter().map(|patient| patient.row.patient_index).collect()).await?;
        for (patient, study) in chunk.iter_mut().zip(studies) {
            // The row was drawn (and its dates shifted) before: take only what rendering decides.
            patient.row.t2_series_instance_uid = study.row.t2_series_instance_uid;
            patient.row.t2_series_number = study.row.t2_series_number;
            patient.files = study.files;
        }
        let instances: u64 = chunk.iter().map(|patient| patient.files.len() as u64).sum();
        counts.instances += instances;
        progress.inc_length(instances);
        rendering += started.elapsed();

        let started = Instant::now();
        let (sent, warnings) = send_dicom(args, clients, chunk, &progress).await?;
        over_dicom += sent as u64;
        counts.instance_warnings += warnings;
        dicom += started.elapsed();

        let started = Instant::now();
        let (sent, warnings) = send_grpc(clients, chunk, &progress).await?;
        over_grpc += sent as u64;
        counts.instance_warnings += warnings;
        grpc += started.elapsed();
        for patient in chunk.iter_mut() {
            // The images are stored: keep only the cohort row.
            patient.files = Vec::new();
        }

        let started = Instant::now();
        complete(clients, chunk).await?;
        completing += started.elapsed();
    }
    progress.finish_and_clear();
    counts.over_dicom = patients.iter().filter(|patient| patient.over_dicom).count() as u64;
    counts.over_grpc = patients.iter().filter(|patient| !patient.over_dicom).count() as u64;
    let stage = |stage, count: u64, time: Duration| Stage { stage, count, seconds: time.as_secs_f64() };
    Ok(vec![
        stage("render images", patients.len() as u64, rendering),
        stage("C-STORE (DICOM)", over_dicom, dicom),
        stage("upload (gRPC)", over_grpc, grpc),
        stage("link + complete", patients.len() as u64, completing),
    ])
}

/// Renders the studies of `indices` on every core; returned in the order of `indices`.
async fn render(seed: u64, indices: Vec<u32>) -> anyhow::Result<Vec<PatientStudy>> {
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    let mut running = tokio::task::JoinSet::new();
    let mut done: Vec<Option<PatientStudy>> = indices.iter().map(|_| None).collect();
    let mut queue = indices.into_iter().enumerate();
    loop {
        while running.len() < workers {
            let Some((slot, index)) = queue.next() else { break };
            running.spawn_blocking(move || {
                let study =
                    tfesi_synth::generate_patient(seed, index, &tfesi_synth::PatientOptions::default());
                (slot, index, study)
            });
        }
        let Some(joined) = running.join_next().await else { break };
        let (slot, index, study) = joined.context("a generator task failed")?;
        let study = study.with_context(|| format!("cannot generate synthetic patient {index}"))?;
        if let Some(place) = done.get_mut(slot) {
            *place = Some(study);
        }
    }
    done.into_iter().collect::<Option<Vec<_>>>().context("a synthetic patient is missing")
}

/// Sends the DICOM half, two studies at a time. A study's first instance goes on an
/// association of its own; the app then asks ingest for the study's surrogate id (by its Study
/// Instance UID) and links the episode before the rest arrive, so the study is linked before the
/// receiver's quiet period could complete it. Returns (instances sent, warnings).
async fn send_dicom(
    args: &DemoArgs,
    clients: &Clients,
    patients: &mut [Patient],
    progress: &ProgressBar,
) -> anyhow::Result<(usize, u64)> {
    let total: usize =
        patients.iter().filter(|patient| patient.over_dicom).map(|patient| patient.files.len()).sum();
    let mut warnings = 0_u64;
    let mut chosen: Vec<&mut Patient> = patients.iter_mut().filter(|patient| patient.over_dicom).collect();
    for pair in chosen.chunks_mut(2) {
        let sends = pair.iter_mut().map(|patient| {
            let progress = progress.clone();
            let mut ingest_client = clients.ingest.clone();
            let mut registry_client = clients.registry.clone();
            async move {
                let files: Vec<&[u8]> = patient.files.iter().map(|file| file.bytes.as_slice()).collect();
                let (first, rest) = files.split_at(1.min(files.len()));
                let mut warned = scu::store_study(&args.dicom, &args.called_ae, first, &progress).await?;
                let lookup = ingest_client
                    .lookup_ids(ingest::LookupIdsRequest {
                        key: Some(ingest::lookup_ids_request::Key::StudyInstanceUid(
                            patient.row.study_instance_uid.clone(),
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
                format!("sending synthetic patient {} over DICOM", patient.row.patient_index)
            })?;
            warnings += warned as u64;
        }
    }
    Ok((total, warnings))
}

/// Links an episode to its study (Registry.LinkStudy).
pub(super) async fn link(
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
async fn send_grpc(
    clients: &Clients,
    patients: &mut [Patient],
    progress: &ProgressBar,
) -> anyhow::Result<(usize, u64)> {
    let total: usize =
        patients.iter().filter(|patient| !patient.over_dicom).map(|patient| patient.files.len()).sum();
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
            let Some(patient) = patients.get_mut(index) else { break };
            // The upload takes the bytes: the study's files are dropped once sent anyway.
            let batch: Vec<(usize, Source)> = std::mem::take(&mut patient.files)
                .into_iter()
                .enumerate()
                .map(|(file, dicom)| (file, Source::Bytes(dicom.bytes)))
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
                    patient.row.patient_index,
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
            patient.row.patient_index
        );
    }
    Ok((total, warnings))
}

/// Links each episode to its study (when not yet), then completes the study (selection,
/// pipeline job; explicit completion also covers studies received over DICOM).
async fn complete(clients: &mut Clients, patients: &mut [Patient]) -> anyhow::Result<()> {
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
            patient.row.patient_index,
            patient.study_id
        );
    }
    Ok(())
}
