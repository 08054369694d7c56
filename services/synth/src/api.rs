//! A synthetic patient as the platform's API callers see it: the episode an app registers
//! (Registry.CreateEpisode), the injection it records (Registry.RecordInjection) and the 2-month
//! follow-up the nurse desk enters (Registry.RecordFollowUp). One mapping, shared by `tfesi demo`
//! and the end-to-end tests.
//!
//! Everything here describes synthetic patients: the procedure facts the cohort does not draw
//! (approach, guidance, drug) are fixed, typical values (CLINICAL.md: fluoroscopy, subpedicular,
//! dexamethasone 10 mg with lidocaine).

use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;

use crate::CohortRow;
use crate::calendar::Date;
use crate::latent::{Indication, InjectionSide};
use crate::outcome::FollowUpStatus;

/// `YYYY-MM-DD` to a proto date; `None` when the text is not such a date.
pub fn date(iso: &str) -> Option<common::Date> {
    let mut parts = iso.split('-').map(|part| part.parse::<i32>().ok());
    let parsed = common::Date { year: parts.next()??, month: parts.next()??, day: parts.next()?? };
    parts.next().is_none().then_some(parsed)
}

fn parse(iso: &str) -> Option<Date> {
    let parsed = date(iso)?;
    Some(Date::from_ymd(
        i64::from(parsed.year),
        u32::try_from(parsed.month).ok()?,
        u32::try_from(parsed.day).ok()?,
    ))
}

/// The last date of a row: its follow-up, or its injection when no score was obtained.
pub fn last_date(row: &CohortRow) -> Option<Date> {
    row.followup_date.as_deref().and_then(parse).or_else(|| parse(&row.injection_date))
}

/// Moves every date of a row (study, injection, follow-up) by `days` (negative: earlier); the
/// intervals between them, which the registry's follow-up window checks, stay the same.
pub fn shift_dates(row: &mut CohortRow, days: i64) {
    let shift = |iso: &str| parse(iso).map_or_else(|| iso.to_owned(), |parsed| parsed.plus_days(days).iso());
    row.study_date = shift(&row.study_date);
    row.injection_date = shift(&row.injection_date);
    row.followup_date = row.followup_date.as_deref().map(shift);
}

/// The shift (0 or negative days) that puts every date of `rows` on or before `latest`: the
/// cohort's calendar runs into the future of a machine whose clock is early in it, and the
/// registry refuses dates in the future.
pub fn shift_to_end_by<'a>(rows: impl IntoIterator<Item = &'a CohortRow>, latest: Date) -> i64 {
    rows.into_iter().filter_map(last_date).map(|last| (latest.days - last.days).min(0)).min().unwrap_or(0)
}

/// The registry's level for an index into [`crate::latent::DISC_LEVELS`].
fn level(index: usize) -> common::SpinalLevel {
    match index {
        0 => common::SpinalLevel::L1L2,
        1 => common::SpinalLevel::L2L3,
        2 => common::SpinalLevel::L3L4,
        3 => common::SpinalLevel::L4L5,
        _ => common::SpinalLevel::L5S1,
    }
}

fn levels(row: &CohortRow) -> Vec<i32> {
    let clinical = &row.clinical;
    let mut levels = vec![level(clinical.level) as i32];
    levels.extend(clinical.second_level.map(|second| level(second) as i32));
    levels
}

fn side(row: &CohortRow) -> common::Side {
    match row.clinical.side {
        InjectionSide::Left => common::Side::Left,
        InjectionSide::Right => common::Side::Right,
        InjectionSide::Bilateral => common::Side::Bilateral,
    }
}

/// The episode an app registers for a synthetic patient (baseline taken on the study date).
/// `study_id` is left empty: the study is linked once ingest has it (Registry.LinkStudy).
pub fn episode_details(row: &CohortRow, patient_id: &str) -> registry::EpisodeDetails {
    let clinical = &row.clinical;
    registry::EpisodeDetails {
        patient_id: patient_id.to_owned(),
        study_id: String::new(),
        indication: match clinical.indication {
            Indication::HerniatedDisc => common::Indication::HerniatedDisc,
            Indication::Stenosis => common::Indication::SpinalStenosis,
        } as i32,
        planned_levels: levels(row),
        planned_side: side(row) as i32,
        baseline_leg_nrs: i32::from(clinical.baseline_leg_nrs),
        baseline_back_nrs: Some(i32::from(clinical.baseline_back_nrs)),
        symptom_duration_days: i32::try_from(clinical.symptom_weeks * 7).unwrap_or(i32::MAX),
        age_years: i32::try_from(clinical.age_years).unwrap_or(i32::MAX),
        sex: if clinical.female { common::Sex::Female } else { common::Sex::Male } as i32,
        baseline_date: date(&row.study_date),
    }
}

/// The injection performed on a synthetic patient: the planned levels and side on the
/// cohort's injection date, under fluoroscopy with contrast, subpedicular, dexamethasone 10 mg.
pub fn injection_details(row: &CohortRow) -> registry::InjectionDetails {
    registry::InjectionDetails {
        injection_date: date(&row.injection_date),
        levels: levels(row),
        side: side(row) as i32,
        approach: registry::Approach::Subpedicular as i32,
        guidance: registry::Guidance::Fluoroscopy as i32,
        contrast_used: true,
        drug_code: "dexamethasone".to_owned(),
        drug_text: "dexamethasone sodium phosphate (synthetic record)".to_owned(),
        dose_mg: 10.0,
        local_anaesthetic: "lidocaine 1% 2 mL".to_owned(),
    }
}

/// What the nurse desk does at a synthetic patient's 2-month follow-up.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUpAction {
    /// A score was obtained: Registry.RecordFollowUp (a confounder, when the cohort has one,
    /// is recorded as such and the registry excludes the episode from labels).
    Record(registry::FollowUpInput),
    /// No score was obtained: Registry.SetOutcomeStatus LOST_TO_FOLLOW_UP.
    LostToFollowUp,
}

/// The follow-up of a synthetic patient, on the cohort's follow-up date, by telephone. `None`
/// when the cohort row is inconsistent (a scored follow-up without a date or score).
pub fn follow_up(row: &CohortRow) -> Option<FollowUpAction> {
    let cohort = &row.followup;
    if cohort.status == FollowUpStatus::LostToFollowUp {
        return Some(FollowUpAction::LostToFollowUp);
    }
    let follow_up_date = date(row.followup_date.as_deref()?)?;
    let leg_nrs = i32::from(cohort.leg_nrs?);
    Some(FollowUpAction::Record(registry::FollowUpInput {
        follow_up_date: Some(follow_up_date),
        leg_nrs,
        back_nrs: cohort.back_nrs.map(i32::from),
        pgic: None,
        analgesic_change: registry::AnalgesicChange::Unspecified as i32,
        repeat_injection: Some(cohort.exclusion_reason == Some("repeat_injection")),
        surgery: Some(cohort.exclusion_reason == Some("surgery")),
        adverse_events: Vec::new(),
        adverse_event_note: String::new(),
        method: registry::FollowUpMethod::Phone as i32,
        entered_by: "synthetic-nurse".to_owned(),
        out_of_window: false,
    }))
}

/// The Registry.RecordFollowUp request of [`follow_up`]'s recorded score.
pub fn record_follow_up_request(
    idempotency_key: String,
    episode_id: &str,
    input: registry::FollowUpInput,
) -> registry::RecordFollowUpRequest {
    registry::RecordFollowUpRequest {
        idempotency_key,
        episode_id: episode_id.to_owned(),
        follow_up: Some(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PatientOptions, patient_row};

    #[test]
    fn dates_parse_only_when_complete() {
        assert_eq!(date("2025-03-07"), Some(common::Date { year: 2025, month: 3, day: 7 }));
        assert_eq!(date("2025-03"), None);
        assert_eq!(date("2025-03-07-1"), None);
        assert_eq!(date("yesterday"), None);
    }

    #[test]
    fn shifting_keeps_the_intervals_and_ends_the_cohort_by_the_given_date() {
        let options = PatientOptions::default();
        let mut rows: Vec<CohortRow> = (0..30).map(|index| patient_row(9, index, &options)).collect();
        let latest = Date::from_ymd(2025, 6, 1);
        let shift = shift_to_end_by(&rows, latest);
        assert!(shift < 0, "the synthetic calendar runs past mid-2025");
        let before: Vec<CohortRow> = rows.clone();
        for row in &mut rows {
            shift_dates(row, shift);
        }
        for (row, old) in rows.iter().zip(&before) {
            assert!(last_date(row).is_some_and(|last| last <= latest));
            let gap = |row: &CohortRow| {
                parse(&row.injection_date)
                    .map(|d| d.days)
                    .zip(parse(&row.study_date).map(|d| d.days))
                    .map(|(a, b)| a - b)
            };
            assert_eq!(gap(row), gap(old));
            assert_eq!(last_date(row).map(|d| d.days - shift), last_date(old).map(|d| d.days));
        }
        assert_eq!(shift_to_end_by(&rows, latest), 0, "nothing left to shift");
    }

    #[test]
    fn every_patient_maps_to_a_complete_episode_injection_and_follow_up() {
        let options = PatientOptions { lost_rate: 0.3, ..PatientOptions::default() };
        let mut lost = 0;
        for index in 0..40 {
            let row = patient_row(5, index, &options);
            let episode = episode_details(&row, "patient");
            assert!(episode.baseline_date.is_some());
            assert!(!episode.planned_levels.is_empty());
            let injection = injection_details(&row);
            assert_eq!(injection.levels, episode.planned_levels);
            assert_eq!(injection.side, episode.planned_side);
            assert!(injection.injection_date.is_some());
            match follow_up(&row) {
                Some(FollowUpAction::Record(input)) => {
                    assert!((0..=10).contains(&input.leg_nrs));
                    assert!(input.follow_up_date.is_some());
                    let excluded = row.followup.status == FollowUpStatus::Excluded;
                    assert_eq!(input.repeat_injection == Some(true) || input.surgery == Some(true), excluded);
                }
                Some(FollowUpAction::LostToFollowUp) => lost += 1,
                None => panic!("row {index} has no follow-up mapping: {:?}", row.followup),
            }
        }
        assert!(lost > 0, "a 30% lost rate loses someone in 40");
    }
}
