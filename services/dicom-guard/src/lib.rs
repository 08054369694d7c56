//! Checks on untrusted DICOM bytes that must run before dicom-rs sees them.
//!
//! dicom-rs 0.10 trusts several numbers that a file declares:
//!
//! * it reads `length / width` values of a fixed-width VR and leaves the rest of a length that
//!   is not a multiple of the width in the stream, so the next header is read out of value bytes
//!   and its "length" reaches the allocator ([`vr`]; fuzzing finding 5);
//! * it allocates what an RLE header's segment count says and expands a PackBits segment in full
//!   before cutting it to the frame ([`rle`]; finding 4);
//! * its JPEG, JPEG-LS and JPEG 2000 decoders size their buffers from the codestream's frame
//!   header, not from Rows and Columns ([`codestream`]).
//!
//! Both services that parse DICOM call these functions, ingest in its pre-scan and before its
//! pixel check, preprocess in its scan and before decoding, so the two refuse the same inputs
//! with the same words. [`check_before_decoding`] is the one call for pixel data. See
//! `docs/fuzzing.md` for the findings.
//!
//! It depends on dicom-core, its standard dictionary (to resolve implicit VRs as dicom-rs does)
//! and dicom-encoding (for the `PixelDataObject` view the decoders use), nothing else of dicom-rs.

pub mod codestream;
pub mod pixels;
pub mod rle;
pub mod vr;

pub use pixels::{PixelError, check_before_decoding};

/// What the DICOM attributes say the image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub rows: u32,
    pub columns: u32,
    pub samples_per_pixel: u32,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows x {} columns x {} samples", self.rows, self.columns, self.samples_per_pixel)
    }
}
