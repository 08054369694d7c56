//! Decoding one DICOM instance to stored pixel values, rescale and plane geometry, with input
//! caps, a structural pre-scan and decoder panics caught, so that bad input is an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ndarray::{Array2, Array4, ArrayView2, s};
use sha2::{Digest, Sha256};

use crate::attrs::{self, FrameGeometry, Rescale};
use crate::error::{Error, Result};
use crate::scan::{self, ScanLimits};

/// Transfer syntaxes this service decodes, with the name it reports.
const SUPPORTED: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2", "Implicit VR Little Endian"),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian"),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 and 4)"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless) Image Compression"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression"),
];

/// JPEG Extended: dicom-rs cannot decode its 12-bit form, so failures are reported as unsupported.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Caps applied before and during parsing.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest instance accepted, in bytes (checked before anything is parsed).
    pub max_input_bytes: usize,
    /// Largest decoded pixel count (frames x rows x columns x samples).
    pub max_decoded_values: usize,
    /// Structural limits of the pre-scan.
    pub scan: ScanLimits,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 256 * 1024 * 1024,
            max_decoded_values: 128 * 1024 * 1024,
            scan: ScanLimits::default(),
        }
    }
}

/// One decoded instance: stored values as `[frames, rows, columns, samples]` plus the header
/// values needed to rescale and place each frame.
#[derive(Debug)]
pub struct DecodedInstance {
    pub transfer_syntax_uid: String,
    pub transfer_syntax_name: String,
    /// SOP Instance UID, where present (used in messages and to spot duplicates).
    pub sop_instance_uid: Option<String>,
    /// Stored values, no modality LUT applied, shape `[frames, rows, columns, samples]`.
    pub stored: Array4<i32>,
    /// Modality rescale per frame (validated).
    pub rescale: Vec<Rescale>,
    /// Plane geometry per frame, or why it is unavailable.
    pub geometry: std::result::Result<Vec<FrameGeometry>, String>,
}

impl DecodedInstance {
    pub fn frames(&self) -> usize {
        self.stored.shape()[0]
    }
    pub fn rows(&self) -> usize {
        self.stored.shape()[1]
    }
    pub fn columns(&self) -> usize {
        self.stored.shape()[2]
    }
    pub fn samples_per_pixel(&self) -> usize {
        self.stored.shape()[3]
    }

    /// SHA-256 of the stored values as little-endian i32 in `[F, R, C, S]` C order
    /// (the dicom-corpus manifest's `stored_sha256`).
    pub fn stored_sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for value in &self.stored {
            hasher.update(value.to_le_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Stored values of one grayscale frame.
    pub fn frame_stored(&self, frame: usize) -> Result<ArrayView2<'_, i32>> {
        if self.samples_per_pixel() != 1 {
            return Err(Error::attribute(
                "SamplesPerPixel",
                format!("{} samples per pixel; a grayscale image is required", self.samples_per_pixel()),
            ));
        }
        if frame >= self.frames() {
            return Err(Error::attribute("NumberOfFrames", format!("frame {frame} of {}", self.frames())));
        }
        Ok(self.stored.slice(s![frame, .., .., 0]))
    }

    /// One grayscale frame, rescaled (in f64, rounded once to f32).
    pub fn frame_rescaled(&self, frame: usize) -> Result<Array2<f32>> {
        let stored = self.frame_stored(frame)?;
        let rescale = self.rescale.get(frame).copied().unwrap_or(Rescale::IDENTITY);
        // Rounding to f32 is the tensor's precision; values are bounded by the rescale check.
        #[allow(clippy::cast_possible_truncation)]
        Ok(stored.mapv(|value| rescale.apply(value) as f32))
    }
}

fn transfer_syntax_name(uid: &str) -> String {
    SUPPORTED
        .iter()
        .find(|(known, _)| *known == uid)
        .map(|(_, name)| (*name).to_string())
        .or_else(|| TransferSyntaxRegistry.get(uid).map(|ts| ts.name().to_string()))
        .unwrap_or_else(|| "unknown transfer syntax".to_string())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_string())
}

fn parse_object(bytes: &[u8], uid: &str) -> Result<DefaultDicomObject> {
    let after_preamble = &bytes[128..];
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        OpenFileOptions::new().read_preamble(ReadPreamble::Never).from_reader(after_preamble)
    }))
    .map_err(|payload| Error::DecoderPanic {
        uid: uid.to_string(),
        message: format!("while parsing: {}", panic_message(payload.as_ref())),
    })?;
    parsed.map_err(|error| Error::Parse(error.to_string()))
}

fn required_count(object: &InMemDicomObject, tag: dicom_core::Tag, name: &'static str) -> Result<usize> {
    let value = attrs::read_count(object, tag, name)?.ok_or_else(|| Error::attribute(name, "missing"))?;
    if value == 0 {
        return Err(Error::attribute(name, "must be at least 1"));
    }
    usize::try_from(value).map_err(|_| Error::attribute(name, "too large"))
}

/// Decode one Part 10 instance held in memory.
pub fn decode_instance(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedInstance> {
    if bytes.len() > limits.max_input_bytes {
        return Err(Error::InputTooLarge { size: bytes.len(), limit: limits.max_input_bytes });
    }
    let scanned = scan::prescan(bytes, &limits.scan)?;
    let uid = scanned.transfer_syntax_uid;
    let name = transfer_syntax_name(&uid);
    if !SUPPORTED.iter().any(|(known, _)| *known == uid) {
        return Err(Error::UnsupportedTransferSyntax {
            uid,
            name,
            reason: "no decoder for this transfer syntax in this service".into(),
        });
    }
    let file = parse_object(bytes, &uid)?;
    let object: &InMemDicomObject = &file;
    if object.element_opt(attrs::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Error::attribute("PixelData", "missing"));
    }
    let rows = required_count(object, attrs::ROWS, "Rows")?;
    let columns = required_count(object, attrs::COLUMNS, "Columns")?;
    let samples = required_count(object, attrs::SAMPLES_PER_PIXEL, "SamplesPerPixel")?;
    let bits = required_count(object, attrs::BITS_ALLOCATED, "BitsAllocated")?;
    let frames = match attrs::read_count(object, attrs::NUMBER_OF_FRAMES, "NumberOfFrames")? {
        Some(0) => return Err(Error::attribute("NumberOfFrames", "must be at least 1")),
        Some(count) => usize::try_from(count).map_err(|_| Error::attribute("NumberOfFrames", "too large"))?,
        None => 1,
    };
    if !matches!(bits, 8 | 16) {
        return Err(Error::attribute("BitsAllocated", format!("{bits} bits are not supported (8 or 16)")));
    }
    let values = frames
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(columns))
        .and_then(|n| n.checked_mul(samples))
        .filter(|n| *n <= limits.max_decoded_values)
        .ok_or_else(|| Error::attribute("Rows", "decoded image would exceed the size limit"))?;

    // RLE headers and codestream frame headers that dicom-rs would trust into a huge allocation
    // or a panic (docs/fuzzing.md, finding 4) are refused first.
    tfesi_dicom_guard::check_before_decoding(&file)
        .map_err(|error| Error::PixelDecode { uid: uid.clone(), reason: error.to_string() })?;
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let pixels = file.decode_pixel_data()?;
        let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
        pixels.to_ndarray_with_options::<i32>(&options)
    }))
    .map_err(|payload| Error::DecoderPanic { uid: uid.clone(), message: panic_message(payload.as_ref()) })?;
    let stored = match decoded {
        Ok(array) => array,
        Err(error) if uid == JPEG_EXTENDED => {
            return Err(Error::UnsupportedTransferSyntax {
                uid,
                name,
                reason: format!("the decoder cannot decode this image: {error}"),
            });
        }
        Err(error) => {
            return Err(Error::PixelDecode { uid, reason: error.to_string() });
        }
    };
    if stored.shape() != [frames, rows, columns, samples] || stored.len() != values {
        return Err(Error::PixelDecode {
            uid,
            reason: format!(
                "decoded shape {:?} differs from the header's [{frames}, {rows}, {columns}, {samples}]",
                stored.shape()
            ),
        });
    }
    let rescale = attrs::frame_rescales(object, frames)?;
    let geometry = attrs::frame_geometries(object, frames).map_err(|error| error.to_string());
    let sop_instance_uid = object
        .element_opt(dicom_core::Tag(0x0008, 0x0018))
        .ok()
        .flatten()
        .and_then(|element| element.to_str().ok())
        .map(|text| text.trim_end_matches(['\0', ' ']).to_string());
    Ok(DecodedInstance {
        transfer_syntax_uid: uid,
        transfer_syntax_name: name,
        sop_instance_uid,
        stored,
        rescale,
        geometry,
    })
}
