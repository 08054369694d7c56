//! Every file of the DICOM corpus is accepted, quarantined or rejected with a stated reason, without panics, aborts or large allocations.

use std::path::PathBuf;

use bytes::Bytes;
use tfesi_ingest::{ParseLimits, QuarantineReason, RejectCode, Verdict, parse_instance};

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus")
}

pub fn corpus_file(relative: &str) -> Bytes {
    Bytes::from(std::fs::read(corpus_dir().join(relative)).unwrap())
}

/// (path, expect) rows of manifest.tsv.
fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let mut cols = line.split('\t');
            let path = cols.next().unwrap().to_string();
            let expect = cols.next().unwrap().to_string();
            (path, expect)
        })
        .collect()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_invalid_corpus_file_is_rejected_with_a_reason_and_bounded_memory() {
    let rows: Vec<_> = manifest().into_iter().filter(|(_, e)| e == "error").collect();
    assert_eq!(rows.len(), 21);
    for (path, _) in rows {
        let result = parse_instance(corpus_file(&path), &ParseLimits::default());
        let rejection = result.err().unwrap_or_else(|| panic!("{path} was accepted"));
        assert!(!rejection.message.is_empty(), "{path}");
        eprintln!("{path}: {rejection}");
    }
    let peak = peak_rss_kib();
    assert!(peak < 1_000_000, "peak RSS {peak} KiB: something allocated a declared length");
}

/// Found by fuzzing (docs/fuzzing.md): a VR code the standard does not define (`SX` here, one
/// byte changed in a corpus file) has the 4-byte length form for dicom-rs; the pre-scan read it
/// with a 2-byte length, so the decoder was handed an unchecked 800 MB length to allocate.
#[test]
fn an_unknown_vr_code_is_scanned_with_its_four_byte_length() {
    let mut bytes = corpus_file("invalid/SC_rgb_jpeg_corrupt.dcm").to_vec();
    assert_eq!(&bytes[922..924], b"SH", "the corpus file is the one the fuzzer mutated");
    bytes[923] = b'X';
    let rejection = parse_instance(bytes::Bytes::from(bytes), &ParseLimits::default()).expect_err("rejected");
    // Refused by the pre-scan, before any allocation: the length is read as dicom-rs would.
    assert_eq!(rejection.code, RejectCode::Malformed);
    assert!(rejection.message.contains("declares 808661297 bytes"), "{}", rejection.message);
}

#[test]
fn invalid_files_fail_for_the_expected_reason() {
    let expectations = [
        ("invalid/huge_len_7ffffff0.dcm", RejectCode::LengthBeyondEnd),
        ("invalid/huge_len_fffffff0.dcm", RejectCode::LengthBeyondEnd),
        ("invalid/MR_small_nested_sequence_2000_deep.dcm", RejectCode::TooDeep),
        ("invalid/MR_small_rows0.dcm", RejectCode::InvalidAttribute),
        ("invalid/MR_small_pixeldata_half_length.dcm", RejectCode::PixelData),
        ("invalid/empty.dcm", RejectCode::NotDicom),
        ("invalid/garbage_with_DICM_magic.dcm", RejectCode::BadFileMeta),
    ];
    for (path, code) in expectations {
        let rejection = parse_instance(corpus_file(path), &ParseLimits::default()).err();
        assert_eq!(rejection.map(|r| r.code), Some(code), "{path}");
    }
}

/// dicom-rs panics (index out of bounds) on this file's short RLE segment; the RLE check
/// (`tfesi_dicom_guard::rle`) refuses it first, naming the frame and segment.
#[test]
fn corrupt_rle_is_refused_before_the_library_panics_on_it() {
    let rejection =
        parse_instance(corpus_file("invalid/emri_small_RLE_corrupt.dcm"), &ParseLimits::default())
            .err()
            .unwrap();
    assert_eq!(rejection.code, RejectCode::PixelDecode, "{rejection}");
    assert!(
        rejection.message.contains(
            "RLE segment 0 of frame 5 decodes to 2655 bytes; it must hold rows x columns = 4096 bytes"
        ),
        "{rejection}"
    );
}

#[test]
fn every_valid_corpus_file_is_accepted_or_refused_for_a_stated_reason() {
    let rows: Vec<_> = manifest().into_iter().filter(|(_, e)| e == "ok").collect();
    assert_eq!(rows.len(), 21);
    for (path, _) in rows {
        let name = path.trim_start_matches("valid/").trim_end_matches(".dcm");
        let result = parse_instance(corpus_file(&path), &ParseLimits::default());
        let outcome = match &result {
            Ok(parsed) => format!("{:?}", parsed.verdict),
            Err(rejection) => rejection.to_string(),
        };
        eprintln!("{path}: {outcome}");
        match name {
            "CT_small" => {
                assert_eq!(result.err().map(|r| r.code), Some(RejectCode::UnsupportedSopClass), "{path}")
            }
            // NM secondary capture: 12-bit JPEG is not decodable here, so refused as unsupported
            "JPGExtended" => assert_eq!(
                result.err().map(|r| r.code),
                Some(RejectCode::UnsupportedTransferSyntax),
                "{path}"
            ),
            "SC_rgb_jpeg_dcmtk" | "JPEG-LL" | "image_dfl" => {
                let verdict = result.map(|p| p.verdict).ok();
                let Some(Verdict::Quarantine(reasons)) = verdict else {
                    panic!("{path}: expected quarantine, got {outcome}");
                };
                assert!(reasons.contains(&QuarantineReason::SecondaryCapture), "{path}");
            }
            // NEMA WG04 derivatives are marked DERIVED in (0008,0008): quarantined, not used
            _ if name.starts_with("MR") => {
                let verdict = result.map(|p| p.verdict).ok();
                let Some(Verdict::Quarantine(reasons)) = verdict else {
                    panic!("{path}: expected quarantine, got {outcome}");
                };
                assert_eq!(reasons, vec![QuarantineReason::DerivedOrSecondary], "{path}");
            }
            _ => {
                assert!(name.starts_with("emri_small"), "{path}");
                let parsed = result.unwrap_or_else(|r| panic!("{path}: {r}"));
                assert_eq!(parsed.verdict, Verdict::Accept, "{path}");
                assert_eq!(parsed.image.frames, 10, "{path}");
            }
        }
    }
}

#[test]
fn an_instance_over_the_size_cap_is_refused_before_parsing() {
    let limits = ParseLimits { max_instance_bytes: 1000, ..ParseLimits::default() };
    let rejection = parse_instance(corpus_file("valid/MR_small.dcm"), &limits).err();
    assert_eq!(rejection.map(|r| r.code), Some(RejectCode::TooLarge));
}
