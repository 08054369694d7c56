//! Synthetic patients as the platform's API callers see them: the episode an app would register
//! for a synthetic patient, and the upload of its study over gRPC.

use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::registry::v1 as registry;
use tfesi_synth::CohortRow;
use tfesi_synth::latent::{Indication, InjectionSide};

/// `YYYY-MM-DD` to a proto date.
pub fn date(iso: &str) -> Option<common::Date> {
    let mut parts = iso.split('-').map(|part| part.parse::<i32>().ok());
    Some(common::Date { year: parts.next()??, month: parts.next()??, day: parts.next()?? })
}

fn level(index: usize) -> common::SpinalLevel {
    match index {
        0 => common::SpinalLevel::L1L2,
        1 => common::SpinalLevel::L2L3,
        2 => common::SpinalLevel::L3L4,
        3 => common::SpinalLevel::L4L5,
        _ => common::SpinalLevel::L5S1,
    }
}

/// The episode an app registers for a synthetic patient (baseline taken on the study date).
pub fn episode_details(row: &CohortRow, patient_id: &str) -> registry::EpisodeDetails {
    let clinical = &row.clinical;
    let mut levels = vec![level(clinical.level) as i32];
    levels.extend(clinical.second_level.map(|second| level(second) as i32));
    registry::EpisodeDetails {
        patient_id: patient_id.to_owned(),
        study_id: String::new(),
        indication: match clinical.indication {
            Indication::HerniatedDisc => common::Indication::HerniatedDisc,
            Indication::Stenosis => common::Indication::SpinalStenosis,
        } as i32,
        planned_levels: levels,
        planned_side: match clinical.side {
            InjectionSide::Left => common::Side::Left,
            InjectionSide::Right => common::Side::Right,
            InjectionSide::Bilateral => common::Side::Bilateral,
        } as i32,
        baseline_leg_nrs: i32::from(clinical.baseline_leg_nrs),
        baseline_back_nrs: Some(i32::from(clinical.baseline_back_nrs)),
        symptom_duration_days: i32::try_from(clinical.symptom_weeks * 7).unwrap_or(i32::MAX),
        age_years: i32::try_from(clinical.age_years).unwrap_or(i32::MAX),
        sex: if clinical.female { common::Sex::Female } else { common::Sex::Male } as i32,
        baseline_date: date(&row.study_date),
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
