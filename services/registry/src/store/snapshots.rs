//! Snapshots: the registry's state as of a time, frozen into an immutable, hashed manifest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{PredictionRow, prediction_columns};
use super::{Store, stored_u8, stored_u32};
use crate::domain::label::{FollowUpFacts, LabelInput, LabelRule};
use crate::domain::records::{SeriesRefs, optional_text, required_text};
use crate::domain::snapshot::{ClinicalFeatures, SnapshotCandidate, SnapshotFilters, SnapshotManifest};
use crate::domain::split::SplitFractions;
use crate::domain::types::{EpisodeStatus, Indication, ScoreSite, Sex, Side, Split, parse_levels};
use crate::error::{Error, Result};

/// What `CreateSnapshot` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Freeze the registry as it was at this time (`None`: now).
    pub as_of: Option<DateTime<Utc>>,
    pub filters: SnapshotFilters,
    /// Rule version (`None`: the configured default).
    pub rule_version: Option<String>,
    pub split_seed: u64,
    pub split: SplitFractions,
    pub created_by: String,
    /// Free text kept with the snapshot, not part of its content hash.
    pub description: String,
}

/// A stored snapshot without its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// sha256 of the canonical manifest: the snapshot's identity.
    pub snapshot_id: String,
    pub rule_version: String,
    /// The as-of time of the request that first froze this content.
    pub as_of: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub description: String,
    pub split_seed: u64,
    pub split: SplitFractions,
    pub filters: SnapshotFilters,
    pub entry_count: u64,
    pub patient_count: u64,
    pub responders: u64,
    pub non_responders: u64,
    pub train: u64,
    pub validation: u64,
    pub test: u64,
    /// Whether this request created it (false: the same content existed already).
    pub created: bool,
}

/// A candidate episode and when its follow-up was first recorded (for prospective checks).
pub(super) struct LoadedCandidate {
    pub candidate: SnapshotCandidate,
    pub first_follow_up_recorded_at: Option<DateTime<Utc>>,
}

impl SnapshotSummary {
    fn new(
        manifest: &SnapshotManifest,
        as_of: DateTime<Utc>,
        created_at: DateTime<Utc>,
        description: String,
        created: bool,
    ) -> Result<Self> {
        let count =
            |split: Split| manifest.entries.iter().filter(|entry| entry.split == split).count() as u64;
        let patients: std::collections::BTreeSet<_> =
            manifest.entries.iter().map(|entry| entry.patient_id).collect();
        Ok(SnapshotSummary {
            snapshot_id: manifest.content_hash()?,
            rule_version: manifest.rule.version.clone(),
            as_of,
            created_at,
            description,
            split_seed: manifest.split_seed,
            split: manifest.split,
            filters: manifest.filters.clone(),
            entry_count: manifest.entries.len() as u64,
            patient_count: patients.len() as u64,
            responders: manifest.entries.iter().filter(|entry| entry.label == Ok(true)).count() as u64,
            non_responders: manifest.entries.iter().filter(|entry| entry.label == Ok(false)).count() as u64,
            train: count(Split::Train),
            validation: count(Split::Validation),
            test: count(Split::Test),
            created,
        })
    }
}

impl Store {
    /// Freezes a snapshot; the same content (rule, seed, split, filters, entries) is stored once.
    pub async fn create_snapshot(&self, request: SnapshotRequest) -> Result<SnapshotSummary> {
        let split = request.split.validate()?;
        let created_by = required_text("created_by", &request.created_by, 200)?;
        let description = optional_text("description", &request.description, 500)?;
        let rule_version = request.rule_version.unwrap_or_else(|| self.config.default_rule_version.clone());
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(&mut *tx).await?;
        let as_of = request.as_of.unwrap_or(now);
        if as_of > now {
            return Err(Error::invalid("as_of", "must not be in the future"));
        }
        let rule = load_rule(&mut tx, &rule_version).await?;
        let mut candidates: Vec<SnapshotCandidate> =
            load_candidates(&mut tx, as_of, None).await?.into_iter().map(|loaded| loaded.candidate).collect();
        attach_series_refs(&mut tx, as_of, &mut candidates).await?;
        let manifest = SnapshotManifest::build(&rule, request.split_seed, split, request.filters, candidates);
        let snapshot_id = manifest.content_hash()?;
        let manifest_json = serde_json::to_value(&manifest)?;
        let entry_count = i32::try_from(manifest.entries.len())
            .map_err(|_| Error::invalid("filters", "too many entries"))?;
        let seed = i64::from_le_bytes(request.split_seed.to_le_bytes());
        let inserted = sqlx::query_scalar!(
            "INSERT INTO registry.snapshots (snapshot_id, rule_version, as_of, split_seed, entry_count, manifest,
                 created_by, description)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (snapshot_id) DO NOTHING
             RETURNING created_at",
            snapshot_id,
            rule.version,
            as_of,
            seed,
            entry_count,
            manifest_json,
            created_by,
            description
        )
        .fetch_optional(&mut *tx)
        .await?;
        let summary = match inserted {
            Some(created_at) => SnapshotSummary::new(&manifest, as_of, created_at, description, true)?,
            None => {
                let stored = sqlx::query!(
                    "SELECT as_of, created_at, description FROM registry.snapshots WHERE snapshot_id = $1",
                    snapshot_id
                )
                .fetch_one(&mut *tx)
                .await?;
                SnapshotSummary::new(&manifest, stored.as_of, stored.created_at, stored.description, false)?
            }
        };
        tx.commit().await?;
        Ok(summary)
    }

    /// The stored manifest of a snapshot, verified against its id.
    pub async fn snapshot_manifest(&self, snapshot_id: &str) -> Result<(SnapshotSummary, SnapshotManifest)> {
        let row = sqlx::query!(
            "SELECT as_of, created_at, manifest, description FROM registry.snapshots WHERE snapshot_id = $1",
            snapshot_id
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("snapshot", snapshot_id))?;
        let manifest: SnapshotManifest = serde_json::from_value(row.manifest)?;
        let summary = SnapshotSummary::new(&manifest, row.as_of, row.created_at, row.description, false)?;
        if summary.snapshot_id != snapshot_id {
            return Err(Error::Database(sqlx::Error::Protocol(format!(
                "snapshot {snapshot_id} fails its hash"
            ))));
        }
        Ok((summary, manifest))
    }

    /// Stores a new label rule; the same definition again is accepted, a different one under an
    /// existing version is refused (rules are immutable).
    pub async fn create_label_rule(&self, rule: &LabelRule) -> Result<LabelRule> {
        if rule.min_baseline_nrs == 0 || rule.min_baseline_nrs > 10 {
            return Err(Error::invalid(
                "min_baseline_nrs",
                "must be from 1 to 10 (a baseline of 0 has no percentage)",
            ));
        }
        if rule.min_reduction_pct == 0 || rule.min_reduction_pct > 100 {
            return Err(Error::invalid("min_reduction_pct", "must be from 1 to 100"));
        }
        if rule.window_end_day < rule.window_start_day {
            return Err(Error::invalid("window_end_day", "must not precede window_start_day"));
        }
        let valid_version = !rule.version.is_empty()
            && rule.version.len() <= 64
            && rule
                .version
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !valid_version {
            return Err(Error::invalid("rule_version", "lowercase letters, digits, '.' and '-' only"));
        }
        let start = i32::try_from(rule.window_start_day)
            .map_err(|_| Error::invalid("window_start_day", "too large"))?;
        let due = i32::try_from(rule.due_day).map_err(|_| Error::invalid("due_day", "too large"))?;
        if !(rule.window_start_day..=rule.window_end_day).contains(&rule.due_day) {
            return Err(Error::invalid("due_day", "must lie inside the window"));
        }
        let end =
            i32::try_from(rule.window_end_day).map_err(|_| Error::invalid("window_end_day", "too large"))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO registry.label_rules (rule_version, description, score_site, min_baseline_nrs, min_reduction_pct,
                 window_start_day, due_day, window_end_day, include_out_of_window, exclude_repeat_injection, exclude_surgery)
             VALUES ($1, '', $2, $3, $4, $5, $10, $6, $7, $8, $9)
             ON CONFLICT (rule_version) DO NOTHING",
            rule.version,
            rule.score_site.as_str(),
            i16::from(rule.min_baseline_nrs),
            i16::from(rule.min_reduction_pct),
            start,
            end,
            rule.include_out_of_window,
            rule.exclude_repeat_injection,
            rule.exclude_surgery,
            due
        )
        .execute(&mut *tx)
        .await?;
        let stored = load_rule(&mut tx, &rule.version).await?;
        tx.commit().await?;
        if &stored != rule {
            return Err(Error::RuleExists { rule_version: rule.version.clone() });
        }
        Ok(stored)
    }

    /// Every label rule, oldest first.
    pub async fn label_rules(&self) -> Result<Vec<LabelRule>> {
        // One statement: this is read after every recorded follow-up.
        sqlx::query_as::<_, LabelRuleRow>(concat!(
            "SELECT ",
            label_rule_columns!(),
            " FROM registry.label_rules ORDER BY created_at, rule_version"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(LabelRuleRow::into_rule)
        .collect()
    }

    /// A stored label rule.
    pub async fn label_rule(&self, rule_version: &str) -> Result<LabelRule> {
        let mut conn = self.pool.acquire().await?;
        load_rule(&mut conn, rule_version).await
    }
}

/// The columns of a [`LabelRuleRow`], as a literal for `concat!`.
macro_rules! label_rule_columns {
    () => {
        "rule_version, score_site, min_baseline_nrs, min_reduction_pct, window_start_day, due_day, window_end_day, \
         include_out_of_window, exclude_repeat_injection, exclude_surgery"
    };
}
use label_rule_columns;

/// A stored `registry.label_rules` row (also as `to_jsonb` writes it).
#[derive(sqlx::FromRow, Deserialize)]
pub(super) struct LabelRuleRow {
    rule_version: String,
    score_site: String,
    min_baseline_nrs: i16,
    min_reduction_pct: i16,
    window_start_day: i32,
    due_day: i32,
    window_end_day: i32,
    include_out_of_window: bool,
    exclude_repeat_injection: bool,
    exclude_surgery: bool,
}

/// The label rules in the order [`Store::label_rules`] gives them, as a JSON array selected by
/// [`LABEL_RULES_JSON`].
pub(super) fn label_rules_from_json(rules: serde_json::Value) -> Result<Vec<LabelRule>> {
    serde_json::from_value::<Vec<LabelRuleRow>>(rules)?.into_iter().map(LabelRuleRow::into_rule).collect()
}

/// Every label rule as one JSON array, oldest first: a scalar subquery for statements that
/// read the rules along with something else.
pub(super) const LABEL_RULES_JSON: &str = concat!(
    "(SELECT coalesce(jsonb_agg(to_jsonb(r) - 'created_at' ORDER BY r.created_at, r.rule_version), '[]') \
     FROM (SELECT created_at, ",
    label_rule_columns!(),
    " FROM registry.label_rules) AS r)"
);

impl LabelRuleRow {
    fn into_rule(self) -> Result<LabelRule> {
        Ok(LabelRule {
            version: self.rule_version,
            score_site: ScoreSite::parse("score_site", &self.score_site)?,
            min_baseline_nrs: stored_u8("min_baseline_nrs", self.min_baseline_nrs)?,
            min_reduction_pct: stored_u8("min_reduction_pct", self.min_reduction_pct)?,
            window_start_day: stored_u32("window_start_day", self.window_start_day)?,
            due_day: stored_u32("due_day", self.due_day)?,
            window_end_day: stored_u32("window_end_day", self.window_end_day)?,
            include_out_of_window: self.include_out_of_window,
            exclude_repeat_injection: self.exclude_repeat_injection,
            exclude_surgery: self.exclude_surgery,
        })
    }
}

/// Reads a label rule by version.
pub(super) async fn load_rule(conn: &mut PgConnection, rule_version: &str) -> Result<LabelRule> {
    sqlx::query_as::<_, LabelRuleRow>(concat!(
        "SELECT ",
        label_rule_columns!(),
        " FROM registry.label_rules WHERE rule_version = $1"
    ))
    .bind(rule_version)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("label rule", rule_version))?
    .into_rule()
}

/// Every episode with an injection as the registry knew it at `as_of` (status, current
/// follow-up version, latest series), optionally only the listed episodes.
pub(super) async fn load_candidates(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
    only: Option<&[Uuid]>,
) -> Result<Vec<LoadedCandidate>> {
    let rows = sqlx::query!(
        r#"SELECT e.episode_id, e.patient_id, e.indication, e.baseline_leg_nrs, e.baseline_back_nrs,
               e.symptom_duration_days, e.age_years, e.sex, e.study_id,
               i.injection_date, i.levels, i.side,
               s.outcome_status AS "outcome_status?", s.outcome_reason,
               f.follow_up_id AS "follow_up_id?", f.version AS "version?", f.days_since_injection AS "days?",
               f.leg_nrs AS "leg_nrs?", f.back_nrs, f.repeat_injection, f.surgery,
               f.first_recorded_at AS "first_recorded_at?",
               p.series_id AS "series_id?"
           FROM registry.episodes e
           JOIN registry.injections i ON i.episode_id = e.episode_id AND i.recorded_at <= $1
           LEFT JOIN LATERAL (
               SELECT h.outcome_status, h.outcome_reason FROM registry.outcome_status_history h
               WHERE h.episode_id = e.episode_id AND h.changed_at <= $1
               ORDER BY h.change_id DESC LIMIT 1) s ON true
           LEFT JOIN LATERAL (
               SELECT v.follow_up_id, v.version, v.days_since_injection, v.leg_nrs, v.back_nrs, v.repeat_injection,
                   v.surgery,
                   (SELECT min(w.recorded_at) FROM registry.follow_ups w WHERE w.episode_id = e.episode_id) AS first_recorded_at
               FROM registry.follow_ups v
               WHERE v.episode_id = e.episode_id AND v.recorded_at <= $1
               ORDER BY v.version DESC LIMIT 1) f ON true
           LEFT JOIN LATERAL (
               SELECT q.series_id FROM registry.predictions q
               WHERE q.study_id = e.study_id AND q.recorded_at <= $1
               ORDER BY (q.model_role = 'champion') DESC, q.recorded_at DESC, q.prediction_id LIMIT 1) p ON true
           WHERE e.created_at <= $1 AND ($2::uuid[] IS NULL OR e.episode_id = ANY($2))"#,
        as_of,
        only as Option<&[Uuid]>
    )
    .fetch_all(conn)
    .await?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let status = match row.outcome_status.as_deref() {
            Some(status) => EpisodeStatus::from_columns(status, row.outcome_reason.as_deref())?,
            None => EpisodeStatus::Pending,
        };
        let baseline_leg_nrs = stored_u8("baseline_leg_nrs", row.baseline_leg_nrs)?;
        let baseline_back_nrs =
            row.baseline_back_nrs.map(|score| stored_u8("baseline_back_nrs", score)).transpose()?;
        let follow_up = match (row.follow_up_id, row.version, row.days, row.leg_nrs) {
            (Some(id), Some(version), Some(days), Some(leg_nrs)) => Some((
                (id, stored_u32("version", version)?),
                FollowUpFacts {
                    days_since_injection: stored_u32("days_since_injection", days)?,
                    leg_nrs: stored_u8("leg_nrs", leg_nrs)?,
                    back_nrs: row.back_nrs.map(|score| stored_u8("back_nrs", score)).transpose()?,
                    repeat_injection: row.repeat_injection == Some(true),
                    surgery: row.surgery == Some(true),
                },
            )),
            _ => None,
        };
        let candidate = SnapshotCandidate {
            episode_id: row.episode_id,
            patient_id: row.patient_id,
            study_id: row.study_id,
            series_id: row.series_id,
            series_refs: SeriesRefs::default(),
            injection_date: row.injection_date,
            features: ClinicalFeatures {
                indication: Indication::parse("indication", &row.indication)?,
                injection_levels: parse_levels("levels", &row.levels)?,
                injection_side: Side::parse("side", &row.side)?,
                baseline_leg_nrs,
                baseline_back_nrs,
                symptom_duration_days: stored_u32("symptom_duration_days", row.symptom_duration_days)?,
                age_years: stored_u8("age_years", row.age_years)?,
                sex: Sex::parse("sex", &row.sex)?,
            },
            label_input: LabelInput {
                status,
                baseline_leg_nrs,
                baseline_back_nrs,
                follow_up: follow_up.map(|(_, facts)| facts),
            },
            follow_up: follow_up.map(|(version, _)| version),
        };
        loaded.push(LoadedCandidate { candidate, first_follow_up_recorded_at: row.first_recorded_at });
    }
    Ok(loaded)
}

/// Fills each candidate's series references from the prediction its `series_id` came from
/// (the same choice as [`load_candidates`]: the latest champion of the study as of `as_of`, else
/// the latest other prediction). Run in the transaction of `load_candidates`, so both read the
/// same predictions.
async fn attach_series_refs(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
    candidates: &mut [SnapshotCandidate],
) -> Result<()> {
    #[derive(sqlx::FromRow)]
    struct EpisodeSeries {
        episode_id: Uuid,
        series_id: Uuid,
        series_content_sha256: String,
        instance_sha256: Vec<String>,
    }
    let episode_ids: Vec<Uuid> =
        candidates.iter().filter(|c| c.series_id.is_some()).map(|c| c.episode_id).collect();
    if episode_ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query_as::<_, EpisodeSeries>(
        "SELECT e.episode_id, p.series_id, p.series_content_sha256, p.instance_sha256
         FROM registry.episodes e
         JOIN LATERAL (
             SELECT q.series_id, q.series_content_sha256, q.instance_sha256 FROM registry.predictions q
             WHERE q.study_id = e.study_id AND q.recorded_at <= $1
             ORDER BY (q.model_role = 'champion') DESC, q.recorded_at DESC, q.prediction_id LIMIT 1) p ON true
         WHERE e.episode_id = ANY($2)",
    )
    .bind(as_of)
    .bind(&episode_ids)
    .fetch_all(conn)
    .await?;
    let mut by_episode: std::collections::HashMap<Uuid, EpisodeSeries> =
        rows.into_iter().map(|row| (row.episode_id, row)).collect();
    for candidate in candidates.iter_mut() {
        let Some(found) = by_episode.remove(&candidate.episode_id) else { continue };
        // Same transaction, same ordering: the prediction found is the one series_id came from.
        debug_assert_eq!(candidate.series_id, Some(found.series_id));
        if candidate.series_id == Some(found.series_id) {
            candidate.series_refs = SeriesRefs {
                content_sha256: found.series_content_sha256,
                instance_sha256: found.instance_sha256,
            };
        }
    }
    Ok(())
}

impl Store {
    /// The latest champion prediction stored for each of `episode_ids` at or before `as_of`
    /// (predictions are never changed, so an export of a snapshot always finds the same ones).
    pub async fn champion_predictions(
        &self,
        episode_ids: &[Uuid],
        as_of: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<Uuid, crate::domain::records::Prediction>> {
        /// A prediction with the episode it was found for.
        #[derive(sqlx::FromRow)]
        struct EpisodePrediction {
            episode_id: Uuid,
            #[sqlx(flatten)]
            prediction: PredictionRow,
        }
        let rows = sqlx::query_as::<_, EpisodePrediction>(concat!(
            "SELECT DISTINCT ON (e.episode_id) e.episode_id, ",
            prediction_columns!(),
            " FROM registry.episodes e JOIN registry.predictions p ON p.study_id = e.study_id
             WHERE e.episode_id = ANY($1) AND p.model_role = 'champion' AND p.recorded_at <= $2
             ORDER BY e.episode_id, p.recorded_at DESC, p.prediction_id"
        ))
        .bind(episode_ids)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?;
        let mut champions = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            champions.insert(row.episode_id, row.prediction.into_record()?);
        }
        Ok(champions)
    }
}
