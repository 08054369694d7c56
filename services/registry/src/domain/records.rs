//! Validated write requests and the records the registry returns.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::BTreeMap;

use super::types::{
    AdverseEvent, AnalgesicChange, Approach, EpisodeStatus, FollowUpMethod, Guidance, Indication, Level,
    ModelRole, Sex, Side,
};
use super::validation::{Nrs, Pgic};
use crate::error::{Error, Result};

/// Longest free-text or reference field accepted (characters).
const MAX_TEXT: usize = 1000;

/// Tomorrow in UTC: the latest date a clinic anywhere can have reached today.
fn latest_plausible_date() -> NaiveDate {
    Utc::now().date_naive() + chrono::Days::new(1)
}

/// Checks a required short text field: non-empty, at most `max` characters.
pub fn required_text(field: &'static str, text: &str, max: usize) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    optional_text(field, trimmed, max)
}

/// Checks an optional free-text field: at most `max` characters.
pub fn optional_text(field: &'static str, text: &str, max: usize) -> Result<String> {
    if text.chars().count() > max {
        return Err(Error::invalid(field, format!("longer than {max} characters")));
    }
    Ok(text.to_owned())
}

/// A treatment episode to create (the patient is created on first use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEpisode {
    pub patient_id: Uuid,
    /// Ingest's surrogate study id, when the MRI is already known (else LinkStudy later).
    pub study_id: Option<Uuid>,
    pub indication: Indication,
    pub planned_levels: Vec<Level>,
    pub planned_side: Side,
    pub baseline_leg_nrs: Nrs,
    pub baseline_back_nrs: Option<Nrs>,
    pub symptom_duration_days: u32,
    pub age_years: u8,
    pub sex: Sex,
    pub baseline_date: Option<NaiveDate>,
}

impl NewEpisode {
    /// Range checks that the type system does not already give.
    pub fn validate(self) -> Result<Self> {
        if self.patient_id.is_nil() {
            return Err(Error::invalid("patient_id", "must be a surrogate UUID, not nil"));
        }
        if self.symptom_duration_days > 36_500 {
            return Err(Error::invalid("symptom_duration_days", "must be from 0 to 36500"));
        }
        if self.age_years > 120 {
            return Err(Error::invalid("age_years", "must be from 0 to 120"));
        }
        Ok(self)
    }
}

/// The index injection of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInjection {
    pub episode_id: Uuid,
    pub injection_date: NaiveDate,
    pub levels: Vec<Level>,
    pub side: Side,
    pub approach: Approach,
    pub guidance: Guidance,
    pub contrast_used: bool,
    pub drug_code: String,
    pub drug_text: String,
    pub dose_mg: f64,
    pub local_anaesthetic: String,
    pub recorded_by: String,
}

impl NewInjection {
    /// Range and text checks.
    pub fn validate(self) -> Result<Self> {
        if !(self.dose_mg.is_finite() && self.dose_mg > 0.0 && self.dose_mg <= 1000.0) {
            return Err(Error::invalid("dose_mg", "must be a number above 0 and at most 1000"));
        }
        if self.injection_date > latest_plausible_date() {
            return Err(Error::invalid("injection.injection_date", "must not be in the future"));
        }
        let drug_code = required_text("drug_code", &self.drug_code, 64)?;
        let drug_text = optional_text("drug_text", &self.drug_text, MAX_TEXT)?;
        let local_anaesthetic = optional_text("local_anaesthetic", &self.local_anaesthetic, 500)?;
        let recorded_by = required_text("recorded_by", &self.recorded_by, 200)?;
        Ok(NewInjection { drug_code, drug_text, local_anaesthetic, recorded_by, ..self })
    }
}

/// The content of one follow-up version (a recording or an amendment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUpContent {
    pub follow_up_date: NaiveDate,
    pub leg_nrs: Nrs,
    pub back_nrs: Option<Nrs>,
    pub pgic: Option<Pgic>,
    pub analgesic_change: Option<AnalgesicChange>,
    /// `None`: not asked. Only `Some(true)` excludes from labels.
    pub repeat_injection: Option<bool>,
    pub surgery: Option<bool>,
    pub adverse_events: Vec<AdverseEvent>,
    pub adverse_event_note: String,
    pub method: FollowUpMethod,
    pub entered_by: String,
    /// The caller accepts a date outside the window (it is then excluded from labels by default).
    pub accept_out_of_window: bool,
}

impl FollowUpContent {
    /// Text checks.
    pub fn validate(self) -> Result<Self> {
        if self.follow_up_date > latest_plausible_date() {
            return Err(Error::invalid("follow_up.follow_up_date", "must not be in the future"));
        }
        let adverse_event_note = optional_text("adverse_event_note", &self.adverse_event_note, 2000)?;
        let entered_by = required_text("entered_by", &self.entered_by, 200)?;
        Ok(FollowUpContent { adverse_event_note, entered_by, ..self })
    }
}

/// One model's output in a pipeline job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_role: ModelRole,
    pub model_name: String,
    pub model_version: String,
    pub preprocessing_spec_version: String,
    pub probability: f64,
    pub threshold: f64,
    pub execution_provider: String,
    pub predicted_at: DateTime<Utc>,
    pub tensor_sha256: String,
    /// Clinical features given to the model (name -> value).
    pub clinical: BTreeMap<String, f64>,
}

impl ModelOutput {
    /// Whether `other` is the same output, as a replay of the same job must be. Clinical values
    /// arrive as float32 and come back from their jsonb column through an f64 text round trip
    /// that may differ in the last bit, so they are compared at float32 precision.
    pub fn same_content(&self, other: &ModelOutput) -> bool {
        let clinical_equal = self.clinical.len() == other.clinical.len()
            && self.clinical.iter().zip(&other.clinical).all(|((name_a, a), (name_b, b))| {
                name_a == name_b && (*a as f32).to_bits() == (*b as f32).to_bits()
            });
        clinical_equal
            && ModelOutput { clinical: BTreeMap::new(), ..self.clone() }
                == ModelOutput { clinical: BTreeMap::new(), ..other.clone() }
    }

    /// Range and text checks.
    pub fn validate(self) -> Result<Self> {
        if !(self.probability.is_finite() && (0.0..=1.0).contains(&self.probability)) {
            return Err(Error::invalid("probability", "must be a number from 0 to 1"));
        }
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return Err(Error::invalid("threshold", "must be a number from 0 to 1"));
        }
        if self.clinical.values().any(|value| !value.is_finite()) {
            return Err(Error::invalid("clinical", "values must be finite"));
        }
        Ok(ModelOutput {
            model_name: required_text("model.name", &self.model_name, 200)?,
            model_version: required_text("model.version", &self.model_version, 200)?,
            preprocessing_spec_version: required_text("spec_version", &self.preprocessing_spec_version, 200)?,
            execution_provider: required_text("execution_provider", &self.execution_provider, 64)?,
            tensor_sha256: optional_text("tensor_sha256", &self.tensor_sha256, 64)?,
            ..self
        })
    }
}

/// Most instances one series may list (a long MRI series has a few hundred).
pub const MAX_SERIES_INSTANCES: usize = 4096;

/// Whether `text` is a SHA-256 as the platform writes it: 64 lowercase hex characters.
fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// What a job's tensor was prepared from: the series content hash (preprocess' tensor cache
/// key) and the content addresses of the stored instances it read, in the job's order. Both
/// empty means "not reported" (a worker older than these fields), never "no instances".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRefs {
    pub content_sha256: String,
    pub instance_sha256: Vec<String>,
}

impl SeriesRefs {
    /// Whether the caller reported nothing.
    pub fn is_empty(&self) -> bool {
        self.content_sha256.is_empty() && self.instance_sha256.is_empty()
    }

    /// Every hash a lowercase hex SHA-256, at most [`MAX_SERIES_INSTANCES`] instances, and the
    /// two given together (a content hash is computed from the instances it names).
    pub fn validate(self) -> Result<Self> {
        if !self.content_sha256.is_empty() && !is_sha256_hex(&self.content_sha256) {
            return Err(Error::invalid(
                "series_content_sha256",
                "must be empty or 64 lowercase hex characters",
            ));
        }
        if self.instance_sha256.len() > MAX_SERIES_INSTANCES {
            return Err(Error::invalid(
                "instance_sha256",
                format!("more than {MAX_SERIES_INSTANCES} instances"),
            ));
        }
        if let Some(position) = self.instance_sha256.iter().position(|hash| !is_sha256_hex(hash)) {
            return Err(Error::invalid(
                "instance_sha256",
                format!("entry {position} is not 64 lowercase hex characters"),
            ));
        }
        if self.content_sha256.is_empty() != self.instance_sha256.is_empty() {
            let field =
                if self.content_sha256.is_empty() { "series_content_sha256" } else { "instance_sha256" };
            return Err(Error::invalid(field, "series_content_sha256 and instance_sha256 are set together"));
        }
        Ok(self)
    }

    /// Whether a replay carrying `other` describes the same series as `self` does. Unreported
    /// references (from a worker older than the fields) agree with anything, so a job recorded
    /// before an upgrade can still be replayed after it and the other way round; two reported
    /// ones must be equal, as a different series under one job id is a different job.
    pub fn agrees_with(&self, other: &SeriesRefs) -> bool {
        self.is_empty() || other.is_empty() || self == other
    }
}

/// The predictions of one pipeline job for one study (champion first, then shadow), recorded
/// once per job id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionJob {
    pub job_id: String,
    pub study_id: Uuid,
    pub series_id: Uuid,
    /// What the tensor of every output was prepared from.
    pub series: SeriesRefs,
    pub outputs: Vec<ModelOutput>,
}

impl PredictionJob {
    /// One or two outputs, distinct roles, each valid.
    pub fn validate(self) -> Result<Self> {
        let job_id = required_text("job_id", &self.job_id, 200)?;
        if self.outputs.is_empty() || self.outputs.len() > 2 {
            return Err(Error::invalid("predictions", "one or two predictions are required"));
        }
        if self.outputs.len() == 2 && self.outputs[0].model_role == self.outputs[1].model_role {
            return Err(Error::invalid("predictions", "the two predictions need different roles"));
        }
        let series = self.series.validate()?;
        let outputs = self.outputs.into_iter().map(ModelOutput::validate).collect::<Result<Vec<_>>>()?;
        Ok(PredictionJob { job_id, series, outputs, ..self })
    }
}

/// A stored prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub prediction_id: Uuid,
    pub job_id: String,
    pub study_id: Uuid,
    pub series_id: Uuid,
    /// What the job reported its tensor was prepared from (empty when it reported nothing).
    #[serde(default)]
    pub series: SeriesRefs,
    pub recorded_at: DateTime<Utc>,
    pub output: ModelOutput,
}

/// A stored episode with its current status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub episode_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub status: EpisodeStatus,
    pub status_note: String,
    pub status_changed_at: DateTime<Utc>,
    pub status_changed_by: String,
    pub details: NewEpisode,
}

/// A stored injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    pub injection_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub details: NewInjection,
}

/// A stored follow-up version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub follow_up_id: Uuid,
    pub episode_id: Uuid,
    pub version: u32,
    pub is_current: bool,
    pub amendment_reason: Option<String>,
    pub days_since_injection: u32,
    pub in_window: bool,
    pub recorded_at: DateTime<Utc>,
    pub content: FollowUpContent,
}

/// Everything about one episode: what `GetEpisode` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeView {
    pub episode: Episode,
    pub injection: Option<Injection>,
    pub predictions: Vec<Prediction>,
    /// Every follow-up version, oldest first; at most one is current.
    pub follow_ups: Vec<FollowUp>,
    /// Highest event id of the episode: increases with every change.
    pub revision: i64,
}

#[cfg(test)]
mod series_tests {
    use super::*;

    fn refs(content: &str, instances: &[&str]) -> SeriesRefs {
        SeriesRefs {
            content_sha256: content.to_owned(),
            instance_sha256: instances.iter().map(|hash| (*hash).to_owned()).collect(),
        }
    }

    fn field_of(result: Result<SeriesRefs>) -> Option<&'static str> {
        match result {
            Err(Error::InvalidArgument { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn reported_and_unreported_series_references_are_valid() {
        let a = "a".repeat(64);
        let b = "0123456789abcdef".repeat(4);
        assert!(refs(&a, &[&b, &a]).validate().is_ok());
        assert!(SeriesRefs::default().validate().is_ok());
    }

    #[test]
    fn a_malformed_hash_names_its_field() {
        let good = "a".repeat(64);
        let upper = "A".repeat(64);
        assert_eq!(field_of(refs(&upper, &[&good]).validate()), Some("series_content_sha256"));
        assert_eq!(field_of(refs("abc", &[&good]).validate()), Some("series_content_sha256"));
        assert_eq!(field_of(refs(&good, &[&good, "xyz"]).validate()), Some("instance_sha256"));
        assert_eq!(field_of(refs(&good, &[&upper]).validate()), Some("instance_sha256"));
        let too_many = vec![good.as_str(); MAX_SERIES_INSTANCES + 1];
        assert_eq!(field_of(refs(&good, &too_many).validate()), Some("instance_sha256"));
    }

    #[test]
    fn a_content_hash_without_instances_or_instances_without_one_is_rejected() {
        let good = "a".repeat(64);
        assert_eq!(field_of(refs(&good, &[]).validate()), Some("instance_sha256"));
        assert_eq!(field_of(refs("", &[&good]).validate()), Some("series_content_sha256"));
    }

    #[test]
    fn unreported_references_agree_with_any_but_two_reported_ones_must_be_equal() {
        let one = refs(&"a".repeat(64), &[&"b".repeat(64)]);
        let other = refs(&"c".repeat(64), &[&"b".repeat(64)]);
        assert!(one.agrees_with(&one.clone()));
        assert!(one.agrees_with(&SeriesRefs::default()));
        assert!(SeriesRefs::default().agrees_with(&one));
        assert!(!one.agrees_with(&other));
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;

    #[test]
    fn a_replayed_output_is_the_same_despite_a_last_bit_json_round_trip() {
        let value = f64::from(0.49_f32);
        let output = ModelOutput {
            model_role: ModelRole::Champion,
            model_name: "m".into(),
            model_version: "1".into(),
            preprocessing_spec_version: "tfesi-prep-v1".into(),
            probability: 0.7,
            threshold: 0.5,
            execution_provider: "cpu".into(),
            predicted_at: DateTime::from_timestamp(1_780_000_000, 0).expect("time"),
            tensor_sha256: String::new(),
            clinical: BTreeMap::from([("age_years".to_owned(), value)]),
        };
        // What serde_json (without float_roundtrip) reads back for 0.49f32 as f64.
        let read_back = ModelOutput {
            clinical: BTreeMap::from([("age_years".to_owned(), 0.490_000_009_536_743_2)]),
            ..output.clone()
        };
        assert!(output.same_content(&read_back));
        let other_value =
            ModelOutput { clinical: BTreeMap::from([("age_years".to_owned(), 0.5)]), ..output.clone() };
        assert!(!output.same_content(&other_value));
        assert!(!output.same_content(&ModelOutput { probability: 0.71, ..output.clone() }));
    }
}
