//! The platform's main job on the real binaries: a synthetic patient's episode is registered,
//! its MRI study is uploaded over gRPC and completed, and the pipeline (outbox, relay, Redis
//! stream, preprocess worker, inference, registry) ends with the prediction stored with the
//! episode, in the same trace as the call that completed the study.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tfesi_e2e::cohort::{episode_details, fixed_injection, upload_messages};
use tfesi_e2e::stack::Stack;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

const PREDICTION_WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_study_ends_as_a_prediction_stored_with_its_episode_in_one_trace() {
    let stack = Stack::start(&[]).await;
    let mut ingest_client = IngestClient::new(stack.channel(stack.ingest.address).await);
    let mut registry_client = RegistryClient::new(stack.channel(stack.registry.address).await);

    let options = tfesi_synth::PatientOptions { phi_canaries: true, ..Default::default() };
    let patient = tfesi_synth::generate_patient(11, 3, &options).unwrap();

    // The app registers the episode before the images arrive: surrogate id from the MRN.
    let lookup = ingest_client
        .lookup_ids(ingest::LookupIdsRequest {
            key: Some(ingest::lookup_ids_request::Key::Mrn(patient.row.patient_id.clone())),
            mrn_issuer: String::new(),
            create_patient_if_missing: true,
            identity: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lookup.created, "a new surrogate patient");
    let episode = registry_client
        .create_episode(registry::CreateEpisodeRequest {
            idempotency_key: format!("e2e-{}", lookup.patient_id),
            details: Some(episode_details(&patient.row, &lookup.patient_id)),
        })
        .await
        .unwrap()
        .into_inner()
        .episode
        .unwrap();

    // Upload the study, with a traceparent whose trace id we can look for downstream.
    let files: Vec<Vec<u8>> = patient.files.iter().map(|file| file.bytes.clone()).collect();
    let upload = ingest_client
        .upload(tokio_stream::iter(upload_messages(&files, 64 * 1024)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upload.stored_count as usize, files.len(), "every instance stored: {:?}", upload.results);
    let study_id = upload.results[0].study_id.clone();
    assert!(upload.results.iter().all(|result| result.study_id == study_id), "one study");
    assert_eq!(
        upload.results[0].patient_id, lookup.patient_id,
        "images land on the surrogate the app created"
    );

    registry_client
        .link_study(registry::LinkStudyRequest {
            episode_id: episode.episode_id.clone(),
            study_id: study_id.clone(),
        })
        .await
        .unwrap();

    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let mut complete = tonic::Request::new(ingest::CompleteStudyRequest { study_id: study_id.clone() });
    complete.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1).parse().unwrap(),
    );
    let completed = ingest_client.complete_study(complete).await.unwrap().into_inner();
    assert!(completed.job_created, "the T2 sagittal series was selected and a job written");
    let study = completed.study.unwrap();
    assert_eq!(study.selection_outcome, ingest::SelectionOutcome::Selected as i32);

    // The prediction arrives in the registry.
    let started = Instant::now();
    let predictions = loop {
        let current = registry_client
            .get_episode(registry::GetEpisodeRequest { episode_id: episode.episode_id.clone() })
            .await
            .unwrap()
            .into_inner()
            .episode
            .unwrap();
        if !current.predictions.is_empty() {
            break current.predictions;
        }
        assert!(
            started.elapsed() < PREDICTION_WITHIN,
            "no prediction within {PREDICTION_WITHIN:?}; logs:\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(predictions.len(), 1, "champion only (no shadow set): {predictions:?}");
    let prediction = &predictions[0];
    let model = prediction.model.clone().unwrap();
    assert_eq!((model.name.as_str(), model.version.as_str()), ("tfesi-test", "1"));
    assert_eq!(prediction.spec_version, "tfesi-prep-v1");
    assert!((0.0..=1.0).contains(&prediction.probability), "{prediction:?}");
    assert_eq!(prediction.series_id, study.selected_series_id, "the selected series was predicted");

    // A snapshot freezes the episode with its series and the series' object references.
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    registry_client
        .record_injection(registry::RecordInjectionRequest {
            idempotency_key: format!("e2e-{}-injection", lookup.patient_id),
            episode_id: episode.episode_id.clone(),
            injection: Some(fixed_injection(yesterday)),
        })
        .await
        .unwrap();
    let row = exported_row(&mut registry_client, &episode.episode_id).await;
    let is_sha256 = |text: &str| {
        text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert_eq!(row.series_id, study.selected_series_id, "{row:?}");
    assert!(is_sha256(&row.series_content_sha256), "the series content hash is frozen: {row:?}");
    assert!(
        !row.instance_sha256.is_empty() && row.instance_sha256.iter().all(|hash| is_sha256(hash)),
        "the series' instances are frozen: {row:?}"
    );

    // Ingest shows the job succeeded (the worker reported it).
    let started = Instant::now();
    loop {
        let study = ingest_client
            .get_study(ingest::GetStudyRequest { study_id: study_id.clone() })
            .await
            .unwrap()
            .into_inner()
            .study
            .unwrap();
        let state = study.processing.unwrap_or_default().state;
        if state == ingest::ProcessingState::Succeeded as i32 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "processing state {state}; logs:\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One trace from the completing call to the worker's downstream calls.
    for (process, name) in [(&stack.preprocess, "preprocess"), (&stack.registry, "registry")] {
        assert!(
            process.log().contains(&trace_id),
            "{name}'s log carries the trace id {trace_id} of the call that completed the study; logs:\n{}",
            stack.logs()
        );
    }
    // No synthetic identity reached the services that must never see it.
    for (process, name) in
        [(&stack.preprocess, "preprocess"), (&stack.registry, "registry"), (&stack.inference, "inference")]
    {
        assert!(!process.log().contains("PHIC-"), "{name}'s log holds a PHI canary");
    }
    stack.finish().await;
}

/// The row of `episode_id` in a new snapshot of every episode (labeled or not) as of now.
async fn exported_row(
    client: &mut RegistryClient<tfesi_e2e::stack::AuthChannel>,
    episode_id: &str,
) -> registry::SnapshotRow {
    let filter = registry::SnapshotFilter { include_unlabeled: true, ..Default::default() };
    let mut request = registry::CreateSnapshotRequest { filter: Some(filter), ..Default::default() };
    // As of now, to the nanosecond (a truncated second could precede the prediction).
    let now = chrono::Utc::now();
    let as_of = request.as_of.insert(Default::default());
    as_of.seconds = now.timestamp();
    as_of.nanos = i32::try_from(now.timestamp_subsec_nanos()).unwrap();
    let snapshot = client.create_snapshot(request).await.unwrap().into_inner().snapshot.unwrap();
    let mut export = client
        .export_snapshot(registry::ExportSnapshotRequest { snapshot_id: snapshot.snapshot_id, split: 0 })
        .await
        .unwrap()
        .into_inner();
    while let Some(part) = export.message().await.unwrap() {
        if let Some(registry::export_snapshot_response::Part::Row(row)) = part.part
            && row.episode_id == episode_id
        {
            return row;
        }
    }
    panic!("episode {episode_id} is not in the snapshot");
}
