//! A synthetic study's trip through the running stack, as a hospital's app drives it: rendered
//! and its episode registered beforehand (untimed), then uploaded over gRPC, linked to the
//! episode and completed, while a WatchEpisode stream waits for its stored prediction; each
//! step timed by the client.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

use crate::cohort::{episode_details, upload_messages};
use crate::stack::{AuthChannel, Stack};

/// Bytes per upload chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How long a study may take from its completion to its stored prediction.
pub const PREDICTION_WITHIN: Duration = Duration::from_secs(120);

/// Milliseconds of a duration, as a float.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Clients of the four services, each call carrying an operator's token (admin and service).
#[derive(Clone)]
pub struct Clients {
    pub ingest: IngestClient<AuthChannel>,
    pub registry: RegistryClient<AuthChannel>,
    pub preprocess: PreprocessClient<AuthChannel>,
    pub inference: InferenceClient<AuthChannel>,
}

impl Clients {
    /// Connects to every service of `stack`.
    pub async fn connect(stack: &Stack) -> Self {
        Self {
            ingest: IngestClient::new(stack.channel(stack.ingest.address).await),
            registry: RegistryClient::new(stack.channel(stack.registry.address).await),
            preprocess: PreprocessClient::new(stack.channel(stack.preprocess.address).await),
            // Model cards and full-size rows exceed the default 4 MiB.
            inference: InferenceClient::new(stack.channel(stack.inference.address).await)
                .max_decoding_message_size(64 << 20),
        }
    }
}

/// A rendered synthetic study whose episode is registered, ready to send.
pub struct Study {
    pub episode_id: String,
    /// The episode's baseline facts and plan (what clinical features are encoded from).
    pub details: registry::EpisodeDetails,
    /// The upload stream of its files.
    pub messages: Vec<ingest::UploadRequest>,
    pub instances: usize,
}

/// Renders patients `indices` of the cohort `seed` (two at a time, off the runtime) and
/// registers each one's episode as the app does before the images arrive (LookupIds creating
/// the surrogate patient, CreateEpisode).
pub async fn prepare_studies(clients: &mut Clients, seed: u64, indices: std::ops::Range<u32>) -> Vec<Study> {
    let options = tfesi_synth::PatientOptions::default();
    let rendered: Vec<_> = futures::stream::iter(indices)
        .map(|index| {
            let options = options.clone();
            tokio::task::spawn_blocking(move || tfesi_synth::generate_patient(seed, index, &options))
        })
        .buffered(2)
        .collect()
        .await;
    let mut studies = Vec::with_capacity(rendered.len());
    for patient in rendered {
        let patient = patient.expect("render task").expect("render a synthetic patient");
        let lookup = ingest::LookupIdsRequest {
            key: Some(ingest::lookup_ids_request::Key::Mrn(patient.row.patient_id.clone())),
            mrn_issuer: String::new(),
            create_patient_if_missing: true,
            identity: None,
        };
        let patient_id = clients.ingest.lookup_ids(lookup).await.expect("LookupIds").into_inner().patient_id;
        let details = episode_details(&patient.row, &patient_id);
        let request = registry::CreateEpisodeRequest {
            idempotency_key: format!("study-{patient_id}"),
            details: Some(details.clone()),
        };
        let created = clients.registry.create_episode(request).await.expect("CreateEpisode").into_inner();
        let files: Vec<Vec<u8>> = patient.files.into_iter().map(|file| file.bytes).collect();
        studies.push(Study {
            episode_id: created.episode.expect("the created episode").episode_id,
            details,
            messages: upload_messages(&files, CHUNK_BYTES),
            instances: files.len(),
        });
    }
    studies
}

/// What one study's trip left.
pub struct Sent {
    pub study_id: String,
    /// The series CompleteStudy selected (the pipeline's input).
    pub series_id: String,
    /// Content addresses of the selected series' stored instances.
    pub series_objects: Vec<String>,
    pub details: registry::EpisodeDetails,
    /// Client times of Upload, LinkStudy and CompleteStudy.
    pub upload_ms: f64,
    pub link_ms: f64,
    pub complete_ms: f64,
    /// When CompleteStudy returned.
    pub completed_at: DateTime<Utc>,
    /// When the registry stored the prediction: its `prediction_recorded` event's time (the
    /// start of the transaction that wrote it).
    pub stored_at: DateTime<Utc>,
    /// From the start of the upload to `stored_at`.
    pub stored_ms: f64,
    /// From the start of the upload until the watcher received the event (the registry polls
    /// its event log every 50 ms).
    pub seen_ms: f64,
}

/// How a trip ended.
pub enum Outcome {
    Done(Box<Sent>),
    /// CompleteStudy selected no series (the synthetic study has no eligible one): no job.
    NoJob,
    Failed(String),
}

/// A WatchEpisode stream of the episode's future events (open it before sending the study).
pub async fn watch(clients: &mut Clients, episode_id: &str) -> tonic::Streaming<registry::EpisodeEvent> {
    let request = registry::WatchEpisodeRequest {
        episode_id: episode_id.to_owned(),
        send_initial: false,
        after_revision: 0,
    };
    clients.registry.watch_episode(request).await.expect("WatchEpisode").into_inner()
}

/// Uploads, links and completes `study`, then waits on `watch` for its stored prediction.
pub async fn send(
    mut clients: Clients,
    study: Study,
    mut watch: tonic::Streaming<registry::EpisodeEvent>,
) -> Outcome {
    let fail = |what: &str, status: tonic::Status| Outcome::Failed(format!("{what}: {status}"));
    let started_wall = Utc::now();
    let started = Instant::now();
    let upload = match clients.ingest.upload(tokio_stream::iter(study.messages)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return fail("Upload", status),
    };
    let upload_ms = ms(started.elapsed());
    if upload.stored_count as usize != study.instances {
        return Outcome::Failed(format!("{} of {} instances stored", upload.stored_count, study.instances));
    }
    let study_id = upload.results[0].study_id.clone();
    let link =
        registry::LinkStudyRequest { episode_id: study.episode_id.clone(), study_id: study_id.clone() };
    let link_started = Instant::now();
    if let Err(status) = clients.registry.link_study(link).await {
        return fail("LinkStudy", status);
    }
    let link_ms = ms(link_started.elapsed());
    let complete = ingest::CompleteStudyRequest { study_id: study_id.clone() };
    let complete_started = Instant::now();
    let completed = match clients.ingest.complete_study(complete).await {
        Ok(response) => response.into_inner(),
        Err(status) => return fail("CompleteStudy", status),
    };
    let complete_ms = ms(complete_started.elapsed());
    let completed_at = Utc::now();
    if !completed.job_created {
        return Outcome::NoJob;
    }
    let series_id = completed.study.map(|study| study.selected_series_id).unwrap_or_default();
    let stored = ingest::InstanceOutcome::Stored as i32;
    let series_objects = upload
        .results
        .iter()
        .filter(|result| result.series_id == series_id && result.outcome == stored)
        .map(|result| result.stored_sha256.clone())
        .collect();
    let stored_at = match tokio::time::timeout(PREDICTION_WITHIN, prediction_event(&mut watch)).await {
        Ok(Ok(at)) => at,
        Ok(Err(error)) => return Outcome::Failed(error),
        Err(_) => return Outcome::Failed(format!("no prediction within {PREDICTION_WITHIN:?}")),
    };
    let seen_ms = ms(started.elapsed());
    let stored_ms = ms_between(started_wall, stored_at);
    Outcome::Done(Box::new(Sent {
        study_id,
        series_id,
        series_objects,
        details: study.details,
        upload_ms,
        link_ms,
        complete_ms,
        completed_at,
        stored_at,
        stored_ms,
        seen_ms,
    }))
}

/// The time of the first `prediction_recorded` event on the stream.
async fn prediction_event(
    watch: &mut tonic::Streaming<registry::EpisodeEvent>,
) -> Result<DateTime<Utc>, String> {
    loop {
        let event = watch.message().await.map_err(|status| format!("WatchEpisode: {status}"))?;
        let event = event.ok_or("the WatchEpisode stream ended")?;
        if let Some(registry::episode_event::Event::PredictionRecorded(_)) = event.event {
            let at = event.occurred_at.ok_or("a prediction event without its time")?;
            let nanos = u32::try_from(at.nanos).unwrap_or(0);
            return DateTime::from_timestamp(at.seconds, nanos)
                .ok_or_else(|| "event time out of range".to_owned());
        }
    }
}

/// A new pipeline job id.
pub fn new_job_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
pub fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// A model card's clinical features (`names`, in card order) encoded from the episode's baseline
/// facts and plan by preprocess's own encoders (what the pipeline worker sends before the
/// injection is recorded).
pub fn clinical(names: &[String], details: &registry::EpisodeDetails) -> Vec<common::ClinicalFeature> {
    let episode = registry::Episode { details: Some(details.clone()), ..Default::default() };
    let facts =
        tfesi_preprocess::features::EpisodeFacts::from_episode(&episode).expect("the episode's details");
    tfesi_preprocess::features::encode(names, &facts).expect("features the champion's card names")
}
