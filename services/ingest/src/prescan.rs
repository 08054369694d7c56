//! Byte-level pre-scan of an untrusted DICOM Part 10 stream: every declared length and the nesting depth are checked before dicom-object allocates anything.

use std::io::Read;

use dicom_core::{Tag, VR};

use tfesi_dicom_guard::vr::{check_value_length, explicit_vr, has_long_length, implicit_vr};

use crate::rejection::{RejectCode, Rejection};

/// Limits applied while walking the element headers.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Deepest sequence nesting accepted (top-level sequence = depth 1).
    pub max_depth: usize,
    /// Most elements (at every depth, items and fragments included) accepted.
    pub max_elements: usize,
    /// Largest inflated data set accepted for the deflated transfer syntax, in bytes.
    pub max_inflated_bytes: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self { max_depth: 32, max_elements: 1_000_000, max_inflated_bytes: 256 * 1024 * 1024 }
    }
}

/// How the top-level pixel data is laid out in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// Native (uncompressed) pixel data with this many value bytes.
    Native {
        /// Value length of (7FE0,0010) in bytes.
        length: usize,
    },
    /// Encapsulated pixel data: fragments after the basic offset table.
    Encapsulated {
        /// Number of fragments, not counting the basic offset table item.
        fragments: usize,
    },
}

/// What the pre-scan learned about a stream it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescan {
    /// (0002,0010) Transfer Syntax UID, trimmed.
    pub transfer_syntax: String,
    /// Deepest sequence nesting seen.
    pub max_depth: usize,
    /// Elements seen (items and fragments included).
    pub elements: usize,
    /// Top-level pixel data, if any.
    pub pixel: Option<PixelLayout>,
    /// The inflated data set of a deflated instance (walked here, so parsing need not inflate it
    /// again); `None` for every other transfer syntax.
    pub inflated: Option<Vec<u8>>,
}

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_DELIMITER: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const UNDEFINED: u32 = 0xFFFF_FFFF;

#[derive(Debug, Clone, Copy)]
struct Encoding {
    explicit_vr: bool,
    big_endian: bool,
}

/// An open container during the walk; `end` is `None` for undefined length.
#[derive(Debug, Clone, Copy)]
enum Container {
    Sequence { end: Option<usize> },
    Item { end: Option<usize> },
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Rejection> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.data.len());
        let Some(end) = end else {
            return Err(Rejection::new(
                RejectCode::Truncated,
                format!("stream ends inside an element header at byte {}", self.pos),
            ));
        };
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, Rejection> {
        let big_endian = self.big_endian;
        let b = self.take(2)?;
        let pair = [b[0], b[1]];
        Ok(if big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) })
    }

    fn u32(&mut self) -> Result<u32, Rejection> {
        let big_endian = self.big_endian;
        let b = self.take(4)?;
        let quad = [b[0], b[1], b[2], b[3]];
        Ok(if big_endian { u32::from_be_bytes(quad) } else { u32::from_le_bytes(quad) })
    }
}

fn tag_text(tag: (u16, u16)) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

/// Checks a whole Part 10 stream (preamble, `DICM`, file meta, data set) without allocating
/// anything an element merely declares.
pub fn prescan(bytes: &[u8], limits: &ScanLimits) -> Result<Prescan, Rejection> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(Rejection::new(
            RejectCode::NotDicom,
            "not a DICOM Part 10 file: no 128-byte preamble followed by the DICM prefix",
        ));
    }
    let (transfer_syntax, dataset_start) = scan_file_meta(bytes)?;
    let encoding = match transfer_syntax.as_str() {
        IMPLICIT_LE => Encoding { explicit_vr: false, big_endian: false },
        EXPLICIT_BE => Encoding { explicit_vr: true, big_endian: true },
        _ => Encoding { explicit_vr: true, big_endian: false },
    };
    let dataset = &bytes[dataset_start..];
    let mut walker = Walker::new(encoding, limits);
    let inflated = if transfer_syntax == DEFLATED_LE {
        let inflated = inflate_bounded(dataset, limits.max_inflated_bytes)?;
        walker.walk(&inflated)?;
        Some(inflated)
    } else {
        walker.walk(dataset)?;
        None
    };
    Ok(Prescan {
        transfer_syntax,
        max_depth: walker.max_depth_seen,
        elements: walker.elements,
        pixel: walker.pixel,
        inflated,
    })
}

fn inflate_bounded(deflated: &[u8], cap: usize) -> Result<Vec<u8>, Rejection> {
    let mut inflated = Vec::new();
    let cap_plus_one = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = flate2::read::DeflateDecoder::new(deflated).take(cap_plus_one);
    reader.read_to_end(&mut inflated).map_err(|err| {
        Rejection::new(RejectCode::Malformed, format!("deflated data set cannot be inflated: {err}"))
    })?;
    if inflated.len() > cap {
        return Err(Rejection::new(
            RejectCode::TooLarge,
            format!("deflated data set inflates beyond the cap of {cap} bytes"),
        ));
    }
    Ok(inflated)
}

/// Walks the file meta group (always explicit VR little endian); returns the transfer syntax and
/// the offset where the data set starts.
fn scan_file_meta(bytes: &[u8]) -> Result<(String, usize), Rejection> {
    let mut cursor = Cursor { data: bytes, pos: 132, big_endian: false };
    let mut transfer_syntax = None;
    let mut seen_any = false;
    while cursor.remaining() >= 2 {
        let group = u16::from_le_bytes([bytes[cursor.pos], bytes[cursor.pos + 1]]);
        if group != 0x0002 {
            break;
        }
        let meta_error = |message: String| Rejection::new(RejectCode::BadFileMeta, message);
        let header = cursor
            .take(8)
            .map_err(|_| meta_error("file meta information ends inside an element header".into()))?;
        let element = u16::from_le_bytes([header[2], header[3]]);
        let vr = [header[4], header[5]];
        let length = if has_long_length(vr) {
            let long = cursor.take(4).map_err(|_| meta_error("file meta information is truncated".into()))?;
            u32::from_le_bytes([long[0], long[1], long[2], long[3]])
        } else {
            u32::from(u16::from_le_bytes([header[6], header[7]]))
        };
        check_value_length(explicit_vr(vr), length)
            .map_err(|why| meta_error(format!("file meta element (0002,{element:04X}): {why}")))?;
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > cursor.remaining() {
            return Err(meta_error(format!(
                "file meta element (0002,{element:04X}) declares {length} bytes but only {} remain",
                cursor.remaining()
            )));
        }
        let value = cursor.take(length)?;
        seen_any = true;
        if element == 0x0010 {
            let text = String::from_utf8_lossy(value);
            transfer_syntax = Some(text.trim_end_matches(['\0', ' ']).trim().to_string());
        }
    }
    if !seen_any {
        return Err(Rejection::new(RejectCode::BadFileMeta, "file meta information group (0002) is missing"));
    }
    match transfer_syntax {
        Some(uid) if !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            Ok((uid, cursor.pos))
        }
        Some(_) => Err(Rejection::new(
            RejectCode::BadFileMeta,
            "file meta transfer syntax UID (0002,0010) is not a valid UID",
        )),
        None => Err(Rejection::new(
            RejectCode::BadFileMeta,
            "file meta information has no transfer syntax UID (0002,0010)",
        )),
    }
}

struct Walker<'l> {
    encoding: Encoding,
    limits: &'l ScanLimits,
    stack: Vec<Container>,
    depth: usize,
    max_depth_seen: usize,
    elements: usize,
    pixel: Option<PixelLayout>,
}

impl<'l> Walker<'l> {
    fn new(encoding: Encoding, limits: &'l ScanLimits) -> Self {
        Self { encoding, limits, stack: Vec::new(), depth: 0, max_depth_seen: 0, elements: 0, pixel: None }
    }

    fn count_element(&mut self) -> Result<(), Rejection> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(Rejection::new(
                RejectCode::TooManyElements,
                format!("more than {} elements", self.limits.max_elements),
            ));
        }
        Ok(())
    }

    /// The end of the innermost container with a defined length, or the end of the data.
    fn limit(&self, data_len: usize) -> usize {
        self.stack
            .iter()
            .rev()
            .find_map(|container| match container {
                Container::Sequence { end: Some(end) } | Container::Item { end: Some(end) } => Some(*end),
                _ => None,
            })
            .unwrap_or(data_len)
    }

    fn check_length(&self, tag: (u16, u16), length: u32, cursor: &Cursor<'_>) -> Result<usize, Rejection> {
        let limit = self.limit(cursor.data.len());
        let available = limit.saturating_sub(cursor.pos);
        let declared = usize::try_from(length).unwrap_or(usize::MAX);
        if declared > available {
            let code =
                if limit == cursor.data.len() { RejectCode::LengthBeyondEnd } else { RejectCode::Malformed };
            return Err(Rejection::new(
                code,
                format!(
                    "element {} at byte {} declares {declared} bytes but only {available} remain",
                    tag_text(tag),
                    cursor.pos
                ),
            ));
        }
        Ok(declared)
    }

    fn walk(&mut self, data: &[u8]) -> Result<(), Rejection> {
        let mut cursor = Cursor { data, pos: 0, big_endian: self.encoding.big_endian };
        loop {
            if let Some(top) = self.stack.last().copied() {
                let end = match top {
                    Container::Sequence { end } | Container::Item { end } => end,
                };
                if let Some(end) = end {
                    if cursor.pos == end {
                        self.pop();
                        continue;
                    }
                    if cursor.pos > end {
                        return Err(Rejection::new(
                            RejectCode::Malformed,
                            format!("element overruns its container at byte {}", cursor.pos),
                        ));
                    }
                }
            } else if cursor.pos == data.len() {
                return Ok(());
            }
            if cursor.remaining() == 0 {
                return Err(Rejection::new(
                    RejectCode::Truncated,
                    "stream ends inside an undefined-length sequence or item",
                ));
            }
            let tag = (cursor.u16()?, cursor.u16()?);
            self.count_element()?;
            match self.stack.last().copied() {
                Some(Container::Sequence { end }) => self.sequence_entry(tag, end, &mut cursor)?,
                Some(Container::Item { end }) if tag == ITEM_DELIMITER => {
                    let _zero = cursor.u32()?;
                    if end.is_some() {
                        return Err(Rejection::new(
                            RejectCode::Malformed,
                            "item delimiter inside a defined-length item",
                        ));
                    }
                    self.pop();
                }
                _ => self.data_element(tag, &mut cursor)?,
            }
        }
    }

    fn pop(&mut self) {
        if let Some(Container::Sequence { .. }) = self.stack.pop() {
            self.depth = self.depth.saturating_sub(1);
        }
    }

    fn sequence_entry(
        &mut self,
        tag: (u16, u16),
        sequence_end: Option<usize>,
        cursor: &mut Cursor<'_>,
    ) -> Result<(), Rejection> {
        let length = cursor.u32()?;
        if tag == SEQUENCE_DELIMITER {
            if sequence_end.is_some() {
                return Err(Rejection::new(
                    RejectCode::Malformed,
                    "sequence delimiter inside a defined-length sequence",
                ));
            }
            self.pop();
            return Ok(());
        }
        if tag != ITEM {
            return Err(Rejection::new(
                RejectCode::Malformed,
                format!("expected an item in a sequence at byte {}, found {}", cursor.pos - 8, tag_text(tag)),
            ));
        }
        if length == UNDEFINED {
            self.stack.push(Container::Item { end: None });
        } else {
            let declared = self.check_length(tag, length, cursor)?;
            self.stack.push(Container::Item { end: Some(cursor.pos + declared) });
        }
        Ok(())
    }

    fn data_element(&mut self, tag: (u16, u16), cursor: &mut Cursor<'_>) -> Result<(), Rejection> {
        if tag.0 == 0xFFFE {
            return Err(Rejection::new(
                RejectCode::Malformed,
                format!("unexpected delimiter {} at byte {}", tag_text(tag), cursor.pos - 4),
            ));
        }
        let (vr, length) = if self.encoding.explicit_vr {
            let vr_bytes = cursor.take(2)?;
            let vr = [vr_bytes[0], vr_bytes[1]];
            if !vr.iter().all(u8::is_ascii_uppercase) {
                return Err(Rejection::new(
                    RejectCode::Malformed,
                    format!("element {} has no valid VR", tag_text(tag)),
                ));
            }
            let length = if has_long_length(vr) {
                let _reserved = cursor.take(2)?;
                cursor.u32()?
            } else {
                u32::from(cursor.u16()?)
            };
            (explicit_vr(vr), length)
        } else {
            (implicit_vr(Tag(tag.0, tag.1)), cursor.u32()?)
        };
        let is_sequence = vr == VR::SQ || (length == UNDEFINED && tag != PIXEL_DATA && vr == VR::UN);
        if is_sequence {
            return self.open_sequence(tag, length, cursor);
        }
        if length == UNDEFINED {
            if tag != PIXEL_DATA {
                return Err(Rejection::new(
                    RejectCode::Malformed,
                    format!("non-sequence element {} has undefined length", tag_text(tag)),
                ));
            }
            let fragments = self.encapsulated_fragments(cursor)?;
            if self.depth == 0 {
                self.pixel = Some(PixelLayout::Encapsulated { fragments });
            }
            return Ok(());
        }
        check_value_length(vr, length).map_err(|why| {
            Rejection::new(
                RejectCode::Malformed,
                format!("element {} at byte {}: {why}", tag_text(tag), cursor.pos),
            )
        })?;
        let declared = self.check_length(tag, length, cursor)?;
        cursor.take(declared)?;
        if tag == PIXEL_DATA && self.depth == 0 {
            self.pixel = Some(PixelLayout::Native { length: declared });
        }
        Ok(())
    }

    fn open_sequence(
        &mut self,
        tag: (u16, u16),
        length: u32,
        cursor: &mut Cursor<'_>,
    ) -> Result<(), Rejection> {
        self.depth += 1;
        self.max_depth_seen = self.max_depth_seen.max(self.depth);
        if self.depth > self.limits.max_depth {
            return Err(Rejection::new(
                RejectCode::TooDeep,
                format!(
                    "sequences nested deeper than {} levels (at {})",
                    self.limits.max_depth,
                    tag_text(tag)
                ),
            ));
        }
        if length == UNDEFINED {
            self.stack.push(Container::Sequence { end: None });
        } else {
            let declared = self.check_length(tag, length, cursor)?;
            self.stack.push(Container::Sequence { end: Some(cursor.pos + declared) });
        }
        Ok(())
    }

    /// Walks the items of encapsulated pixel data up to its sequence delimiter.
    fn encapsulated_fragments(&mut self, cursor: &mut Cursor<'_>) -> Result<usize, Rejection> {
        let mut items = 0usize;
        loop {
            if cursor.remaining() < 8 {
                return Err(Rejection::new(
                    RejectCode::Truncated,
                    "stream ends inside encapsulated pixel data",
                ));
            }
            let tag = (cursor.u16()?, cursor.u16()?);
            let length = cursor.u32()?;
            self.count_element()?;
            if tag == SEQUENCE_DELIMITER {
                return Ok(items.saturating_sub(1));
            }
            if tag != ITEM || length == UNDEFINED {
                return Err(Rejection::new(
                    RejectCode::Malformed,
                    format!(
                        "encapsulated pixel data holds {} where a defined-length item belongs",
                        tag_text(tag)
                    ),
                ));
            }
            let declared = self.check_length(tag, length, cursor)?;
            cursor.take(declared)?;
            items += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part10(meta_ts: &str, dataset: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        let mut ts = meta_ts.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend_from_slice(&u16::try_from(ts.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&ts);
        out.extend_from_slice(dataset);
        out
    }

    #[test]
    fn declared_length_beyond_the_end_is_rejected_without_reading_it() {
        let mut dataset = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
        dataset.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        dataset.extend_from_slice(&[0u8; 16]);
        let bytes = part10("1.2.840.10008.1.2.1", &dataset);
        let err = prescan(&bytes, &ScanLimits::default()).err();
        assert_eq!(err.map(|e| e.code), Some(RejectCode::LengthBeyondEnd));
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected() {
        let mut dataset = Vec::new();
        for _ in 0..10 {
            dataset.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0]);
            dataset.extend_from_slice(&UNDEFINED.to_le_bytes());
            dataset.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            dataset.extend_from_slice(&UNDEFINED.to_le_bytes());
        }
        let bytes = part10("1.2.840.10008.1.2.1", &dataset);
        let limits = ScanLimits { max_depth: 4, ..ScanLimits::default() };
        let err = prescan(&bytes, &limits).err();
        assert_eq!(err.map(|e| e.code), Some(RejectCode::TooDeep));
    }

    #[test]
    fn a_well_formed_native_stream_is_accepted() {
        let mut dataset = vec![0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0, 4, 0];
        dataset.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
        dataset.extend_from_slice(&8u32.to_le_bytes());
        dataset.extend_from_slice(&[1u8; 8]);
        let bytes = part10("1.2.840.10008.1.2.1", &dataset);
        let scan = prescan(&bytes, &ScanLimits::default()).ok();
        assert_eq!(scan.and_then(|s| s.pixel), Some(PixelLayout::Native { length: 8 }));
    }
}
