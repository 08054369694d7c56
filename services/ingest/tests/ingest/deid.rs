//! De-identification on the corpus, on a hand-made instance with nested PHI, and on synthetic studies with PHI canaries.

use std::collections::HashMap;

use bytes::Bytes;
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use tfesi_ingest::deid::{DeidContext, deidentify, remap_uid, shift_date};
use tfesi_ingest::deid_table::{Action, PROFILE};
use tfesi_ingest::{ParseLimits, parse_instance};
use uuid::Uuid;

use crate::corpus::corpus_file;

fn context(shift: i32) -> DeidContext {
    DeidContext {
        surrogate_patient_id: Uuid::new_v4(),
        date_shift_days: shift,
        uid_key: b"test-deployment-key".to_vec(),
    }
}

/// path -> (vr, value text) for every primitive element at every depth.
fn flatten(obj: &InMemDicomObject, prefix: &str, out: &mut HashMap<String, (Tag, VR, String)>) {
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}/{:04X}{:04X}", tag.0, tag.1);
        match element.value() {
            Value::Sequence(seq) => {
                out.insert(path.clone(), (tag, VR::SQ, String::new()));
                for (i, item) in seq.items().iter().enumerate() {
                    flatten(item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Primitive(p) => {
                out.insert(path, (tag, element.vr(), p.to_str().trim_end_matches(['\0', ' ']).to_string()));
            }
            Value::PixelSequence(_) => {}
        }
    }
}

fn days_between(before: &str, after: &str) -> i64 {
    let parse = |s: &str| chrono::NaiveDate::parse_from_str(&s[..8], "%Y%m%d").unwrap();
    (parse(after) - parse(before)).num_days()
}

/// Checks every promise of the profile between an original and its de-identified bytes.
fn check(original_bytes: Bytes, ctx: &DeidContext, canaries: &[&[u8]]) -> usize {
    let parsed = parse_instance(original_bytes, &ParseLimits::default()).unwrap();
    let identity = parsed.identity.clone();
    let mut before = HashMap::new();
    flatten(&parsed.object, "", &mut before);
    let out = deidentify(parsed.object, ctx).unwrap();
    assert_eq!(&out.bytes[..128], &[0u8; 128][..], "preamble replaced");
    let reread =
        OpenFileOptions::new().read_preamble(ReadPreamble::Never).from_reader(&out.bytes[128..]).unwrap();
    let mut after = HashMap::new();
    flatten(&reread, "", &mut after);
    let table = PROFILE.as_ref().unwrap();
    let surrogate = ctx.surrogate_patient_id.to_string();
    let mut nested_dates = 0;
    for (path, (tag, vr, value)) in &after {
        assert!(tag.0 % 2 == 0, "private tag {path} survived");
        if *tag == tags::PATIENT_ID || *tag == tags::PATIENT_NAME {
            assert_eq!(value, &surrogate);
            continue;
        }
        let listed = table.action(*tag);
        if *tag == tags::DEVICE_SERIAL_NUMBER && listed == Some(Action::XZD) {
            // Type 1 in Enhanced MR: D, a dummy that differs from the original
            assert_ne!(Some(value), before.get(path).map(|b| &b.2), "{path}");
            assert!(!value.is_empty(), "{path}");
            continue;
        }
        match listed {
            Some(Action::X | Action::XD | Action::XZD | Action::XZ) => {
                panic!("{path}: action X attribute present")
            }
            Some(Action::Z) => assert!(value.is_empty(), "{path}: Z attribute has a value"),
            Some(Action::U) => {
                let original = &before.get(path).unwrap().2;
                let expected: Vec<String> = original
                    .split('\\')
                    .filter(|uid| !uid.is_empty())
                    .map(|uid| remap_uid(&ctx.uid_key, uid))
                    .collect();
                assert_eq!(value, &expected.join("\\"), "{path}");
            }
            _ => {}
        }
        if matches!(vr, VR::DA | VR::DT)
            && !value.is_empty()
            && let Some((_, _, original)) = before.get(path)
        {
            {
                assert_eq!(days_between(original, value), i64::from(ctx.date_shift_days), "{path}");
                assert_eq!(shift_date(original, ctx.date_shift_days).as_deref(), Some(value.as_str()));
                if path.matches('[').count() > 0 {
                    nested_dates += 1;
                }
            }
        }
    }
    let contains = |needle: &[u8]| !needle.is_empty() && out.bytes.windows(needle.len()).any(|w| w == needle);
    for identifier in [
        Some(&identity.sop_instance_uid),
        Some(&identity.study_uid),
        identity.patient_name.as_ref(),
        identity.patient_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!contains(identifier.as_bytes()), "original identifier survived in the bytes");
    }
    for canary in canaries {
        assert!(!contains(canary), "canary {} found in output", String::from_utf8_lossy(canary));
    }
    assert_eq!(text(&reread, tags::PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"));
    assert_eq!(out.sop_instance_uid, remap_uid(&ctx.uid_key, &identity.sop_instance_uid));
    nested_dates
}

pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    tfesi_ingest::attrs::text(obj, tag)
}

#[test]
fn corpus_instances_are_deidentified_per_the_profile() {
    for name in [
        "MR_small",
        "MR_small_implicit",
        "MR_small_bigendian",
        "MR_small_RLE",
        "emri_small",
        "emri_small_jpeg_2k_lossless",
        "MR-SIEMENS-DICOM-WithOverlays",
        "image_dfl",
    ] {
        let ctx = context(-400);
        check(corpus_file(&format!("valid/{name}.dcm")), &ctx, &[]);
    }
}

fn with_nested_phi() -> Bytes {
    let parsed = parse_instance(corpus_file("valid/MR_small.dcm"), &ParseLimits::default()).unwrap();
    let mut obj = parsed.object;
    let inner = InMemDicomObject::from_element_iter([
        DataElement::new(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.4"),
        DataElement::new(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5.6.7.8.9"),
        DataElement::new(tags::INSTANCE_CREATION_DATE, VR::DA, "20230115"),
        DataElement::new(tags::OPERATORS_NAME, VR::PN, "CANARY-OPERATOR"),
        DataElement::new(Tag(0x0029, 0x0010), VR::LO, "CANARY PRIVATE CREATOR"),
        DataElement::new(Tag(0x0029, 0x1001), VR::LO, "CANARY-PRIVATE"),
    ]);
    let frame = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOURCE_IMAGE_SEQUENCE,
            VR::SQ,
            Value::from(DataSetSequence::new(vec![inner], Length::UNDEFINED)),
        ),
        DataElement::new(tags::FRAME_ACQUISITION_DATE_TIME, VR::DT, "20230115101010"),
    ]);
    obj.put(DataElement::new(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        Value::from(DataSetSequence::new(vec![frame], Length::UNDEFINED)),
    ));
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, "CANARY^PATIENT"));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, "CANARY-MRN-1"));
    obj.put(DataElement::new(tags::ACCESSION_NUMBER, VR::SH, "CANARY-ACC"));
    obj.put(DataElement::new(tags::INSTITUTION_NAME, VR::LO, "CANARY HOSPITAL"));
    obj.put(DataElement::new(tags::STUDY_DATE, VR::DA, "20230115"));
    obj.put(DataElement::new(tags::PATIENT_AGE, VR::AS, "054Y"));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}

#[test]
fn nested_phi_is_removed_and_nested_dates_shift_by_the_same_days() {
    let ctx = context(-1234);
    let nested = check(with_nested_phi(), &ctx, &[b"CANARY"]);
    assert!(nested >= 1, "a nested date was checked");
    let parsed = parse_instance(with_nested_phi(), &ParseLimits::default()).unwrap();
    let out = deidentify(parsed.object, &ctx).unwrap();
    // Retain Patient Characteristics keeps the age
    assert_eq!(text(&out.object, tags::PATIENT_AGE).as_deref(), Some("054Y"));
}

#[test]
fn the_same_uid_maps_to_the_same_new_uid_across_instances() {
    let ctx = context(-30);
    let a = deidentify(
        parse_instance(corpus_file("valid/MR_small.dcm"), &ParseLimits::default()).unwrap().object,
        &ctx,
    )
    .unwrap();
    let b = deidentify(
        parse_instance(corpus_file("valid/MR_small_implicit.dcm"), &ParseLimits::default()).unwrap().object,
        &ctx,
    )
    .unwrap();
    assert_eq!(a.study_uid, b.study_uid);
    assert_eq!(a.series_uid, b.series_uid);
}

#[test]
fn synthetic_studies_with_phi_canaries_leave_no_canary_in_the_output() {
    let options = tfesi_synth::PatientOptions { phi_canaries: true, ..Default::default() };
    let study = tfesi_synth::generate_patient(7, 3, &options).unwrap();
    let ctx = context(-777);
    assert!(study.files.iter().any(|f| f.bytes.windows(5).any(|w| w == b"PHIC-")), "synth wrote canaries");
    for file in study.files.iter().step_by(3) {
        check(Bytes::from(file.bytes.clone()), &ctx, &[b"PHIC-"]);
    }
}
