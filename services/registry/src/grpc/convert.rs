//! Conversions between protobuf messages and domain types; a bad field is INVALID_ARGUMENT.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as pb;
use uuid::Uuid;

use crate::domain::label::{LabelInput, LabelRule, Unlabeled, derive_label, reduction};
use crate::domain::records::{
    Episode, EpisodeView, FollowUp, FollowUpContent, Injection, ModelOutput, NewEpisode, NewInjection,
    Prediction,
};
use crate::domain::types::{
    AdverseEvent, AnalgesicChange, Approach, ExclusionReason, FollowUpMethod, Guidance, Indication, Level,
    ModelRole, OutcomeStatus, Sex, Side,
};
use crate::domain::validation::{FollowUpWindow, Nrs, Pgic};
use crate::error::{Error, Result};
use crate::store::{DueFollowUp, DueState};

pub fn uuid(field: &'static str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::invalid(field, "must be a UUID"))
}

pub fn optional_uuid(field: &'static str, text: &str) -> Result<Option<Uuid>> {
    if text.is_empty() { Ok(None) } else { uuid(field, text).map(Some) }
}

pub fn date(field: &'static str, value: Option<&common::Date>) -> Result<NaiveDate> {
    let value = value.ok_or_else(|| Error::invalid(field, "is required"))?;
    let month = u32::try_from(value.month).unwrap_or(0);
    let day = u32::try_from(value.day).unwrap_or(0);
    NaiveDate::from_ymd_opt(value.year, month, day)
        .ok_or_else(|| Error::invalid(field, "is not a calendar date"))
}

pub fn to_date(value: NaiveDate) -> common::Date {
    use chrono::Datelike;
    common::Date { year: value.year(), month: value.month() as i32, day: value.day() as i32 }
}

pub fn timestamp(value: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: value.timestamp(), nanos: value.timestamp_subsec_nanos() as i32 }
}

pub fn from_timestamp(field: &'static str, value: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    let nanos = u32::try_from(value.nanos).map_err(|_| Error::invalid(field, "negative nanos"))?;
    DateTime::from_timestamp(value.seconds, nanos).ok_or_else(|| Error::invalid(field, "out of range"))
}

fn nrs(field: &'static str, value: i32) -> Result<Nrs> {
    Nrs::new(field, i64::from(value))
}

pub fn indication(field: &'static str, value: i32) -> Result<Indication> {
    match common::Indication::try_from(value) {
        Ok(common::Indication::HerniatedDisc) => Ok(Indication::HerniatedDisc),
        Ok(common::Indication::SpinalStenosis) => Ok(Indication::SpinalStenosis),
        _ => Err(Error::invalid(field, "must be HERNIATED_DISC or SPINAL_STENOSIS")),
    }
}

pub(super) fn to_indication(value: Indication) -> i32 {
    match value {
        Indication::HerniatedDisc => common::Indication::HerniatedDisc as i32,
        Indication::SpinalStenosis => common::Indication::SpinalStenosis as i32,
    }
}

pub(super) fn levels(field: &'static str, values: &[i32]) -> Result<Vec<Level>> {
    let mut parsed = Vec::with_capacity(values.len());
    for value in values {
        let level = match common::SpinalLevel::try_from(*value) {
            Ok(common::SpinalLevel::L1L2) => Level::L1L2,
            Ok(common::SpinalLevel::L2L3) => Level::L2L3,
            Ok(common::SpinalLevel::L3L4) => Level::L3L4,
            Ok(common::SpinalLevel::L4L5) => Level::L4L5,
            Ok(common::SpinalLevel::L5S1) => Level::L5S1,
            Ok(common::SpinalLevel::S1) => Level::S1,
            _ => return Err(Error::invalid(field, "contains an unknown level")),
        };
        if parsed.contains(&level) {
            return Err(Error::invalid(field, "lists a level twice"));
        }
        parsed.push(level);
    }
    Ok(parsed)
}

pub(super) fn to_levels(values: &[Level]) -> Vec<i32> {
    values
        .iter()
        .map(|level| match level {
            Level::L1L2 => common::SpinalLevel::L1L2 as i32,
            Level::L2L3 => common::SpinalLevel::L2L3 as i32,
            Level::L3L4 => common::SpinalLevel::L3L4 as i32,
            Level::L4L5 => common::SpinalLevel::L4L5 as i32,
            Level::L5S1 => common::SpinalLevel::L5S1 as i32,
            Level::S1 => common::SpinalLevel::S1 as i32,
        })
        .collect()
}

pub(super) fn side(field: &'static str, value: i32) -> Result<Side> {
    match common::Side::try_from(value) {
        Ok(common::Side::Left) => Ok(Side::Left),
        Ok(common::Side::Right) => Ok(Side::Right),
        Ok(common::Side::Bilateral) => Ok(Side::Bilateral),
        _ => Err(Error::invalid(field, "must be LEFT, RIGHT or BILATERAL")),
    }
}

pub(super) fn to_side(value: Side) -> i32 {
    match value {
        Side::Left => common::Side::Left as i32,
        Side::Right => common::Side::Right as i32,
        Side::Bilateral => common::Side::Bilateral as i32,
    }
}

pub(super) fn sex(value: i32) -> Sex {
    match common::Sex::try_from(value) {
        Ok(common::Sex::Female) => Sex::Female,
        Ok(common::Sex::Male) => Sex::Male,
        Ok(common::Sex::Other) => Sex::Other,
        _ => Sex::Unknown,
    }
}

pub(super) fn to_sex(value: Sex) -> i32 {
    match value {
        Sex::Female => common::Sex::Female as i32,
        Sex::Male => common::Sex::Male as i32,
        Sex::Other => common::Sex::Other as i32,
        Sex::Unknown => common::Sex::Unspecified as i32,
    }
}

pub fn episode_details(details: Option<pb::EpisodeDetails>) -> Result<NewEpisode> {
    let details = details.ok_or_else(|| Error::invalid("details", "is required"))?;
    Ok(NewEpisode {
        patient_id: uuid("details.patient_id", &details.patient_id)?,
        study_id: optional_uuid("details.study_id", &details.study_id)?,
        indication: indication("details.indication", details.indication)?,
        planned_levels: {
            let parsed = levels("details.planned_levels", &details.planned_levels)?;
            if parsed.is_empty() {
                return Err(Error::invalid("details.planned_levels", "at least one level is required"));
            }
            parsed
        },
        planned_side: side("details.planned_side", details.planned_side)?,
        baseline_leg_nrs: nrs("details.baseline_leg_nrs", details.baseline_leg_nrs)?,
        baseline_back_nrs: details
            .baseline_back_nrs
            .map(|value| nrs("details.baseline_back_nrs", value))
            .transpose()?,
        symptom_duration_days: u32::try_from(details.symptom_duration_days)
            .map_err(|_| Error::invalid("details.symptom_duration_days", "must not be negative"))?,
        age_years: u8::try_from(details.age_years)
            .map_err(|_| Error::invalid("details.age_years", "must be from 0 to 120"))?,
        sex: sex(details.sex),
        baseline_date: details
            .baseline_date
            .as_ref()
            .map(|d| date("details.baseline_date", Some(d)))
            .transpose()?,
    })
}

fn to_episode_details(details: &NewEpisode) -> pb::EpisodeDetails {
    pb::EpisodeDetails {
        patient_id: details.patient_id.to_string(),
        study_id: details.study_id.map(|id| id.to_string()).unwrap_or_default(),
        indication: to_indication(details.indication),
        planned_levels: to_levels(&details.planned_levels),
        planned_side: to_side(details.planned_side),
        baseline_leg_nrs: i32::from(details.baseline_leg_nrs.get()),
        baseline_back_nrs: details.baseline_back_nrs.map(|score| i32::from(score.get())),
        symptom_duration_days: i32::try_from(details.symptom_duration_days).unwrap_or(i32::MAX),
        age_years: i32::from(details.age_years),
        sex: to_sex(details.sex),
        baseline_date: details.baseline_date.map(to_date),
    }
}

pub fn injection_details(episode_id: Uuid, injection: Option<pb::InjectionDetails>) -> Result<NewInjection> {
    let injection = injection.ok_or_else(|| Error::invalid("injection", "is required"))?;
    let approach = match pb::Approach::try_from(injection.approach) {
        Ok(pb::Approach::Subpedicular) => Approach::Subpedicular,
        Ok(pb::Approach::Retrodiscal) => Approach::Retrodiscal,
        _ => return Err(Error::invalid("injection.approach", "must be SUBPEDICULAR or RETRODISCAL")),
    };
    let guidance = match pb::Guidance::try_from(injection.guidance) {
        Ok(pb::Guidance::Fluoroscopy) => Guidance::Fluoroscopy,
        Ok(pb::Guidance::Ct) => Guidance::Ct,
        _ => return Err(Error::invalid("injection.guidance", "must be FLUOROSCOPY or CT")),
    };
    let parsed_levels = levels("injection.levels", &injection.levels)?;
    if parsed_levels.is_empty() {
        return Err(Error::invalid("injection.levels", "at least one level is required"));
    }
    Ok(NewInjection {
        episode_id,
        injection_date: date("injection.injection_date", injection.injection_date.as_ref())?,
        levels: parsed_levels,
        side: side("injection.side", injection.side)?,
        approach,
        guidance,
        contrast_used: injection.contrast_used,
        drug_code: injection.drug_code,
        drug_text: injection.drug_text,
        dose_mg: injection.dose_mg,
        local_anaesthetic: injection.local_anaesthetic,
        recorded_by: "app".to_owned(),
    })
}

fn to_injection(injection: &Injection) -> pb::Injection {
    let details = &injection.details;
    pb::Injection {
        injection_id: injection.injection_id.to_string(),
        details: Some(pb::InjectionDetails {
            injection_date: Some(to_date(details.injection_date)),
            levels: to_levels(&details.levels),
            side: to_side(details.side),
            approach: match details.approach {
                Approach::Subpedicular => pb::Approach::Subpedicular as i32,
                Approach::Retrodiscal => pb::Approach::Retrodiscal as i32,
            },
            guidance: match details.guidance {
                Guidance::Fluoroscopy => pb::Guidance::Fluoroscopy as i32,
                Guidance::Ct => pb::Guidance::Ct as i32,
            },
            contrast_used: details.contrast_used,
            drug_code: details.drug_code.clone(),
            drug_text: details.drug_text.clone(),
            dose_mg: details.dose_mg,
            local_anaesthetic: details.local_anaesthetic.clone(),
        }),
        recorded_at: Some(timestamp(injection.recorded_at)),
    }
}

pub fn follow_up_input(input: Option<pb::FollowUpInput>) -> Result<FollowUpContent> {
    let input = input.ok_or_else(|| Error::invalid("follow_up", "is required"))?;
    let method = match pb::FollowUpMethod::try_from(input.method) {
        Ok(pb::FollowUpMethod::Clinic) => FollowUpMethod::Clinic,
        Ok(pb::FollowUpMethod::Phone) => FollowUpMethod::Phone,
        Ok(pb::FollowUpMethod::Message) => FollowUpMethod::Message,
        _ => return Err(Error::invalid("follow_up.method", "must be CLINIC, PHONE or MESSAGE")),
    };
    let analgesic_change = match pb::AnalgesicChange::try_from(input.analgesic_change) {
        Ok(pb::AnalgesicChange::Unspecified) => None,
        Ok(pb::AnalgesicChange::None) => Some(AnalgesicChange::None),
        Ok(pb::AnalgesicChange::Decreased) => Some(AnalgesicChange::Decreased),
        Ok(pb::AnalgesicChange::Unchanged) => Some(AnalgesicChange::Unchanged),
        Ok(pb::AnalgesicChange::Increased) => Some(AnalgesicChange::Increased),
        Ok(pb::AnalgesicChange::Stopped) => Some(AnalgesicChange::Stopped),
        Err(_) => return Err(Error::invalid("follow_up.analgesic_change", "unknown value")),
    };
    let mut adverse_events = Vec::new();
    for value in &input.adverse_events {
        let event = match pb::AdverseEvent::try_from(*value) {
            Ok(pb::AdverseEvent::IncreasedPain) => AdverseEvent::IncreasedPain,
            Ok(pb::AdverseEvent::Headache) => AdverseEvent::Headache,
            Ok(pb::AdverseEvent::SteroidEffect) => AdverseEvent::SteroidEffect,
            Ok(pb::AdverseEvent::Vasovagal) => AdverseEvent::Vasovagal,
            Ok(pb::AdverseEvent::TransientNeurological) => AdverseEvent::TransientNeurological,
            Ok(pb::AdverseEvent::PersistentNeurological) => AdverseEvent::PersistentNeurological,
            Ok(pb::AdverseEvent::Infection) => AdverseEvent::Infection,
            Ok(pb::AdverseEvent::Other) => AdverseEvent::Other,
            _ => return Err(Error::invalid("follow_up.adverse_events", "contains an unknown event")),
        };
        adverse_events.push(event);
    }
    Ok(FollowUpContent {
        follow_up_date: date("follow_up.follow_up_date", input.follow_up_date.as_ref())?,
        leg_nrs: nrs("follow_up.leg_nrs", input.leg_nrs)?,
        back_nrs: input.back_nrs.map(|value| nrs("follow_up.back_nrs", value)).transpose()?,
        pgic: input.pgic.map(|value| Pgic::new("follow_up.pgic", i64::from(value))).transpose()?,
        analgesic_change,
        repeat_injection: input.repeat_injection,
        surgery: input.surgery,
        adverse_events,
        adverse_event_note: input.adverse_event_note,
        method,
        entered_by: input.entered_by,
        accept_out_of_window: input.out_of_window,
    })
}

pub fn to_follow_up(follow_up: &FollowUp) -> pb::FollowUp {
    let content = &follow_up.content;
    pb::FollowUp {
        follow_up_id: follow_up.follow_up_id.to_string(),
        episode_id: follow_up.episode_id.to_string(),
        version: i32::try_from(follow_up.version).unwrap_or(i32::MAX),
        current: follow_up.is_current,
        input: Some(pb::FollowUpInput {
            follow_up_date: Some(to_date(content.follow_up_date)),
            leg_nrs: i32::from(content.leg_nrs.get()),
            back_nrs: content.back_nrs.map(|score| i32::from(score.get())),
            pgic: content.pgic.map(|rating| i32::from(rating.get())),
            analgesic_change: match content.analgesic_change {
                None => pb::AnalgesicChange::Unspecified as i32,
                Some(AnalgesicChange::None) => pb::AnalgesicChange::None as i32,
                Some(AnalgesicChange::Decreased) => pb::AnalgesicChange::Decreased as i32,
                Some(AnalgesicChange::Unchanged) => pb::AnalgesicChange::Unchanged as i32,
                Some(AnalgesicChange::Increased) => pb::AnalgesicChange::Increased as i32,
                Some(AnalgesicChange::Stopped) => pb::AnalgesicChange::Stopped as i32,
            },
            repeat_injection: content.repeat_injection,
            surgery: content.surgery,
            adverse_events: content.adverse_events.iter().map(|event| to_adverse_event(*event)).collect(),
            adverse_event_note: content.adverse_event_note.clone(),
            method: match content.method {
                FollowUpMethod::Clinic => pb::FollowUpMethod::Clinic as i32,
                FollowUpMethod::Phone => pb::FollowUpMethod::Phone as i32,
                FollowUpMethod::Message => pb::FollowUpMethod::Message as i32,
            },
            entered_by: content.entered_by.clone(),
            out_of_window: content.accept_out_of_window,
        }),
        days_since_injection: i32::try_from(follow_up.days_since_injection).unwrap_or(i32::MAX),
        in_window: follow_up.in_window,
        amendment_reason: follow_up.amendment_reason.clone().unwrap_or_default(),
        recorded_at: Some(timestamp(follow_up.recorded_at)),
        recorded_by: content.entered_by.clone(),
    }
}

fn to_adverse_event(event: AdverseEvent) -> i32 {
    (match event {
        AdverseEvent::IncreasedPain => pb::AdverseEvent::IncreasedPain,
        AdverseEvent::Headache => pb::AdverseEvent::Headache,
        AdverseEvent::SteroidEffect => pb::AdverseEvent::SteroidEffect,
        AdverseEvent::Vasovagal => pb::AdverseEvent::Vasovagal,
        AdverseEvent::TransientNeurological => pb::AdverseEvent::TransientNeurological,
        AdverseEvent::PersistentNeurological => pb::AdverseEvent::PersistentNeurological,
        AdverseEvent::Infection => pb::AdverseEvent::Infection,
        AdverseEvent::Other => pb::AdverseEvent::Other,
    }) as i32
}

pub fn model_role(value: ModelRole) -> i32 {
    match value {
        ModelRole::Champion => common::ModelRole::Champion as i32,
        ModelRole::Shadow => common::ModelRole::Shadow as i32,
        ModelRole::Explicit => common::ModelRole::Explicit as i32,
    }
}

pub fn model_output(record: pb::PredictionRecord) -> Result<ModelOutput> {
    let model = record.model.ok_or_else(|| Error::invalid("predictions.model", "is required"))?;
    let role = match common::ModelRole::try_from(record.role) {
        Ok(common::ModelRole::Champion) => ModelRole::Champion,
        Ok(common::ModelRole::Shadow) => ModelRole::Shadow,
        Ok(common::ModelRole::Explicit) => ModelRole::Explicit,
        _ => return Err(Error::invalid("predictions.role", "must be CHAMPION, SHADOW or EXPLICIT")),
    };
    let execution_provider = match common::ExecutionProvider::try_from(record.execution_provider) {
        Ok(common::ExecutionProvider::Cpu) => "cpu",
        Ok(common::ExecutionProvider::Cuda) => "cuda",
        _ => return Err(Error::invalid("predictions.execution_provider", "must be CPU or CUDA")),
    };
    let predicted_at = match record.predicted_at.as_ref() {
        Some(value) => from_timestamp("predictions.predicted_at", value)?,
        None => return Err(Error::invalid("predictions.predicted_at", "is required")),
    };
    let clinical: BTreeMap<String, f64> =
        record.clinical.into_iter().map(|feature| (feature.name, f64::from(feature.value))).collect();
    Ok(ModelOutput {
        model_role: role,
        model_name: model.name,
        model_version: model.version,
        preprocessing_spec_version: record.spec_version,
        probability: record.probability,
        threshold: record.threshold,
        execution_provider: execution_provider.to_owned(),
        predicted_at,
        tensor_sha256: record.tensor_sha256,
        clinical,
    })
}

pub fn to_prediction(prediction: &Prediction) -> pb::PredictionRecord {
    let output = &prediction.output;
    let good = output.probability >= output.threshold;
    pb::PredictionRecord {
        prediction_id: prediction.prediction_id.to_string(),
        job_id: prediction.job_id.clone(),
        study_id: prediction.study_id.to_string(),
        series_id: prediction.series_id.to_string(),
        model: Some(common::ModelRef {
            name: output.model_name.clone(),
            version: output.model_version.clone(),
        }),
        role: model_role(output.model_role),
        spec_version: output.preprocessing_spec_version.clone(),
        probability: output.probability,
        threshold: output.threshold,
        predicted_label: if good {
            common::OutcomeLabel::Good as i32
        } else {
            common::OutcomeLabel::Poor as i32
        },
        execution_provider: if output.execution_provider == "cuda" {
            common::ExecutionProvider::Cuda as i32
        } else {
            common::ExecutionProvider::Cpu as i32
        },
        predicted_at: Some(timestamp(output.predicted_at)),
        tensor_sha256: output.tensor_sha256.clone(),
        clinical: output
            .clinical
            .iter()
            .map(|(name, value)| common::ClinicalFeature { name: name.clone(), value: *value as f32 })
            .collect(),
    }
}

pub fn outcome_status(value: i32) -> Result<OutcomeStatus> {
    match pb::OutcomeStatus::try_from(value) {
        Ok(pb::OutcomeStatus::Pending) => Ok(OutcomeStatus::Pending),
        Ok(pb::OutcomeStatus::Completed) => Ok(OutcomeStatus::Completed),
        Ok(pb::OutcomeStatus::LostToFollowUp) => Ok(OutcomeStatus::LostToFollowUp),
        Ok(pb::OutcomeStatus::Withdrawn) => Ok(OutcomeStatus::Withdrawn),
        Ok(pb::OutcomeStatus::Excluded) => Ok(OutcomeStatus::Excluded),
        _ => Err(Error::invalid("status", "unknown status")),
    }
}

pub fn exclusion_reason(value: i32) -> Result<Option<ExclusionReason>> {
    match pb::ExclusionReason::try_from(value) {
        Ok(pb::ExclusionReason::Unspecified) => Ok(None),
        Ok(pb::ExclusionReason::RepeatInjection) => Ok(Some(ExclusionReason::RepeatInjection)),
        Ok(pb::ExclusionReason::Surgery) => Ok(Some(ExclusionReason::Surgery)),
        Ok(pb::ExclusionReason::BaselineTooLow) => Ok(Some(ExclusionReason::BaselineTooLow)),
        Ok(pb::ExclusionReason::OutOfWindow) => Ok(Some(ExclusionReason::OutOfWindow)),
        Ok(pb::ExclusionReason::Deceased) => Ok(Some(ExclusionReason::Deceased)),
        Ok(pb::ExclusionReason::Other) => Ok(Some(ExclusionReason::Other)),
        Err(_) => Err(Error::invalid("exclusion_reason", "unknown reason")),
    }
}

pub fn to_status_info(episode: &Episode) -> pb::OutcomeStatusInfo {
    let status = match episode.status.status() {
        OutcomeStatus::Pending => pb::OutcomeStatus::Pending,
        OutcomeStatus::Completed => pb::OutcomeStatus::Completed,
        OutcomeStatus::LostToFollowUp => pb::OutcomeStatus::LostToFollowUp,
        OutcomeStatus::Withdrawn => pb::OutcomeStatus::Withdrawn,
        OutcomeStatus::Excluded => pb::OutcomeStatus::Excluded,
    };
    let reason = match episode.status.reason() {
        None => pb::ExclusionReason::Unspecified,
        Some(ExclusionReason::RepeatInjection) => pb::ExclusionReason::RepeatInjection,
        Some(ExclusionReason::Surgery) => pb::ExclusionReason::Surgery,
        Some(ExclusionReason::BaselineTooLow) => pb::ExclusionReason::BaselineTooLow,
        Some(ExclusionReason::OutOfWindow) => pb::ExclusionReason::OutOfWindow,
        Some(ExclusionReason::Deceased) => pb::ExclusionReason::Deceased,
        Some(ExclusionReason::Other) => pb::ExclusionReason::Other,
    };
    pb::OutcomeStatusInfo {
        status: status as i32,
        exclusion_reason: reason as i32,
        note: episode.status_note.clone(),
        changed_at: Some(timestamp(episode.status_changed_at)),
        changed_by: episode.status_changed_by.clone(),
    }
}

/// The label facts of an episode view (its current follow-up).
fn unlabelable(reason: Unlabeled) -> pb::UnlabelableReason {
    match reason {
        Unlabeled::NoFollowUp => pb::UnlabelableReason::NoFollowUp,
        Unlabeled::Status => pb::UnlabelableReason::Status,
        Unlabeled::BaselineZero => pb::UnlabelableReason::BaselineZero,
        Unlabeled::BaselineBelowMinimum => pb::UnlabelableReason::BaselineBelowMinimum,
        Unlabeled::OutOfWindow => pb::UnlabelableReason::OutOfWindow,
        Unlabeled::RepeatInjection => pb::UnlabelableReason::RepeatInjection,
        Unlabeled::Surgery => pb::UnlabelableReason::Surgery,
        Unlabeled::ScoreMissing => pb::UnlabelableReason::ScoreMissing,
    }
}

pub fn to_label(
    rule_version: &str,
    label: crate::domain::label::Label,
    reduction: Option<f64>,
    version: u32,
    at: DateTime<Utc>,
) -> pb::Label {
    let (outcome, reason) = match label {
        Ok(true) => (common::OutcomeLabel::Good, pb::UnlabelableReason::Unspecified),
        Ok(false) => (common::OutcomeLabel::Poor, pb::UnlabelableReason::Unspecified),
        Err(reason) => (common::OutcomeLabel::Unspecified, unlabelable(reason)),
    };
    pb::Label {
        rule_version: rule_version.to_owned(),
        label: outcome as i32,
        unlabelable_reason: reason as i32,
        reduction,
        follow_up_version: i32::try_from(version).unwrap_or(0),
        computed_at: Some(timestamp(at)),
    }
}

/// The episode's label under each rule, computed now from its raw scores.
pub fn labels(view: &EpisodeView, rules: &[LabelRule]) -> Vec<pb::Label> {
    let version = view.follow_ups.iter().find(|f| f.is_current).map_or(0, |f| f.version);
    labels_of(&LabelInput::of_view(view), view.injection.is_some(), version, rules)
}

/// The labels of an episode under each rule, from the facts they depend on; `version` is the
/// current follow-up's (0 without one).
pub fn labels_of(
    input: &LabelInput,
    has_injection: bool,
    version: u32,
    rules: &[LabelRule],
) -> Vec<pb::Label> {
    let now = Utc::now();
    rules
        .iter()
        .map(|rule| {
            let label = if has_injection { derive_label(rule, input) } else { Err(Unlabeled::NoFollowUp) };
            let mut message = to_label(&rule.version, label, reduction(rule, input), version, now);
            if !has_injection {
                message.unlabelable_reason = pb::UnlabelableReason::NoInjection as i32;
            }
            message
        })
        .collect()
}

pub fn to_window(window: FollowUpWindow, injection_date: NaiveDate) -> pb::FollowUpWindow {
    let (start, due, end) = window.dates(injection_date);
    pb::FollowUpWindow {
        injection_date: Some(to_date(injection_date)),
        due_date: Some(to_date(due)),
        window_start: Some(to_date(start)),
        window_end: Some(to_date(end)),
    }
}

pub fn to_episode(
    view: &EpisodeView,
    rules: &[LabelRule],
    window: FollowUpWindow,
    include_predictions: bool,
) -> pb::Episode {
    let episode = &view.episode;
    pb::Episode {
        episode_id: episode.episode_id.to_string(),
        details: Some(to_episode_details(&episode.details)),
        injection: view.injection.as_ref().map(to_injection),
        status: Some(to_status_info(episode)),
        predictions: if include_predictions {
            view.predictions.iter().map(to_prediction).collect()
        } else {
            Vec::new()
        },
        follow_up: view.follow_ups.iter().find(|f| f.is_current).map(to_follow_up),
        labels: labels(view, rules),
        window: view.injection.as_ref().map(|injection| to_window(window, injection.details.injection_date)),
        created_at: Some(timestamp(episode.created_at)),
        revision: view.revision,
    }
}

pub fn to_due(item: &DueFollowUp, as_of: NaiveDate) -> pb::DueFollowUp {
    let state = match item.state {
        DueState::InWindow => pb::DueState::InWindow,
        DueState::Due if as_of == item.due_date => pb::DueState::DueToday,
        DueState::Due => pb::DueState::InWindow,
        DueState::Overdue => pb::DueState::Overdue,
    };
    pb::DueFollowUp {
        episode_id: item.episode_id.to_string(),
        patient_id: item.patient_id.to_string(),
        window: Some(pb::FollowUpWindow {
            injection_date: Some(to_date(item.injection_date)),
            due_date: Some(to_date(item.due_date)),
            window_start: Some(to_date(item.window_opens)),
            window_end: Some(to_date(item.window_closes)),
        }),
        state: state as i32,
        days_since_injection: i32::try_from((as_of - item.injection_date).num_days()).unwrap_or(i32::MAX),
        levels: to_levels(&item.levels),
        side: to_side(item.side),
    }
}

pub use super::dataset::*;
