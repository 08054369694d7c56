//! The Rust tensor against the Python reference (reference/prep_reference.py), within 1e-4.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use tfesi_preprocess::decode::{DecodeLimits, DecodedInstance, decode_instance};
use tfesi_preprocess::prepare::{SeriesTensor, normalise, prepare_series};
use tfesi_preprocess::spec::{PrepSpec, SPEC_V1};

use crate::series::{SeriesParams, render_series};

const TOLERANCE: f32 = 1e-4;

fn python() -> PathBuf {
    let python = std::env::var_os("TFESI_PYTHON")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "the Python reference environment is missing ({}): run `python3 -m venv .venv && \
         .venv/bin/pip install -r services/preprocess/reference/requirements.txt` at the repository root \
         (or set TFESI_PYTHON)",
        python.display()
    );
    python
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/prep_reference.py")
}

/// Run the reference on `paths`; returns the raw float32 output and its JSON metadata.
fn run_reference(paths: &[PathBuf], extra: &[&str]) -> (Vec<f32>, serde_json::Value) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.f32");
    let output =
        Command::new(python()).arg(script()).arg("--out").arg(&out).args(extra).args(paths).output().unwrap();
    assert!(
        output.status.success(),
        "reference failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let raw = std::fs::read(&out).unwrap();
    let values = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (values, meta)
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn write_files(files: &[Vec<u8>], dir: &Path) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("{i:03}.dcm"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

fn rust_tensor(files: &[Vec<u8>], spec: &PrepSpec) -> SeriesTensor {
    let instances: Vec<DecodedInstance> =
        files.iter().map(|bytes| decode_instance(bytes, &DecodeLimits::default()).unwrap()).collect();
    prepare_series(&instances, spec).unwrap()
}

fn compare_synthetic(params: &SeriesParams) -> f32 {
    let files = render_series(params);
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(&files, dir.path());
    let ours = rust_tensor(&files, &SPEC_V1);
    let (theirs, meta) = run_reference(&paths, &[]);
    assert_eq!(meta["spec_version"], SPEC_V1.version);
    assert_eq!(meta["first_slice"], ours.meta.first_slice);
    assert_eq!(meta["centre_px"][0].as_f64(), Some(ours.meta.centre_px[0]), "{params:?}");
    assert_eq!(meta["centre_px"][1].as_f64(), Some(ours.meta.centre_px[1]), "{params:?}");
    let difference = max_abs_difference(&ours.data, &theirs);
    assert!(difference <= TOLERANCE, "max |rust - python| = {difference} for {params:?}");
    difference
}

#[test]
fn synthetic_series_matches_the_python_reference() {
    let difference = compare_synthetic(&SeriesParams::default());
    eprintln!("synthetic standard: max abs difference {difference:e}");
}

#[test]
fn oblique_rescaled_reversed_normal_series_matches_the_python_reference() {
    let params = SeriesParams {
        row_direction: [0.0, -1.0, 0.0],
        obliquity_deg: 7.0,
        rescale: Some((0.5, -100.0)),
        pixel_spacing_mm: 0.5,
        rows: 480,
        columns: 448,
        slices: 13,
        slice_spacing_mm: 3.3,
        ..SeriesParams::default()
    };
    let difference = compare_synthetic(&params);
    eprintln!("synthetic oblique: max abs difference {difference:e}");
}

#[test]
fn both_normal_directions_give_the_same_tensor() {
    let standard = rust_tensor(&render_series(&SeriesParams::default()), &SPEC_V1);
    let flipped_params = SeriesParams { row_direction: [0.0, -1.0, 0.0], ..SeriesParams::default() };
    let flipped = rust_tensor(&render_series(&flipped_params), &SPEC_V1);
    assert_eq!(standard.meta.slice_positions_mm, flipped.meta.slice_positions_mm);
    let difference = max_abs_difference(&standard.data, &flipped.data);
    assert!(difference <= TOLERANCE, "{difference}");
}

#[test]
fn the_crop_is_centred_on_the_canal_not_the_field_of_view() {
    let tensor = rust_tensor(&render_series(&SeriesParams::default()), &SPEC_V1);
    // canal at y in 2..17 mm; FOV centre at y = 10 mm in the phantom, column index 159.5
    let centre_y = tensor.meta.centre_patient_mm[1];
    assert!((2.0..17.0).contains(&centre_y), "crop centre at y = {centre_y}");
    let width = SPEC_V1.width;
    let plane = &tensor.data[(SPEC_V1.slices / 2) * SPEC_V1.height * width..][..SPEC_V1.height * width];
    let centre_value = plane[(SPEC_V1.height / 2) * width + width / 2];
    assert!(centre_value > 0.9, "the centre pixel is not bright CSF: {centre_value}");
}

fn corpus_rescaled_frames(instance: &DecodedInstance) -> Vec<Array2<f32>> {
    (0..instance.frames()).map(|frame| instance.frame_rescaled(frame).unwrap()).collect()
}

#[test]
fn corpus_mr_files_normalise_like_the_python_reference() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus/valid");
    let mut compared = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(instance) = decode_instance(&bytes, &DecodeLimits::default()) else {
            continue; // only the optional 12-bit JPEG; the corpus test covers it
        };
        if instance.samples_per_pixel() != 1 {
            continue;
        }
        let mut frames = corpus_rescaled_frames(&instance);
        let (low, high) = normalise(&mut frames, &SPEC_V1).unwrap();
        let ours: Vec<f32> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let (theirs, meta) = run_reference(std::slice::from_ref(&path), &["--stage", "normalise"]);
        let reference_low = meta["intensity_low"].as_f64().unwrap();
        let reference_high = meta["intensity_high"].as_f64().unwrap();
        assert!((low - reference_low).abs() <= 1e-6 * reference_low.abs().max(1.0), "{path:?}");
        assert!((high - reference_high).abs() <= 1e-6 * reference_high.abs().max(1.0), "{path:?}");
        let difference = max_abs_difference(&ours, &theirs);
        assert!(difference <= TOLERANCE, "{path:?}: {difference}");
        compared += 1;
    }
    assert!(compared >= 19, "only {compared} corpus files compared");
}
