//! RLE Lossless (transfer syntax 1.2.840.10008.1.2.5, PS3.5 Annex G) checked before decoding.
//!
//! Each frame is one fragment. A fragment starts with a 64-byte header: the number of segments
//! (one per byte of each sample: 1 for 8-bit grey, 2 for 16-bit grey, 3 for 8-bit RGB, at most
//! 15) and 15 offsets, the first 64. Each segment is PackBits and decodes to `rows x columns`
//! bytes.
//!
//! dicom-rs 0.10.1 allocates `segment count` offsets before it looks at the fragment's length
//! (fuzzing finding 4: a count of 3.7 billion asked for 15 GB), expands a whole segment before it
//! takes `rows x columns` bytes of it (up to 64 times the segment's size), and indexes past the
//! end of a segment that decodes short (a panic). [`check_fragments`] walks the headers and the
//! PackBits control bytes without allocating and refuses all of these with a message naming the
//! frame and segment.

use thiserror::Error;

use crate::Shape;

/// The header length, in bytes: the segment count and 15 offsets.
pub const HEADER_BYTES: usize = 64;
/// The most segments a header can describe.
pub const MAX_SEGMENTS: u32 = 15;

/// What the image attributes say about each frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameLayout {
    pub shape: Shape,
    /// Bits Allocated / 8: 1 or 2.
    pub bytes_per_sample: u32,
    /// Number of Frames (1 when absent).
    pub frames: u32,
}

impl FrameLayout {
    /// Segments per frame: one for each byte of each sample.
    pub fn segments(&self) -> u64 {
        u64::from(self.shape.samples_per_pixel) * u64::from(self.bytes_per_sample)
    }

    /// Bytes each segment decodes to.
    pub fn segment_bytes(&self) -> u64 {
        u64::from(self.shape.rows) * u64::from(self.shape.columns)
    }
}

/// Why RLE Lossless pixel data is refused before decoding.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RleError {
    #[error(
        "RLE Lossless pixel data has {fragments} fragments for {frames} frames: each frame must be exactly one fragment (PS3.5 A.4.2)"
    )]
    FragmentCount { fragments: usize, frames: u32 },
    #[error(
        "RLE fragment of frame {frame} is {length} bytes, shorter than the {HEADER_BYTES}-byte RLE header"
    )]
    ShortFragment { frame: usize, length: usize },
    #[error(
        "RLE header of frame {frame} declares {declared} segments; {needed} are needed (samples per pixel x bytes per sample) and at most {MAX_SEGMENTS} fit the header"
    )]
    SegmentCount { frame: usize, declared: u32, needed: u64 },
    #[error(
        "RLE header of frame {frame}: segment {segment} starts at byte {offset}, outside the header's end ({HEADER_BYTES}) to the fragment's end ({length}) or before the previous segment"
    )]
    SegmentOffset { frame: usize, segment: usize, offset: u32, length: usize },
    #[error(
        "RLE segment {segment} of frame {frame} ends inside a PackBits run (a control byte with no value byte)"
    )]
    TruncatedRun { frame: usize, segment: usize },
    #[error(
        "RLE segment {segment} of frame {frame} decodes to {decoded} bytes; it must hold rows x columns = {expected} bytes (PS3.5 G.3.1)"
    )]
    SegmentSize { frame: usize, segment: usize, decoded: u64, expected: u64 },
}

/// How much larger than `rows x columns` a segment may decode. PS3.5 asks for exactly
/// `rows x columns`; the slack tolerates an encoder that pads a row or a segment, while the
/// memory dicom-rs spends on a segment stays within twice the frame's plane.
fn segment_ceiling(expected: u64) -> u64 {
    expected.saturating_mul(2).saturating_add(128)
}

/// Checks every fragment of RLE Lossless pixel data (the basic offset table excluded) against
/// the image attributes, reading only headers and PackBits control bytes.
pub fn check_fragments<'a, I>(fragments: I, layout: &FrameLayout) -> Result<(), RleError>
where
    I: ExactSizeIterator<Item = &'a [u8]>,
{
    if fragments.len() != layout.frames as usize {
        return Err(RleError::FragmentCount { fragments: fragments.len(), frames: layout.frames });
    }
    for (frame, fragment) in fragments.enumerate() {
        check_frame(frame, fragment, layout)?;
    }
    Ok(())
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_frame(frame: usize, fragment: &[u8], layout: &FrameLayout) -> Result<(), RleError> {
    if fragment.len() < HEADER_BYTES {
        return Err(RleError::ShortFragment { frame, length: fragment.len() });
    }
    let declared = le_u32(fragment, 0);
    let needed = layout.segments();
    if declared > MAX_SEGMENTS || u64::from(declared) < needed {
        return Err(RleError::SegmentCount { frame, declared, needed });
    }
    let count = declared as usize;
    let offsets: Vec<u32> = (0..count).map(|segment| le_u32(fragment, 4 + 4 * segment)).collect();
    let mut previous = HEADER_BYTES;
    for (segment, &offset) in offsets.iter().enumerate() {
        let start = offset as usize;
        if start < previous || start > fragment.len() {
            return Err(RleError::SegmentOffset { frame, segment, offset, length: fragment.len() });
        }
        previous = start;
    }
    let expected = layout.segment_bytes();
    for segment in 0..needed as usize {
        let start = offsets[segment] as usize;
        let end = offsets.get(segment + 1).map_or(fragment.len(), |&next| next as usize);
        let decoded = packbits_decoded_len(&fragment[start..end], segment_ceiling(expected))
            .ok_or(RleError::TruncatedRun { frame, segment })?;
        if decoded < expected || decoded > segment_ceiling(expected) {
            return Err(RleError::SegmentSize { frame, segment, decoded, expected });
        }
    }
    Ok(())
}

/// The number of bytes a PackBits segment decodes to, counted as dicom-rs decodes it (a literal
/// run cut short by the segment's end yields what is there), stopping early once past
/// `ceiling`. `None` when the segment ends between a repeat's control byte and its value.
fn packbits_decoded_len(segment: &[u8], ceiling: u64) -> Option<u64> {
    let mut position = 0usize;
    let mut decoded = 0u64;
    while position < segment.len() && decoded <= ceiling {
        let control = segment[position] as i8;
        position += 1;
        match control {
            0..=127 => {
                let literal = control as usize + 1;
                decoded += literal.min(segment.len() - position) as u64;
                position += literal;
            }
            -127..=-1 => {
                if position >= segment.len() {
                    return None;
                }
                decoded += (1 - i64::from(control)) as u64;
                position += 1;
            }
            -128 => {}
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PackBits for `bytes`: runs of 3 or more as repeats, the rest as literals.
    fn packbits(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let run = bytes[i..].iter().take(128).take_while(|&&b| b == bytes[i]).count();
            if run >= 3 {
                out.push((1 - run as i16) as u8);
                out.push(bytes[i]);
                i += run;
            } else {
                let literal = bytes[i..].len().min(128);
                out.push((literal - 1) as u8);
                out.extend_from_slice(&bytes[i..i + literal]);
                i += literal;
            }
        }
        out
    }

    fn fragment(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut header = vec![0u8; HEADER_BYTES];
        header[0..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut offset = HEADER_BYTES as u32;
        let mut body = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            header[4 + 4 * index..8 + 4 * index].copy_from_slice(&offset.to_le_bytes());
            body.extend_from_slice(segment);
            offset += segment.len() as u32;
        }
        header.extend(body);
        header
    }

    const GREY16: FrameLayout = FrameLayout {
        shape: Shape { rows: 4, columns: 8, samples_per_pixel: 1 },
        bytes_per_sample: 2,
        frames: 1,
    };

    fn valid_grey16() -> Vec<u8> {
        let high: Vec<u8> = (0..32).map(|i| (i / 8) as u8).collect();
        let low: Vec<u8> = (0..32).map(|i| (i * 7) as u8).collect();
        fragment(&[packbits(&high), packbits(&low)])
    }

    #[test]
    fn a_well_formed_frame_passes() {
        let one = valid_grey16();
        assert_eq!(check_fragments([one.as_slice()].into_iter(), &GREY16), Ok(()));
    }

    #[test]
    fn a_huge_segment_count_is_refused_before_anything_is_allocated() {
        let mut bad = valid_grey16();
        bad[0..4].copy_from_slice(&0xE000_0000u32.to_le_bytes());
        let error = check_fragments([bad.as_slice()].into_iter(), &GREY16).unwrap_err();
        assert_eq!(error, RleError::SegmentCount { frame: 0, declared: 0xE000_0000, needed: 2 });
        assert!(error.to_string().contains("declares 3758096384 segments; 2 are needed"), "{error}");
    }

    #[test]
    fn too_few_segments_offsets_outside_the_fragment_and_short_fragments_are_refused() {
        let mut one_segment = valid_grey16();
        one_segment[0..4].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(
            check_fragments([one_segment.as_slice()].into_iter(), &GREY16),
            Err(RleError::SegmentCount { declared: 1, needed: 2, .. })
        ));
        let mut outside = valid_grey16();
        outside[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(matches!(
            check_fragments([outside.as_slice()].into_iter(), &GREY16),
            Err(RleError::SegmentOffset { segment: 1, offset: 100_000, .. })
        ));
        let mut inside_header = valid_grey16();
        inside_header[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            check_fragments([inside_header.as_slice()].into_iter(), &GREY16),
            Err(RleError::SegmentOffset { segment: 0, offset: 8, .. })
        ));
        let short = [2u8, 0, 0, 0];
        assert_eq!(
            check_fragments([short.as_slice()].into_iter(), &GREY16),
            Err(RleError::ShortFragment { frame: 0, length: 4 })
        );
    }

    #[test]
    fn segments_that_decode_short_or_far_too_long_are_refused() {
        let short = fragment(&[packbits(&[1; 31]), packbits(&[2; 32])]);
        assert_eq!(
            check_fragments([short.as_slice()].into_iter(), &GREY16),
            Err(RleError::SegmentSize { frame: 0, segment: 0, decoded: 31, expected: 32 })
        );
        // 100 repeats of 128 bytes from 200 bytes: the expansion dicom-rs would do in full.
        let bomb: Vec<u8> = std::iter::repeat_n([0x81u8, 0], 100).flatten().collect();
        let long = fragment(&[packbits(&[1; 32]), bomb]);
        assert!(matches!(
            check_fragments([long.as_slice()].into_iter(), &GREY16),
            Err(RleError::SegmentSize { segment: 1, expected: 32, .. })
        ));
        let cut = fragment(&[packbits(&[1; 32]), vec![0x81]]);
        assert_eq!(
            check_fragments([cut.as_slice()].into_iter(), &GREY16),
            Err(RleError::TruncatedRun { frame: 0, segment: 1 })
        );
    }

    #[test]
    fn each_frame_is_one_fragment() {
        let one = valid_grey16();
        let two_frames = FrameLayout { frames: 2, ..GREY16 };
        assert_eq!(
            check_fragments([one.as_slice()].into_iter(), &two_frames),
            Err(RleError::FragmentCount { fragments: 1, frames: 2 })
        );
        assert_eq!(check_fragments([one.as_slice(), one.as_slice()].into_iter(), &two_frames), Ok(()));
    }

    #[test]
    fn packbits_counting_matches_the_encoder() {
        for length in [1usize, 2, 3, 127, 128, 129, 300] {
            let bytes: Vec<u8> = (0..length).map(|i| if i % 50 < 20 { 9 } else { i as u8 }).collect();
            assert_eq!(packbits_decoded_len(&packbits(&bytes), u64::MAX), Some(length as u64), "{length}");
        }
        // A no-op control byte and a trailing pad byte add nothing.
        assert_eq!(packbits_decoded_len(&[0x80, 0xFE, 7, 0x00], u64::MAX), Some(3));
    }
}
