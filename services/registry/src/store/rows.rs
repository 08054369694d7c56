//! Row shapes of the registry tables and their conversion into domain records.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{stored_u8, stored_u32};
use crate::domain::records::{
    Episode, FollowUp, FollowUpContent, Injection, ModelOutput, NewEpisode, NewInjection, Prediction,
    SeriesRefs,
};
use crate::domain::types::{
    AdverseEvent, AnalgesicChange, Approach, EpisodeStatus, FollowUpMethod, Guidance, Indication, ModelRole,
    Sex, Side, parse_levels,
};
use crate::domain::validation::{Nrs, Pgic};
use crate::error::Error;
use crate::error::Result;

pub struct EpisodeRow {
    pub episode_id: Uuid,
    pub patient_id: Uuid,
    pub study_id: Option<Uuid>,
    pub indication: String,
    pub planned_levels: Vec<String>,
    pub planned_side: String,
    pub baseline_leg_nrs: i16,
    pub baseline_back_nrs: Option<i16>,
    pub symptom_duration_days: i32,
    pub age_years: i16,
    pub sex: String,
    pub baseline_date: Option<NaiveDate>,
    pub outcome_status: String,
    pub outcome_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub status_note: String,
    pub status_changed_at: DateTime<Utc>,
    pub status_changed_by: String,
}

impl EpisodeRow {
    pub fn into_record(self) -> Result<Episode> {
        Ok(Episode {
            episode_id: self.episode_id,
            created_at: self.created_at,
            status: EpisodeStatus::from_columns(&self.outcome_status, self.outcome_reason.as_deref())?,
            status_note: self.status_note,
            status_changed_at: self.status_changed_at,
            status_changed_by: self.status_changed_by,
            details: NewEpisode {
                patient_id: self.patient_id,
                study_id: self.study_id,
                indication: Indication::parse("indication", &self.indication)?,
                planned_levels: parse_levels("planned_levels", &self.planned_levels)?,
                planned_side: Side::parse("planned_side", &self.planned_side)?,
                baseline_leg_nrs: Nrs::new("baseline_leg_nrs", i64::from(self.baseline_leg_nrs))?,
                baseline_back_nrs: self
                    .baseline_back_nrs
                    .map(|score| Nrs::new("baseline_back_nrs", i64::from(score)))
                    .transpose()?,
                symptom_duration_days: stored_u32("symptom_duration_days", self.symptom_duration_days)?,
                age_years: stored_u8("age_years", self.age_years)?,
                sex: Sex::parse("sex", &self.sex)?,
                baseline_date: self.baseline_date,
            },
        })
    }
}

pub struct InjectionRow {
    pub injection_id: Uuid,
    pub episode_id: Uuid,
    pub injection_date: NaiveDate,
    pub levels: Vec<String>,
    pub side: String,
    pub approach: String,
    pub guidance: String,
    pub contrast_used: bool,
    pub drug_code: String,
    pub drug_text: String,
    pub dose_mg: f64,
    pub local_anaesthetic: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

impl InjectionRow {
    pub fn into_record(self) -> Result<Injection> {
        Ok(Injection {
            injection_id: self.injection_id,
            recorded_at: self.recorded_at,
            details: NewInjection {
                episode_id: self.episode_id,
                injection_date: self.injection_date,
                levels: parse_levels("levels", &self.levels)?,
                side: Side::parse("side", &self.side)?,
                approach: Approach::parse("approach", &self.approach)?,
                guidance: Guidance::parse("guidance", &self.guidance)?,
                contrast_used: self.contrast_used,
                drug_code: self.drug_code,
                drug_text: self.drug_text,
                dose_mg: self.dose_mg,
                local_anaesthetic: self.local_anaesthetic,
                recorded_by: self.recorded_by,
            },
        })
    }
}

pub struct FollowUpRow {
    pub follow_up_id: Uuid,
    pub episode_id: Uuid,
    pub version: i32,
    pub is_current: bool,
    pub amendment_reason: Option<String>,
    pub follow_up_date: NaiveDate,
    pub days_since_injection: i32,
    pub in_window: bool,
    pub out_of_window_accepted: bool,
    pub leg_nrs: i16,
    pub back_nrs: Option<i16>,
    pub pgic: Option<i16>,
    pub analgesic_change: Option<String>,
    pub repeat_injection: Option<bool>,
    pub surgery: Option<bool>,
    pub adverse_events: Vec<String>,
    pub adverse_event_note: String,
    pub method: String,
    pub entered_by: String,
    pub recorded_at: DateTime<Utc>,
}

impl FollowUpRow {
    pub fn into_record(self) -> Result<FollowUp> {
        Ok(FollowUp {
            follow_up_id: self.follow_up_id,
            episode_id: self.episode_id,
            version: stored_u32("version", self.version)?,
            is_current: self.is_current,
            amendment_reason: self.amendment_reason,
            days_since_injection: stored_u32("days_since_injection", self.days_since_injection)?,
            in_window: self.in_window,
            recorded_at: self.recorded_at,
            content: FollowUpContent {
                follow_up_date: self.follow_up_date,
                leg_nrs: Nrs::new("leg_nrs", i64::from(self.leg_nrs))?,
                back_nrs: self.back_nrs.map(|score| Nrs::new("back_nrs", i64::from(score))).transpose()?,
                pgic: self.pgic.map(|rating| Pgic::new("pgic", i64::from(rating))).transpose()?,
                analgesic_change: self
                    .analgesic_change
                    .map(|text| AnalgesicChange::parse("analgesic_change", &text))
                    .transpose()?,
                repeat_injection: self.repeat_injection,
                surgery: self.surgery,
                adverse_events: self
                    .adverse_events
                    .iter()
                    .map(|text| AdverseEvent::parse("adverse_events", text))
                    .collect::<Result<Vec<_>>>()?,
                adverse_event_note: self.adverse_event_note,
                method: FollowUpMethod::parse("method", &self.method)?,
                entered_by: self.entered_by,
                accept_out_of_window: self.out_of_window_accepted,
            },
        })
    }
}

/// The columns of a [`PredictionRow`], qualified by `p.`, as a literal for `concat!` (runtime
/// queries take `&'static str`): `concat!("SELECT ", prediction_columns!(), " FROM
/// registry.predictions p ...")`.
macro_rules! prediction_columns {
    () => {
        "p.prediction_id, p.job_id, p.model_role, p.study_id, p.series_id, p.series_content_sha256,
         p.instance_sha256, p.tensor_sha256, p.clinical, p.model_name, p.model_version,
         p.preprocessing_spec_version, p.probability, p.threshold, p.execution_provider, p.predicted_at,
         p.recorded_at"
    };
}
pub(crate) use prediction_columns;

/// A `registry.predictions` row, read by runtime queries by column name (select
/// `prediction_columns!()`).
#[derive(sqlx::FromRow)]
pub struct PredictionRow {
    pub prediction_id: Uuid,
    pub job_id: String,
    pub model_role: String,
    pub study_id: Uuid,
    pub series_id: Uuid,
    pub series_content_sha256: String,
    pub instance_sha256: Vec<String>,
    pub tensor_sha256: String,
    pub clinical: serde_json::Value,
    pub model_name: String,
    pub model_version: String,
    pub preprocessing_spec_version: String,
    pub probability: f64,
    pub threshold: f64,
    pub execution_provider: String,
    pub predicted_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl PredictionRow {
    pub fn into_record(self) -> Result<Prediction> {
        Ok(Prediction {
            prediction_id: self.prediction_id,
            job_id: self.job_id,
            study_id: self.study_id,
            series_id: self.series_id,
            series: SeriesRefs {
                content_sha256: self.series_content_sha256,
                instance_sha256: self.instance_sha256,
            },
            recorded_at: self.recorded_at,
            output: ModelOutput {
                model_role: ModelRole::parse("model_role", &self.model_role)?,
                model_name: self.model_name,
                model_version: self.model_version,
                preprocessing_spec_version: self.preprocessing_spec_version,
                probability: self.probability,
                threshold: self.threshold,
                execution_provider: self.execution_provider,
                predicted_at: self.predicted_at,
                tensor_sha256: self.tensor_sha256,
                clinical: serde_json::from_value(self.clinical).map_err(Error::Serialisation)?,
            },
        })
    }
}
