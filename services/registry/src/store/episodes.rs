//! Episodes, injections and outcome status: create, record, read.

use uuid::Uuid;

use sqlx::PgConnection;

use super::rows::{EpisodeRow, FollowUpRow, InjectionRow, PredictionRow, prediction_columns};
use super::{EventKind, Store, append_event, change_status, idempotency, lock_episode};
use crate::domain::records::{
    Episode, EpisodeView, Injection, NewEpisode, NewInjection, optional_text, required_text,
};
use crate::domain::types::{EpisodeStatus, level_strings};
use crate::error::{Error, Result};

/// Who the registry names as the author of the status it sets by itself.
const REGISTRY_ACTOR: &str = "registry";

impl Store {
    /// Creates an episode (and its patient on first use), idempotent on `idempotency_key`.
    pub async fn create_episode(
        &self,
        idempotency_key: Option<&str>,
        request: NewEpisode,
    ) -> Result<Episode> {
        let request = request.validate()?;
        let mut tx = self.pool.begin().await?;
        let claim = match idempotency::claim(&mut tx, idempotency_key, "CreateEpisode", &request).await? {
            Ok(claim) => claim,
            Err(stored) => return Ok(stored),
        };
        sqlx::query!(
            "INSERT INTO registry.patients (patient_id) VALUES ($1) ON CONFLICT (patient_id) DO NOTHING",
            request.patient_id
        )
        .execute(&mut *tx)
        .await?;
        let episode_id = Uuid::new_v4();
        let levels = level_strings(&request.planned_levels);
        let created_at = sqlx::query_scalar!(
            "INSERT INTO registry.episodes (episode_id, patient_id, study_id, indication, planned_levels,
                 planned_side, baseline_leg_nrs, baseline_back_nrs, symptom_duration_days, age_years, sex, baseline_date)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING created_at",
            episode_id,
            request.patient_id,
            request.study_id,
            request.indication.as_str(),
            &levels,
            request.planned_side.as_str(),
            i16::from(request.baseline_leg_nrs.get()),
            request.baseline_back_nrs.map(|score| i16::from(score.get())),
            i32::try_from(request.symptom_duration_days).map_err(|_| Error::invalid("symptom_duration_days", "too large"))?,
            i16::from(request.age_years),
            request.sex.as_str(),
            request.baseline_date
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO registry.outcome_status_history (episode_id, outcome_status, changed_by, changed_at)
             VALUES ($1, 'pending', $2, $3)",
            episode_id,
            REGISTRY_ACTOR,
            created_at
        )
        .execute(&mut *tx)
        .await?;
        append_event(&mut tx, episode_id, EventKind::EpisodeCreated, "").await?;
        let episode = Episode {
            episode_id,
            created_at,
            status: EpisodeStatus::Pending,
            status_note: String::new(),
            status_changed_at: created_at,
            status_changed_by: REGISTRY_ACTOR.to_owned(),
            details: request,
        };
        claim.complete(&mut tx, &episode).await?;
        tx.commit().await?;
        Ok(episode)
    }

    /// Links an episode to its study (idempotent for the same study).
    pub async fn link_study(&self, episode_id: Uuid, study_id: Uuid) -> Result<Episode> {
        let mut tx = self.pool.begin().await?;
        lock_episode(&mut tx, episode_id).await?;
        let current =
            sqlx::query_scalar!("SELECT study_id FROM registry.episodes WHERE episode_id = $1", episode_id)
                .fetch_one(&mut *tx)
                .await?;
        match current {
            Some(linked) if linked == study_id => {}
            Some(linked) => return Err(Error::StudyConflict { episode_id, linked }),
            None => {
                sqlx::query!(
                    "UPDATE registry.episodes SET study_id = $2, updated_at = now() WHERE episode_id = $1",
                    episode_id,
                    study_id
                )
                .execute(&mut *tx)
                .await?;
                append_event(&mut tx, episode_id, EventKind::StudyLinked, &study_id.to_string()).await?;
            }
        }
        let episode = fetch_episode(&mut tx, episode_id).await?;
        tx.commit().await?;
        Ok(episode)
    }

    /// Records the episode's index injection, idempotent on `idempotency_key`.
    pub async fn record_injection(
        &self,
        idempotency_key: Option<&str>,
        request: NewInjection,
    ) -> Result<Injection> {
        let request = request.validate()?;
        let mut tx = self.pool.begin().await?;
        let claim = match idempotency::claim(&mut tx, idempotency_key, "RecordInjection", &request).await? {
            Ok(claim) => claim,
            Err(stored) => return Ok(stored),
        };
        lock_episode(&mut tx, request.episode_id).await?;
        let injection_id = Uuid::new_v4();
        let levels = level_strings(&request.levels);
        let recorded_at = sqlx::query_scalar!(
            "INSERT INTO registry.injections (injection_id, episode_id, injection_date, levels, side, approach,
                 guidance, contrast_used, drug_code, drug_text, dose_mg, local_anaesthetic, recorded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (episode_id) DO NOTHING
             RETURNING recorded_at",
            injection_id,
            request.episode_id,
            request.injection_date,
            &levels,
            request.side.as_str(),
            request.approach.as_str(),
            request.guidance.as_str(),
            request.contrast_used,
            request.drug_code,
            request.drug_text,
            request.dose_mg,
            request.local_anaesthetic,
            request.recorded_by
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(recorded_at) = recorded_at else {
            return Err(Error::InjectionExists { episode_id: request.episode_id });
        };
        append_event(&mut tx, request.episode_id, EventKind::InjectionRecorded, &injection_id.to_string())
            .await?;
        let injection = Injection { injection_id, recorded_at, details: request };
        claim.complete(&mut tx, &injection).await?;
        tx.commit().await?;
        Ok(injection)
    }

    /// The episode with its injection, predictions and every follow-up version.
    pub async fn get_episode(&self, episode_id: Uuid) -> Result<EpisodeView> {
        // One read-only transaction, so that the parts are mutually consistent.
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        let episode = fetch_episode(&mut tx, episode_id).await?;
        let injection = sqlx::query_as!(
            InjectionRow,
            "SELECT injection_id, episode_id, injection_date, levels, side, approach, guidance, contrast_used,
                 drug_code, drug_text, dose_mg, local_anaesthetic, recorded_by, recorded_at
             FROM registry.injections WHERE episode_id = $1",
            episode_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(InjectionRow::into_record)
        .transpose()?;
        let predictions = sqlx::query_as::<_, PredictionRow>(concat!(
            "SELECT ",
            prediction_columns!(),
            " FROM registry.predictions p JOIN registry.episodes e ON e.study_id = p.study_id
             WHERE e.episode_id = $1 ORDER BY p.recorded_at, p.prediction_id"
        ))
        .bind(episode_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(PredictionRow::into_record)
        .collect::<Result<Vec<_>>>()?;
        let follow_ups = sqlx::query_as!(
            FollowUpRow,
            "SELECT follow_up_id, episode_id, version, is_current, amendment_reason, follow_up_date,
                 days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change,
                 repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by, recorded_at
             FROM registry.follow_ups WHERE episode_id = $1 ORDER BY version",
            episode_id
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(FollowUpRow::into_record)
        .collect::<Result<Vec<_>>>()?;
        let revision = episode_revision(&mut tx, episode_id).await?;
        tx.commit().await?;
        Ok(EpisodeView { episode, injection, predictions, follow_ups, revision })
    }

    /// Sets the outcome status. `completed` needs a current follow-up; `pending` and
    /// `lost_to_follow_up` need none; `withdrawn` and `excluded` are always allowed. Setting the
    /// status the episode already has changes nothing.
    pub async fn set_outcome_status(
        &self,
        episode_id: Uuid,
        status: EpisodeStatus,
        note: &str,
        changed_by: &str,
    ) -> Result<Episode> {
        let note = optional_text("note", note, 2000)?;
        let changed_by = required_text("changed_by", changed_by, 200)?;
        let mut tx = self.pool.begin().await?;
        let current = lock_episode(&mut tx, episode_id).await?;
        if current != status {
            let has_follow_up = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM registry.follow_ups WHERE episode_id = $1 AND is_current) AS "exists!""#,
                episode_id
            )
            .fetch_one(&mut *tx)
            .await?;
            let conflict = match status {
                EpisodeStatus::Completed if !has_follow_up => Some("completed needs a recorded follow-up"),
                EpisodeStatus::Pending | EpisodeStatus::LostToFollowUp if has_follow_up => {
                    Some("a follow-up is recorded; amend it or exclude the episode instead")
                }
                _ => None,
            };
            if let Some(reason) = conflict {
                return Err(Error::StatusConflict {
                    episode_id,
                    status: current.status().to_string(),
                    reason,
                });
            }
            change_status(&mut tx, episode_id, status, &note, &changed_by).await?;
        }
        let episode = fetch_episode(&mut tx, episode_id).await?;
        tx.commit().await?;
        Ok(episode)
    }
}

/// Reads an episode with its latest status change.
pub(super) async fn fetch_episode(conn: &mut PgConnection, episode_id: Uuid) -> Result<Episode> {
    sqlx::query_as!(
        EpisodeRow,
        r#"SELECT e.episode_id, e.patient_id, e.study_id, e.indication, e.planned_levels, e.planned_side,
               e.baseline_leg_nrs, e.baseline_back_nrs, e.symptom_duration_days, e.age_years, e.sex, e.baseline_date,
               e.outcome_status, e.outcome_reason, e.created_at,
               h.note AS "status_note!", h.changed_at AS "status_changed_at!", h.changed_by AS "status_changed_by!"
           FROM registry.episodes e
           JOIN LATERAL (
               SELECT note, changed_at, changed_by FROM registry.outcome_status_history
               WHERE episode_id = e.episode_id ORDER BY change_id DESC LIMIT 1) h ON true
           WHERE e.episode_id = $1"#,
        episode_id
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("episode", episode_id))?
    .into_record()
}

/// The episode's revision: its highest event id (0 before any event).
pub(super) async fn episode_revision(conn: &mut PgConnection, episode_id: Uuid) -> Result<i64> {
    let revision = sqlx::query_scalar!(
        r#"SELECT coalesce(max(event_id), 0) AS "revision!" FROM registry.events WHERE episode_id = $1"#,
        episode_id
    )
    .fetch_one(conn)
    .await?;
    Ok(revision)
}
