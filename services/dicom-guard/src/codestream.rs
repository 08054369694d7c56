//! The frame headers of compressed pixel data checked against the DICOM image attributes.
//!
//! The JPEG, JPEG-LS and JPEG 2000 decoders behind dicom-rs size their buffers from the
//! codestream's own frame header, not from Rows and Columns: a JPEG whose SOF says 65,535 x
//! 65,535 makes jpeg-decoder reserve gigabytes for a 64 KB instance. PS3.5 8.2 requires the
//! codestream to describe the same image as the data set, so a header that disagrees is refused
//! here, before any decoder runs. Only marker segments are read; nothing is decoded.

use thiserror::Error;

use crate::Shape;

/// Why a codestream is refused before decoding.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodestreamError {
    #[error(
        "{kind} frame header of frame {frame} declares {declared}, but the data set's attributes say {expected}"
    )]
    ShapeMismatch { kind: &'static str, frame: usize, declared: Shape, expected: Shape },
    #[error("{kind} codestream of frame {frame} is cut short or malformed at byte {offset}: {what}")]
    Malformed { kind: &'static str, frame: usize, offset: usize, what: &'static str },
    #[error("{kind} codestream of frame {frame} has no frame header before its image data")]
    NoFrameHeader { kind: &'static str, frame: usize },
}

/// Which marker syntax a JPEG-family stream uses inside its entropy-coded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegFamily {
    /// ITU T.81 (baseline, extended, lossless): `FF 00` is a stuffed byte, `FF D0`-`FF D7` restarts.
    Jpeg,
    /// ITU T.87: after `FF` a byte below `0x80` is data (bit stuffing); only `FF 80`+ is a marker.
    JpegLs,
}

impl JpegFamily {
    fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::JpegLs => "JPEG-LS",
        }
    }

    /// Whether `FF next` inside entropy-coded data starts a marker.
    fn is_marker(self, next: u8) -> bool {
        match self {
            Self::Jpeg => next != 0x00 && !(0xD0..=0xD7).contains(&next) && next != 0xFF,
            Self::JpegLs => next >= 0x80 && next != 0xFF,
        }
    }
}

/// Whether this marker is a frame header: SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC),
/// and JPEG-LS's SOF55 (F7).
fn is_frame_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7)
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Checks every frame header of a JPEG or JPEG-LS stream: the fragments of the pixel data
/// concatenated, frames back to back, as dicom-rs's JPEG adapter reads them (after each image,
/// any bytes up to the next SOI are skipped), or one frame's bytes. Errors number the images
/// from `first_frame`. Returns the number of images seen.
pub fn check_jpeg_stream(
    stream: &[u8],
    first_frame: usize,
    family: JpegFamily,
    expected: &Shape,
) -> Result<usize, CodestreamError> {
    let kind = family.name();
    let mut position = 0usize;
    let mut frame = first_frame;
    while let Some(start) = find_soi(stream, position) {
        position = walk_jpeg_image(stream, start + 2, frame, family, expected)?;
        frame += 1;
    }
    if frame == first_frame {
        return Err(CodestreamError::Malformed {
            kind,
            frame,
            offset: 0,
            what: "no start-of-image marker (FF D8)",
        });
    }
    Ok(frame - first_frame)
}

fn find_soi(stream: &[u8], from: usize) -> Option<usize> {
    let rest = stream.get(from..)?;
    rest.windows(2).position(|pair| pair == [0xFF, SOI]).map(|at| from + at)
}

/// Walks one image from just after its SOI to just after its EOI (or the end of the stream),
/// checking each frame header; returns where the image ends.
fn walk_jpeg_image(
    stream: &[u8],
    mut position: usize,
    frame: usize,
    family: JpegFamily,
    expected: &Shape,
) -> Result<usize, CodestreamError> {
    let kind = family.name();
    let malformed =
        |offset: usize, what: &'static str| CodestreamError::Malformed { kind, frame, offset, what };
    let mut seen_frame_header = false;
    loop {
        // Fill bytes (FF FF ...) may precede a marker.
        while stream.get(position) == Some(&0xFF) && stream.get(position + 1) == Some(&0xFF) {
            position += 1;
        }
        let marker = match stream.get(position..) {
            None | Some([]) => return Ok(position),
            Some([0xFF, marker, ..]) => *marker,
            Some(_) => return Err(malformed(position, "expected a marker")),
        };
        position += 2;
        match marker {
            EOI => return Ok(position),
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let length = usize::from(
            be_u16(stream, position).ok_or_else(|| malformed(position, "marker segment length"))?,
        );
        if length < 2 || position + length > stream.len() {
            return Err(malformed(position, "marker segment length runs past the stream"));
        }
        if is_frame_header(marker) {
            let segment = &stream[position..position + length];
            let (Some(rows), Some(columns), Some(&components)) =
                (be_u16(segment, 3), be_u16(segment, 5), segment.get(7))
            else {
                return Err(malformed(position, "frame header shorter than 8 bytes"));
            };
            let declared =
                Shape { rows: rows.into(), columns: columns.into(), samples_per_pixel: components.into() };
            if declared != *expected {
                return Err(CodestreamError::ShapeMismatch { kind, frame, declared, expected: *expected });
            }
            seen_frame_header = true;
        }
        position += length;
        if marker == SOS {
            if !seen_frame_header {
                return Err(CodestreamError::NoFrameHeader { kind, frame });
            }
            position = skip_entropy_coded(stream, position, family);
        }
    }
}

/// The position of the next marker after entropy-coded data (or the end of the stream).
fn skip_entropy_coded(stream: &[u8], mut position: usize, family: JpegFamily) -> usize {
    while position + 1 < stream.len() {
        if stream[position] == 0xFF && family.is_marker(stream[position + 1]) {
            return position;
        }
        position += 1;
    }
    stream.len()
}

/// Checks the SIZ marker segment of one JPEG 2000 frame (a raw codestream, or a JP2 file whose
/// codestream box holds one): image size (Xsiz - XOsiz by Ysiz - YOsiz) and component count.
pub fn check_j2k_frame(frame_bytes: &[u8], frame: usize, expected: &Shape) -> Result<(), CodestreamError> {
    let kind = "JPEG 2000";
    let malformed =
        |offset: usize, what: &'static str| CodestreamError::Malformed { kind, frame, offset, what };
    // SOC (FF 4F) then SIZ (FF 51), at the start of a raw codestream or inside a JP2 file.
    let start = frame_bytes
        .windows(4)
        .take(4096)
        .position(|quad| quad == [0xFF, 0x4F, 0xFF, 0x51])
        .ok_or_else(|| malformed(0, "no SOC and SIZ markers (FF 4F FF 51) in the first 4 KiB"))?;
    let siz = start + 4;
    let field = |offset: usize| {
        be_u32(frame_bytes, siz + offset).ok_or_else(|| malformed(siz, "SIZ segment is cut short"))
    };
    // Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4) XTsiz YTsiz XTOsiz YTOsiz (4 each) Csiz(2).
    let (width, height, x_origin, y_origin) = (field(4)?, field(8)?, field(12)?, field(16)?);
    let components =
        be_u16(frame_bytes, siz + 36).ok_or_else(|| malformed(siz, "SIZ segment is cut short"))?;
    let declared = Shape {
        rows: height.saturating_sub(y_origin),
        columns: width.saturating_sub(x_origin),
        samples_per_pixel: components.into(),
    };
    if declared != *expected {
        return Err(CodestreamError::ShapeMismatch { kind, frame, declared, expected: *expected });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape { rows: 64, columns: 32, samples_per_pixel: 1 };

    /// A JPEG-shaped stream: SOI, a COM, a SOF0 of `rows x columns x components`, SOS, entropy
    /// data with a stuffed byte and a restart marker, EOI.
    fn jpeg(rows: u16, columns: u16, components: u8) -> Vec<u8> {
        let mut out = vec![0xFF, SOI, 0xFF, 0xFE, 0x00, 0x04, 0xFF, 0xC0];
        out.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x04, 0xFF, 0xC0]);
        out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8]);
        out.extend_from_slice(&rows.to_be_bytes());
        out.extend_from_slice(&columns.to_be_bytes());
        out.extend_from_slice(&[components, 1, 0x11, 0]);
        out.extend_from_slice(&[0xFF, SOS, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
        out.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, EOI]);
        out
    }

    #[test]
    fn matching_jpeg_frames_pass_and_are_counted() {
        let mut two = jpeg(64, 32, 1);
        two.push(0); // padding between fragments, skipped like dicom-rs skips it
        two.extend(jpeg(64, 32, 1));
        assert_eq!(check_jpeg_stream(&two, 0, JpegFamily::Jpeg, &SHAPE), Ok(2));
    }

    #[test]
    fn a_frame_header_larger_than_the_image_is_refused() {
        let mut two = jpeg(64, 32, 1);
        two.extend(jpeg(65535, 65535, 3));
        let error = check_jpeg_stream(&two, 0, JpegFamily::Jpeg, &SHAPE).unwrap_err();
        assert!(matches!(error, CodestreamError::ShapeMismatch { frame: 1, .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "JPEG frame header of frame 1 declares 65535 rows x 65535 columns x 3 samples, but the data set's attributes say 64 rows x 32 columns x 1 samples"
        );
    }

    #[test]
    fn segments_past_the_end_and_missing_frame_headers_are_refused() {
        let mut cut = jpeg(64, 32, 1);
        cut.truncate(12);
        assert!(matches!(
            check_jpeg_stream(&cut, 0, JpegFamily::Jpeg, &SHAPE),
            Err(CodestreamError::Malformed { .. })
        ));
        let no_sof = [0xFF, SOI, 0xFF, SOS, 0x00, 0x02, 0x00, 0xFF, EOI];
        assert_eq!(
            check_jpeg_stream(&no_sof, 0, JpegFamily::Jpeg, &SHAPE),
            Err(CodestreamError::NoFrameHeader { kind: "JPEG", frame: 0 })
        );
        assert!(check_jpeg_stream(&[1, 2, 3], 0, JpegFamily::Jpeg, &SHAPE).is_err());
    }

    #[test]
    fn jpeg_ls_uses_its_own_frame_header_and_bit_stuffing() {
        let mut ls = vec![0xFF, SOI, 0xFF, 0xF7, 0x00, 0x0B, 8, 0, 64, 0, 32, 1, 1, 0x11, 0];
        // FF 7F is data in JPEG-LS, not a marker.
        ls.extend_from_slice(&[0xFF, SOS, 0x00, 0x08, 1, 1, 0, 0, 0, 0, 0xFF, 0x7F, 0x01, 0xFF, EOI]);
        assert_eq!(check_jpeg_stream(&ls, 0, JpegFamily::JpegLs, &SHAPE), Ok(1));
        ls[7..9].copy_from_slice(&4096u16.to_be_bytes());
        assert!(matches!(
            check_jpeg_stream(&ls, 3, JpegFamily::JpegLs, &SHAPE),
            Err(CodestreamError::ShapeMismatch { kind: "JPEG-LS", frame: 3, .. })
        ));
    }

    fn j2k(width: u32, height: u32, components: u16) -> Vec<u8> {
        let mut out = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for value in [width, height, 0, 0, width, height, 0, 0] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.extend_from_slice(&components.to_be_bytes());
        out.extend_from_slice(&[7, 1, 1]);
        out
    }

    #[test]
    fn jpeg_2000_siz_must_match() {
        assert_eq!(check_j2k_frame(&j2k(32, 64, 1), 0, &SHAPE), Ok(()));
        let error = check_j2k_frame(&j2k(100_000, 100_000, 1), 3, &SHAPE).unwrap_err();
        assert!(
            error.to_string().starts_with("JPEG 2000 frame header of frame 3 declares 100000 rows"),
            "{error}"
        );
        assert!(check_j2k_frame(&j2k(32, 64, 1)[..20], 0, &SHAPE).is_err());
        assert!(check_j2k_frame(b"not a codestream", 0, &SHAPE).is_err());
    }
}
