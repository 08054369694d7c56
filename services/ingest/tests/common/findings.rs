//! The fuzzer's findings 4 and 5 (docs/fuzzing.md) as inputs, shared by the ingest tests and,
//! through `#[path]`, by the preprocess tests, so both services are held to the same refusals.

use std::path::{Path, PathBuf};

fn repository_file(relative: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path: PathBuf = root.join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Finding 4 as libFuzzer kept it: a `parse_instance` input (a mutated corpus file, 39,790
/// bytes) whose RLE header made dicom-rs ask for 15 GB.
pub fn finding4_input() -> Vec<u8> {
    repository_file("fuzz/findings/2026-11-27/parse_instance-oom-aae85a77")
}

/// Finding 5's one instance: `invalid/SC_rgb_jpeg_corrupt.dcm` with the VR of Lossy Image
/// Compression Ratio (0028,2112), value "17.401", changed from DS to AT. dicom-parser read one
/// 4-byte tag from the 6 bytes, then the next element header out of place (a 1.4 GB length).
/// The kept series input (`fuzz/findings/2026-11-27/series_tensor-oom-fda3f327`) is this file
/// after a 2-byte series header, with 5 more bytes changed in the JPEG data.
pub fn finding5_instance() -> Vec<u8> {
    let mut bytes = repository_file("tests/fixtures/dicom-corpus/invalid/SC_rgb_jpeg_corrupt.dcm");
    assert_eq!(&bytes[0x65A..0x662], b"\x28\x00\x12\x21DS\x06\x00", "the corpus file the fuzzer mutated");
    bytes[0x65E..0x660].copy_from_slice(b"AT");
    let kept = repository_file("fuzz/findings/2026-11-27/series_tensor-oom-fda3f327");
    assert_eq!(kept[2..0x662], bytes[..0x660], "the kept input is this mutation");
    bytes
}

/// The byte offset of the first fragment after the basic offset table of encapsulated pixel
/// data (explicit VR little endian: `E0 7F 10 00 'OB' 00 00 FF FF FF FF`).
pub fn first_fragment_offset(bytes: &[u8]) -> usize {
    let pixel_data = b"\xE0\x7F\x10\x00OB\x00\x00\xFF\xFF\xFF\xFF";
    let start = bytes
        .windows(pixel_data.len())
        .rposition(|window| window == pixel_data)
        .expect("encapsulated pixel data");
    let item_length = |at: usize| {
        assert_eq!(&bytes[at..at + 4], b"\xFE\xFF\x00\xE0", "an item at byte {at}");
        u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize
    };
    let offset_table = start + pixel_data.len();
    let first = offset_table + 8 + item_length(offset_table);
    item_length(first);
    first + 8
}

/// `valid/MR_small_RLE.dcm` (64 x 64, 16 bits: 2 segments) with its RLE header's segment count
/// set to `count`.
pub fn rle_with_segment_count(count: u32) -> Vec<u8> {
    let mut bytes = repository_file("tests/fixtures/dicom-corpus/valid/MR_small_RLE.dcm");
    let fragment = first_fragment_offset(&bytes);
    assert_eq!(&bytes[fragment..fragment + 4], &2u32.to_le_bytes(), "two segments in the original");
    bytes[fragment..fragment + 4].copy_from_slice(&count.to_le_bytes());
    bytes
}

/// `valid/SC_rgb_jpeg_dcmtk.dcm` (100 x 100, RGB, JPEG baseline) with its SOF0 frame header
/// declaring `rows x columns`: what jpeg-decoder would size its buffers from.
pub fn jpeg_declaring(rows: u16, columns: u16) -> Vec<u8> {
    let mut bytes = repository_file("tests/fixtures/dicom-corpus/valid/SC_rgb_jpeg_dcmtk.dcm");
    let fragment = first_fragment_offset(&bytes);
    let sof = fragment + bytes[fragment..].windows(2).position(|pair| pair == [0xFF, 0xC0]).expect("a SOF0");
    assert_eq!(&bytes[sof + 5..sof + 9], &[0, 100, 0, 100], "the original is 100 x 100");
    bytes[sof + 5..sof + 7].copy_from_slice(&rows.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&columns.to_be_bytes());
    bytes
}

/// `valid/MR_small_jp2klossless.dcm` (64 x 64, JPEG 2000) with its SIZ segment declaring a
/// `size x size` image.
pub fn j2k_declaring(size: u32) -> Vec<u8> {
    let mut bytes = repository_file("tests/fixtures/dicom-corpus/valid/MR_small_jp2klossless.dcm");
    let siz = bytes.windows(4).position(|quad| quad == [0xFF, 0x4F, 0xFF, 0x51]).expect("SOC and SIZ") + 4;
    assert_eq!(&bytes[siz + 4..siz + 12], &[0, 0, 0, 64, 0, 0, 0, 64], "the original is 64 x 64");
    bytes[siz + 4..siz + 8].copy_from_slice(&size.to_be_bytes());
    bytes[siz + 8..siz + 12].copy_from_slice(&size.to_be_bytes());
    bytes
}
