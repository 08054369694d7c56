//! Prospective model performance: only episodes whose prediction was stored before the
//! follow-up was first recorded count, and champion and shadow are compared on shared episodes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::label::Label;
use super::metrics::{AucDifference, BinaryMetrics, evaluate, paired_auc_difference};
use super::types::ModelRole;

/// A model by name and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ModelKey {
    pub name: String,
    pub version: String,
}

/// One stored prediction, reduced to what performance needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredPrediction {
    pub model: ModelKey,
    pub role: ModelRole,
    pub episode_id: Uuid,
    pub probability: f64,
    pub threshold: f64,
    /// The registry's clock when the prediction was stored.
    pub recorded_at: DateTime<Utc>,
}

/// An episode's label and when its follow-up was first recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeOutcome {
    pub label: Label,
    pub first_follow_up_recorded_at: Option<DateTime<Utc>>,
}

/// Figures of the requested model, plus paired comparisons with every other model that
/// predicted the same episodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub model: ModelKey,
    /// Role of the model's latest prediction.
    pub role: ModelRole,
    /// Episodes the model predicted (by the as-of time).
    pub predicted_episodes: u64,
    /// Predicted episodes left out because the follow-up was recorded before the prediction.
    pub retrospective_episodes: u64,
    /// Prospective episodes without a label (pending, lost, excluded, ...).
    pub unlabeled_episodes: u64,
    pub metrics: BinaryMetrics,
    pub comparisons: Vec<Comparison>,
}

/// The requested model and another one on the episodes both predicted prospectively.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub other: ModelKey,
    pub other_role: ModelRole,
    pub shared_episodes: u64,
    pub this_metrics: BinaryMetrics,
    pub other_metrics: BinaryMetrics,
    /// AUC of the requested model minus the other's, with a paired DeLong 95% CI.
    pub auc_difference: Option<AucDifference>,
}

/// Earliest prediction per (model, episode): a re-run after the follow-up cannot replace it.
fn earliest_per_episode(
    predictions: &[ScoredPrediction],
) -> BTreeMap<ModelKey, BTreeMap<Uuid, &ScoredPrediction>> {
    let mut by_model: BTreeMap<ModelKey, BTreeMap<Uuid, &ScoredPrediction>> = BTreeMap::new();
    for prediction in predictions {
        let per_episode = by_model.entry(prediction.model.clone()).or_default();
        per_episode
            .entry(prediction.episode_id)
            .and_modify(|kept| {
                if prediction.recorded_at < kept.recorded_at {
                    *kept = prediction;
                }
            })
            .or_insert(prediction);
    }
    by_model
}

/// Label of an episode when the prediction came before the follow-up was first recorded.
fn prospective_label(
    prediction: &ScoredPrediction,
    outcome: Option<&EpisodeOutcome>,
) -> Option<Result<bool, ()>> {
    // An episode without an injection has no outcome yet: it counts as unlabeled.
    let Some(outcome) = outcome else {
        return Some(Err(()));
    };
    match outcome.first_follow_up_recorded_at {
        Some(recorded) if prediction.recorded_at >= recorded => None,
        _ => Some(outcome.label.map_err(|_| ())),
    }
}

/// Assesses `target`; `None` when it made no prediction.
pub fn assess(
    target: &ModelKey,
    predictions: &[ScoredPrediction],
    outcomes: &HashMap<Uuid, EpisodeOutcome>,
) -> Option<Assessment> {
    let by_model = earliest_per_episode(predictions);
    let target_predictions = by_model.get(target)?;
    let latest = target_predictions.values().max_by_key(|prediction| prediction.recorded_at)?;
    let threshold = latest.threshold;
    let mut retrospective_episodes = 0;
    let mut unlabeled_episodes = 0;
    // Episode id -> (probability, label), sorted by episode id for reproducible figures.
    let mut labeled: BTreeMap<Uuid, (f64, bool)> = BTreeMap::new();
    for (episode_id, prediction) in target_predictions {
        match prospective_label(prediction, outcomes.get(episode_id)) {
            None => retrospective_episodes += 1,
            Some(Err(())) => unlabeled_episodes += 1,
            Some(Ok(label)) => {
                labeled.insert(*episode_id, (prediction.probability, label));
            }
        }
    }
    let probabilities: Vec<f64> = labeled.values().map(|(p, _)| *p).collect();
    let labels: Vec<bool> = labeled.values().map(|(_, y)| *y).collect();
    let mut comparisons = Vec::new();
    for (other, other_predictions) in &by_model {
        if other == target {
            continue;
        }
        let mut this_scores = Vec::new();
        let mut other_scores = Vec::new();
        let mut shared_labels = Vec::new();
        let mut other_threshold = None;
        let mut other_role = None;
        for (episode_id, (probability, label)) in &labeled {
            let Some(other_prediction) = other_predictions.get(episode_id) else {
                continue;
            };
            if prospective_label(other_prediction, outcomes.get(episode_id)).is_none() {
                continue;
            }
            this_scores.push(*probability);
            other_scores.push(other_prediction.probability);
            shared_labels.push(*label);
            other_threshold = Some(other_prediction.threshold);
            other_role = Some(other_prediction.role);
        }
        let (Some(other_threshold), Some(other_role)) = (other_threshold, other_role) else {
            continue;
        };
        comparisons.push(Comparison {
            other: other.clone(),
            other_role,
            shared_episodes: shared_labels.len() as u64,
            this_metrics: evaluate(&this_scores, &shared_labels, threshold),
            other_metrics: evaluate(&other_scores, &shared_labels, other_threshold),
            auc_difference: paired_auc_difference(&this_scores, &other_scores, &shared_labels),
        });
    }
    Some(Assessment {
        model: target.clone(),
        role: latest.role,
        predicted_episodes: target_predictions.len() as u64,
        retrospective_episodes,
        unlabeled_episodes,
        metrics: evaluate(&probabilities, &labels, threshold),
        comparisons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::label::Unlabeled;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).single().unwrap_or_default()
    }

    fn key(name: &str) -> ModelKey {
        ModelKey { name: name.into(), version: "1".into() }
    }

    fn prediction(
        model: &str,
        role: ModelRole,
        episode: u128,
        probability: f64,
        minute: u32,
    ) -> ScoredPrediction {
        ScoredPrediction {
            model: key(model),
            role,
            episode_id: Uuid::from_u128(episode),
            probability,
            threshold: 0.5,
            recorded_at: at(minute),
        }
    }

    #[test]
    fn predictions_after_the_follow_up_do_not_count() {
        let predictions = vec![
            prediction("a", ModelRole::Champion, 1, 0.9, 0),
            prediction("a", ModelRole::Champion, 2, 0.1, 0),
            prediction("a", ModelRole::Champion, 3, 0.8, 30),
        ];
        let outcomes = HashMap::from([
            (
                Uuid::from_u128(1),
                EpisodeOutcome { label: Ok(true), first_follow_up_recorded_at: Some(at(10)) },
            ),
            (
                Uuid::from_u128(2),
                EpisodeOutcome { label: Ok(false), first_follow_up_recorded_at: Some(at(10)) },
            ),
            (
                Uuid::from_u128(3),
                EpisodeOutcome { label: Ok(false), first_follow_up_recorded_at: Some(at(10)) },
            ),
        ]);
        let assessment = assess(&key("a"), &predictions, &outcomes);
        assert!(assessment.as_ref().is_some_and(|a| a.metrics.labeled == 2 && a.retrospective_episodes == 1));
        assert_eq!(assessment.and_then(|a| a.metrics.auc).map(|auc| auc.auc), Some(1.0));
    }

    #[test]
    fn champion_and_shadow_are_compared_on_shared_episodes_only() {
        let mut predictions = Vec::new();
        let mut outcomes = HashMap::new();
        for episode in 1..=6_u128 {
            let label = episode % 2 == 0;
            let champion_p = if label { 0.7 } else { 0.3 };
            predictions.push(prediction("champ", ModelRole::Champion, episode, champion_p, 0));
            if episode <= 4 {
                predictions.push(prediction("shadow", ModelRole::Shadow, episode, 0.5, 0));
            }
            outcomes.insert(
                Uuid::from_u128(episode),
                EpisodeOutcome { label: Ok(label), first_follow_up_recorded_at: Some(at(5)) },
            );
        }
        outcomes.insert(
            Uuid::from_u128(7),
            EpisodeOutcome { label: Err(Unlabeled::NoFollowUp), first_follow_up_recorded_at: None },
        );
        predictions.push(prediction("champ", ModelRole::Champion, 7, 0.4, 0));
        let assessment = assess(&key("champ"), &predictions, &outcomes);
        let comparison = assessment.as_ref().and_then(|a| a.comparisons.first());
        assert!(assessment.as_ref().is_some_and(|a| a.metrics.labeled == 6 && a.unlabeled_episodes == 1));
        assert!(comparison.is_some_and(|c| c.shared_episodes == 4 && c.other_role == ModelRole::Shadow));
        let difference = comparison.and_then(|c| c.auc_difference).map(|d| d.difference);
        assert_eq!(difference, Some(0.5));
        assert!(assess(&key("unknown"), &predictions, &outcomes).is_none());
    }
}
