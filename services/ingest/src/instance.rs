//! What ingest reads out of one instance: the identity (PHI, vault only) and the image facts (no PHI) that selection needs.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

use crate::attrs::{self, Numbers};

/// MR Image Storage.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Enhanced MR Image Storage.
pub const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";

/// Whether a SOP class UID is one of the Secondary Capture storage classes (PS3.4 B.5).
pub fn is_secondary_capture(sop_class: &str) -> bool {
    sop_class == "1.2.840.10008.5.1.4.1.1.7"
        || sop_class
            .strip_prefix("1.2.840.10008.5.1.4.1.1.7.")
            .is_some_and(|rest| matches!(rest, "1" | "2" | "3" | "4"))
}

/// Identifying values of an instance. PHI: these go to the vault tables and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// (0010,0020) Patient ID (MRN), if present.
    pub patient_id: Option<String>,
    /// (0010,0021) Issuer of Patient ID, if present.
    pub issuer_of_patient_id: Option<String>,
    /// (0010,0010) Patient's Name, if present.
    pub patient_name: Option<String>,
    /// (0010,0030) Patient's Birth Date, if present.
    pub birth_date: Option<String>,
    /// (0008,0050) Accession Number, if present.
    pub accession_number: Option<String>,
    /// (0020,000D) Study Instance UID.
    pub study_uid: String,
    /// (0020,000E) Series Instance UID.
    pub series_uid: String,
    /// (0008,0018) SOP Instance UID.
    pub sop_instance_uid: String,
}

/// Hints taken from the (identifying, hence not stored) series description before it is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptionHint {
    /// Mentions T2 (T2, T2W, t2_tse ...).
    pub t2: bool,
    /// Mentions T1.
    pub t1: bool,
    /// Mentions STIR, TIRM, or another inversion-recovery fat suppression.
    pub stir: bool,
    /// Mentions a sagittal plane.
    pub sagittal: bool,
    /// Mentions an axial or coronal plane.
    pub other_plane: bool,
    /// Mentions a localizer, scout or survey.
    pub localizer: bool,
}

impl DescriptionHint {
    /// Classifies a free-text series or protocol description.
    pub fn from_description(description: &str) -> Self {
        let lower = description.to_ascii_lowercase();
        let words: Vec<&str> =
            lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
        let any = |pred: &dyn Fn(&str) -> bool| words.iter().any(|w| pred(w));
        Self {
            t2: any(&|w| w == "t2" || w == "t2w" || w.starts_with("t2") && w.len() <= 4),
            t1: any(&|w| w == "t1" || w == "t1w" || w.starts_with("t1") && w.len() <= 4),
            stir: any(&|w| w.contains("stir") || w.contains("tirm") || w == "ir"),
            sagittal: any(&|w| w.starts_with("sag")),
            other_plane: any(&|w| w.starts_with("ax") || w.starts_with("tra") || w.starts_with("cor")),
            localizer: any(&|w| w.starts_with("loc") || w.starts_with("scout") || w.starts_with("survey")),
        }
    }
}

/// Image facts without PHI, stored with the instance and used by series selection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// SOP Class UID.
    pub sop_class: String,
    /// Modality.
    pub modality: Option<String>,
    /// Transfer syntax UID of the received file.
    pub transfer_syntax: String,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Number of frames (1 when absent).
    pub frames: u32,
    /// Samples per pixel.
    pub samples_per_pixel: u32,
    /// Bits allocated.
    pub bits_allocated: u32,
    /// Image Type values, upper case.
    pub image_type: Vec<String>,
    /// Series Number.
    pub series_number: Option<i64>,
    /// Instance Number.
    pub instance_number: Option<i64>,
    /// Image Orientation (Patient): row then column direction cosines.
    pub orientation: Option<[f64; 6]>,
    /// Image Position (Patient) of each frame (one for a classic MR instance).
    pub positions: Vec<[f64; 3]>,
    /// Pixel Spacing (row, column) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// Slice Thickness in mm.
    pub slice_thickness: Option<f64>,
    /// Repetition Time in ms.
    pub repetition_time: Option<f64>,
    /// Echo Time (or Effective Echo Time) in ms.
    pub echo_time: Option<f64>,
    /// Inversion Time in ms, when the sequence is an inversion recovery.
    pub inversion_time: Option<f64>,
    /// Scanning Sequence values (SE, IR, GR, ...).
    pub scanning_sequence: Vec<String>,
    /// Description hints (the description itself is removed by de-identification).
    pub hint: DescriptionHint,
}

impl ImageInfo {
    /// Whether the SOP class is Enhanced MR (geometry in functional groups).
    pub fn is_enhanced(&self) -> bool {
        self.sop_class == ENHANCED_MR_IMAGE_STORAGE
    }
}

/// Reads the identity; the three instance-hierarchy UIDs are required.
pub fn read_identity(obj: &InMemDicomObject) -> Result<Identity, &'static str> {
    let study_uid =
        attrs::text(obj, tags::STUDY_INSTANCE_UID).ok_or("study instance UID (0020,000D) is missing")?;
    let series_uid =
        attrs::text(obj, tags::SERIES_INSTANCE_UID).ok_or("series instance UID (0020,000E) is missing")?;
    let sop_instance_uid =
        attrs::text(obj, tags::SOP_INSTANCE_UID).ok_or("SOP instance UID (0008,0018) is missing")?;
    Ok(Identity {
        patient_id: attrs::text(obj, tags::PATIENT_ID),
        issuer_of_patient_id: attrs::text(obj, tags::ISSUER_OF_PATIENT_ID),
        patient_name: attrs::text(obj, tags::PATIENT_NAME),
        birth_date: attrs::text(obj, tags::PATIENT_BIRTH_DATE),
        accession_number: attrs::text(obj, tags::ACCESSION_NUMBER),
        study_uid,
        series_uid,
        sop_instance_uid,
    })
}

fn fixed<const N: usize>(numbers: Numbers) -> Option<[f64; N]> {
    match numbers {
        Numbers::Values(values) if values.len() >= N && values.iter().all(|v| v.is_finite()) => {
            let mut out = [0.0; N];
            out.copy_from_slice(&values[..N]);
            Some(out)
        }
        _ => None,
    }
}

fn first_finite(numbers: Numbers) -> Option<f64> {
    match numbers {
        Numbers::Values(values) => values.first().copied().filter(|v| v.is_finite()),
        Numbers::Absent | Numbers::Invalid => None,
    }
}

const PLANE_ORIENTATION_SEQUENCE: Tag = Tag(0x0020, 0x9116);
const PLANE_POSITION_SEQUENCE: Tag = Tag(0x0020, 0x9113);
const PIXEL_MEASURES_SEQUENCE: Tag = Tag(0x0028, 0x9110);
const MR_TIMING_SEQUENCE: Tag = Tag(0x0018, 0x9112);
const MR_ECHO_SEQUENCE: Tag = Tag(0x0018, 0x9114);
const MR_MODIFIER_SEQUENCE: Tag = Tag(0x0018, 0x9115);
const EFFECTIVE_ECHO_TIME: Tag = Tag(0x0018, 0x9082);
const INVERSION_TIMES: Tag = Tag(0x0018, 0x9079);

/// Reads the image facts (top level, or functional groups for Enhanced MR).
pub fn read_image_info(obj: &InMemDicomObject, sop_class: &str, transfer_syntax: &str) -> ImageInfo {
    let description = [tags::SERIES_DESCRIPTION, tags::PROTOCOL_NAME]
        .iter()
        .filter_map(|tag| attrs::text(obj, *tag))
        .collect::<Vec<_>>()
        .join(" ");
    let orientation =
        fixed::<6>(attrs::numbers_anywhere(obj, PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT));
    let mut positions: Vec<[f64; 3]> = attrs::items(obj, attrs::PER_FRAME_FUNCTIONAL_GROUPS)
        .iter()
        .filter_map(|frame| {
            let plane = attrs::items(frame, PLANE_POSITION_SEQUENCE).first()?;
            fixed::<3>(attrs::numbers(plane, tags::IMAGE_POSITION_PATIENT))
        })
        .collect();
    if positions.is_empty() {
        positions.extend(fixed::<3>(attrs::numbers_anywhere(
            obj,
            PLANE_POSITION_SEQUENCE,
            tags::IMAGE_POSITION_PATIENT,
        )));
    }
    let echo_time = first_finite(attrs::numbers(obj, tags::ECHO_TIME))
        .or_else(|| first_finite(attrs::numbers_anywhere(obj, MR_ECHO_SEQUENCE, EFFECTIVE_ECHO_TIME)));
    let inversion_time = first_finite(attrs::numbers(obj, tags::INVERSION_TIME))
        .or_else(|| first_finite(attrs::numbers_anywhere(obj, MR_MODIFIER_SEQUENCE, INVERSION_TIMES)));
    let integer = |tag| attrs::number(obj, tag).filter(|v| v.fract() == 0.0).map(|v| v as i64);
    ImageInfo {
        sop_class: sop_class.to_string(),
        modality: attrs::text(obj, tags::MODALITY),
        transfer_syntax: transfer_syntax.to_string(),
        rows: attrs::unsigned(obj, tags::ROWS).unwrap_or(0),
        columns: attrs::unsigned(obj, tags::COLUMNS).unwrap_or(0),
        frames: attrs::unsigned(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1),
        samples_per_pixel: attrs::unsigned(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1),
        bits_allocated: attrs::unsigned(obj, tags::BITS_ALLOCATED).unwrap_or(0),
        image_type: attrs::texts(obj, tags::IMAGE_TYPE).into_iter().map(|v| v.to_ascii_uppercase()).collect(),
        series_number: integer(tags::SERIES_NUMBER),
        instance_number: integer(tags::INSTANCE_NUMBER),
        orientation,
        positions,
        pixel_spacing: fixed::<2>(attrs::numbers_anywhere(obj, PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)),
        slice_thickness: first_finite(attrs::numbers_anywhere(
            obj,
            PIXEL_MEASURES_SEQUENCE,
            tags::SLICE_THICKNESS,
        )),
        repetition_time: first_finite(attrs::numbers_anywhere(
            obj,
            MR_TIMING_SEQUENCE,
            tags::REPETITION_TIME,
        )),
        echo_time,
        inversion_time,
        scanning_sequence: attrs::texts(obj, tags::SCANNING_SEQUENCE),
        hint: DescriptionHint::from_description(&description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_descriptions_are_classified() {
        for text in ["T2 SAG", "SAG T2 TSE", "t2_tse_sag_384", "T2W_TSE SAG"] {
            let hint = DescriptionHint::from_description(text);
            assert!(hint.t2 && hint.sagittal && !hint.stir, "{text}");
        }
        let stir = DescriptionHint::from_description("SAG STIR");
        assert!(stir.stir && !stir.t2);
        let tirm = DescriptionHint::from_description("t2_tirm_sag");
        assert!(tirm.stir);
    }

    #[test]
    fn secondary_capture_classes_are_recognised() {
        assert!(is_secondary_capture("1.2.840.10008.5.1.4.1.1.7"));
        assert!(is_secondary_capture("1.2.840.10008.5.1.4.1.1.7.4"));
        assert!(!is_secondary_capture(MR_IMAGE_STORAGE));
        assert!(!is_secondary_capture("1.2.840.10008.5.1.4.1.1.77.1"));
    }
}
