//! Conversions between the catalogue's types and `tfesi.ingest.v1` messages, request validation, and page tokens.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1 as pb;
use uuid::Uuid;

use super::error::ApiError;
use super::views::{After, JobRow, SeriesRow, StudyRow};
use crate::rejection::{QuarantineReason, RejectCode, Rejection};
use crate::selection::{Plane, SelectionRules, SeriesDecision, SeriesInput, Weighting, select};

/// A required surrogate id.
pub fn uuid(field: &str, text: &str) -> Result<Uuid, ApiError> {
    if text.is_empty() {
        return Err(ApiError::invalid(format!("{field} is required (a UUID)")));
    }
    Uuid::parse_str(text)
        .map_err(|_| ApiError::invalid(format!("{field} '{}' is not a UUID", printable(text))))
}

/// An optional surrogate id filter (empty means any).
pub fn optional_uuid(field: &str, text: &str) -> Result<Option<Uuid>, ApiError> {
    if text.is_empty() { Ok(None) } else { uuid(field, text).map(Some) }
}

/// Echoes at most 64 printable characters of a malformed value.
fn printable(text: &str) -> String {
    text.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A protobuf timestamp.
pub fn timestamp(value: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: value.timestamp(),
        nanos: i32::try_from(value.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a UTC instant.
pub fn from_timestamp(field: &str, value: &prost_types::Timestamp) -> Result<DateTime<Utc>, ApiError> {
    u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos))
        .ok_or_else(|| ApiError::invalid(format!("{field} is not a valid timestamp")))
}

/// Page size: 0 means 100, above 1000 is clamped, negative is refused.
pub fn page_size(page: Option<&common::PageRequest>) -> Result<(i64, String), ApiError> {
    let page = page.cloned().unwrap_or_default();
    if page.page_size < 0 {
        return Err(ApiError::invalid(format!("page.page_size is {}: it must be 0 to 1000", page.page_size)));
    }
    let size = if page.page_size == 0 { 100 } else { page.page_size.min(1000) };
    Ok((i64::from(size), page.page_token))
}

/// A page token: the last row's position, bound to the filters it was issued for.
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    /// Microseconds since the epoch of the last row.
    t: i64,
    /// Tie-breaker of the last row.
    k: String,
    /// Fingerprint of the filters.
    f: String,
}

/// A short fingerprint of a listing's filters (any stable text that names them all).
pub fn fingerprint(filters: &str) -> String {
    hex::encode(&Sha256::digest(filters.as_bytes())[..8])
}

/// Encodes a token for the page after `after`.
pub fn encode_token(at: DateTime<Utc>, key: &str, filters: &str) -> String {
    let token = Token { t: at.timestamp_micros(), k: key.to_owned(), f: fingerprint(filters) };
    hex::encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// Decodes a token issued by [`encode_token`] for the same filters.
pub fn decode_token(token: &str, filters: &str) -> Result<Option<After<String>>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad =
        || ApiError::invalid("page.page_token is not a token this listing issued; start again without one");
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if token.f != fingerprint(filters) {
        return Err(ApiError::invalid(
            "page.page_token was issued for different filters; repeat the same filters or start again without a token",
        ));
    }
    let at = DateTime::from_timestamp_micros(token.t).ok_or_else(bad)?;
    Ok(Some(After { at, key: token.k }))
}

/// The API reason of a rejection.
pub fn reject_reason(rejection: &Rejection) -> pb::InstanceReason {
    use pb::InstanceReason as R;
    match rejection.code {
        RejectCode::TooLarge => R::TooLarge,
        RejectCode::NotDicom => R::NotDicom,
        RejectCode::BadFileMeta => R::NoFileMeta,
        RejectCode::Truncated
        | RejectCode::LengthBeyondEnd
        | RejectCode::TooDeep
        | RejectCode::TooManyElements
        | RejectCode::Malformed => R::Malformed,
        RejectCode::UnsupportedTransferSyntax => R::UnsupportedTransferSyntax,
        RejectCode::UnsupportedSopClass => R::NotMr,
        RejectCode::MissingAttribute => R::MissingAttribute,
        RejectCode::InvalidAttribute if rejection.message.to_lowercase().contains("rescale") => {
            R::InvalidRescale
        }
        RejectCode::InvalidAttribute => R::PixelDataInconsistent,
        RejectCode::PixelData if rejection.message.contains("missing") => R::NoPixelData,
        RejectCode::PixelData | RejectCode::PixelDecode => R::PixelDataInconsistent,
        RejectCode::DecoderPanic => R::ParserFailure,
    }
}

/// The API reason of a quarantine reason.
pub fn quarantine_reason(reason: QuarantineReason) -> pb::InstanceReason {
    match reason {
        QuarantineReason::BurnedInAnnotation => pb::InstanceReason::BurnedInAnnotation,
        QuarantineReason::DerivedOrSecondary => pb::InstanceReason::DerivedImage,
        QuarantineReason::SecondaryCapture => pb::InstanceReason::SecondaryCapture,
    }
}

const QUARANTINE_REASONS: [QuarantineReason; 3] = [
    QuarantineReason::BurnedInAnnotation,
    QuarantineReason::DerivedOrSecondary,
    QuarantineReason::SecondaryCapture,
];

/// A stored quarantine reason name back as the domain reason.
pub fn stored_quarantine_reason(name: &str) -> Option<QuarantineReason> {
    QUARANTINE_REASONS.into_iter().find(|r| r.as_str() == name)
}

/// The stored name of a quarantine reason filter (INVALID_ARGUMENT for a rejection reason).
pub fn quarantine_filter(reason: i32) -> Result<Option<&'static str>, ApiError> {
    if reason == 0 {
        return Ok(None);
    }
    QUARANTINE_REASONS
        .into_iter()
        .find(|r| quarantine_reason(*r) as i32 == reason)
        .map(|r| Some(r.as_str()))
        .ok_or_else(|| {
            let name = pb::InstanceReason::try_from(reason).map_or_else(|_| reason.to_string(), |r| r.as_str_name().to_owned());
            ApiError::invalid(format!(
                "reason {name} is not a quarantine reason; use INSTANCE_REASON_BURNED_IN_ANNOTATION, INSTANCE_REASON_DERIVED_IMAGE or INSTANCE_REASON_SECONDARY_CAPTURE"
            ))
        })
}

/// The processing status of a study's current job.
pub fn processing(job: Option<&JobRow>) -> pb::ProcessingStatus {
    let Some(job) = job else {
        return pb::ProcessingStatus { state: pb::ProcessingState::NotStarted as i32, ..Default::default() };
    };
    pb::ProcessingStatus {
        state: processing_state(&job.state) as i32,
        job_id: job.job_id.to_string(),
        attempts: u32::try_from(job.attempts).unwrap_or(0),
        last_error: job.last_error.clone().unwrap_or_default(),
        updated_at: Some(timestamp(job.state_at)),
    }
}

fn processing_state(state: &str) -> pb::ProcessingState {
    match state {
        "queued" => pb::ProcessingState::Queued,
        "in_progress" => pb::ProcessingState::InProgress,
        "succeeded" => pb::ProcessingState::Succeeded,
        "dead_letter" => pb::ProcessingState::DeadLetter,
        _ => pb::ProcessingState::Unspecified,
    }
}

/// The stored name of a reportable processing state.
pub fn reported_state(state: i32) -> Result<&'static str, ApiError> {
    match pb::ProcessingState::try_from(state) {
        Ok(pb::ProcessingState::Queued) => Ok("queued"),
        Ok(pb::ProcessingState::InProgress) => Ok("in_progress"),
        Ok(pb::ProcessingState::Succeeded) => Ok("succeeded"),
        Ok(pb::ProcessingState::DeadLetter) => Ok("dead_letter"),
        Ok(pb::ProcessingState::NotStarted) => {
            Err(ApiError::invalid("state NOT_STARTED cannot be reported: a job exists once it is queued"))
        }
        _ => Err(ApiError::invalid(
            "state is required: IN_PROGRESS, SUCCEEDED, DEAD_LETTER or QUEUED (after an operator retry)",
        )),
    }
}

/// The stored name of a processing state filter (`not_started` for no job).
pub fn processing_filter(state: i32) -> Result<Option<&'static str>, ApiError> {
    match pb::ProcessingState::try_from(state) {
        Ok(pb::ProcessingState::Unspecified) => Ok(None),
        Ok(pb::ProcessingState::NotStarted) => Ok(Some("not_started")),
        Ok(_) => reported_state(state).map(Some),
        Err(_) => Err(ApiError::invalid(format!("processing_state {state} is not a ProcessingState"))),
    }
}

/// The study statuses of a selection outcome filter.
pub fn selection_filter(outcome: i32) -> Result<Option<Vec<String>>, ApiError> {
    let statuses: &[&str] = match pb::SelectionOutcome::try_from(outcome) {
        Ok(pb::SelectionOutcome::Unspecified) => return Ok(None),
        Ok(pb::SelectionOutcome::Pending) => &["receiving"],
        Ok(pb::SelectionOutcome::Selected) => &["selected", "processed"],
        Ok(pb::SelectionOutcome::NoEligibleSeries) => &["no_eligible_series"],
        Err(_) => {
            return Err(ApiError::invalid(format!("selection_outcome {outcome} is not a SelectionOutcome")));
        }
    };
    Ok(Some(statuses.iter().map(|s| (*s).to_owned()).collect()))
}

/// Whether a study state filter asks for receiving studies.
pub fn state_filter(state: i32) -> Result<Option<bool>, ApiError> {
    match pb::StudyState::try_from(state) {
        Ok(pb::StudyState::Unspecified) => Ok(None),
        Ok(pb::StudyState::Receiving) => Ok(Some(true)),
        Ok(pb::StudyState::Complete) => Ok(Some(false)),
        Err(_) => Err(ApiError::invalid(format!("state {state} is not a StudyState"))),
    }
}

fn source(received_via: &[String]) -> pb::StudySource {
    let grpc = received_via.iter().any(|v| v == "grpc");
    let dicom = received_via.iter().any(|v| v == "dicom");
    match (grpc, dicom) {
        (true, true) => pb::StudySource::Mixed,
        (true, false) => pb::StudySource::Grpc,
        (false, true) => pb::StudySource::Dicom,
        (false, false) => pb::StudySource::Unspecified,
    }
}

/// A study message; `series` empty for listings.
pub fn study(row: &StudyRow, series: Vec<pb::Series>) -> pb::Study {
    let receiving = row.status == "receiving";
    let selection_outcome = match row.status.as_str() {
        "receiving" => pb::SelectionOutcome::Pending,
        "no_eligible_series" => pb::SelectionOutcome::NoEligibleSeries,
        _ => pb::SelectionOutcome::Selected,
    };
    let selected_series_id = match (selection_outcome, row.selected_series_id) {
        (pb::SelectionOutcome::Selected, Some(id)) => id.to_string(),
        _ => String::new(),
    };
    pb::Study {
        study_id: row.study_id.to_string(),
        patient_id: row.patient_id.to_string(),
        study_instance_uid: row.study_uid.clone(),
        state: if receiving { pb::StudyState::Receiving } else { pb::StudyState::Complete } as i32,
        source: source(&row.received_via) as i32,
        // The shifted StudyDate lives in the stored objects only; the catalogue does not keep it.
        shifted_study_date: None,
        received_at: Some(timestamp(row.created_at)),
        completed_at: row.completed_at.map(timestamp),
        instance_count: u32::try_from(row.instance_count).unwrap_or(u32::MAX),
        series,
        selection_outcome: selection_outcome as i32,
        selected_series_id,
        processing: Some(processing(row.job.as_ref())),
        prediction_available: row.job.as_ref().is_some_and(|j| j.state == "succeeded"),
        series_count: u32::try_from(row.series_count).unwrap_or(u32::MAX),
    }
}

fn plane(plane: Plane) -> pb::Plane {
    match plane {
        Plane::Sagittal => pb::Plane::Sagittal,
        Plane::Axial => pb::Plane::Axial,
        Plane::Coronal => pb::Plane::Coronal,
        Plane::Oblique => pb::Plane::Oblique,
        Plane::Unknown => pb::Plane::Unspecified,
    }
}

fn weighting(weighting: Weighting) -> pb::Weighting {
    match weighting {
        Weighting::T2 => pb::Weighting::T2,
        Weighting::T1 => pb::Weighting::T1,
        Weighting::Stir => pb::Weighting::Stir,
        Weighting::Other => pb::Weighting::Other,
        Weighting::Unknown => pb::Weighting::Unspecified,
    }
}

/// Machine-readable reasons of a decision, from its facts and its worded reasons.
pub fn series_reasons(decision: &SeriesDecision, quarantined: i64) -> Vec<pb::SeriesReason> {
    use pb::SelectionReason as C;
    let mut reasons = Vec::new();
    let mut push = |code: C, message: &str| {
        reasons.push(pb::SeriesReason { code: code as i32, message: message.to_lowercase() });
    };
    for text in &decision.reasons {
        let lower = text.to_lowercase();
        let code =
            if lower.starts_with("no usable image orientation") || lower.contains("(0020,0032) missing") {
                Some(C::MissingGeometry)
            } else if lower.contains("degrees from the patient x axis") {
                (decision.plane != Plane::Sagittal).then_some(C::NotSagittal)
            } else if lower.contains("stir") {
                Some(C::Stir)
            } else if lower.starts_with("no tr/te") {
                Some(C::TimingMissing)
            } else if lower.starts_with("tr ") {
                (decision.weighting != Weighting::T2).then_some(C::NotT2)
            } else if lower.contains("description suggests") {
                Some(C::DescriptionConflict)
            } else if lower.contains("localizer") {
                Some(C::Localizer)
            } else if lower.contains("fewer than") {
                Some(C::TooFewSlices)
            } else if lower.contains("matrix size differs") {
                Some(C::InconsistentMatrix)
            } else if lower.contains("orientation differs")
                || lower.contains("duplicates")
                || lower.contains("irregular")
            {
                Some(C::InconsistentGeometry)
            } else if lower.starts_with("eligible t2 sagittal") {
                Some(C::T2Sagittal)
            } else if lower == "selected" {
                Some(C::BestCandidate)
            } else {
                None
            };
        if let Some(code) = code {
            push(code, text);
        }
    }
    let has = |reasons: &[pb::SeriesReason], code: C| reasons.iter().any(|r| r.code == code as i32);
    if decision.weighting != Weighting::T2
        && decision.weighting != Weighting::Stir
        && !has(&reasons, C::NotT2)
    {
        let message = format!("weighting is {:?}, not t2", decision.weighting).to_lowercase();
        reasons.push(pb::SeriesReason { code: C::NotT2 as i32, message });
    }
    if decision.eligible && !decision.selected {
        reasons.push(pb::SeriesReason {
            code: C::LowerRank as i32,
            message: "another eligible series ranked higher".into(),
        });
    }
    if quarantined > 0 {
        reasons.push(pb::SeriesReason {
            code: C::Quarantined as i32,
            message: format!("{quarantined} instance(s) of the series are quarantined"),
        });
    }
    reasons
}

/// SHA-256 over the sorted digests of the stored instances (as preprocess computes it).
fn content_sha256(row: &SeriesRow) -> String {
    let mut digests: Vec<Vec<u8>> =
        row.instances.iter().filter_map(|i| hex::decode(&i.sha256).ok()).collect();
    digests.sort_unstable();
    let mut hasher = Sha256::new();
    for digest in &digests {
        hasher.update(digest);
    }
    hex::encode(hasher.finalize())
}

/// Median distance between adjacent distinct slice positions along the slice normal.
fn slice_spacing(row: &SeriesRow) -> Option<f64> {
    let first = row.instances.first()?;
    let o = first.image.orientation?;
    let normal = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
    let mut offsets: Vec<f64> = row
        .instances
        .iter()
        .flat_map(|i| i.image.positions.iter())
        .map(|p| p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2])
        .collect();
    offsets.sort_by(f64::total_cmp);
    offsets.dedup_by(|a, b| (*a - *b).abs() < 0.01);
    let mut gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

/// A series message. `complete`: whether the study's selection has run (decisions shown).
pub fn series(row: &SeriesRow, complete: bool, rules: &SelectionRules) -> pb::Series {
    let first = row.instances.first().map(|i| &i.image);
    // Plane and weighting are facts of the series even before selection has run.
    let facts = row.decision.clone().or_else(|| {
        let input = SeriesInput {
            series_uid: row.series_uid.clone(),
            instances: row.instances.iter().map(|i| i.image.clone()).collect(),
        };
        (!input.instances.is_empty()).then(|| select(&[input], rules).decisions.remove(0))
    });
    let mut transfer_syntaxes: Vec<String> =
        row.instances.iter().map(|i| i.image.transfer_syntax.clone()).collect();
    transfer_syntaxes.sort();
    transfer_syntaxes.dedup();
    let (decision, reasons, score) = match (&row.decision, complete) {
        (Some(decision), true) => {
            let code = if decision.selected {
                pb::SeriesDecision::Selected
            } else if decision.eligible {
                pb::SeriesDecision::EligibleNotChosen
            } else {
                pb::SeriesDecision::Rejected
            };
            (code, series_reasons(decision, row.quarantined), decision.eligible.then_some(decision.score))
        }
        (None, true) => {
            let reasons = vec![pb::SeriesReason {
                code: pb::SelectionReason::Quarantined as i32,
                message: format!("all {} instance(s) of the series are quarantined", row.quarantined),
            }];
            (pb::SeriesDecision::Rejected, reasons, None)
        }
        (_, false) => (pb::SeriesDecision::Unspecified, Vec::new(), None),
    };
    let instance_count = row.instances.len() as u64 + u64::try_from(row.quarantined).unwrap_or(0);
    pb::Series {
        series_id: row.series_id.to_string(),
        series_instance_uid: row.series_uid.clone(),
        series_number: first.and_then(|i| i.series_number).and_then(|n| i32::try_from(n).ok()),
        // De-identification removes SeriesDescription (only hints are kept).
        description: String::new(),
        modality: first
            .and_then(|i| i.modality.clone())
            .or_else(|| row.quarantine_modality.clone())
            .unwrap_or_default(),
        instance_count: u32::try_from(instance_count).unwrap_or(u32::MAX),
        frame_count: row.instances.iter().map(|i| i.image.frames).sum(),
        plane: facts.as_ref().map_or(pb::Plane::Unspecified, |d| plane(d.plane)) as i32,
        weighting: facts.as_ref().map_or(pb::Weighting::Unspecified, |d| weighting(d.weighting)) as i32,
        repetition_time_ms: first.and_then(|i| i.repetition_time),
        echo_time_ms: first.and_then(|i| i.echo_time),
        slice_thickness_mm: first.and_then(|i| i.slice_thickness),
        slice_spacing_mm: slice_spacing(row),
        rows: first.map_or(0, |i| i.rows),
        columns: first.map_or(0, |i| i.columns),
        pixel_spacing_mm: first.and_then(|i| i.pixel_spacing).map(|p| p.to_vec()).unwrap_or_default(),
        transfer_syntax_uids: transfer_syntaxes,
        decision: decision as i32,
        reasons,
        score,
        content_sha256: content_sha256(row),
    }
}

/// Series in the proto's order: series number, then series_id.
pub fn sort_series(series: &mut [pb::Series]) {
    series.sort_by(|a, b| {
        a.series_number
            .unwrap_or(i32::MAX)
            .cmp(&b.series_number.unwrap_or(i32::MAX))
            .then_with(|| a.series_id.cmp(&b.series_id))
    });
}

/// A calendar date, validated.
pub fn date(field: &str, value: &common::Date) -> Result<NaiveDate, ApiError> {
    let month = u32::try_from(value.month).ok();
    let day = u32::try_from(value.day).ok();
    match (month, day) {
        (Some(month), Some(day)) if (1900..=2200).contains(&value.year) => {
            NaiveDate::from_ymd_opt(value.year, month, day)
        }
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(format!(
            "{field} {}-{}-{} is not a calendar date",
            value.year, value.month, value.day
        ))
    })
}

/// A DICOM DA (`YYYYMMDD`) as a date message.
pub fn dicom_date(text: &str) -> Option<common::Date> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y%m%d").ok()?;
    Some(common::Date {
        year: date.year(),
        month: i32::try_from(date.month()).unwrap_or(0),
        day: i32::try_from(date.day()).unwrap_or(0),
    })
}

/// A sex as stored in the vault (DICOM code).
pub fn sex_code(sex: i32) -> Option<&'static str> {
    match common::Sex::try_from(sex) {
        Ok(common::Sex::Female) => Some("F"),
        Ok(common::Sex::Male) => Some("M"),
        Ok(common::Sex::Other) => Some("O"),
        _ => None,
    }
}

/// A stored DICOM sex code as the enum.
pub fn sex(code: Option<&str>) -> common::Sex {
    match code {
        Some("F") => common::Sex::Female,
        Some("M") => common::Sex::Male,
        Some("O") => common::Sex::Other,
        _ => common::Sex::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_only_works_with_the_filters_it_was_issued_for() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let token = encode_token(at, "k", "patient=a");
        let after = decode_token(&token, "patient=a").ok().flatten();
        assert_eq!(after, Some(After { at, key: "k".to_owned() }));
        assert!(decode_token(&token, "patient=b").is_err());
        assert!(decode_token("zz-not-hex", "patient=a").is_err());
    }

    #[test]
    fn malformed_ids_are_named_in_the_message() {
        let error = uuid("study_id", "xyz").err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("study_id 'xyz' is not a UUID"));
    }

    #[test]
    fn an_impossible_date_is_refused() {
        assert!(date("identity.birth_date", &common::Date { year: 2025, month: 2, day: 30 }).is_err());
        assert!(date("identity.birth_date", &common::Date { year: 1960, month: 2, day: 29 }).is_ok());
    }
}
