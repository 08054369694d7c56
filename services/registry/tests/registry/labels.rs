//! Labels, snapshots and prospective model performance against a real Postgres.

use chrono::Utc;
use sqlx::PgPool;
use tfesi_registry::Error;
use tfesi_registry::domain::label::LabelRule;
use tfesi_registry::domain::records::{ModelOutput, PredictionJob, SeriesRefs};
use tfesi_registry::domain::snapshot::SnapshotFilters;
use tfesi_registry::domain::split::SplitFractions;
use tfesi_registry::domain::types::ModelRole;
use tfesi_registry::store::SnapshotRequest;
use uuid::Uuid;

use crate::common::*;

fn snapshot_request(seed: u64) -> SnapshotRequest {
    SnapshotRequest {
        as_of: None,
        filters: SnapshotFilters::default(),
        rule_version: None,
        split_seed: seed,
        split: SplitFractions::default(),
        created_by: "mlops".into(),
        description: String::new(),
    }
}

fn output(model: &str, role: ModelRole, probability: f64) -> ModelOutput {
    ModelOutput {
        model_role: role,
        model_name: model.into(),
        model_version: "1".into(),
        preprocessing_spec_version: "pp-v1".into(),
        probability,
        threshold: 0.5,
        execution_provider: "cpu".into(),
        predicted_at: Utc::now(),
        tensor_sha256: String::new(),
        clinical: [("age_years".to_owned(), 54.0)].into_iter().collect(),
    }
}

fn job(job_id: &str, study_id: Uuid, outputs: Vec<ModelOutput>) -> PredictionJob {
    PredictionJob {
        job_id: job_id.into(),
        study_id,
        series_id: Uuid::from_u128(7),
        series: SeriesRefs::default(),
        outputs,
    }
}

/// An injected episode linked to a fresh study; returns (episode, study).
async fn linked_episode(store: &tfesi_registry::Store, baseline: i64) -> (Uuid, Uuid) {
    let episode_id = injected_episode(store, baseline, date("2026-01-05")).await;
    let study_id = Uuid::new_v4();
    store.link_study(episode_id, study_id).await.unwrap();
    (episode_id, study_id)
}

#[sqlx::test(migrations = "../../migrations")]
async fn labels_follow_the_default_rule_and_recompute_for_a_new_one(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let fu = day_after(injected, 60);
    // (baseline, follow-up): responder, non-responder (exactly 40%), low baseline, repeat injection.
    for (baseline, score) in [(8, 4), (10, 6), (3, 0)] {
        let episode_id = injected_episode(&store, baseline, injected).await;
        store.record_follow_up(None, episode_id, follow_up(fu, score)).await.unwrap();
    }
    let repeat = injected_episode(&store, 8, injected).await;
    let mut content = follow_up(fu, 1);
    content.repeat_injection = Some(true);
    store.record_follow_up(None, repeat, content).await.unwrap();
    injected_episode(&store, 8, injected).await;

    let default = store.label_counts(None).await.unwrap();
    assert_eq!((default.responders, default.non_responders), (1, 1));
    assert_eq!(default.unlabeled.get("baseline_below_minimum"), Some(&1));
    assert_eq!(default.unlabeled.get("repeat_injection"), Some(&1));
    assert_eq!(default.unlabeled.get("no_follow_up"), Some(&1));

    let lenient = LabelRule {
        version: "nrs30-b1-v1".into(),
        min_reduction_pct: 30,
        min_baseline_nrs: 1,
        ..LabelRule::nrs50_v1()
    };
    store.create_label_rule(&lenient).await.unwrap();
    let relabeled = store.label_counts(Some("nrs30-b1-v1")).await.unwrap();
    assert_eq!((relabeled.responders, relabeled.non_responders), (3, 0));
    // Raw scores untouched; the rule is immutable under its version.
    let redefined = LabelRule { min_reduction_pct: 40, ..lenient };
    assert!(matches!(store.create_label_rule(&redefined).await, Err(Error::RuleExists { .. })));
    assert!(matches!(store.label_counts(Some("no-such-rule")).await, Err(Error::NotFound { .. })));
}

#[sqlx::test(migrations = "../../migrations")]
async fn snapshot_taken_twice_has_the_same_hash_and_a_new_follow_up_changes_it(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let mut episodes = Vec::new();
    for (baseline, score) in [(8, 2), (7, 6), (9, 3)] {
        let episode_id = injected_episode(&store, baseline, injected).await;
        store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), score)).await.unwrap();
        episodes.push(episode_id);
    }
    let pending = injected_episode(&store, 6, injected).await;
    let first = store.create_snapshot(snapshot_request(7)).await.unwrap();
    let second = store.create_snapshot(snapshot_request(7)).await.unwrap();
    assert_eq!(first.snapshot_id, second.snapshot_id);
    assert!(first.created && !second.created);
    assert_eq!(first.entry_count, 3);
    assert_eq!(count(&pool, "snapshots").await, 1);

    store.record_follow_up(None, pending, follow_up(day_after(injected, 62), 1)).await.unwrap();
    let third = store.create_snapshot(snapshot_request(7)).await.unwrap();
    assert_ne!(third.snapshot_id, first.snapshot_id);
    assert_eq!(third.entry_count, 4);
    // As of the first snapshot's time, the registry still gives the first content.
    let replay = store
        .create_snapshot(SnapshotRequest { as_of: Some(first.as_of), ..snapshot_request(7) })
        .await
        .unwrap();
    assert_eq!(replay.snapshot_id, first.snapshot_id);
    // Another seed, another split, another identity.
    let reseeded = store.create_snapshot(snapshot_request(8)).await.unwrap();
    assert_ne!(reseeded.snapshot_id, third.snapshot_id);

    let (summary, manifest) = store.snapshot_manifest(&third.snapshot_id).await.unwrap();
    assert_eq!(summary.snapshot_id, third.snapshot_id);
    assert_eq!(manifest.content_hash().unwrap(), third.snapshot_id);
    assert_eq!(manifest.entries.iter().filter(|entry| entry.label == Ok(true)).count(), 3);
    assert!(sqlx::query("UPDATE registry.snapshots SET entry_count = 0").execute(&pool).await.is_err());
    assert!(matches!(store.snapshot_manifest(&"0".repeat(64)).await, Err(Error::NotFound { .. })));
}

#[sqlx::test(migrations = "../../migrations")]
async fn snapshot_split_keeps_each_patient_in_one_partition(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    for _ in 0..12 {
        let patient = Uuid::new_v4();
        for _ in 0..2 {
            let episode = store.create_episode(None, new_episode(patient, 8)).await.unwrap();
            store.record_injection(None, new_injection(episode.episode_id, injected)).await.unwrap();
            store
                .record_follow_up(None, episode.episode_id, follow_up(day_after(injected, 60), 3))
                .await
                .unwrap();
        }
    }
    let summary = store.create_snapshot(snapshot_request(11)).await.unwrap();
    let (_, manifest) = store.snapshot_manifest(&summary.snapshot_id).await.unwrap();
    assert_eq!(manifest.entries.len(), 24);
    let mut by_patient = std::collections::HashMap::new();
    for entry in &manifest.entries {
        let split = by_patient.entry(entry.patient_id).or_insert(entry.split);
        assert_eq!(*split, entry.split, "patient {} split across partitions", entry.patient_id);
    }
    assert_eq!(summary.train + summary.validation + summary.test, 24);
}

#[sqlx::test(migrations = "../../migrations")]
async fn record_prediction_is_idempotent_on_the_job_id(pool: PgPool) {
    let store = store(pool.clone());
    let (episode_id, study_id) = linked_episode(&store, 8).await;
    let request = job(
        "job-1",
        study_id,
        vec![output("cnn", ModelRole::Champion, 0.7), output("cnn2", ModelRole::Shadow, 0.4)],
    );
    let first = store.record_prediction(request.clone()).await.unwrap();
    assert_eq!(first.episode_ids, vec![episode_id]);
    assert!(!first.already_recorded);
    let retry = store.record_prediction(request.clone()).await.unwrap();
    assert!(retry.already_recorded);
    assert_eq!(retry.predictions, first.predictions);
    let mut changed = request.clone();
    changed.outputs[0].probability = 0.2;
    let conflicting = store.record_prediction(changed).await;
    assert!(matches!(conflicting, Err(Error::PredictionConflict { .. })), "{conflicting:?}");
    let fewer = store.record_prediction(job("job-1", study_id, vec![request.outputs[1].clone()])).await;
    assert!(matches!(fewer, Err(Error::PredictionConflict { .. })), "{fewer:?}");
    assert_eq!(count(&pool, "predictions").await, 2);
    let bad =
        store.record_prediction(job("job-3", study_id, vec![output("cnn", ModelRole::Champion, 1.5)])).await;
    assert!(matches!(bad, Err(Error::InvalidArgument { field: "probability", .. })));
    let view = store.get_episode(episode_id).await.unwrap();
    assert_eq!(view.predictions.len(), 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn performance_counts_only_prospective_predictions_and_pairs_champion_with_shadow(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    // (baseline, follow-up score, champion p, shadow p)
    let cases = [(8, 2, 0.9, 0.6), (8, 7, 0.2, 0.7), (6, 1, 0.8, 0.4), (9, 8, 0.3, 0.5), (7, 3, 0.6, 0.55)];
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for (index, (baseline, score, champion, shadow)) in cases.into_iter().enumerate() {
        let (episode_id, study_id) = linked_episode(&store, baseline).await;
        let outputs =
            vec![output("cnn", ModelRole::Champion, champion), output("cnn-next", ModelRole::Shadow, shadow)];
        store.record_prediction(job(&format!("job-{index}"), study_id, outputs)).await.unwrap();
        store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), score)).await.unwrap();
        scores.push(champion);
        labels.push(2 * (baseline - score) >= baseline);
    }
    // A prediction stored after the follow-up is retrospective and must not count.
    let (late, late_study) = linked_episode(&store, 8).await;
    store.record_follow_up(None, late, follow_up(day_after(injected, 60), 1)).await.unwrap();
    store
        .record_prediction(job("job-late", late_study, vec![output("cnn", ModelRole::Champion, 0.01)]))
        .await
        .unwrap();

    let performance = store.model_performance("cnn", "1", None, None).await.unwrap();
    let assessment = &performance.assessment;
    assert_eq!(performance.rule_version, "nrs50-v1");
    assert_eq!(assessment.predicted_episodes, 6);
    assert_eq!(assessment.retrospective_episodes, 1);
    assert_eq!(assessment.metrics.labeled, 5);
    let expected = tfesi_registry::domain::metrics::evaluate(&scores, &labels, 0.5);
    // Same figures as computing them directly (Brier up to summation order).
    assert_eq!(assessment.metrics.confusion, expected.confusion);
    assert!((assessment.metrics.brier.unwrap() - expected.brier.unwrap()).abs() < 1e-12);
    assert_eq!(assessment.metrics.auc.map(|auc| auc.auc), Some(1.0));
    let comparison = &assessment.comparisons[0];
    assert_eq!(comparison.other.name, "cnn-next");
    assert_eq!(comparison.other_role, ModelRole::Shadow);
    assert_eq!(comparison.shared_episodes, 5);
    assert!(comparison.other_metrics.auc.is_some_and(|auc| auc.auc < 1.0));
    assert!(matches!(store.model_performance("nope", "1", None, None).await, Err(Error::NotFound { .. })));
}
