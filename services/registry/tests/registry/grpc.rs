//! The Registry over gRPC: `run` on port 0 against its own database, a real tonic client.

use std::time::Duration;

use tfesi_platform::{DatabaseConfig, ServerConfig, Shutdown, ShutdownTrigger};
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as pb;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

/// A running registry with its own database, dropped with the test.
struct App {
    client: RegistryClient<Channel>,
    trigger: ShutdownTrigger,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    database_url: String,
}

async fn spawn_app() -> App {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server_part, _) = base.rsplit_once('/').expect("DATABASE_URL has a database");
    let database_url = format!("{server_part}/tfesi_registry_grpc_{}", Uuid::new_v4().simple());
    let config = tfesi_registry::Config {
        server: ServerConfig::on_port(0),
        database: DatabaseConfig { url: database_url.clone(), ..DatabaseConfig::default() },
        auth: tfesi_platform::AuthConfig::disabled(),
        ..tfesi_registry::Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let server = tokio::spawn(tfesi_registry::run(config, listener, shutdown));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        if let Ok(client) = RegistryClient::connect(format!("http://{address}")).await {
            let probe = client.clone().list_label_rules(pb::ListLabelRulesRequest {}).await;
            if probe.is_ok() {
                break client;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "registry did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    App { client, trigger, server, database_url }
}

impl App {
    async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.server).await;
        // WITH (FORCE): the event listener's connection may still be closing.
        let (server_part, name) = self.database_url.rsplit_once('/').expect("url has a database");
        let admin =
            sqlx::PgPool::connect(&format!("{server_part}/postgres")).await.expect("admin connection");
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.expect("test database dropped");
    }
}

fn date(year: i32, month: i32, day: i32) -> Option<common::Date> {
    Some(common::Date { year, month, day })
}

fn details(baseline_leg: i32) -> pb::EpisodeDetails {
    pb::EpisodeDetails {
        patient_id: Uuid::new_v4().to_string(),
        study_id: String::new(),
        indication: common::Indication::HerniatedDisc as i32,
        planned_levels: vec![common::SpinalLevel::L4L5 as i32],
        planned_side: common::Side::Left as i32,
        baseline_leg_nrs: baseline_leg,
        baseline_back_nrs: Some(4),
        symptom_duration_days: 40,
        age_years: 61,
        sex: common::Sex::Male as i32,
        baseline_date: None,
    }
}

fn follow_up(day: i32, leg: i32) -> pb::FollowUpInput {
    pb::FollowUpInput {
        follow_up_date: date(2026, 3, day),
        leg_nrs: leg,
        method: pb::FollowUpMethod::Phone as i32,
        entered_by: "nurse-7".into(),
        ..Default::default()
    }
}

/// Creates an episode injected on 2026-01-05 (so March 2..16 is the window).
async fn injected(client: &mut RegistryClient<Channel>, baseline_leg: i32) -> String {
    let created = client
        .create_episode(pb::CreateEpisodeRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            details: Some(details(baseline_leg)),
        })
        .await
        .unwrap()
        .into_inner();
    let episode_id = created.episode.unwrap().episode_id;
    let injection = pb::InjectionDetails {
        injection_date: date(2026, 1, 5),
        levels: vec![common::SpinalLevel::L4L5 as i32],
        side: common::Side::Left as i32,
        approach: pb::Approach::Subpedicular as i32,
        guidance: pb::Guidance::Fluoroscopy as i32,
        contrast_used: true,
        drug_code: "dexamethasone".into(),
        dose_mg: 10.0,
        ..Default::default()
    };
    client
        .record_injection(pb::RecordInjectionRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            episode_id: episode_id.clone(),
            injection: Some(injection),
        })
        .await
        .unwrap();
    episode_id
}

fn record(episode_id: &str, key: &str, input: pb::FollowUpInput) -> pb::RecordFollowUpRequest {
    pb::RecordFollowUpRequest {
        idempotency_key: key.into(),
        episode_id: episode_id.into(),
        follow_up: Some(input),
    }
}

#[tokio::test]
async fn every_bad_input_gets_its_status_code() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let episode_id = injected(&mut client, 8).await;

    let bad_score = client.record_follow_up(record(&episode_id, "k1", follow_up(5, 11))).await.unwrap_err();
    assert_eq!(bad_score.code(), Code::InvalidArgument);
    assert!(bad_score.message().contains("follow_up.leg_nrs"), "{}", bad_score.message());
    let bad_pgic = client
        .record_follow_up(record(&episode_id, "k1", pb::FollowUpInput { pgic: Some(0), ..follow_up(5, 2) }))
        .await
        .unwrap_err();
    assert!(bad_pgic.code() == Code::InvalidArgument && bad_pgic.message().contains("follow_up.pgic"));

    let before =
        pb::FollowUpInput { follow_up_date: date(2026, 1, 4), out_of_window: true, ..follow_up(1, 2) };
    let early = client.record_follow_up(record(&episode_id, "k2", before)).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{}", early.message());

    let late = client.record_follow_up(record(&episode_id, "k3", follow_up(30, 2))).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{}", late.message());
    assert!(late.message().contains("window"));

    let unknown = client
        .record_follow_up(record(&Uuid::new_v4().to_string(), "k4", follow_up(5, 2)))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let first =
        client.record_follow_up(record(&episode_id, "k5", follow_up(5, 2))).await.unwrap().into_inner();
    assert_eq!(
        first.labels.iter().find(|l| l.rule_version == "nrs50-v1").map(|l| l.label),
        Some(common::OutcomeLabel::Good as i32)
    );
    let replay =
        client.record_follow_up(record(&episode_id, "k5", follow_up(5, 2))).await.unwrap().into_inner();
    assert_eq!(replay.follow_up, first.follow_up);
    // The labels answered from the write (first) and from a re-read (the replay, GetEpisode)
    // agree, for every rule.
    let outcomes = |labels: &[pb::Label]| -> Vec<(String, i32, i32, Option<f64>, i32)> {
        labels
            .iter()
            .map(|l| {
                (l.rule_version.clone(), l.label, l.unlabelable_reason, l.reduction, l.follow_up_version)
            })
            .collect()
    };
    assert_eq!(outcomes(&replay.labels), outcomes(&first.labels));
    let stored = client
        .get_episode(pb::GetEpisodeRequest { episode_id: episode_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .episode
        .expect("episode");
    assert_eq!(outcomes(&stored.labels), outcomes(&first.labels));
    let reused = client.record_follow_up(record(&episode_id, "k5", follow_up(6, 2))).await.unwrap_err();
    assert_eq!(reused.code(), Code::FailedPrecondition);
    let second = client.record_follow_up(record(&episode_id, "k6", follow_up(6, 3))).await.unwrap_err();
    assert_eq!(second.code(), Code::AlreadyExists);

    let amend = pb::AmendFollowUpRequest {
        idempotency_key: "a1".into(),
        episode_id: episode_id.clone(),
        expected_version: 1,
        reason: "score was 6, not 2".into(),
        follow_up: Some(follow_up(5, 6)),
    };
    let amended = client.amend_follow_up(amend.clone()).await.unwrap().into_inner();
    assert_eq!(amended.follow_up.as_ref().map(|f| f.version), Some(2));
    assert_eq!(
        amended.labels.iter().find(|l| l.rule_version == "nrs50-v1").map(|l| l.label),
        Some(common::OutcomeLabel::Poor as i32)
    );
    let stale = client
        .amend_follow_up(pb::AmendFollowUpRequest { idempotency_key: "a2".into(), ..amend.clone() })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let no_reason = client
        .amend_follow_up(pb::AmendFollowUpRequest {
            idempotency_key: "a3".into(),
            reason: String::new(),
            expected_version: 0,
            ..amend
        })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    let history = client
        .get_follow_up_history(pb::GetFollowUpHistoryRequest { episode_id: episode_id.clone() })
        .await
        .unwrap();
    assert_eq!(history.into_inner().versions.len(), 2);

    let completed = client
        .set_outcome_status(pb::SetOutcomeStatusRequest {
            episode_id: episode_id.clone(),
            status: pb::OutcomeStatus::Completed as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(completed.code(), Code::InvalidArgument);
    let bad_id =
        client.get_episode(pb::GetEpisodeRequest { episode_id: "not-a-uuid".into() }).await.unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn predictions_snapshots_and_performance_flow_through_grpc() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let mut watch = client
        .watch_labels(pb::WatchLabelsRequest { rule_versions: vec!["nrs50-v1".into()], min_interval_ms: 50 })
        .await
        .unwrap()
        .into_inner();
    let initial = watch.message().await.unwrap().unwrap();
    assert_eq!(initial.counts[0].labeled, 0);

    let episode_id = injected(&mut client, 8).await;
    let study_id = Uuid::new_v4().to_string();
    client
        .link_study(pb::LinkStudyRequest { episode_id: episode_id.clone(), study_id: study_id.clone() })
        .await
        .unwrap();
    let prediction = pb::PredictionRecord {
        model: Some(common::ModelRef { name: "cnn".into(), version: "1".into() }),
        role: common::ModelRole::Champion as i32,
        spec_version: "pp-v1".into(),
        probability: 0.8,
        threshold: 0.5,
        execution_provider: common::ExecutionProvider::Cpu as i32,
        predicted_at: Some(prost_types::Timestamp { seconds: 1_780_000_000, nanos: 0 }),
        ..Default::default()
    };
    let series_content = "c".repeat(64);
    let instances = vec!["1".repeat(64), "2".repeat(64)];
    let request = pb::RecordPredictionRequest {
        job_id: Uuid::new_v4().to_string(),
        study_id: study_id.clone(),
        series_id: Uuid::new_v4().to_string(),
        predictions: vec![prediction.clone()],
        series_content_sha256: series_content.clone(),
        instance_sha256: instances.clone(),
    };

    let not_hex = pb::RecordPredictionRequest { series_content_sha256: "C".repeat(64), ..request.clone() };
    let refused = client.record_prediction(not_hex).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("series_content_sha256"), "{}", refused.message());
    let short_instance = pb::RecordPredictionRequest {
        instance_sha256: vec!["1".repeat(64), "abc".into()],
        ..request.clone()
    };
    let refused = client.record_prediction(short_instance).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("instance_sha256"), "{}", refused.message());

    let stored = client.record_prediction(request.clone()).await.unwrap().into_inner();
    assert_eq!(stored.episode_ids, vec![episode_id.clone()]);
    let replay = client.record_prediction(request.clone()).await.unwrap().into_inner();
    assert!(replay.already_recorded && replay.prediction_ids == stored.prediction_ids);
    // A worker older than the references replays without them: the same job.
    let unreported = pb::RecordPredictionRequest {
        series_content_sha256: String::new(),
        instance_sha256: Vec::new(),
        ..request.clone()
    };
    let replay = client.record_prediction(unreported).await.unwrap().into_inner();
    assert!(replay.already_recorded && replay.prediction_ids == stored.prediction_ids);
    let other_series =
        pb::RecordPredictionRequest { instance_sha256: vec!["3".repeat(64)], ..request.clone() };
    assert_eq!(client.record_prediction(other_series).await.unwrap_err().code(), Code::FailedPrecondition);
    let mut different = request;
    different.predictions[0].probability = 0.1;
    assert_eq!(client.record_prediction(different).await.unwrap_err().code(), Code::FailedPrecondition);

    client.record_follow_up(record(&episode_id, "f1", follow_up(5, 1))).await.unwrap();
    let update = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("label update")
        .unwrap()
        .unwrap();
    assert_eq!(update.counts[0].good, 1);

    // As of now (to the nanosecond: a truncated second could precede the follow-up).
    let clock = chrono::Utc::now();
    let now = prost_types::Timestamp {
        seconds: clock.timestamp(),
        nanos: i32::try_from(clock.timestamp_subsec_nanos()).unwrap(),
    };
    let snapshot_request =
        pb::CreateSnapshotRequest { as_of: Some(now), split_seed: 3, ..Default::default() };
    let first = client.create_snapshot(snapshot_request.clone()).await.unwrap().into_inner();
    let again = client.create_snapshot(snapshot_request).await.unwrap().into_inner();
    let snapshot_id = first.snapshot.as_ref().unwrap().snapshot_id.clone();
    assert!(first.created && !again.created);
    assert_eq!(again.snapshot.unwrap().snapshot_id, snapshot_id);
    let mut export = client
        .export_snapshot(pb::ExportSnapshotRequest { snapshot_id, split: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut rows = 0;
    while let Some(part) = export.message().await.unwrap() {
        if let Some(pb::export_snapshot_response::Part::Row(row)) = part.part {
            assert_eq!(row.episode_id, episode_id);
            let champion = row.champion_prediction.expect("the champion's prediction made before as_of");
            assert_eq!(
                (champion.probability, champion.prediction_id),
                (0.8, stored.prediction_ids[0].clone())
            );
            // The snapshot froze the series and its object references with the episode.
            assert_eq!(row.series_id, champion.series_id);
            assert_eq!(row.series_content_sha256, series_content);
            assert_eq!(row.instance_sha256, instances);
            rows += 1;
        }
    }
    assert_eq!(rows, 1);

    let performance = client
        .get_model_performance(pb::GetModelPerformanceRequest {
            model: Some(common::ModelRef { name: "cnn".into(), version: "1".into() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(performance.metrics.unwrap().labeled_count, 1);
    let future = pb::CreateSnapshotRequest {
        as_of: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 }),
        ..Default::default()
    };
    assert_eq!(client.create_snapshot(future).await.unwrap_err().code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn watch_episode_streams_changes_after_the_snapshot() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let episode_id = injected(&mut client, 8).await;
    let mut stream = client
        .watch_episode(pb::WatchEpisodeRequest {
            episode_id: episode_id.clone(),
            send_initial: true,
            after_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(pb::episode_event::Event::Snapshot(_))));
    client.record_follow_up(record(&episode_id, "w1", follow_up(5, 2))).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("event in time")
        .unwrap()
        .unwrap();
    assert!(matches!(next.event, Some(pb::episode_event::Event::FollowUpRecorded(_))), "{next:?}");
    assert!(next.revision > first.revision);
    let unknown = client
        .watch_episode(pb::WatchEpisodeRequest {
            episode_id: Uuid::new_v4().to_string(),
            send_initial: true,
            after_revision: 0,
        })
        .await;
    assert_eq!(unknown.err().map(|status| status.code()), Some(Code::NotFound));
    app.stop().await;
}

#[tokio::test]
async fn an_empty_entered_by_is_the_callers_subject_and_every_clinical_write_is_audited() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let episode_id = injected(&mut client, 8).await;
    let input = pb::FollowUpInput { entered_by: String::new(), ..follow_up(5, 2) };
    let recorded =
        client.record_follow_up(record(&episode_id, "k-author", input)).await.unwrap().into_inner();
    // Authentication is off in this test, so the caller is `anonymous`.
    assert_eq!(recorded.follow_up.unwrap().recorded_by, "anonymous");

    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let actions: Vec<(String, String, String)> =
        sqlx::query_as("SELECT action, actor, target FROM audit.log WHERE service = 'registry' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let names: Vec<&str> = actions.iter().map(|(action, _, _)| action.as_str()).collect();
    assert_eq!(names, ["episode_created", "injection_recorded", "follow_up_recorded", "status_changed"]);
    assert!(
        actions
            .iter()
            .all(|(_, actor, target)| actor == "anonymous" && *target == format!("episode:{episode_id}"))
    );
    // Records are chained after commit, by the service every 200 ms; chain now so the check is
    // not a race with it.
    tfesi_platform::audit::chain_pending(&pool).await.unwrap();
    let verified = tfesi_platform::audit::verify(&pool).await.unwrap();
    assert_eq!((verified.records, verified.broken, verified.unchained), (4, None, 0));
    pool.close().await;
    app.stop().await;
}
