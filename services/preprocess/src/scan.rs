//! Bounded structural pre-scan of a DICOM Part 10 byte stream, run before dicom-object parses it.
//!
//! dicom-rs 0.10.1 allocates whatever length an element declares before it notices the stream
//! is shorter, and parses nested sequences recursively (a 2,000-deep sequence overflows a 2 MiB
//! thread stack, an abort that no `catch_unwind` can stop). This scanner walks the element
//! headers iteratively, without allocating values, and refuses a stream whose declared lengths
//! run past their container, whose sequences nest deeper than a limit, or whose fixed-width
//! values (US, UL, AT, FD, ...) have a length that is not a whole number of values (dicom-parser
//! would lose its place in the stream). VRs are resolved as dicom-rs resolves them
//! (`tfesi_dicom_guard::vr`). Only a stream that passes is handed to the real parser.

use std::io::Read;

use dicom_core::{Tag, VR};

use tfesi_dicom_guard::vr::{check_value_length, explicit_vr, has_long_length, implicit_vr};

use crate::error::{Error, Result};

const PREAMBLE_LEN: usize = 128;
const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
pub(crate) const DEFLATED_EXPLICIT_LE: &str = "1.2.840.10008.1.2.1.99";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";

/// Limits the scan enforces.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Deepest sequence nesting accepted (real MR files use fewer than 6 levels).
    pub max_sequence_depth: usize,
    /// Largest inflated data set accepted for the deflated transfer syntax.
    pub max_inflated_bytes: usize,
    /// Most data elements in one instance (ingest's limit too): a deflated data set of millions
    /// of empty elements would otherwise cost a minute to decode (found by fuzzing).
    pub max_elements: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self { max_sequence_depth: 16, max_inflated_bytes: 256 * 1024 * 1024, max_elements: 1_000_000 }
    }
}

/// What the scan learned about a stream that passed.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    /// Transfer Syntax UID from the file meta group, trailing padding removed.
    pub transfer_syntax_uid: String,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sequence,
    Item,
    PixelSequence,
}

#[derive(Debug, Clone, Copy)]
struct Container {
    kind: Kind,
    /// Offset one past the last byte, for a defined length.
    end: Option<usize>,
    /// Whether the content is implicit VR (an explicit-VR UN of undefined length holds implicit VR).
    implicit: bool,
}

#[derive(Debug, Clone, Copy)]
struct Encoding {
    implicit: bool,
    big_endian: bool,
}

/// Check the structure of a whole Part 10 file (preamble, meta group, data set).
pub fn prescan(bytes: &[u8], limits: &ScanLimits) -> Result<ScanOutcome> {
    if bytes.len() < PREAMBLE_LEN + 4 || &bytes[PREAMBLE_LEN..PREAMBLE_LEN + 4] != b"DICM" {
        return Err(Error::NotDicom("missing 128-byte preamble and DICM prefix".into()));
    }
    let (transfer_syntax_uid, dataset_start) = scan_meta(bytes, PREAMBLE_LEN + 4)?;
    let tail = &bytes[dataset_start..];
    if transfer_syntax_uid == DEFLATED_EXPLICIT_LE {
        let inflated = inflate_bounded(tail, limits.max_inflated_bytes)?;
        let encoding = Encoding { implicit: false, big_endian: false };
        scan_dataset(&inflated, encoding, limits)?;
    } else {
        let encoding = Encoding {
            implicit: transfer_syntax_uid == IMPLICIT_LE,
            big_endian: transfer_syntax_uid == EXPLICIT_BE,
        };
        scan_dataset(tail, encoding, limits).map_err(|error| shift_offset(error, dataset_start))?;
    }
    Ok(ScanOutcome { transfer_syntax_uid })
}

fn shift_offset(error: Error, by: usize) -> Error {
    match error {
        Error::Malformed { offset, reason } => Error::Malformed { offset: offset + by, reason },
        Error::NestingTooDeep { offset, limit } => Error::NestingTooDeep { offset: offset + by, limit },
        other => other,
    }
}

fn inflate_bounded(deflated: &[u8], max: usize) -> Result<Vec<u8>> {
    let mut inflated = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(deflated)
        .take(cap)
        .read_to_end(&mut inflated)
        .map_err(|error| Error::malformed(0, format!("deflated data set: {error}")))?;
    if inflated.len() > max {
        return Err(Error::malformed(0, format!("deflated data set inflates past {max} bytes")));
    }
    Ok(inflated)
}

/// Walk the file meta group (always explicit VR little endian); return the transfer syntax
/// and the offset where the data set starts.
fn scan_meta(bytes: &[u8], start: usize) -> Result<(String, usize)> {
    let mut pos = start;
    let mut transfer_syntax = None;
    while pos + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]);
        let vr = [bytes[pos + 4], bytes[pos + 5]];
        let (header, len) = if has_long_length(vr) {
            let len = read_u32(bytes, pos + 8, false)
                .ok_or_else(|| Error::NotDicom("file meta group truncated".into()))?;
            (12, len)
        } else {
            (8, u32::from(u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]])))
        };
        if len == UNDEFINED {
            return Err(Error::NotDicom("undefined length in the file meta group".into()));
        }
        check_value_length(explicit_vr(vr), len)
            .map_err(|why| Error::NotDicom(format!("file meta element (0002,{element:04X}): {why}")))?;
        let value_start = pos + header;
        let value_end = value_start.saturating_add(len as usize);
        if value_end > bytes.len() {
            return Err(Error::NotDicom(format!(
                "file meta element (0002,{element:04X}) runs past the end of the file"
            )));
        }
        if element == 0x0010 {
            let raw = String::from_utf8_lossy(&bytes[value_start..value_end]);
            transfer_syntax = Some(raw.trim_end_matches(['\0', ' ']).trim().to_string());
        }
        pos = value_end;
    }
    match transfer_syntax {
        Some(uid) if !uid.is_empty() => Ok((uid, pos)),
        _ => Err(Error::NotDicom("file meta group has no Transfer Syntax UID (0002,0010)".into())),
    }
}

fn read_u16(bytes: &[u8], pos: usize, big_endian: bool) -> Option<u16> {
    let raw: [u8; 2] = bytes.get(pos..pos.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian { u16::from_be_bytes(raw) } else { u16::from_le_bytes(raw) })
}

fn read_u32(bytes: &[u8], pos: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) })
}

struct Walker<'a> {
    data: &'a [u8],
    encoding: Encoding,
    limits: &'a ScanLimits,
    stack: Vec<Container>,
    pos: usize,
    elements: usize,
}

impl Walker<'_> {
    fn limit(&self) -> usize {
        self.stack.iter().rev().find_map(|container| container.end).unwrap_or(self.data.len())
    }

    fn implicit(&self) -> bool {
        self.stack.last().map_or(self.encoding.implicit, |container| container.implicit)
    }

    fn sequence_depth(&self) -> usize {
        self.stack.iter().filter(|container| matches!(container.kind, Kind::Sequence)).count()
    }

    fn push(&mut self, container: Container) -> Result<()> {
        self.stack.push(container);
        if self.sequence_depth() > self.limits.max_sequence_depth {
            return Err(Error::NestingTooDeep { offset: self.pos, limit: self.limits.max_sequence_depth });
        }
        Ok(())
    }

    fn defined_end(&self, value_start: usize, len: u32) -> Result<usize> {
        let end = value_start.saturating_add(len as usize);
        if end > self.limit() {
            return Err(Error::malformed(
                self.pos,
                format!(
                    "declared length {len} runs past the end of its container ({} bytes left)",
                    self.limit().saturating_sub(value_start)
                ),
            ));
        }
        Ok(end)
    }

    fn truncated(&self) -> Error {
        Error::malformed(self.pos, "stream ends inside an element header")
    }

    fn close_finished_containers(&mut self) -> Result<()> {
        while let Some(end) = self.stack.last().and_then(|container| container.end) {
            if self.pos < end {
                break;
            }
            if self.pos > end {
                return Err(Error::malformed(self.pos, "element overruns its container"));
            }
            self.stack.pop();
        }
        Ok(())
    }

    fn run(&mut self) -> Result<()> {
        loop {
            self.close_finished_containers()?;
            if self.pos >= self.data.len() {
                break;
            }
            let big_endian = self.encoding.big_endian;
            let group = read_u16(self.data, self.pos, big_endian).ok_or_else(|| self.truncated())?;
            let element = read_u16(self.data, self.pos + 2, big_endian).ok_or_else(|| self.truncated())?;
            if group == 0xFFFE {
                self.delimiter_or_item(element)?;
            } else {
                self.element(Tag(group, element))?;
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(Error::malformed(
                self.pos,
                format!("stream ends inside an unterminated {:?}", open.kind),
            ));
        }
        Ok(())
    }

    fn delimiter_or_item(&mut self, element: u16) -> Result<()> {
        let len =
            read_u32(self.data, self.pos + 4, self.encoding.big_endian).ok_or_else(|| self.truncated())?;
        let value_start = self.pos + 8;
        let top = self.stack.last().copied();
        match (element, top.map(|container| container.kind)) {
            (0xE000, Some(Kind::PixelSequence)) => {
                if len == UNDEFINED {
                    return Err(Error::malformed(self.pos, "pixel fragment of undefined length"));
                }
                self.pos = self.defined_end(value_start, len)?;
            }
            (0xE000, Some(Kind::Sequence)) => {
                let end = if len == UNDEFINED { None } else { Some(self.defined_end(value_start, len)?) };
                let implicit = self.implicit();
                self.pos = value_start;
                self.push(Container { kind: Kind::Item, end, implicit })?;
            }
            (0xE00D, Some(Kind::Item)) if top.is_some_and(|c| c.end.is_none()) => {
                self.stack.pop();
                self.pos = value_start;
            }
            (0xE0DD, Some(Kind::Sequence | Kind::PixelSequence)) if top.is_some_and(|c| c.end.is_none()) => {
                self.stack.pop();
                self.pos = value_start;
            }
            _ => {
                return Err(Error::malformed(
                    self.pos,
                    format!("unexpected item or delimiter (FFFE,{element:04X})"),
                ));
            }
        }
        Ok(())
    }

    fn element(&mut self, tag: Tag) -> Result<()> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(Error::malformed(
                self.pos,
                format!("more than {} data elements in one instance", self.limits.max_elements),
            ));
        }
        if matches!(
            self.stack.last().map(|container| container.kind),
            Some(Kind::Sequence | Kind::PixelSequence)
        ) {
            return Err(Error::malformed(
                self.pos,
                format!("data element {tag} directly inside a sequence, outside an item"),
            ));
        }
        let implicit = self.implicit();
        let big_endian = self.encoding.big_endian;
        let (vr, header, len, is_sequence, contents_implicit) = if implicit {
            let len = read_u32(self.data, self.pos + 4, big_endian).ok_or_else(|| self.truncated())?;
            let vr = implicit_vr(tag);
            let sequence = vr == VR::SQ || (len == UNDEFINED && tag != PIXEL_DATA);
            (vr, 8, len, sequence, true)
        } else {
            let code: [u8; 2] = self
                .data
                .get(self.pos + 4..self.pos + 6)
                .and_then(|raw| raw.try_into().ok())
                .ok_or_else(|| self.truncated())?;
            let vr = explicit_vr(code);
            if has_long_length(code) {
                let len = read_u32(self.data, self.pos + 8, big_endian).ok_or_else(|| self.truncated())?;
                let un_undefined = &code == b"UN" && len == UNDEFINED;
                (vr, 12, len, vr == VR::SQ || un_undefined, un_undefined)
            } else {
                let len = read_u16(self.data, self.pos + 6, big_endian).ok_or_else(|| self.truncated())?;
                (vr, 8, u32::from(len), false, false)
            }
        };
        let value_start = self.pos + header;
        if value_start > self.limit() {
            return Err(self.truncated());
        }
        if len == UNDEFINED {
            let kind = if is_sequence {
                Kind::Sequence
            } else if tag == PIXEL_DATA {
                Kind::PixelSequence
            } else {
                return Err(Error::malformed(
                    self.pos,
                    format!("undefined length on non-sequence element {tag}"),
                ));
            };
            self.pos = value_start;
            return self.push(Container { kind, end: None, implicit: contents_implicit });
        }
        if !is_sequence {
            check_value_length(vr, len)
                .map_err(|why| Error::malformed(self.pos, format!("element {tag}: {why}")))?;
        }
        let end = self.defined_end(value_start, len)?;
        if is_sequence {
            self.pos = value_start;
            return self.push(Container {
                kind: Kind::Sequence,
                end: Some(end),
                implicit: contents_implicit,
            });
        }
        self.pos = end;
        Ok(())
    }
}

fn scan_dataset(data: &[u8], encoding: Encoding, limits: &ScanLimits) -> Result<()> {
    let mut walker = Walker { data, encoding, limits, stack: Vec::new(), pos: 0, elements: 0 };
    walker.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_file(dataset: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; PREAMBLE_LEN];
        bytes.extend_from_slice(b"DICM");
        let uid = b"1.2.840.10008.1.2.1\0";
        bytes.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        bytes.extend_from_slice(&u16::try_from(uid.len()).unwrap_or(0).to_le_bytes());
        bytes.extend_from_slice(uid);
        bytes.extend_from_slice(dataset);
        bytes
    }

    #[test]
    fn declared_length_past_the_end_is_refused_without_allocating() {
        let mut dataset = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
        dataset.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        dataset.extend_from_slice(&[0u8; 16]);
        let error = prescan(&minimal_file(&dataset), &ScanLimits::default());
        assert!(matches!(error, Err(Error::Malformed { .. })), "{error:?}");
    }

    #[test]
    fn deep_nesting_is_refused_with_a_depth_error() {
        let mut dataset = Vec::new();
        for _ in 0..40 {
            dataset.extend_from_slice(&[0x09, 0x00, 0x01, 0x10, b'S', b'Q', 0, 0]);
            dataset.extend_from_slice(&UNDEFINED.to_le_bytes());
            dataset.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            dataset.extend_from_slice(&UNDEFINED.to_le_bytes());
        }
        let error = prescan(&minimal_file(&dataset), &ScanLimits::default());
        assert!(matches!(error, Err(Error::NestingTooDeep { .. })), "{error:?}");
    }

    #[test]
    fn a_well_formed_small_stream_passes() {
        let dataset = [0x10, 0x00, 0x20, 0x00, b'L', b'O', 2, 0, b'A', b'B'];
        let outcome = prescan(&minimal_file(&dataset), &ScanLimits::default());
        assert_eq!(outcome.map(|o| o.transfer_syntax_uid).ok().as_deref(), Some("1.2.840.10008.1.2.1"));
    }

    #[test]
    fn too_many_elements_are_refused() {
        let element = [0x09, 0x00, 0x10, 0x10, b'L', b'O', 0, 0];
        let dataset: Vec<u8> = element.iter().copied().cycle().take(element.len() * 10).collect();
        let limits = ScanLimits { max_elements: 5, ..ScanLimits::default() };
        let error = prescan(&minimal_file(&dataset), &limits);
        assert!(
            matches!(&error, Err(Error::Malformed { reason, .. }) if reason.contains("more than 5")),
            "{error:?}"
        );
        assert!(prescan(&minimal_file(&dataset), &ScanLimits::default()).is_ok());
    }

    #[test]
    fn an_unknown_vr_code_has_the_four_byte_length_form() {
        // (0009,1010) with the undefined VR code "SX": reserved bytes, then a 4-byte length.
        let mut dataset = vec![0x09, 0x00, 0x10, 0x10, b'S', b'X', 0, 0];
        dataset.extend_from_slice(&0x3033_3131u32.to_le_bytes());
        let error = prescan(&minimal_file(&dataset), &ScanLimits::default());
        assert!(matches!(error, Err(Error::Malformed { .. })), "read as a 4-byte length: {error:?}");
    }
}
