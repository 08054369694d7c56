//! Regression tests for the fuzzer's findings 4 and 5 (docs/fuzzing.md), on preprocess's own
//! scan and decoder: a stored object that never went through ingest gets the same refusals.

use tfesi_preprocess::Error;
use tfesi_preprocess::decode::{DecodeLimits, decode_instance};

use crate::findings::{
    finding4_input, finding5_instance, j2k_declaring, jpeg_declaring, rle_with_segment_count,
};

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

#[test]
fn an_rle_header_declaring_billions_of_segments_is_refused_before_decoding() {
    let error = decode_instance(&rle_with_segment_count(0xE000_0000), &DecodeLimits::default()).unwrap_err();
    assert!(matches!(error, Error::PixelDecode { ref uid, .. } if uid == RLE_LOSSLESS), "{error:?}");
    assert!(
        error.to_string().contains("RLE header of frame 0 declares 3758096384 segments; 2 are needed"),
        "{error}"
    );
}

#[test]
fn the_kept_finding_4_input_is_refused() {
    let error = decode_instance(&finding4_input(), &DecodeLimits::default()).unwrap_err();
    assert!(error.to_string().contains("RLE"), "{error}");
}

#[test]
fn a_fixed_width_value_whose_length_is_not_whole_values_is_refused_by_the_scan() {
    let error = decode_instance(&finding5_instance(), &DecodeLimits::default()).unwrap_err();
    assert!(matches!(error, Error::Malformed { .. }), "{error:?}");
    assert!(
        error.to_string().contains("VR AT holds 4-byte values but the element declares 6 bytes"),
        "{error}"
    );
}

#[test]
fn codestream_frame_headers_must_describe_the_image_the_attributes_describe() {
    for (bytes, expected) in [
        (
            jpeg_declaring(65535, 65535),
            "JPEG frame header of frame 0 declares 65535 rows x 65535 columns x 3 samples",
        ),
        (j2k_declaring(100_000), "JPEG 2000 frame header of frame 0 declares 100000 rows x 100000 columns"),
    ] {
        let error = decode_instance(&bytes, &DecodeLimits::default()).unwrap_err();
        assert!(matches!(error, Error::PixelDecode { .. }), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}
