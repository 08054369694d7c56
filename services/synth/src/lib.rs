//! Synthetic lumbar MRI cohort with injection outcomes: `tfesi synth` (everything it makes is
//! synthetic and says so).
//!
//! Output layout under `--out DIR`:
//! - `studies/<patient-index, 4 digits>/<series-number>/<instance, 3 digits>.dcm`
//! - `cohort.csv`, `cohort.parquet`: one row per patient (columns: [`cohort::columns`])
//! - `summary.json`: the [`CohortSummary`]
//! - `preview.png` with `--preview`
//!
//! See docs/synth.md for the anatomy, the outcome model and every column.

pub mod anatomy;
pub mod api;
pub mod auc;
pub mod calendar;
pub mod cohort;
pub mod dicom_out;
pub mod error;
mod exact;
mod font;
pub mod generate;
pub mod latent;
mod noise;
pub mod outcome;
pub mod phi;
pub mod preview;
pub mod protocol;
pub mod render;
mod rle;
pub mod rng;
pub mod summary;
pub mod tissue;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

pub use cohort::CohortRow;
pub use error::{Error, Result};
pub use generate::{DicomFile, PatientOptions, PatientStudy, generate_patient, patient_row};
pub use summary::CohortSummary;

/// Arguments of `tfesi synth`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SynthArgs {
    /// Number of patients (one MR study each).
    #[arg(long, default_value_t = 100)]
    pub patients: u32,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long, default_value = "synth-out")]
    pub out: PathBuf,
    /// Put a unique `PHIC-<patient>-<code>` marker in every identifying attribute.
    #[arg(long)]
    pub phi_canaries: bool,
    /// Also write preview.png, a montage of sagittal slices.
    #[arg(long)]
    pub preview: bool,
    /// Share of patients lost to follow-up (0 to 1).
    #[arg(long, default_value_t = 0.10)]
    pub lost_rate: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Writes one patient's DICOM files under `out`.
pub fn write_study(out: &Path, study: &PatientStudy) -> Result<u64> {
    let mut bytes = 0;
    for file in &study.files {
        let path = out.join(file.relative_path(study.row.patient_index));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        fs::write(&path, &file.bytes).map_err(|e| Error::io(&path, e))?;
        bytes += file.bytes.len() as u64;
    }
    Ok(bytes)
}

/// Writes `cohort.csv`, `cohort.parquet` and `summary.json` under `out`.
pub fn write_cohort(out: &Path, rows: &[CohortRow], summary: &CohortSummary) -> Result<()> {
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    cohort::write_csv(rows, &out.join("cohort.csv"))?;
    cohort::write_parquet(rows, &out.join("cohort.parquet"))?;
    let json = serde_json::to_string_pretty(summary)?;
    let path = out.join("summary.json");
    fs::write(&path, json).map_err(|e| Error::io(&path, e))
}

/// Generates the cohort, writes everything under `args.out`, and returns the summary.
pub fn run(args: &SynthArgs) -> Result<CohortSummary> {
    if !(0.0..=1.0).contains(&args.lost_rate) {
        return Err(Error::InvalidArgument(format!("--lost-rate {} is not in 0..=1", args.lost_rate)));
    }
    if args.patients == 0 {
        return Err(Error::InvalidArgument("--patients must be at least 1".to_string()));
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = args.threads {
        builder = builder.num_threads(threads.max(1));
    }
    let pool = builder.build().map_err(|e| Error::ThreadPool(e.to_string()))?;
    let options = PatientOptions {
        phi_canaries: args.phi_canaries,
        lost_rate: args.lost_rate,
        ..PatientOptions::default()
    };
    let started = Instant::now();
    fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let results: Vec<Result<(CohortRow, u64, u64)>> = pool.install(|| {
        (0..args.patients)
            .into_par_iter()
            .map(|index| {
                let study = generate_patient(args.seed, index, &options)?;
                let bytes = write_study(&args.out, &study)?;
                Ok((study.row, study.files.len() as u64, bytes))
            })
            .collect()
    });
    let mut rows = Vec::with_capacity(results.len());
    let (mut files, mut bytes) = (0, 0);
    for result in results {
        let (row, n, b) = result?;
        rows.push(row);
        files += n;
        bytes += b;
    }
    if args.preview {
        let path = args.out.join("preview.png");
        pool.install(|| preview::write_preview(args.seed, &options, &path))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = CohortSummary::from_rows(args.seed, &rows);
    summary.files = files;
    summary.dicom_bytes = bytes;
    summary.elapsed_s = elapsed;
    summary.patients_per_s = f64::from(args.patients) / elapsed.max(1e-9);
    summary.threads = pool.current_num_threads();
    write_cohort(&args.out, &rows, &summary)?;
    Ok(summary)
}
