//! Parsing and validating one untrusted instance: size cap, pre-scan, then dicom-object and a full pixel decode on a big-stack thread where panics are caught.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTable;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use crate::attrs::{self, Numbers};
use crate::instance::{
    self, ENHANCED_MR_IMAGE_STORAGE, Identity, ImageInfo, MR_IMAGE_STORAGE, is_secondary_capture,
};
use crate::prescan::{PixelLayout, ScanLimits, prescan};
use crate::rejection::{QuarantineReason, RejectCode, Rejection};

/// Limits applied to every instance before and during parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Largest accepted instance in bytes (checked before anything is parsed).
    pub max_instance_bytes: usize,
    /// Largest decoded pixel array accepted, in bytes.
    pub max_decoded_bytes: usize,
    /// Stack size of the parsing thread (deep structures overflow the 2 MiB default).
    pub stack_bytes: usize,
    /// Element-walk limits.
    pub scan: ScanLimits,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_instance_bytes: 64 * 1024 * 1024,
            max_decoded_bytes: 512 * 1024 * 1024,
            stack_bytes: 16 * 1024 * 1024,
            scan: ScanLimits::default(),
        }
    }
}

/// What ingest does with an instance that parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Goes into the catalogue and may be selected for the pipeline.
    Accept,
    /// Kept out of the pipeline, visible to operators.
    Quarantine(Vec<QuarantineReason>),
}

/// An instance that parsed and passed validation.
#[derive(Debug)]
pub struct ParsedInstance {
    /// The parsed object (still with PHI).
    pub object: DefaultDicomObject,
    /// Identifying values (vault only).
    pub identity: Identity,
    /// Image facts without PHI.
    pub image: ImageInfo,
    /// Accept or quarantine.
    pub verdict: Verdict,
}

/// Parses and validates one instance. Never panics and never aborts on any input: the work runs
/// on a thread with `limits.stack_bytes` of stack under `catch_unwind`, after a pre-scan that
/// refuses declared lengths beyond the stream and nesting beyond the limit.
pub fn parse_instance(bytes: Bytes, limits: &ParseLimits) -> Result<ParsedInstance, Rejection> {
    if bytes.len() > limits.max_instance_bytes {
        return Err(Rejection::new(
            RejectCode::TooLarge,
            format!(
                "instance of {} bytes exceeds the limit of {} bytes",
                bytes.len(),
                limits.max_instance_bytes
            ),
        ));
    }
    let limits = *limits;
    let worker = std::thread::Builder::new()
        .name("dicom-parse".into())
        .stack_size(limits.stack_bytes)
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| parse_guarded(&bytes, &limits))).unwrap_or_else(|_| {
                Err(Rejection::new(
                    RejectCode::DecoderPanic,
                    "the DICOM decoder failed on corrupt data (panic caught)",
                ))
            })
        })
        .map_err(|err| {
            Rejection::new(RejectCode::TooLarge, format!("cannot start a parsing thread: {err}"))
        })?;
    worker.join().unwrap_or_else(|_| {
        Err(Rejection::new(
            RejectCode::DecoderPanic,
            "the DICOM decoder failed on corrupt data (panic caught)",
        ))
    })
}

fn parse_guarded(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedInstance, Rejection> {
    let scan = prescan(bytes, &limits.scan)?;
    let Some(transfer_syntax) = TransferSyntaxRegistry.get(&scan.transfer_syntax) else {
        return Err(Rejection::new(
            RejectCode::UnsupportedTransferSyntax,
            format!("unknown transfer syntax {}", scan.transfer_syntax),
        ));
    };
    if transfer_syntax.is_unsupported() {
        return Err(Rejection::new(
            RejectCode::UnsupportedTransferSyntax,
            format!("transfer syntax {} ({}) is not supported", scan.transfer_syntax, transfer_syntax.name()),
        ));
    }
    let object = match scan.inflated.as_deref() {
        Some(inflated) => read_inflated(&bytes[128..], inflated)?,
        None => OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[128..])
            .map_err(|err| {
                Rejection::new(RejectCode::Malformed, format!("DICOM parse failed: {}", cause_chain(&err)))
            })?,
    };
    let sop_class = attrs::text(&object, tags::SOP_CLASS_UID)
        .unwrap_or_else(|| object.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    let identity = instance::read_identity(&object)
        .map_err(|message| Rejection::new(RejectCode::MissingAttribute, message))?;
    let image = instance::read_image_info(&object, &sop_class, &scan.transfer_syntax);
    let is_mr = sop_class == MR_IMAGE_STORAGE || sop_class == ENHANCED_MR_IMAGE_STORAGE;
    let is_sc = is_secondary_capture(&sop_class);
    if !is_mr && !is_sc {
        let modality = image.modality.as_deref().unwrap_or("unknown");
        return Err(Rejection::new(
            RejectCode::UnsupportedSopClass,
            format!(
                "not MR: SOP class {sop_class} (modality {modality}); only MR Image Storage and Enhanced MR Image Storage are taken"
            ),
        ));
    }
    validate_image(&object, &image, scan.pixel, limits)?;
    validate_rescale(&object)?;
    decode_pixels(&object, &image)?;
    let mut reasons = Vec::new();
    if is_sc {
        reasons.push(QuarantineReason::SecondaryCapture);
    }
    let burned_in = attrs::text(&object, tags::BURNED_IN_ANNOTATION);
    if burned_in.is_some_and(|value| !value.eq_ignore_ascii_case("NO")) {
        reasons.push(QuarantineReason::BurnedInAnnotation);
    }
    let derived = image.image_type.first().is_some_and(|v| v == "DERIVED")
        || image.image_type.get(1).is_some_and(|v| v == "SECONDARY");
    if derived {
        reasons.push(QuarantineReason::DerivedOrSecondary);
    }
    let verdict = if reasons.is_empty() { Verdict::Accept } else { Verdict::Quarantine(reasons) };
    Ok(ParsedInstance { object, identity, image, verdict })
}

/// Reads a deflated instance from its file meta (`from_dicm`: the stream from `DICM` on) and the
/// data set the pre-scan already inflated, as dicom-object's reader would read the whole file,
/// without inflating the data set a second time (inflating was about a tenth of ingest's CPU).
fn read_inflated(from_dicm: &[u8], inflated: &[u8]) -> Result<DefaultDicomObject, Rejection> {
    let malformed = |err: &dyn std::error::Error| {
        Rejection::new(RejectCode::Malformed, format!("DICOM parse failed: {}", cause_chain(err)))
    };
    let mut meta = FileMetaTable::from_reader(from_dicm).map_err(|err| malformed(&err))?;
    // Deflated Explicit VR Little Endian is, once inflated, Explicit VR Little Endian.
    let dataset = InMemDicomObject::read_dataset_with_ts(inflated, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|err| malformed(&err))?;
    // As dicom-object does: an empty Media Storage SOP Class / Instance UID is taken from the data set.
    let from_dataset = |tag| -> Result<Option<String>, Rejection> {
        match dataset.get(tag) {
            Some(element) => {
                let text = element.value().to_str().map_err(|err| malformed(&err))?;
                Ok(Some(text.to_string()))
            }
            None => Ok(None),
        }
    };
    if meta.media_storage_sop_class_uid().is_empty()
        && let Some(uid) = from_dataset(tags::SOP_CLASS_UID)?
    {
        meta.media_storage_sop_class_uid = uid;
    }
    if meta.media_storage_sop_instance_uid().is_empty()
        && let Some(uid) = from_dataset(tags::SOP_INSTANCE_UID)?
    {
        meta.media_storage_sop_instance_uid = uid;
    }
    Ok(dataset.with_exact_meta(meta))
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(160) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

fn invalid(message: String) -> Rejection {
    Rejection::new(RejectCode::InvalidAttribute, message)
}

fn validate_image(
    object: &DefaultDicomObject,
    image: &ImageInfo,
    layout: Option<PixelLayout>,
    limits: &ParseLimits,
) -> Result<(), Rejection> {
    for (tag, name) in [
        (tags::ROWS, "rows (0028,0010)"),
        (tags::COLUMNS, "columns (0028,0011)"),
        (tags::BITS_ALLOCATED, "bits allocated (0028,0100)"),
    ] {
        if object.get(tag).is_none() {
            return Err(Rejection::new(RejectCode::MissingAttribute, format!("{name} is missing")));
        }
    }
    if image.rows == 0 || image.columns == 0 {
        return Err(invalid(format!(
            "image is {} rows by {} columns: both must be greater than 0",
            image.rows, image.columns
        )));
    }
    if image.frames == 0 {
        return Err(invalid("number of frames (0028,0008) is 0".into()));
    }
    if !matches!(image.bits_allocated, 8 | 16) {
        return Err(invalid(format!(
            "bits allocated (0028,0100) is {}: only 8 and 16 are supported",
            image.bits_allocated
        )));
    }
    if !matches!(image.samples_per_pixel, 1 | 3) {
        return Err(invalid(format!(
            "samples per pixel (0028,0002) is {}: only 1 and 3 are supported",
            image.samples_per_pixel
        )));
    }
    let expected = u64::from(image.rows)
        * u64::from(image.columns)
        * u64::from(image.frames)
        * u64::from(image.samples_per_pixel)
        * u64::from(image.bits_allocated / 8);
    if expected > u64::try_from(limits.max_decoded_bytes).unwrap_or(u64::MAX) {
        return Err(Rejection::new(
            RejectCode::TooLarge,
            format!(
                "decoded image would take {expected} bytes, over the limit of {} bytes",
                limits.max_decoded_bytes
            ),
        ));
    }
    match layout {
        None => Err(Rejection::new(RejectCode::PixelData, "pixel data (7FE0,0010) is missing")),
        Some(PixelLayout::Native { length }) => {
            let length = length as u64;
            // Longer is tolerated (the corpus's MR_small_padded: excess bytes are ignored).
            if length < expected {
                return Err(Rejection::new(
                    RejectCode::PixelData,
                    format!(
                        "pixel data holds {length} bytes but rows x columns x frames x samples x bits allocated / 8 = {expected}"
                    ),
                ));
            }
            Ok(())
        }
        Some(PixelLayout::Encapsulated { fragments }) => {
            if fragments == 0 {
                return Err(Rejection::new(
                    RejectCode::PixelData,
                    "encapsulated pixel data has no fragments",
                ));
            }
            if image.frames > 1 && (fragments as u64) < u64::from(image.frames) {
                return Err(Rejection::new(
                    RejectCode::PixelData,
                    format!("encapsulated pixel data has {fragments} fragments for {} frames", image.frames),
                ));
            }
            Ok(())
        }
    }
}

const PIXEL_VALUE_TRANSFORMATION_SEQUENCE: dicom_core::Tag = dicom_core::Tag(0x0028, 0x9145);

fn validate_rescale(object: &DefaultDicomObject) -> Result<(), Rejection> {
    let checks = [
        (tags::RESCALE_SLOPE, "rescale slope (0028,1053)", 1e-6, 1e6),
        (tags::RESCALE_INTERCEPT, "rescale intercept (0028,1052)", 0.0, 1e7),
    ];
    for (tag, name, min_abs, max_abs) in checks {
        let read = attrs::numbers_anywhere(object, PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag);
        let value = match read {
            Numbers::Absent => continue,
            Numbers::Invalid => return Err(invalid(format!("{name} is not a number"))),
            Numbers::Values(values) if values.len() == 1 => values[0],
            Numbers::Values(values) => {
                return Err(invalid(format!("{name} has {} values, expected 1", values.len())));
            }
        };
        let sane = value.is_finite() && value.abs() <= max_abs && value.abs() >= min_abs;
        let zero_intercept = min_abs == 0.0 && value == 0.0;
        if !(sane || zero_intercept) {
            return Err(invalid(format!(
                "{name} is {value}: expected a finite number with magnitude between {min_abs} and {max_abs}"
            )));
        }
    }
    Ok(())
}

/// JPEG Extended (process 2 and 4): dicom-rs 0.10.1 cannot decode its 12-bit form.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// The error and its sources, one short line each, so the real cause is visible.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![first_line(&err.to_string()).to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        if parts.len() >= 4 {
            break;
        }
        parts.push(first_line(&cause.to_string()).to_string());
        source = cause.source();
    }
    parts.join(": ")
}

fn decode_pixels(object: &DefaultDicomObject, image: &ImageInfo) -> Result<(), Rejection> {
    let bits_stored = attrs::unsigned(object, tags::BITS_STORED).unwrap_or(image.bits_allocated);
    if image.transfer_syntax == JPEG_EXTENDED && bits_stored > 8 {
        return Err(Rejection::new(
            RejectCode::UnsupportedTransferSyntax,
            format!(
                "12-bit JPEG Extended ({JPEG_EXTENDED}, {bits_stored} bits stored) is not supported: send it uncompressed or lossless"
            ),
        ));
    }
    // RLE headers and codestream frame headers that dicom-rs would trust into a huge allocation
    // or a panic (docs/fuzzing.md, finding 4) are refused first.
    tfesi_dicom_guard::check_before_decoding(object).map_err(|error| {
        Rejection::new(
            RejectCode::PixelDecode,
            format!("pixel data in transfer syntax {} cannot be decoded: {error}", image.transfer_syntax),
        )
    })?;
    let decoded = object.decode_pixel_data().map_err(|err| {
        let message = cause_chain(&err);
        let code = if message.to_ascii_lowercase().contains("unsupported") {
            RejectCode::UnsupportedTransferSyntax
        } else {
            RejectCode::PixelDecode
        };
        Rejection::new(
            code,
            format!("pixel data in transfer syntax {} cannot be decoded: {message}", image.transfer_syntax),
        )
    })?;
    let bytes_per_sample = u64::from(decoded.bits_allocated().div_ceil(8));
    let expected = u64::from(decoded.rows())
        * u64::from(decoded.columns())
        * u64::from(decoded.number_of_frames())
        * u64::from(decoded.samples_per_pixel())
        * bytes_per_sample;
    let actual = decoded.data().len() as u64;
    if decoded.rows() != image.rows
        || decoded.columns() != image.columns
        || decoded.number_of_frames() != image.frames
        || actual < expected
    {
        return Err(Rejection::new(
            RejectCode::PixelDecode,
            format!(
                "decoded pixel data ({actual} bytes, {} x {} x {} frames) does not match the image attributes ({expected} bytes expected)",
                decoded.rows(),
                decoded.columns(),
                decoded.number_of_frames()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflated_instances_read_as_dicom_objects_reader_reads_them() {
        let options = tfesi_synth::PatientOptions {
            transfer_syntax: Some(tfesi_synth::protocol::TransferSyntaxKind::DeflatedExplicitLittle),
            ..Default::default()
        };
        let study = tfesi_synth::generate_patient(5, 2, &options).expect("synthetic study");
        let mut compared = 0;
        for file in study.files.iter().step_by(5) {
            let parsed = parse_instance(file.bytes.clone().into(), &ParseLimits::default()).expect("parses");
            assert!(
                parsed.object.meta().transfer_syntax() == "1.2.840.10008.1.2.1.99",
                "synth wrote deflated"
            );
            let reference = OpenFileOptions::new()
                .read_preamble(ReadPreamble::Never)
                .from_reader(&file.bytes[128..])
                .expect("dicom-object reads it");
            // dicom-core's `Length` never equals an undefined length, so objects with sequences are
            // compared by their encodings.
            assert!(parsed.object.meta() == reference.meta(), "instance {}: file meta", file.instance_number);
            let encode = |object: &DefaultDicomObject| {
                let mut dataset = Vec::new();
                object
                    .write_dataset_with_ts(&mut dataset, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
                    .expect("encodes");
                dataset
            };
            assert!(
                encode(&parsed.object) == encode(&reference),
                "instance {} read differently",
                file.instance_number
            );
            compared += 1;
        }
        assert!(compared >= 3, "compared {compared} instances");
    }
}
