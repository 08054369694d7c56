//! Integration tests of the synthetic cohort: determinism, DICOM validity (dcmtk), transfer
//! syntax round trips (dicom-rs), geometry, series selection by header, outcome statistics,
//! cohort files and PHI canaries.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_object::{DefaultDicomObject, open_file};
use dicom_pixeldata::PixelDecoder;
use tfesi_synth::phi::{CANARY_ATTRIBUTES, CANARY_PREFIX, canary};
use tfesi_synth::protocol::{SeriesKind, TransferSyntaxKind};
use tfesi_synth::{PatientOptions, SynthArgs, generate_patient, patient_row, run};

fn args(out: &Path, patients: u32, seed: u64) -> SynthArgs {
    SynthArgs {
        patients,
        seed,
        out: out.to_path_buf(),
        phi_canaries: false,
        preview: false,
        lost_rate: 0.1,
        threads: Some(2),
    }
}

fn dicom_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn open_bytes(bytes: &[u8]) -> DefaultDicomObject {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.dcm");
    std::fs::write(&path, bytes).unwrap();
    open_file(&path).unwrap()
}

fn text(obj: &DefaultDicomObject, group: u16, element: u16) -> String {
    obj.element(dicom_core::Tag(group, element)).unwrap().to_str().unwrap().trim().to_string()
}

fn numbers(obj: &DefaultDicomObject, group: u16, element: u16) -> Vec<f64> {
    text(obj, group, element).split('\\').map(|v| v.trim().parse::<f64>().unwrap()).collect()
}

#[test]
fn the_same_seed_gives_byte_identical_cohorts_and_another_seed_does_not() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    run(&args(a.path(), 2, 7)).unwrap();
    run(&SynthArgs { threads: Some(1), ..args(b.path(), 2, 7) }).unwrap();
    run(&args(c.path(), 2, 8)).unwrap();
    let files_a = dicom_files(a.path());
    assert!(files_a.len() > 40);
    for file in &files_a {
        let relative = file.strip_prefix(a.path()).unwrap();
        let other = std::fs::read(b.path().join(relative)).unwrap();
        assert_eq!(std::fs::read(file).unwrap(), other, "{}", relative.display());
    }
    for name in ["cohort.csv", "cohort.parquet"] {
        assert_eq!(std::fs::read(a.path().join(name)).unwrap(), std::fs::read(b.path().join(name)).unwrap());
    }
    let first_a = std::fs::read(&files_a[0]).unwrap();
    let first_c =
        std::fs::read(c.path().join(files_a[0].strip_prefix(a.path()).unwrap())).unwrap_or_default();
    assert_ne!(first_a, first_c);
    assert_ne!(
        std::fs::read(a.path().join("cohort.csv")).unwrap(),
        std::fs::read(c.path().join("cohort.csv")).unwrap()
    );
}

#[test]
fn dcmdump_parses_every_file_of_a_small_cohort() {
    if Command::new("dcmdump").arg("--version").output().is_err() {
        eprintln!("SKIPPED: dcmdump (dcmtk) is not installed; run scripts/setup-dicom-tools.sh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&SynthArgs { phi_canaries: true, ..args(dir.path(), 3, 3) }).unwrap();
    let files = dicom_files(dir.path());
    assert_eq!(files.len() as u64, summary.files);
    let mut syntaxes = BTreeMap::new();
    for file in &files {
        let output = Command::new("dcmdump").arg("+E").arg(file).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}: {stderr}", file.display());
        assert!(!stderr.contains("E:") && !stdout.contains("E:"), "{}: {stderr}", file.display());
        let ts = stdout.lines().find(|l| l.contains("TransferSyntaxUID")).unwrap_or_default().to_string();
        *syntaxes.entry(ts.split_whitespace().nth(2).unwrap_or_default().to_string()).or_insert(0) += 1;
    }
    // Every transfer syntax the generator writes appears in three studies.
    assert_eq!(syntaxes.len(), TransferSyntaxKind::ALL.len(), "{syntaxes:?}");
}

#[test]
fn every_transfer_syntax_round_trips_to_identical_stored_values() {
    for ts in TransferSyntaxKind::ALL {
        let options = PatientOptions { transfer_syntax: Some(ts), ..PatientOptions::default() };
        let study = generate_patient(11, 2, &options).unwrap();
        let picks = [
            study.files.first().unwrap(),
            study.files.iter().find(|f| f.kind == SeriesKind::T2Sagittal).unwrap(),
        ];
        for file in picks {
            assert_eq!(file.transfer_syntax, ts);
            let obj = open_bytes(&file.bytes);
            assert_eq!(obj.meta().transfer_syntax().trim_end_matches('\0'), ts.uid());
            let decoded = obj.decode_pixel_data().unwrap();
            let stored: Vec<u16> =
                decoded.data().chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
            assert_eq!(stored.len(), file.pixels.len(), "{ts:?}");
            assert!(stored == file.pixels, "{ts:?}: stored values differ");
            assert!(file.pixels.iter().all(|&v| v < 4096));
        }
    }
}

#[test]
fn sagittal_geometry_is_consistent() {
    let study = generate_patient(5, 1, &PatientOptions::default()).unwrap();
    let t2: Vec<_> = study.files.iter().filter(|f| f.kind == SeriesKind::T2Sagittal).collect();
    assert!((11..=20).contains(&t2.len()));
    let objects: Vec<_> = t2.iter().map(|f| open_bytes(&f.bytes)).collect();
    let orientation = numbers(&objects[0], 0x0020, 0x0037);
    let (row, col) = (&orientation[0..3], &orientation[3..6]);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!(dot(row, col).abs() < 1e-6);
    assert!((dot(row, row) - 1.0).abs() < 1e-6 && (dot(col, col) - 1.0).abs() < 1e-6);
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    assert!(normal[0].abs() > 0.95, "sagittal normal along x: {normal:?}");
    let spacing = numbers(&objects[0], 0x0018, 0x0088)[0];
    let thickness = numbers(&objects[0], 0x0018, 0x0050)[0];
    assert!(spacing > thickness && (3.0..=4.5).contains(&thickness));
    let positions: Vec<Vec<f64>> = objects.iter().map(|o| numbers(o, 0x0020, 0x0032)).collect();
    for pair in positions.windows(2) {
        let delta: Vec<f64> = pair[1].iter().zip(&pair[0]).map(|(a, b)| a - b).collect();
        let along = dot(&delta, &normal).abs();
        assert!((along - spacing).abs() < 1e-3, "{along} vs {spacing}");
        let in_plane = (dot(&delta, &delta) - along * along).max(0.0).sqrt();
        assert!(in_plane < 1e-3);
    }
    let matrix = numbers(&objects[0], 0x0028, 0x0010)[0];
    let pixel = numbers(&objects[0], 0x0028, 0x0030)[0];
    assert!((256.0..=512.0).contains(&matrix));
    assert!((279.0..=321.0).contains(&(matrix * pixel)));
}

/// The selection rule, from geometry and timing only: the slice normal is within 25 degrees of
/// the patient x axis, TR is 2000 to 6000 ms and TE is 70 to 160 ms. T1 (TR < 1000), STIR
/// (TE < 80, with TI), the localizer (TR < 20) and the axial (normal along z) all fail it.
fn looks_like_t2_sagittal(obj: &DefaultDicomObject) -> bool {
    let o = numbers(obj, 0x0020, 0x0037);
    let nx = o[1] * o[5] - o[2] * o[4];
    let tr = numbers(obj, 0x0018, 0x0080)[0];
    let te = numbers(obj, 0x0018, 0x0081)[0];
    nx.abs() > 25_f64.to_radians().cos() && (2000.0..=6000.0).contains(&tr) && (70.0..=160.0).contains(&te)
}

#[test]
fn the_t2_sagittal_series_is_found_by_geometry_and_timing_alone() {
    let mut stir_seen = false;
    for index in 0..30 {
        if index >= 6 && stir_seen {
            break;
        }
        let study = generate_patient(21, index, &PatientOptions::default()).unwrap();
        let mut matches = Vec::new();
        for plan in &study.series {
            stir_seen |= plan.kind == SeriesKind::StirSagittal;
            let file = study.files.iter().find(|f| f.series_number == plan.number).unwrap();
            if looks_like_t2_sagittal(&open_bytes(&file.bytes)) {
                matches.push(plan.kind);
            }
        }
        assert_eq!(matches, vec![SeriesKind::T2Sagittal], "patient {index}");
        assert!(study.series.len() >= 4);
    }
    assert!(stir_seen, "no STIR among 30 patients");
}

#[test]
fn outcome_statistics_of_two_thousand_patients_are_in_range() {
    let options = PatientOptions::default();
    let rows: Vec<_> = (0..2000).map(|i| patient_row(1, i, &options)).collect();
    let summary = tfesi_synth::CohortSummary::from_rows(1, &rows);
    assert!((0.45..=0.55).contains(&summary.base_rate), "base rate {}", summary.base_rate);
    let bayes = summary.bayes_auc.unwrap();
    let clinical = summary.clinical_only_auc.unwrap();
    assert!((0.82..=0.88).contains(&bayes), "bayes auc {bayes}");
    assert!(clinical < bayes - 0.08, "clinical-only {clinical} vs bayes {bayes}");
    let lost = f64::from(summary.lost_to_follow_up) / 2000.0;
    assert!((0.07..=0.13).contains(&lost), "lost {lost}");
    assert!(summary.excluded > 0);
    for row in &rows {
        assert!(row.clinical.baseline_leg_nrs >= 4);
        if let (Some(label), Some(leg)) = (row.label(), row.followup.leg_nrs) {
            let baseline = f64::from(row.clinical.baseline_leg_nrs);
            assert_eq!(label, (baseline - f64::from(leg)) / baseline >= 0.5);
            assert_eq!(label, row.outcome_drawn);
        }
    }
}

#[test]
fn cohort_files_have_every_row_and_say_synthetic() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&SynthArgs { preview: true, ..args(dir.path(), 2, 4) }).unwrap();
    assert_eq!(summary.patients, 2);
    let csv = std::fs::read_to_string(dir.path().join("cohort.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].split(',').count(), tfesi_synth::cohort::columns().len());
    assert!(lines[1].starts_with("true,0,"));
    let file = std::fs::File::open(dir.path().join("cohort.parquet")).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.schema().metadata().get("synthetic").map(String::as_str), Some("true"));
    assert_eq!(builder.metadata().file_metadata().num_rows(), 2);
    let json = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(json.contains("\"synthetic\": true"));
    let png = std::fs::read(dir.path().join("preview.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(format!("{summary}").contains("Bayes AUC"));
}

#[test]
fn phi_canaries_mark_every_identifying_attribute_and_plain_files_have_none() {
    let options = PatientOptions {
        phi_canaries: true,
        transfer_syntax: Some(TransferSyntaxKind::ExplicitLittle),
        ..PatientOptions::default()
    };
    let study = generate_patient(2, 6, &options).unwrap();
    let bytes = &study.files[0].bytes;
    let haystack = String::from_utf8_lossy(bytes);
    for (code, attribute) in CANARY_ATTRIBUTES {
        assert!(haystack.contains(&canary(7, code)), "missing canary for {attribute}");
    }
    assert_eq!(study.row.patient_id, canary(7, "MRN"));
    let plain = generate_patient(2, 6, &PatientOptions { phi_canaries: false, ..options }).unwrap();
    for file in &plain.files {
        assert!(!String::from_utf8_lossy(&file.bytes).contains(CANARY_PREFIX));
    }
    assert_eq!(plain.row.patient_name, "SYNTHETIC^PATIENT0007");
    let obj = open_bytes(&plain.files[0].bytes);
    assert_eq!(text(&obj, 0x0020, 0x4000), "SYNTHETIC DATA - not a patient");
}
