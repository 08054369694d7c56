//! Synthetic patients as the platform's API callers see them: the episode, injection and
//! follow-up mappings live in `tfesi_synth::api` (shared with `tfesi demo`); the upload of a
//! study over gRPC is here.

use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::registry::v1 as registry;

pub use tfesi_synth::api::{date, episode_details, follow_up, injection_details};

/// A calendar day as the protos carry it.
pub fn proto_date(day: chrono::NaiveDate) -> common::Date {
    use chrono::Datelike as _;
    let number = |value: u32| i32::try_from(value).expect("month and day are small");
    common::Date { year: day.year(), month: number(day.month()), day: number(day.day()) }
}

/// Fixed baseline facts (herniated disc, L4-L5 left, leg NRS 8) for tests where the cohort's
/// variety does not matter, only that the episode is valid.
pub fn fixed_episode_details(patient_id: String, age_years: i32) -> registry::EpisodeDetails {
    registry::EpisodeDetails {
        patient_id,
        study_id: String::new(),
        indication: common::Indication::HerniatedDisc as i32,
        planned_levels: vec![common::SpinalLevel::L4L5 as i32],
        planned_side: common::Side::Left as i32,
        baseline_leg_nrs: 8,
        baseline_back_nrs: Some(5),
        symptom_duration_days: 60,
        age_years,
        sex: common::Sex::Female as i32,
        baseline_date: None,
    }
}

/// A fluoroscopy-guided dexamethasone injection at L4-L5 left on `day`, matching
/// [`fixed_episode_details`].
pub fn fixed_injection(day: chrono::NaiveDate) -> registry::InjectionDetails {
    registry::InjectionDetails {
        injection_date: Some(proto_date(day)),
        levels: vec![common::SpinalLevel::L4L5 as i32],
        side: common::Side::Left as i32,
        approach: registry::Approach::Subpedicular as i32,
        guidance: registry::Guidance::Fluoroscopy as i32,
        contrast_used: true,
        drug_code: "dexamethasone".to_owned(),
        drug_text: "dexamethasone 10 mg".to_owned(),
        dose_mg: 10.0,
        local_anaesthetic: "lidocaine 1% 2 mL".to_owned(),
    }
}

/// The upload stream of a set of Part 10 files: begin, chunks of `chunk_bytes`, end, per file.
pub fn upload_messages(files: &[Vec<u8>], chunk_bytes: usize) -> Vec<ingest::UploadRequest> {
    let mut messages = Vec::new();
    let part = |part| ingest::UploadRequest { part: Some(part) };
    for (index, bytes) in files.iter().enumerate() {
        messages.push(part(ingest::upload_request::Part::Begin(ingest::InstanceBegin {
            client_ref: format!("file-{index:04}"),
            declared_size_bytes: bytes.len() as u64,
            sha256: None,
        })));
        for chunk in bytes.chunks(chunk_bytes.max(1)) {
            messages.push(part(ingest::upload_request::Part::Chunk(chunk.to_vec())));
        }
        messages.push(part(ingest::upload_request::Part::End(ingest::InstanceEnd {})));
    }
    messages
}
