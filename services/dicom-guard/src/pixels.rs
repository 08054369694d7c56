//! One call before decoding: the encapsulated pixel data of an object checked against its image
//! attributes, read through dicom-rs's own `PixelDataObject` view, so the fragments and frames
//! checked are the ones its decoders will read.

use std::borrow::Cow;

use dicom_encoding::adapters::PixelDataObject;
use thiserror::Error;

use crate::codestream::{CodestreamError, JpegFamily, Shape, check_j2k_frame, check_jpeg_stream};
use crate::rle::{FrameLayout, RleError, check_fragments};

/// RLE Lossless.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG baseline, extended, lossless (process 14) and lossless first-order: dicom-rs's JPEG
/// adapter reads all fragments as one stream of images.
const JPEG: [&str; 4] =
    ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"];
/// JPEG-LS lossless and near-lossless: decoded frame by frame.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
/// JPEG 2000 (lossless only, lossy) and High-Throughput JPEG 2000: decoded frame by frame.
const JPEG_2000: [&str; 5] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// Why pixel data is refused before a decoder sees it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PixelError {
    #[error(
        "Number of Frames is {frames} but the encapsulated pixel data has {fragments} fragments: each frame needs at least one (PS3.5 A.4)"
    )]
    TooFewFragments { frames: u32, fragments: u32 },
    #[error(transparent)]
    Rle(#[from] RleError),
    #[error(transparent)]
    Codestream(#[from] CodestreamError),
}

/// Checks encapsulated pixel data before decoding: RLE headers and segments, and the frame
/// headers of JPEG, JPEG-LS and JPEG 2000 codestreams against Rows, Columns and Samples per
/// Pixel. Native pixel data, other transfer syntaxes and objects missing an image attribute
/// pass (the caller's own checks and the decoder report those).
pub fn check_before_decoding(object: &dyn PixelDataObject) -> Result<(), PixelError> {
    let Some(fragments) = object.number_of_fragments() else { return Ok(()) };
    let (Some(rows), Some(columns), Some(samples), Some(bits)) =
        (object.rows(), object.cols(), object.samples_per_pixel(), object.bits_allocated())
    else {
        return Ok(());
    };
    let frames = object.number_of_frames().unwrap_or(1);
    if frames > fragments {
        return Err(PixelError::TooFewFragments { frames, fragments });
    }
    let uid = object.transfer_syntax_uid().trim_end_matches(['\0', ' ']);
    let shape = Shape { rows: rows.into(), columns: columns.into(), samples_per_pixel: samples.into() };
    let all_fragments = || (0..fragments as usize).filter_map(|index| object.fragment(index));
    if uid == RLE_LOSSLESS {
        let layout = FrameLayout {
            rows: shape.rows,
            columns: shape.columns,
            samples_per_pixel: shape.samples_per_pixel,
            bytes_per_sample: u32::from(bits.div_ceil(8)),
            frames,
        };
        let held: Vec<Cow<'_, [u8]>> = all_fragments().collect();
        check_fragments(held.iter().map(AsRef::as_ref), &layout)?;
    } else if JPEG.contains(&uid) {
        let stream: Vec<u8> = all_fragments().flat_map(Cow::into_owned).collect();
        check_jpeg_stream(&stream, JpegFamily::Jpeg, &shape)?;
    } else if JPEG_LS.contains(&uid) || JPEG_2000.contains(&uid) {
        for frame in 0..frames {
            let Some(bytes) = object.frame_pixel_data(frame) else { continue };
            if JPEG_LS.contains(&uid) {
                check_jpeg_stream(&bytes, JpegFamily::JpegLs, &shape)?;
            } else {
                check_j2k_frame(&bytes, frame as usize, &shape)?;
            }
        }
    }
    Ok(())
}
