//! DICOM MR Image Storage instances: the data set of one image and its encoding in each
//! transfer syntax (explicit/implicit little endian, deflated, RLE Lossless).

use std::io::Write;

use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use flate2::Compression;
use flate2::write::DeflateEncoder;

use crate::error::{Error, Result};
use crate::phi::Identity;
use crate::protocol::{SeriesKind, SeriesPlan, TransferSyntaxKind, Vendor};

/// MR Image Storage SOP class.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Implementation Version Name written in the file meta group.
pub const IMPLEMENTATION_VERSION: &str = "TFESI_SYNTH_1";

/// Study-level values shared by every instance of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyHeader {
    /// Identifying attributes.
    pub identity: Identity,
    /// Vendor conventions.
    pub vendor: Vendor,
    /// ManufacturerModelName.
    pub model: &'static str,
    /// MagneticFieldStrength, T.
    pub field_t: f64,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// FrameOfReferenceUID.
    pub frame_uid: String,
    /// StudyDate (DA).
    pub study_date: String,
    /// StudyTime (TM), `HHMMSS`.
    pub study_time: String,
    /// PatientBirthDate (DA).
    pub birth_date: String,
    /// PatientSex, `F` or `M`.
    pub sex: &'static str,
    /// PatientAge, e.g. `054Y`.
    pub age: String,
    /// PatientWeight, kg.
    pub weight_kg: f64,
    /// PatientSize, m.
    pub height_m: f64,
}

/// Formats a DS value in at most 16 characters.
pub fn ds(value: f64) -> String {
    for precision in (0..=8).rev() {
        let mut text = format!("{value:.precision$}");
        if text.contains('.') {
            while text.ends_with('0') {
                text.pop();
            }
            if text.ends_with('.') {
                text.pop();
            }
        }
        if text == "-0" {
            text = "0".to_string();
        }
        if text.len() <= 16 {
            return text;
        }
    }
    format!("{value:.0}")
}

fn put_str(obj: &mut InMemDicomObject, group: u16, element: u16, vr: VR, value: &str) {
    obj.put(DataElement::new(Tag(group, element), vr, PrimitiveValue::from(value)));
}

fn put_strs(obj: &mut InMemDicomObject, group: u16, element: u16, vr: VR, values: &[String]) {
    let strs: dicom_core::value::C<String> = values.iter().cloned().collect();
    obj.put(DataElement::new(Tag(group, element), vr, PrimitiveValue::Strs(strs)));
}

fn put_u16(obj: &mut InMemDicomObject, group: u16, element: u16, value: u16) {
    obj.put(DataElement::new(Tag(group, element), VR::US, PrimitiveValue::from(value)));
}

fn request_attributes(identity: &Identity) -> InMemDicomObject {
    let mut code = InMemDicomObject::new_empty();
    put_str(&mut code, 0x0008, 0x0100, VR::SH, "LSPINEMR");
    put_str(&mut code, 0x0008, 0x0102, VR::SH, "99SYNTH");
    put_str(&mut code, 0x0008, 0x0104, VR::LO, &identity.code_meaning);
    let mut item = InMemDicomObject::new_empty();
    put_str(&mut item, 0x0008, 0x0050, VR::SH, &identity.nested_accession);
    put_str(&mut item, 0x0040, 0x0007, VR::LO, &identity.step_description);
    item.put(DataElement::new(
        Tag(0x0040, 0x0008),
        VR::SQ,
        DataSetSequence::new(vec![code], Length::UNDEFINED),
    ));
    put_str(&mut item, 0x0040, 0x0009, VR::SH, "SPS1");
    put_str(&mut item, 0x0040, 0x1001, VR::SH, &identity.requested_procedure_id);
    item
}

fn private_block(obj: &mut InMemDicomObject, vendor: Vendor, plan: &SeriesPlan, slope: f64) {
    match vendor {
        Vendor::Siemens => {
            put_str(obj, 0x0019, 0x0010, VR::LO, "SIEMENS MR HEADER");
            put_str(obj, 0x0019, 0x1008, VR::CS, "IMAGE NUM 4");
            put_str(obj, 0x0019, 0x1009, VR::LO, "1.0");
            put_str(obj, 0x0051, 0x0010, VR::LO, "SIEMENS MR HEADER");
            put_str(obj, 0x0051, 0x100A, VR::LO, "TA 02:41");
            let fov = ds(plan.pixel_mm * f64::from(plan.matrix));
            put_str(obj, 0x0051, 0x100C, VR::LO, &format!("FoV {fov}*{fov}"));
        }
        Vendor::Ge => {
            put_str(obj, 0x0019, 0x0010, VR::LO, "GEMS_ACQU_01");
            let name = if plan.kind == SeriesKind::Localizer { "fgre" } else { "fse-xl" };
            put_str(obj, 0x0019, 0x109C, VR::LO, name);
            put_str(obj, 0x0043, 0x0010, VR::LO, "GEMS_PARM_01");
            put_str(obj, 0x0043, 0x1039, VR::IS, "0");
        }
        Vendor::Philips => {
            put_str(obj, 0x2001, 0x0010, VR::LO, "Philips Imaging DD 001");
            let orientation = match plan.kind {
                SeriesKind::T2Axial => "TRANSVERSAL",
                SeriesKind::Localizer => "SAGITTAL",
                _ => "SAGITTAL",
            };
            put_str(obj, 0x2001, 0x100B, VR::CS, orientation);
            put_str(obj, 0x2005, 0x0010, VR::LO, "Philips MR Imaging DD 001");
            obj.put(DataElement::new(
                Tag(0x2005, 0x100E),
                VR::FL,
                PrimitiveValue::from(1.0_f32 / slope as f32),
            ));
        }
        Vendor::Canon => {
            put_str(obj, 0x700D, 0x0010, VR::LO, "TOSHIBA_MEC_MR3");
            put_str(obj, 0x700D, 0x1008, VR::LO, "SYNTHETIC");
        }
    }
}

/// Builds the data set of one image.
#[allow(clippy::too_many_arguments)]
pub fn build_instance(
    header: &StudyHeader,
    plan: &SeriesPlan,
    series_uid: &str,
    sop_uid: &str,
    instance: usize,
    pixels: &[u16],
    slope: f64,
) -> InMemDicomObject {
    let id = &header.identity;
    let plane = plan.planes[instance];
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, 0x0008, 0x0005, VR::CS, "ISO_IR 100");
    let image_type: Vec<String> = match (plan.kind, header.vendor) {
        (SeriesKind::Localizer, _) => vec!["ORIGINAL", "PRIMARY", "LOCALIZER"],
        (_, Vendor::Siemens) => vec!["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"],
        (_, Vendor::Philips) => vec!["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"],
        (_, _) => vec!["ORIGINAL", "PRIMARY", "OTHER"],
    }
    .into_iter()
    .map(String::from)
    .collect();
    put_strs(&mut obj, 0x0008, 0x0008, VR::CS, &image_type);
    put_str(&mut obj, 0x0008, 0x0012, VR::DA, &header.study_date);
    put_str(&mut obj, 0x0008, 0x0013, VR::TM, &header.study_time);
    put_str(&mut obj, 0x0008, 0x0016, VR::UI, MR_IMAGE_STORAGE);
    put_str(&mut obj, 0x0008, 0x0018, VR::UI, sop_uid);
    for element in [0x0020, 0x0021, 0x0022, 0x0023] {
        put_str(&mut obj, 0x0008, element, VR::DA, &header.study_date);
    }
    for element in [0x0030, 0x0031, 0x0032, 0x0033] {
        put_str(&mut obj, 0x0008, element, VR::TM, &header.study_time);
    }
    put_str(&mut obj, 0x0008, 0x0050, VR::SH, &id.accession);
    put_str(&mut obj, 0x0008, 0x0060, VR::CS, "MR");
    put_str(&mut obj, 0x0008, 0x0070, VR::LO, header.vendor.manufacturer());
    put_str(&mut obj, 0x0008, 0x0080, VR::LO, &id.institution);
    put_str(&mut obj, 0x0008, 0x0081, VR::ST, &id.institution_address);
    put_str(&mut obj, 0x0008, 0x0090, VR::PN, &id.referring);
    put_str(&mut obj, 0x0008, 0x1010, VR::SH, &id.station);
    put_str(&mut obj, 0x0008, 0x1030, VR::LO, "MRI LUMBAR SPINE WO CONTRAST");
    put_str(&mut obj, 0x0008, 0x103E, VR::LO, &plan.description);
    put_str(&mut obj, 0x0008, 0x1040, VR::LO, &id.department);
    put_str(&mut obj, 0x0008, 0x1050, VR::PN, &id.performing);
    put_str(&mut obj, 0x0008, 0x1070, VR::PN, &id.operators);
    put_str(&mut obj, 0x0008, 0x1090, VR::LO, header.model);
    put_str(&mut obj, 0x0009, 0x0010, VR::LO, "TFESI SYNTH PHI");
    put_str(&mut obj, 0x0009, 0x1001, VR::LO, &id.private_phi);
    put_str(&mut obj, 0x0010, 0x0010, VR::PN, &id.patient_name);
    put_str(&mut obj, 0x0010, 0x0020, VR::LO, &id.patient_id);
    put_str(&mut obj, 0x0010, 0x0030, VR::DA, &header.birth_date);
    put_str(&mut obj, 0x0010, 0x0040, VR::CS, header.sex);
    put_str(&mut obj, 0x0010, 0x1000, VR::LO, &id.other_patient_ids);
    put_str(&mut obj, 0x0010, 0x1010, VR::AS, &header.age);
    put_str(&mut obj, 0x0010, 0x1020, VR::DS, &ds(header.height_m));
    put_str(&mut obj, 0x0010, 0x1030, VR::DS, &ds(header.weight_kg));
    put_str(&mut obj, 0x0010, 0x1040, VR::LO, &id.patient_address);
    put_str(&mut obj, 0x0010, 0x2154, VR::SH, &id.telephone);
    put_str(&mut obj, 0x0010, 0x4000, VR::LT, &id.patient_comments);
    put_str(&mut obj, 0x0018, 0x0015, VR::CS, "LSPINE");
    let [scanning, variant, options, name] = plan.sequence;
    put_strs(&mut obj, 0x0018, 0x0020, VR::CS, &scanning.split('\\').map(String::from).collect::<Vec<_>>());
    put_strs(&mut obj, 0x0018, 0x0021, VR::CS, &variant.split('\\').map(String::from).collect::<Vec<_>>());
    if !options.is_empty() {
        put_strs(
            &mut obj,
            0x0018,
            0x0022,
            VR::CS,
            &options.split('\\').map(String::from).collect::<Vec<_>>(),
        );
    }
    put_str(&mut obj, 0x0018, 0x0023, VR::CS, "2D");
    put_str(&mut obj, 0x0018, 0x0024, VR::SH, name);
    put_str(&mut obj, 0x0018, 0x0050, VR::DS, &ds(plan.thickness));
    put_str(&mut obj, 0x0018, 0x0080, VR::DS, &ds(plan.tr));
    put_str(&mut obj, 0x0018, 0x0081, VR::DS, &ds(plan.te));
    if let Some(ti) = plan.ti {
        put_str(&mut obj, 0x0018, 0x0082, VR::DS, &ds(ti));
    }
    put_str(&mut obj, 0x0018, 0x0083, VR::DS, "1");
    put_str(&mut obj, 0x0018, 0x0084, VR::DS, &ds(42.577_478 * header.field_t));
    put_str(&mut obj, 0x0018, 0x0085, VR::SH, "1H");
    put_str(&mut obj, 0x0018, 0x0087, VR::DS, &ds(header.field_t));
    if let Some(spacing) = plan.spacing {
        put_str(&mut obj, 0x0018, 0x0088, VR::DS, &ds(spacing));
    }
    put_str(&mut obj, 0x0018, 0x0091, VR::IS, &plan.echo_train.to_string());
    put_str(&mut obj, 0x0018, 0x1020, VR::LO, "SYNTH 1.0");
    put_str(&mut obj, 0x0018, 0x1030, VR::LO, &plan.description);
    put_str(&mut obj, 0x0018, 0x1314, VR::DS, &ds(plan.flip_deg));
    put_str(&mut obj, 0x0018, 0x5100, VR::CS, "HFS");
    put_str(&mut obj, 0x0020, 0x000D, VR::UI, &header.study_uid);
    put_str(&mut obj, 0x0020, 0x000E, VR::UI, series_uid);
    put_str(&mut obj, 0x0020, 0x0010, VR::SH, &id.study_id);
    put_str(&mut obj, 0x0020, 0x0011, VR::IS, &plan.number.to_string());
    put_str(&mut obj, 0x0020, 0x0012, VR::IS, "1");
    put_str(&mut obj, 0x0020, 0x0013, VR::IS, &(instance + 1).to_string());
    put_strs(&mut obj, 0x0020, 0x0032, VR::DS, &plane.position.iter().map(|&v| ds(v)).collect::<Vec<_>>());
    let orientation: Vec<String> = plane.row.iter().chain(plane.col.iter()).map(|&v| ds(v)).collect();
    put_strs(&mut obj, 0x0020, 0x0037, VR::DS, &orientation);
    put_str(&mut obj, 0x0020, 0x0052, VR::UI, &header.frame_uid);
    put_str(&mut obj, 0x0020, 0x1040, VR::LO, "");
    let normal = crate::protocol::plane_normal(&plane);
    let location = normal.iter().zip(plane.position.iter()).map(|(n, p)| n * p).sum::<f64>();
    put_str(&mut obj, 0x0020, 0x1041, VR::DS, &ds(location));
    put_str(&mut obj, 0x0020, 0x4000, VR::LT, &id.image_comments);
    put_u16(&mut obj, 0x0028, 0x0002, 1);
    put_str(&mut obj, 0x0028, 0x0004, VR::CS, "MONOCHROME2");
    let matrix = plan.matrix as u16;
    put_u16(&mut obj, 0x0028, 0x0010, matrix);
    put_u16(&mut obj, 0x0028, 0x0011, matrix);
    put_strs(&mut obj, 0x0028, 0x0030, VR::DS, &[ds(plan.pixel_mm), ds(plan.pixel_mm)]);
    put_u16(&mut obj, 0x0028, 0x0100, 16);
    put_u16(&mut obj, 0x0028, 0x0101, 12);
    put_u16(&mut obj, 0x0028, 0x0102, 11);
    put_u16(&mut obj, 0x0028, 0x0103, 0);
    let max = f64::from(pixels.iter().copied().max().unwrap_or(1));
    put_str(&mut obj, 0x0028, 0x1050, VR::DS, &ds((max * 0.45 * slope).round()));
    put_str(&mut obj, 0x0028, 0x1051, VR::DS, &ds((max * 0.9 * slope).round()));
    put_str(&mut obj, 0x0028, 0x1052, VR::DS, "0");
    put_str(&mut obj, 0x0028, 0x1053, VR::DS, &ds(slope));
    put_str(&mut obj, 0x0028, 0x1054, VR::LO, "US");
    put_str(&mut obj, 0x0032, 0x1032, VR::PN, &id.requesting);
    obj.put(DataElement::new(
        Tag(0x0040, 0x0275),
        VR::SQ,
        DataSetSequence::new(vec![request_attributes(id)], Length::UNDEFINED),
    ));
    private_block(&mut obj, header.vendor, plan, slope);
    let pixel_value = match plan.transfer_syntax {
        TransferSyntaxKind::RleLossless => {
            let fragment = crate::rle::encode_frame_u16(pixels, usize::from(matrix));
            dicom_core::value::Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment]))
        }
        _ => dicom_core::value::Value::from(PrimitiveValue::U16(pixels.iter().copied().collect())),
    };
    let pixel_vr = if plan.transfer_syntax == TransferSyntaxKind::RleLossless { VR::OB } else { VR::OW };
    obj.put(DataElement::new(Tag(0x7FE0, 0x0010), pixel_vr, pixel_value));
    obj
}

/// Encodes a data set as a complete Part 10 file in the given transfer syntax.
pub fn encode_file(
    obj: &InMemDicomObject,
    sop_uid: &str,
    implementation_uid: &str,
    ts: TransferSyntaxKind,
) -> Result<Vec<u8>> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(MR_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(sop_uid)
        .transfer_syntax(ts.uid())
        .implementation_class_uid(implementation_uid)
        .implementation_version_name(IMPLEMENTATION_VERSION)
        .build()
        .map_err(|e| Error::Dicom(e.to_string()))?;
    let mut out = vec![0_u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).map_err(|e| Error::Dicom(e.to_string()))?;
    // Encapsulated and deflated syntaxes encode their data set as explicit VR little endian.
    let dataset_ts_uid = match ts {
        TransferSyntaxKind::ImplicitLittle => TransferSyntaxKind::ImplicitLittle.uid(),
        _ => TransferSyntaxKind::ExplicitLittle.uid(),
    };
    let dataset_ts = TransferSyntaxRegistry
        .get(dataset_ts_uid)
        .ok_or_else(|| Error::Dicom(format!("transfer syntax {dataset_ts_uid} missing from registry")))?;
    let mut dataset = Vec::new();
    obj.write_dataset_with_ts(&mut dataset, dataset_ts).map_err(|e| Error::Dicom(e.to_string()))?;
    if ts == TransferSyntaxKind::DeflatedExplicitLittle {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&dataset).map_err(|e| Error::Dicom(format!("deflate: {e}")))?;
        let mut deflated = encoder.finish().map_err(|e| Error::Dicom(format!("deflate: {e}")))?;
        if deflated.len() % 2 == 1 {
            deflated.push(0);
        }
        out.extend_from_slice(&deflated);
    } else {
        out.extend_from_slice(&dataset);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::ds;

    #[test]
    fn ds_values_fit_sixteen_characters() {
        assert_eq!(ds(1.0), "1");
        assert_eq!(ds(-0.0000000001), "0");
        assert_eq!(ds(0.5), "0.5");
        for v in [-123_456.789_012_345, 0.999_847_695_156, -0.017_452_406_437, 4095.0] {
            let text = ds(v);
            assert!(text.len() <= 16, "{text}");
            let parsed: f64 = text.parse().unwrap_or(f64::NAN);
            assert!((parsed - v).abs() < 1e-3 * v.abs().max(1.0));
        }
    }
}
