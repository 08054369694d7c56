//! Regression tests for the fuzzer's findings 4 and 5 (docs/fuzzing.md): inputs that made
//! dicom-rs allocate gigabytes are refused before it sees them, with a message that names the
//! cause. The inputs come from `tests/common/findings.rs`.

use bytes::Bytes;
use tfesi_ingest::{ParseLimits, RejectCode, parse_instance};

use crate::findings::{
    finding4_input, finding5_instance, j2k_declaring, jpeg_declaring, rle_with_segment_count,
};

/// Parses `bytes` and checks the refusal's code and that its message holds `expected`.
fn assert_refused(bytes: Vec<u8>, code: RejectCode, expected: &str) {
    let rejection = parse_instance(Bytes::from(bytes), &ParseLimits::default()).expect_err("refused");
    assert_eq!(rejection.code, code, "{rejection}");
    assert!(rejection.message.contains(expected), "expected {expected:?} in: {}", rejection.message);
}

#[test]
fn an_rle_header_declaring_billions_of_segments_is_refused_before_decoding() {
    assert_refused(
        rle_with_segment_count(0xE000_0000),
        RejectCode::PixelDecode,
        "RLE header of frame 0 declares 3758096384 segments; 2 are needed",
    );
    // One segment too few is refused the same way rather than left to index out of bounds.
    assert_refused(rle_with_segment_count(1), RejectCode::PixelDecode, "declares 1 segments; 2 are needed");
}

#[test]
fn the_kept_finding_4_input_is_refused_by_the_rle_check() {
    assert_refused(finding4_input(), RejectCode::PixelDecode, "RLE");
}

#[test]
fn a_fixed_width_value_whose_length_is_not_whole_values_is_refused_by_the_prescan() {
    assert_refused(
        finding5_instance(),
        RejectCode::Malformed,
        "element (0028,2112) at byte 1288: VR AT holds 4-byte values but the element declares 6 bytes",
    );
}

#[test]
fn codestream_frame_headers_must_describe_the_image_the_attributes_describe() {
    assert_refused(
        jpeg_declaring(65535, 65535),
        RejectCode::PixelDecode,
        "JPEG frame header of frame 0 declares 65535 rows x 65535 columns x 3 samples, but the data set's attributes say 100 rows x 100 columns x 3 samples",
    );
    assert_refused(
        j2k_declaring(100_000),
        RejectCode::PixelDecode,
        "JPEG 2000 frame header of frame 0 declares 100000 rows x 100000 columns",
    );
}
