//! `tfesi demo` against a running stack (the four real binaries on random ports): the built
//! command sends half the studies over DICOM C-STORE and half over gRPC, waits for every
//! prediction, plays the follow-ups and snapshots; its JSON report and the registry agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tfesi_e2e::stack::Stack;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

const PATIENTS: u64 = 4;
/// Bound of the whole demo run (generation, both transports, the pipeline, follow-ups).
const DEMO_WITHIN: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_whole_loop_against_a_running_stack() {
    let stack = Stack::start(&[]).await;
    let report = stack.run_demo(PATIENTS, 7, DEMO_WITHIN).await;

    assert_eq!(report["synthetic"], true);
    assert_eq!(report["stack"]["mode"], "running", "the demo used the stack that answered: {report:#}");
    let studies = &report["studies"];
    assert_eq!(studies["over_dicom"], PATIENTS / 2, "{report:#}");
    assert_eq!(studies["over_grpc"], PATIENTS / 2, "{report:#}");
    assert_eq!(studies["predicted"], PATIENTS, "every study predicted: {report:#}");
    let models = report["predictions_by_model"].as_array().unwrap();
    assert_eq!(models.len(), 1, "champion only: {report:#}");
    assert_eq!(models[0]["model"], "tfesi-test:1");
    assert_eq!(models[0]["role"], "champion");
    assert_eq!(models[0]["predictions"], PATIENTS);

    let follow_ups = &report["follow_ups"];
    let recorded = follow_ups["recorded"].as_u64().unwrap();
    let lost = follow_ups["lost_to_follow_up"].as_u64().unwrap();
    assert_eq!(recorded + lost, PATIENTS, "every follow-up played: {report:#}");
    let expected_labels = follow_ups["expected_labels"].as_u64().unwrap();
    assert!(expected_labels > 0, "seed 7 gives labels: {report:#}");

    let snapshot = &report["snapshot"];
    assert_eq!(snapshot["snapshot_id"].as_str().unwrap().len(), 64, "{report:#}");
    assert_eq!(snapshot["created"], true);
    assert_eq!(snapshot["rows"], expected_labels, "a fresh registry: one row per labeled episode");
    let performance = &report["performance"];
    assert_eq!(performance["model"], "tfesi-test:1");
    assert_eq!(performance["labeled"], expected_labels, "the registry labels what the cohort expects");

    let stage_names: Vec<&str> =
        report["stages"].as_array().unwrap().iter().map(|stage| stage["stage"].as_str().unwrap()).collect();
    for stage in ["C-STORE (DICOM)", "upload (gRPC)", "predictions", "follow-ups", "snapshot"] {
        assert!(stage_names.contains(&stage), "stage {stage} timed: {stage_names:?}");
    }
    let next: Vec<&str> = report["next"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(next.contains(&"tfesi model performance tfesi-test:1"), "{next:?}");

    // The registry holds what the report says: every episode predicted, followed up or lost.
    let mut registry_client = RegistryClient::new(stack.channel(stack.registry.address).await);
    let episodes = registry_client
        .list_episodes(registry::ListEpisodesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .episodes;
    assert_eq!(episodes.len() as u64, PATIENTS);
    let mut followed = 0;
    for episode in &episodes {
        assert_eq!(episode.predictions.len(), 1, "{episode:?}");
        assert!(episode.injection.is_some(), "{episode:?}");
        let status = episode.status.clone().unwrap_or_default().status;
        if episode.follow_up.is_some() {
            followed += 1;
            let done = [registry::OutcomeStatus::Completed as i32, registry::OutcomeStatus::Excluded as i32];
            assert!(done.contains(&status), "{episode:?}");
        } else {
            assert_eq!(status, registry::OutcomeStatus::LostToFollowUp as i32, "{episode:?}");
        }
    }
    assert_eq!(followed, recorded);
    stack.finish().await;
}
