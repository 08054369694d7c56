//! Series to tensor, ms per series by transfer syntax: ours (one thread) vs the Python reference.
//!
//! Run (one core for both, release build):
//!   RAYON_NUM_THREADS=1 taskset -c 0 cargo bench -p tfesi-preprocess --bench prep
//! Series come from reference/make_bench_series.py (synthetic phantom, 15 slices 384 x 384), or
//! from TFESI_BENCH_SERIES=<dir with one sub-folder of .dcm files per transfer syntax>.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dicom_pixeldata::Transcode;
use tfesi_preprocess::decode::{DecodeLimits, decode_instance};
use tfesi_preprocess::prepare::prepare_series;
use tfesi_preprocess::spec::CURRENT;

const ROUNDS: usize = 5;
const RUNS_PER_ROUND: usize = 4;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("TFESI_PYTHON")
        .map_or_else(|| manifest_dir().join("../../.venv/bin/python"), PathBuf::from)
}

fn python_command() -> Command {
    let mut command = Command::new(python());
    for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        command.env(var, "1");
    }
    command
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "dcm"))
        .collect();
    files.sort();
    files
}

/// Add a JPEG-LS lossless copy of the explicit-LE series (Python has no JPEG-LS encoder here).
fn add_jpeg_ls(root: &Path) {
    let target = root.join("jpeg-ls-lossless");
    std::fs::create_dir_all(&target).unwrap();
    for path in files_in(&root.join("explicit-le")) {
        let mut object = dicom_object::open_file(&path).unwrap();
        object
            .transcode(&dicom_transfer_syntax_registry::entries::JPEG_LS_LOSSLESS_IMAGE_COMPRESSION.erased())
            .unwrap();
        object.write_to_file(target.join(path.file_name().unwrap())).unwrap();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Ours {
    decode_ms: Vec<f64>,
    rest_ms: Vec<f64>,
    total_ms: Vec<f64>,
}

fn run_ours(files: &[PathBuf], ours: &mut Ours) {
    let limits = DecodeLimits::default();
    let start = Instant::now();
    let instances: Vec<_> =
        files.iter().map(|path| decode_instance(&std::fs::read(path).unwrap(), &limits).unwrap()).collect();
    let decoded = Instant::now();
    let tensor = prepare_series(&instances, &CURRENT).unwrap();
    let end = Instant::now();
    std::hint::black_box(&tensor);
    ours.decode_ms.push((decoded - start).as_secs_f64() * 1e3);
    ours.rest_ms.push((end - decoded).as_secs_f64() * 1e3);
    ours.total_ms.push((end - start).as_secs_f64() * 1e3);
}

fn run_python(files: &[PathBuf], decode: &mut Vec<f64>, rest: &mut Vec<f64>, total: &mut Vec<f64>) {
    let output = python_command()
        .arg(manifest_dir().join("reference/prep_reference.py"))
        .arg("--bench")
        .arg(RUNS_PER_ROUND.to_string())
        .args(files)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for run in parsed["runs"].as_array().unwrap() {
        let ms = |key: &str| run[key].as_f64().unwrap();
        decode.push(ms("decode_ms"));
        rest.push(ms("normalise_ms") + ms("resample_ms"));
        total.push(ms("total_ms"));
    }
}

fn main() {
    if std::env::var("RAYON_NUM_THREADS").as_deref() != Ok("1") {
        eprintln!("warning: RAYON_NUM_THREADS=1 is not set; ours may use more than one thread");
    }
    let generated = tempfile::tempdir().unwrap();
    let root = match std::env::var_os("TFESI_BENCH_SERIES") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let status = python_command()
                .arg(manifest_dir().join("reference/make_bench_series.py"))
                .arg(generated.path())
                .status()
                .unwrap();
            assert!(status.success(), "make_bench_series.py failed");
            add_jpeg_ls(generated.path());
            generated.path().to_path_buf()
        }
    };
    println!(
        "series to tensor ({}), ms per series, medians of {} runs, ours vs Python reference",
        CURRENT.version,
        ROUNDS * RUNS_PER_ROUND
    );
    println!(
        "| transfer syntax | files | ours decode | ours rest | ours total | python decode | python rest | python total | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut syntaxes: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    syntaxes.sort();
    for dir in syntaxes {
        let files = files_in(&dir);
        let mut ours = Ours { decode_ms: Vec::new(), rest_ms: Vec::new(), total_ms: Vec::new() };
        let (mut py_decode, mut py_rest, mut py_total) = (Vec::new(), Vec::new(), Vec::new());
        run_ours(&files, &mut ours); // warm the page cache and allocator
        for _ in 0..ROUNDS {
            for _ in 0..RUNS_PER_ROUND {
                run_ours(&files, &mut ours);
            }
            run_python(&files, &mut py_decode, &mut py_rest, &mut py_total);
        }
        ours.decode_ms.remove(0);
        ours.rest_ms.remove(0);
        ours.total_ms.remove(0);
        let ours_total = median(&mut ours.total_ms);
        let python_total = median(&mut py_total);
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1}x |",
            dir.file_name().unwrap().to_string_lossy(),
            files.len(),
            median(&mut ours.decode_ms),
            median(&mut ours.rest_ms),
            ours_total,
            median(&mut py_decode),
            median(&mut py_rest),
            python_total,
            python_total / ours_total
        );
    }
}
