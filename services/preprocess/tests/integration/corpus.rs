//! Every row of the dicom-corpus manifest: exact stored values, rescaled statistics, clean errors.

use std::path::{Path, PathBuf};

use tfesi_preprocess::Error;
use tfesi_preprocess::decode::{DecodeLimits, DecodedInstance, decode_instance};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus")
}

struct Row {
    fields: Vec<String>,
}

const HEADER: [&str; 23] = [
    "path",
    "expect",
    "decoder_support",
    "sop_class_uid",
    "modality",
    "transfer_syntax_uid",
    "transfer_syntax_name",
    "rows",
    "columns",
    "frames",
    "samples_per_pixel",
    "bits_allocated",
    "pixel_representation",
    "rescale_slope",
    "rescale_intercept",
    "stored_sha256",
    "rescaled_min",
    "rescaled_max",
    "rescaled_mean",
    "rescaled_std",
    "file_sha256",
    "source",
    "notes",
];

impl Row {
    fn get(&self, column: &str) -> &str {
        let index = HEADER.iter().position(|name| *name == column).unwrap();
        &self.fields[index]
    }
    fn float(&self, column: &str) -> f64 {
        self.get(column).parse().unwrap()
    }
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(header, HEADER, "manifest columns changed");
    lines
        .map(|line| Row { fields: line.split('\t').map(str::to_string).collect() })
        .inspect(|row| assert_eq!(row.fields.len(), HEADER.len()))
        .collect()
}

/// Decode on a thread with Rust's default 2 MiB stack, as a service worker thread would.
fn decode_on_small_stack(bytes: Vec<u8>) -> Result<DecodedInstance, Error> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || decode_instance(&bytes, &DecodeLimits::default()))
        .unwrap()
        .join()
        .expect("decoder thread panicked: a panic escaped catch_unwind")
}

fn neumaier_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = 0.0f64;
    let mut compensation = 0.0f64;
    for value in values {
        let total = sum + value;
        compensation += if sum.abs() >= value.abs() { (sum - total) + value } else { (value - total) + sum };
        sum = total;
    }
    sum + compensation
}

fn assert_close(what: &str, path: &str, ours: f64, reference: f64, relative: f64) {
    let tolerance = relative * reference.abs().max(1e-300);
    assert!(
        (ours - reference).abs() <= tolerance,
        "{path}: {what} {ours} differs from the reference {reference}"
    );
}

fn check_rescaled_statistics(row: &Row, instance: &DecodedInstance) {
    let path = row.get("path");
    let mut values = Vec::with_capacity(instance.stored.len());
    for frame in 0..instance.frames() {
        let stored = instance.frame_stored(frame).unwrap();
        let rescale = instance.rescale[frame];
        values.extend(stored.iter().map(|value| rescale.apply(*value)));
    }
    // rescale in the manifest comes only from top-level attributes, as in the decoder here
    if row.get("rescale_slope").is_empty() {
        assert!(instance.rescale.iter().all(|r| r.slope == 1.0 && r.intercept == 0.0), "{path}");
    }
    let count = values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = neumaier_sum(values.iter().copied()) / count;
    let std = (neumaier_sum(values.iter().map(|v| (v - mean) * (v - mean))) / count).sqrt();
    assert_close("rescaled_min", path, min, row.float("rescaled_min"), 1e-12);
    assert_close("rescaled_max", path, max, row.float("rescaled_max"), 1e-12);
    assert_close("rescaled_mean", path, mean, row.float("rescaled_mean"), 1e-9);
    assert_close("rescaled_std", path, std, row.float("rescaled_std"), 1e-9);
}

fn check_colour_against_pydicom(instance: &DecodedInstance) {
    let reference = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/SC_rgb_jpeg_dcmtk.pydicom-3.0.2.rgb8"),
    )
    .unwrap();
    assert_eq!(instance.stored.len(), reference.len());
    let max_diff = instance
        .stored
        .iter()
        .zip(&reference)
        .map(|(ours, theirs)| (ours - i32::from(*theirs)).abs())
        .max()
        .unwrap();
    assert!(max_diff <= 2, "YCbCr->RGB differs from libjpeg by {max_diff}");
}

fn check_ok_row(row: &Row) -> Option<String> {
    let path = row.get("path");
    let bytes = std::fs::read(corpus_dir().join(path)).unwrap();
    let result = decode_on_small_stack(bytes);
    let instance = match (result, row.get("decoder_support")) {
        (Ok(instance), _) => instance,
        (Err(Error::UnsupportedTransferSyntax { uid, .. }), "optional") => {
            assert_eq!(uid, row.get("transfer_syntax_uid"));
            return Some(format!("{path}: optional, cleanly unsupported"));
        }
        (Err(error), _) => panic!("{path}: {error}"),
    };
    assert_eq!(instance.transfer_syntax_uid, row.get("transfer_syntax_uid"), "{path}");
    let shape = [row.get("frames"), row.get("rows"), row.get("columns"), row.get("samples_per_pixel")]
        .map(|value| value.parse::<usize>().unwrap());
    assert_eq!(instance.stored.shape(), shape, "{path}");
    if row.get("transfer_syntax_uid") == "1.2.840.10008.1.2.4.50" && shape[3] == 3 {
        check_colour_against_pydicom(&instance);
    } else {
        assert_eq!(instance.stored_sha256(), row.get("stored_sha256"), "{path}: stored values differ");
    }
    if !row.get("rescaled_mean").is_empty() {
        check_rescaled_statistics(row, &instance);
    }
    None
}

#[test]
fn every_valid_corpus_file_decodes_to_the_reference_values() {
    let rows: Vec<Row> = manifest().into_iter().filter(|row| row.get("expect") == "ok").collect();
    assert_eq!(rows.len(), 21);
    let skipped: Vec<String> = rows.iter().filter_map(check_ok_row).collect();
    assert!(skipped.len() <= 1, "{skipped:?}");
}

#[test]
fn every_invalid_corpus_file_is_an_error_not_a_panic_or_abort() {
    let rows: Vec<Row> = manifest().into_iter().filter(|row| row.get("expect") == "error").collect();
    assert_eq!(rows.len(), 21);
    for row in rows {
        let path = row.get("path");
        let bytes = std::fs::read(corpus_dir().join(path)).unwrap();
        match decode_on_small_stack(bytes) {
            Ok(instance) => panic!("{path}: decoded to an image of shape {:?}", instance.stored.shape()),
            Err(error) => assert!(!error.to_string().is_empty(), "{path}"),
        }
    }
}

#[test]
fn specific_invalid_files_fail_for_the_right_reason() {
    let decode = |name: &str| decode_on_small_stack(std::fs::read(corpus_dir().join(name)).unwrap());
    assert!(matches!(
        decode("invalid/MR_small_nested_sequence_2000_deep.dcm"),
        Err(Error::NestingTooDeep { .. })
    ));
    for huge in ["invalid/huge_len_7ffffff0.dcm", "invalid/huge_len_fffffff0.dcm"] {
        assert!(matches!(decode(huge), Err(Error::Malformed { .. })), "{huge}");
    }
    assert!(matches!(
        decode("invalid/MR_small_rows0.dcm"),
        Err(Error::InvalidAttribute { attribute: "Rows", .. })
    ));
    let corrupt_rle = decode("invalid/emri_small_RLE_corrupt.dcm");
    assert!(
        matches!(corrupt_rle, Err(Error::DecoderPanic { ref uid, .. } | Error::PixelDecode { ref uid, .. }) if uid == "1.2.840.10008.1.2.5"),
        "{corrupt_rle:?}"
    );
}

#[test]
fn an_unsupported_transfer_syntax_is_named_in_the_error() {
    let mut bytes = std::fs::read(corpus_dir().join("valid/MR_small_jp2klossless.dcm")).unwrap();
    // JPEG 2000 Part 2 multi-component lossless (.4.92): same UID length as .4.90
    let from = b"1.2.840.10008.1.2.4.90";
    let at = bytes.windows(from.len()).position(|window| window == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(b"1.2.840.10008.1.2.4.92");
    let error = decode_on_small_stack(bytes).unwrap_err();
    assert!(
        matches!(error, Error::UnsupportedTransferSyntax { ref uid, .. } if uid == "1.2.840.10008.1.2.4.92")
    );
    assert!(error.to_string().contains("1.2.840.10008.1.2.4.92"), "{error}");
}

#[test]
fn input_over_the_size_cap_is_refused_before_parsing() {
    let bytes = std::fs::read(corpus_dir().join("valid/MR_small.dcm")).unwrap();
    let limits = DecodeLimits { max_input_bytes: 1000, ..DecodeLimits::default() };
    assert!(matches!(decode_instance(&bytes, &limits), Err(Error::InputTooLarge { .. })));
}
