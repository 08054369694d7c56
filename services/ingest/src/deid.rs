//! De-identification of a parsed instance per DICOM PS3.15 E.2 Basic Profile with the Retain Longitudinal Temporal Information Modified Dates and Retain Patient Characteristics options.
//!
//! Decisions this module makes (the conformance statement, E.3.6 asks for it):
//! - Effective action per attribute: the Retain Patient Characteristics column, else the Modified
//!   Dates column, else the Basic Profile (see `deid_table`).
//! - Compound codes are resolved from the attribute's Type in the MR Image / Enhanced MR Image
//!   IODs (PS3.3 A.4, A.36.2): every compound-coded attribute is Type 3 or absent there, hence
//!   `X`, except: Patient ID (Type 2: `Z`, given the surrogate id as its non-identifying dummy),
//!   Contrast/Bolus Agent and Content Creator's Name (Type 2: `Z`), Acquisition Context Sequence
//!   (Type 2 in Enhanced MR: `Z`), Device Serial Number (Type 1 in Enhanced MR's Enhanced General
//!   Equipment module: `D`), and Referenced Image / Source Image Sequence (`X/Z/U*`: Type 3 at the
//!   top level, so `X`; Type 1 inside functional group macros, so kept with their UIDs replaced).
//! - `C` on DA and DT: one whole-day shift per patient (random, stored in the vault), applied to
//!   the date part; the time part, TM values and the UTC offset of a DT are unchanged, so
//!   intervals inside a day survive. An unparseable date becomes empty. `C` on the version DTs
//!   (0008,0106)/(0008,0107) keeps them (they date a coding resource, not the patient).
//!   `C` on free text (Allergies, Patient State, Special Needs, Pre-Medication, Sex Parameters
//!   comment) and on (0008,0201) Timezone Offset: removed (free text cannot be cleaned reliably;
//!   removal is the Basic Profile action). `C` on a sequence: recurse.
//! - Attributes the table does not list: sequences are recursed into; PN values are removed;
//!   DA/DT are shifted and TM kept (E.1.1 Note 4); tags unknown to the standard dictionary
//!   are removed; other standard attributes (geometry, timing, pixel description) are kept.
//! - Private attributes (odd groups, creators included) and group 0004 are removed at every depth.
//! - UIDs: `2.25.<decimal of a 128-bit HMAC-SHA256 of the UID under a per-deployment key>`, so
//!   the same original UID maps to the same new UID in every instance, across runs.
//! - Added: (0012,0062) YES, (0012,0063) one value per profile/option, (0012,0064) the codes of
//!   CID 7050: DCM 113100 Basic Application Confidentiality Profile, 113107 Retain Longitudinal
//!   Temporal Information Modified Dates Option (113106 is the Full Dates option, not used),
//!   113108 Retain Patient Characteristics Option; (0028,0303) MODIFIED; Patient ID and
//!   Patient's Name set to the surrogate patient UUID. File meta rebuilt, preamble zeroed.

use std::io::Write;

use chrono::{Days, NaiveDate};
use dicom_core::dictionary::DataDictionary;
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::deid_table::{Action, PROFILE, ProfileTable};
use crate::instance::ENHANCED_MR_IMAGE_STORAGE;

/// Our implementation class UID (2.25 form of a fixed UUID) and version name in the file meta.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.232381390442567045712633917355428718131";
/// Implementation version name written to the file meta.
pub const IMPLEMENTATION_VERSION_NAME: &str = "TFESI_INGEST_01";

/// Per-patient and per-deployment inputs of de-identification.
#[derive(Debug, Clone)]
pub struct DeidContext {
    /// Surrogate patient id (random UUID from the vault).
    pub surrogate_patient_id: Uuid,
    /// Whole days added to every date of this patient (negative: into the past).
    pub date_shift_days: i32,
    /// Per-deployment HMAC key for UID replacement (from the vault).
    pub uid_key: Vec<u8>,
}

/// Errors of de-identification.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// The embedded Annex E table did not parse.
    #[error("de-identification table is unusable: {0}")]
    Table(String),
    /// The rebuilt file meta was refused.
    #[error("cannot build file meta: {0}")]
    Meta(String),
    /// Encoding the de-identified instance failed.
    #[error("cannot encode the de-identified instance: {0}")]
    Encode(String),
}

/// Maps an original UID to its replacement: `2.25.` + a 128-bit keyed hash (as a version 8 UUID).
pub fn remap_uid(key: &[u8], uid: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be reached
        return format!("2.25.{}", Uuid::nil().as_u128());
    };
    mac.update(uid.trim_end_matches(['\0', ' ']).as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let uuid = uuid::Builder::from_custom_bytes(first).into_uuid();
    format!("2.25.{}", uuid.as_u128())
}

/// Shifts a DA value (YYYYMMDD) by whole days; `None` if it is not a full date.
pub fn shift_date(value: &str, days: i32) -> Option<String> {
    let date = NaiveDate::parse_from_str(value.get(..8)?, "%Y%m%d").ok()?;
    let shifted = if days >= 0 {
        date.checked_add_days(Days::new(u64::from(days.unsigned_abs())))?
    } else {
        date.checked_sub_days(Days::new(u64::from(days.unsigned_abs())))?
    };
    Some(format!("{}{}", shifted.format("%Y%m%d"), &value[8..]))
}

/// De-identified result of one instance.
#[derive(Debug)]
pub struct Deidentified {
    /// The de-identified object.
    pub object: DefaultDicomObject,
    /// Its Part 10 encoding (what gets stored).
    pub bytes: Vec<u8>,
    /// New Study Instance UID.
    pub study_uid: String,
    /// New Series Instance UID.
    pub series_uid: String,
    /// New SOP Instance UID.
    pub sop_instance_uid: String,
}

struct Walker<'a> {
    table: &'a ProfileTable,
    ctx: &'a DeidContext,
    enhanced: bool,
}

/// De-identifies a parsed instance and encodes it in its original transfer syntax.
pub fn deidentify(object: DefaultDicomObject, ctx: &DeidContext) -> Result<Deidentified, DeidError> {
    let table = PROFILE.as_ref().map_err(|e| DeidError::Table(e.clone()))?;
    let meta = object.meta().clone();
    let dataset = object.into_inner();
    let sop_class = crate::attrs::text(&dataset, tags::SOP_CLASS_UID)
        .unwrap_or_else(|| meta.media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    let walker = Walker { table, ctx, enhanced: sop_class == ENHANCED_MR_IMAGE_STORAGE };
    let mut clean = walker.dataset(dataset, 0);
    add_markers(&mut clean, ctx);
    let study_uid = crate::attrs::text(&clean, tags::STUDY_INSTANCE_UID).unwrap_or_default();
    let series_uid = crate::attrs::text(&clean, tags::SERIES_INSTANCE_UID).unwrap_or_default();
    let sop_instance_uid = crate::attrs::text(&clean, tags::SOP_INSTANCE_UID).unwrap_or_default();
    let new_meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance_uid.clone())
        .transfer_syntax(meta.transfer_syntax().trim_end_matches('\0'))
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| DeidError::Meta(e.to_string()))?;
    let object = clean.with_exact_meta(new_meta);
    let bytes = encode_part10(&object)?;
    Ok(Deidentified { object, bytes, study_uid, series_uid, sop_instance_uid })
}

/// Deflated Explicit VR Little Endian.
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

/// The Part 10 encoding of `object` in the transfer syntax of its meta.
///
/// dicom-object writes a deflated data set element by element straight into flate2's
/// `DeflateEncoder`, and with the miniz_oxide backend every `write` zeroes the encoder's 32 KiB
/// output buffer: a few thousand small writes made that memset about half of ingest's CPU. A
/// deflated data set is therefore encoded uncompressed first and compressed in one write with
/// the same settings (level 1, a sync flush, then the end of the stream), which gives the same
/// bytes (`deflated_output_matches_dicom_objects_writer` checks it).
fn encode_part10(object: &DefaultDicomObject) -> Result<Vec<u8>, DeidError> {
    let encode_error = |e: &dyn std::fmt::Display| DeidError::Encode(e.to_string());
    if object.meta().transfer_syntax().trim_end_matches('\0') != DEFLATED_EXPLICIT_VR_LE {
        let mut bytes = Vec::new();
        object.write_all(&mut bytes).map_err(|e| encode_error(&e))?;
        return Ok(bytes);
    }
    let mut dataset = Vec::new();
    object
        .write_dataset_with_ts(&mut dataset, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| encode_error(&e))?;
    let mut bytes = Vec::with_capacity(dataset.len() / 2 + 1024);
    bytes.extend_from_slice(&[0u8; 128]);
    bytes.extend_from_slice(b"DICM");
    object.write_meta(&mut bytes).map_err(|e| encode_error(&e))?;
    let mut encoder = DeflateEncoder::new(bytes, Compression::fast());
    encoder.write_all(&dataset).map_err(|e| encode_error(&e))?;
    encoder.flush().map_err(|e| encode_error(&e))?;
    encoder.finish().map_err(|e| encode_error(&e))
}

fn add_markers(obj: &mut InMemDicomObject, ctx: &DeidContext) {
    let surrogate = ctx.surrogate_patient_id.to_string();
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, surrogate.as_str()));
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, surrogate.as_str()));
    obj.put(DataElement::new(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::Strs(
            [
                "DICOM PS3.15 2026c Basic Application Confidentiality Profile",
                "Retain Longitudinal Temporal Information Modified Dates Option",
                "Retain Patient Characteristics Option",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
    ));
    let codes = [
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113108", "Retain Patient Characteristics Option"),
    ];
    let items: Vec<InMemDicomObject> = codes
        .iter()
        .map(|(value, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(tags::CODE_VALUE, VR::SH, *value),
                DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM"),
                DataElement::new(tags::CODE_MEANING, VR::LO, *meaning),
            ])
        })
        .collect();
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        VR::SQ,
        Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
    ));
    obj.put(DataElement::new(tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, VR::CS, "MODIFIED"));
}

/// The simple action after resolving compound codes for this IOD and nesting depth.
fn resolve(action: Action, tag: Tag, enhanced: bool, depth: usize) -> Action {
    match action {
        Action::ZD | Action::XZ | Action::XD | Action::XZD | Action::XZUStar => {}
        simple => return simple,
    }
    match (action, tag) {
        (Action::ZD, _) => Action::Z,
        (Action::XZ, Tag(0x0040, 0x0555)) if enhanced && depth == 0 => Action::Z,
        (Action::XZD, Tag(0x0018, 0x1000)) if enhanced => Action::D,
        (Action::XZUStar, _) if depth > 0 => Action::K,
        _ => Action::X,
    }
}

impl Walker<'_> {
    fn dataset(&self, obj: InMemDicomObject, depth: usize) -> InMemDicomObject {
        let elements: Vec<InMemElement> =
            obj.into_iter().filter_map(|element| self.element(element, depth)).collect();
        InMemDicomObject::from_element_iter(elements)
    }

    fn element(&self, element: InMemElement, depth: usize) -> Option<InMemElement> {
        let tag = element.tag();
        if tag.0 % 2 == 1 || tag.0 == 0x0004 || tag.0 == 0x0002 {
            return None;
        }
        let vr = element.vr();
        let listed = self.table.action(tag);
        let action = match listed {
            Some(action) => resolve(action, tag, self.enhanced, depth),
            None => self.unlisted(tag, vr),
        };
        match action {
            Action::X => None,
            Action::Z => Some(empty(tag, vr)),
            Action::D => Some(self.dummy(tag, vr)),
            Action::U => Some(self.remap(element)),
            Action::K => Some(self.keep(element, depth)),
            Action::C => self.clean(element, depth),
            Action::ZD | Action::XZ | Action::XD | Action::XZD | Action::XZUStar => None,
        }
    }

    fn unlisted(&self, tag: Tag, vr: VR) -> Action {
        match vr {
            VR::SQ => Action::K,
            VR::PN => Action::X,
            VR::DA | VR::DT => Action::C,
            _ if StandardDataDictionary.by_tag(tag).is_none() => Action::X,
            _ => Action::K,
        }
    }

    fn keep(&self, element: InMemElement, depth: usize) -> InMemElement {
        let (header, value) = element.into_parts();
        match value {
            Value::Sequence(sequence) => {
                let items: Vec<InMemDicomObject> =
                    sequence.into_items().into_iter().map(|item| self.dataset(item, depth + 1)).collect();
                DataElement::new(
                    header.tag,
                    VR::SQ,
                    Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
                )
            }
            other => DataElement::new_with_len(header.tag, header.vr, header.len, other),
        }
    }

    fn clean(&self, element: InMemElement, depth: usize) -> Option<InMemElement> {
        let tag = element.tag();
        match element.vr() {
            VR::SQ => Some(self.keep(element, depth)),
            VR::TM => Some(element),
            VR::DT if matches!(tag, Tag(0x0008, 0x0106) | Tag(0x0008, 0x0107)) => Some(element),
            VR::DA | VR::DT => Some(self.shift(element)),
            _ => None,
        }
    }

    fn shift(&self, element: InMemElement) -> InMemElement {
        let tag = element.tag();
        let vr = element.vr();
        let text = element.to_str().map(|s| s.to_string()).unwrap_or_default();
        let shifted: Option<Vec<String>> = text
            .split('\\')
            .map(|part| part.trim_matches(|c: char| c == '\0' || c == ' '))
            .filter(|part| !part.is_empty())
            .map(|part| shift_date(part, self.ctx.date_shift_days))
            .collect();
        match shifted {
            Some(values) if !values.is_empty() => {
                DataElement::new(tag, vr, PrimitiveValue::Strs(values.into_iter().collect()))
            }
            _ => empty(tag, vr),
        }
    }

    fn remap(&self, element: InMemElement) -> InMemElement {
        let tag = element.tag();
        let text = element.to_str().map(|s| s.to_string()).unwrap_or_default();
        let values: Vec<String> = text
            .split('\\')
            .map(|uid| uid.trim_matches(|c: char| c == '\0' || c == ' '))
            .filter(|uid| !uid.is_empty())
            .map(|uid| remap_uid(&self.ctx.uid_key, uid))
            .collect();
        if values.is_empty() {
            return empty(tag, VR::UI);
        }
        DataElement::new(tag, VR::UI, PrimitiveValue::Strs(values.into_iter().collect()))
    }

    fn dummy(&self, tag: Tag, vr: VR) -> InMemElement {
        let value: PrimitiveValue = match vr {
            VR::UI => remap_uid(&self.ctx.uid_key, &format!("dummy-{tag}")).into(),
            VR::DA => "19000101".into(),
            VR::DT => "19000101000000".into(),
            VR::TM => "000000".into(),
            VR::AS => "000D".into(),
            VR::DS | VR::IS => "0".into(),
            VR::AE | VR::CS => "ANONYMIZED".into(),
            VR::US | VR::SS | VR::UL | VR::SL | VR::FL | VR::FD | VR::UV | VR::SV | VR::AT => {
                PrimitiveValue::U16([0].into_iter().collect())
            }
            VR::SQ => {
                return DataElement::new(
                    tag,
                    VR::SQ,
                    Value::from(DataSetSequence::new(vec![InMemDicomObject::new_empty()], Length::UNDEFINED)),
                );
            }
            VR::OB | VR::OW | VR::OD | VR::OF | VR::OL | VR::OV | VR::UN => {
                PrimitiveValue::U8([0, 0].into_iter().collect())
            }
            _ => "ANONYMIZED".into(),
        };
        let vr =
            if matches!(vr, VR::US | VR::SS | VR::UL | VR::SL | VR::FL | VR::FD | VR::UV | VR::SV | VR::AT) {
                VR::US
            } else if matches!(vr, VR::OD | VR::OF | VR::OL | VR::OV | VR::UN) {
                VR::OB
            } else {
                vr
            };
        DataElement::new(tag, vr, value)
    }
}

fn empty(tag: Tag, vr: VR) -> InMemElement {
    if vr == VR::SQ {
        return DataElement::new(
            tag,
            VR::SQ,
            Value::from(DataSetSequence::<InMemDicomObject>::new(Vec::new(), Length::UNDEFINED)),
        );
    }
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_by_whole_days_and_keep_the_time_part() {
        assert_eq!(shift_date("20240301", -1).as_deref(), Some("20240229"));
        assert_eq!(shift_date("20240301101530.25+0100", 10).as_deref(), Some("20240311101530.25+0100"));
        assert_eq!(shift_date("2024", 10), None);
    }

    #[test]
    fn uid_replacement_is_consistent_and_keyed() {
        let a = remap_uid(b"key-1", "1.2.3.4");
        assert_eq!(a, remap_uid(b"key-1", "1.2.3.4\0"));
        assert_ne!(a, remap_uid(b"key-2", "1.2.3.4"));
        assert_ne!(a, remap_uid(b"key-1", "1.2.3.5"));
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn compound_codes_resolve_by_iod_type() {
        assert_eq!(resolve(Action::ZD, tags::PATIENT_ID, false, 0), Action::Z);
        assert_eq!(resolve(Action::XZD, tags::DEVICE_SERIAL_NUMBER, true, 0), Action::D);
        assert_eq!(resolve(Action::XZD, tags::DEVICE_SERIAL_NUMBER, false, 0), Action::X);
        assert_eq!(resolve(Action::XZUStar, tags::SOURCE_IMAGE_SEQUENCE, true, 0), Action::X);
        assert_eq!(resolve(Action::XZUStar, tags::SOURCE_IMAGE_SEQUENCE, true, 2), Action::K);
    }

    #[test]
    fn deflated_output_matches_dicom_objects_writer() {
        let options = tfesi_synth::PatientOptions {
            phi_canaries: true,
            transfer_syntax: Some(tfesi_synth::protocol::TransferSyntaxKind::DeflatedExplicitLittle),
            ..Default::default()
        };
        let study = tfesi_synth::generate_patient(3, 1, &options).expect("synthetic study");
        let ctx = DeidContext {
            surrogate_patient_id: Uuid::new_v4(),
            date_shift_days: -40,
            uid_key: b"test-deployment-key".to_vec(),
        };
        let limits = crate::parse::ParseLimits::default();
        let mut compared = 0;
        for file in study.files.iter().step_by(5) {
            let parsed = crate::parse::parse_instance(file.bytes.clone().into(), &limits).expect("parses");
            let out = deidentify(parsed.object, &ctx).expect("de-identifies");
            assert_eq!(out.object.meta().transfer_syntax().trim_end_matches('\0'), DEFLATED_EXPLICIT_VR_LE);
            let mut reference = Vec::new();
            out.object.write_all(&mut reference).expect("dicom-object writes it");
            assert!(
                out.bytes == reference,
                "instance {} differs from dicom-object's encoding",
                file.instance_number
            );
            compared += 1;
        }
        assert!(compared >= 3, "compared {compared} instances");
    }
}
