//! Model performance and label counts, computed from raw scores under a label rule.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Store;
use super::snapshots::{load_candidates, load_rule};
use crate::domain::label::derive_label;
use crate::domain::performance::{Assessment, EpisodeOutcome, ModelKey, ScoredPrediction, assess};
use crate::domain::types::ModelRole;
use crate::error::{Error, Result};

/// Performance of one model, as of a time, under a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPerformance {
    pub rule_version: String,
    pub as_of: DateTime<Utc>,
    pub assessment: Assessment,
}

/// Labels under one rule as of a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelCounts {
    pub rule_version: String,
    pub as_of: DateTime<Utc>,
    pub labeled: u64,
    pub responders: u64,
    pub non_responders: u64,
    /// Episodes with an injection but no label, by reason.
    pub unlabeled: BTreeMap<String, u64>,
}

impl Store {
    /// Prospective performance of `model_name`/`model_version` as of `as_of` (`None`: now) under
    /// `rule_version` (`None`: the configured default).
    pub async fn model_performance(
        &self,
        model_name: &str,
        model_version: &str,
        as_of: Option<DateTime<Utc>>,
        rule_version: Option<&str>,
    ) -> Result<ModelPerformance> {
        let rule_version = rule_version.unwrap_or(&self.config.default_rule_version);
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(&mut *tx).await?;
        let as_of = as_of.map_or(now, |requested| requested.min(now));
        let rule = load_rule(&mut tx, rule_version).await?;
        let rows = sqlx::query!(
            "SELECT p.model_name, p.model_version, p.model_role, e.episode_id, p.probability, p.threshold, p.recorded_at
             FROM registry.predictions p JOIN registry.episodes e ON e.study_id = p.study_id
             WHERE p.recorded_at <= $3 AND p.study_id IN (
                 SELECT t.study_id FROM registry.predictions t
                 WHERE t.model_name = $1 AND t.model_version = $2 AND t.recorded_at <= $3)",
            model_name,
            model_version,
            as_of
        )
        .fetch_all(&mut *tx)
        .await?;
        let predictions = rows
            .into_iter()
            .map(|row| {
                Ok(ScoredPrediction {
                    model: ModelKey { name: row.model_name, version: row.model_version },
                    role: ModelRole::parse("model_role", &row.model_role)?,
                    episode_id: row.episode_id,
                    probability: row.probability,
                    threshold: row.threshold,
                    recorded_at: row.recorded_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut episode_ids: Vec<_> = predictions.iter().map(|prediction| prediction.episode_id).collect();
        episode_ids.sort();
        episode_ids.dedup();
        let candidates = load_candidates(&mut tx, as_of, Some(&episode_ids)).await?;
        tx.commit().await?;
        let outcomes: HashMap<_, _> = candidates
            .into_iter()
            .map(|loaded| {
                let outcome = EpisodeOutcome {
                    label: derive_label(&rule, &loaded.candidate.label_input),
                    first_follow_up_recorded_at: loaded.first_follow_up_recorded_at,
                };
                (loaded.candidate.episode_id, outcome)
            })
            .collect();
        let target = ModelKey { name: model_name.to_owned(), version: model_version.to_owned() };
        let assessment = assess(&target, &predictions, &outcomes)
            .ok_or_else(|| Error::not_found("model", format!("{model_name}/{model_version}")))?;
        Ok(ModelPerformance { rule_version: rule.version, as_of, assessment })
    }

    /// Label counts under `rule_version` (`None`: the configured default) as of now.
    pub async fn label_counts(&self, rule_version: Option<&str>) -> Result<LabelCounts> {
        let rule_version = rule_version.unwrap_or(&self.config.default_rule_version);
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        let as_of = sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(&mut *tx).await?;
        let rule = load_rule(&mut tx, rule_version).await?;
        let candidates = load_candidates(&mut tx, as_of, None).await?;
        tx.commit().await?;
        let mut counts = LabelCounts {
            rule_version: rule.version.clone(),
            as_of,
            labeled: 0,
            responders: 0,
            non_responders: 0,
            unlabeled: BTreeMap::new(),
        };
        for loaded in candidates {
            match derive_label(&rule, &loaded.candidate.label_input) {
                Ok(true) => counts.responders += 1,
                Ok(false) => counts.non_responders += 1,
                Err(reason) => *counts.unlabeled.entry(reason.as_str().to_owned()).or_default() += 1,
            }
        }
        counts.labeled = counts.responders + counts.non_responders;
        Ok(counts)
    }
}
