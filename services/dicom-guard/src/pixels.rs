//! One call before decoding: the encapsulated pixel data of an object checked against its image
//! attributes, read through dicom-rs's own `PixelDataObject` view, so the fragments and frames
//! checked are the ones its decoders will read.

use std::borrow::Cow;

use dicom_encoding::adapters::PixelDataObject;
use thiserror::Error;

use crate::Shape;
use crate::codestream::{CodestreamError, JpegFamily, check_j2k_frame, check_jpeg_stream};
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

/// The most fragment visits allowed for a multi-frame object whose fragments are not one per
/// frame. dicom-rs finds such a frame's bytes (`frame_pixel_data`) by walking the fragments from
/// the first, once per frame, so the work is frames x fragments; 1,000 frames in 50,000
/// fragments is within this, 100,000 frames in 200,000 tiny fragments (1.6 MB of item headers)
/// is not.
pub const MAX_FRAGMENT_VISITS: u64 = 50_000_000;

/// Why pixel data is refused before a decoder sees it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PixelError {
    #[error(
        "Number of Frames is {frames} but the encapsulated pixel data has {fragments} fragments: each frame needs at least one (PS3.5 A.4)"
    )]
    TooFewFragments { frames: u32, fragments: u32 },
    #[error(
        "{frames} frames in {fragments} fragments: finding each frame would walk the fragments once per frame ({frames} x {fragments} over {MAX_FRAGMENT_VISITS}); send one fragment per frame"
    )]
    FragmentWalk { frames: u32, fragments: u32 },
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
    if frames > 1 && frames != fragments && u64::from(frames) * u64::from(fragments) > MAX_FRAGMENT_VISITS {
        return Err(PixelError::FragmentWalk { frames, fragments });
    }
    let uid = object.transfer_syntax_uid().trim_end_matches(['\0', ' ']);
    let shape = Shape { rows: rows.into(), columns: columns.into(), samples_per_pixel: samples.into() };
    let all_fragments = || (0..fragments as usize).filter_map(|index| object.fragment(index));
    if uid == RLE_LOSSLESS {
        let layout = FrameLayout { shape, bytes_per_sample: u32::from(bits.div_ceil(8)), frames };
        let held: Vec<Cow<'_, [u8]>> = all_fragments().collect();
        check_fragments(held.iter().map(AsRef::as_ref), &layout)?;
    } else if JPEG.contains(&uid) {
        let mut stream = Vec::new();
        for fragment in all_fragments() {
            stream.extend_from_slice(&fragment);
        }
        check_jpeg_stream(&stream, 0, JpegFamily::Jpeg, &shape)?;
    } else if JPEG_LS.contains(&uid) {
        for (index, bytes) in frames_present(object, frames) {
            check_jpeg_stream(&bytes, index, JpegFamily::JpegLs, &shape)?;
        }
    } else if JPEG_2000.contains(&uid) {
        for (index, bytes) in frames_present(object, frames) {
            check_j2k_frame(&bytes, index, &shape)?;
        }
    }
    Ok(())
}

/// Each frame's number and bytes as the frame-by-frame decoders get them (`frame_pixel_data`),
/// for the frames that have any (the decoder reports a missing one).
fn frames_present(object: &dyn PixelDataObject, frames: u32) -> impl Iterator<Item = (usize, Cow<'_, [u8]>)> {
    (0..frames).filter_map(|frame| Some((frame as usize, object.frame_pixel_data(frame)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_encoding::adapters::RawPixelData;

    /// Just enough of an object for the counts: RLE frames of 8-bit grey, 2 x 2 pixels.
    struct Fragments {
        frames: u32,
        fragments: Vec<Vec<u8>>,
    }

    impl PixelDataObject for Fragments {
        fn transfer_syntax_uid(&self) -> &str {
            RLE_LOSSLESS
        }
        fn rows(&self) -> Option<u16> {
            Some(2)
        }
        fn cols(&self) -> Option<u16> {
            Some(2)
        }
        fn samples_per_pixel(&self) -> Option<u16> {
            Some(1)
        }
        fn bits_allocated(&self) -> Option<u16> {
            Some(8)
        }
        fn bits_stored(&self) -> Option<u16> {
            Some(8)
        }
        fn photometric_interpretation(&self) -> Option<&str> {
            Some("MONOCHROME2")
        }
        fn number_of_frames(&self) -> Option<u32> {
            Some(self.frames)
        }
        fn number_of_fragments(&self) -> Option<u32> {
            Some(self.fragments.len() as u32)
        }
        fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
            self.fragments.get(fragment).map(|bytes| Cow::Borrowed(bytes.as_slice()))
        }
        fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
            None
        }
        fn raw_pixel_data(&self) -> Option<RawPixelData> {
            None
        }
    }

    /// One RLE frame of 2 x 2 grey pixels: header with one segment at 64, then a literal run.
    fn frame() -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[0] = 1;
        bytes[4] = 64;
        bytes.extend_from_slice(&[3, 10, 20, 30, 40]);
        bytes
    }

    #[test]
    fn one_fragment_per_frame_passes() {
        let object = Fragments { frames: 3, fragments: vec![frame(), frame(), frame()] };
        assert_eq!(check_before_decoding(&object), Ok(()));
    }

    #[test]
    fn more_frames_than_fragments_are_refused() {
        let object = Fragments { frames: 4, fragments: vec![frame(), frame()] };
        assert_eq!(
            check_before_decoding(&object),
            Err(PixelError::TooFewFragments { frames: 4, fragments: 2 })
        );
    }

    #[test]
    fn a_fragment_walk_quadratic_in_the_frames_is_refused_before_it_starts() {
        let object = Fragments { frames: 10_000, fragments: vec![Vec::new(); 10_000 + 1] };
        let error = check_before_decoding(&object).unwrap_err();
        assert_eq!(error, PixelError::FragmentWalk { frames: 10_000, fragments: 10_001 });
        assert!(error.to_string().contains("send one fragment per frame"), "{error}");
    }
}
