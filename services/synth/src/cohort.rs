//! The cohort table: one row per patient, written as CSV and as Parquet (with `synthetic=true`
//! in the Parquet key-value metadata and a `synthetic` column in both).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::latent::{Clinical, DISC_LEVELS, ImageLatents};
use crate::outcome::FollowUp;

/// One patient's row of the cohort table. Every column is documented in docs/synth.md.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    /// 0-based patient index (the folder name under `studies/`, zero-padded to 4 digits).
    pub patient_index: u32,
    /// Synthetic MRN, equal to PatientID in the DICOM files.
    pub patient_id: String,
    /// PatientName in the DICOM files.
    pub patient_name: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// StudyInstanceUID.
    pub study_instance_uid: String,
    /// SeriesInstanceUID of the T2 sagittal series.
    pub t2_series_instance_uid: String,
    /// SeriesNumber of the T2 sagittal series.
    pub t2_series_number: u32,
    /// Vendor style (`siemens`, `ge`, `philips`, `canon`).
    pub vendor: &'static str,
    /// ManufacturerModelName.
    pub model: &'static str,
    /// Clinical variables.
    pub clinical: Clinical,
    /// Image latents.
    pub latents: ImageLatents,
    /// StudyDate, ISO.
    pub study_date: String,
    /// Injection date, ISO.
    pub injection_date: String,
    /// Follow-up date, ISO, when scored.
    pub followup_date: Option<String>,
    /// Follow-up.
    pub followup: FollowUp,
    /// The outcome drawn from `p_true` (known even when lost to follow-up).
    pub outcome_drawn: bool,
    /// True P(good outcome) given images and clinical variables.
    pub p_true: f64,
    /// Best clinical-only P(good outcome) (Monte Carlo over the image latents).
    pub p_clinical: f64,
    /// Root compression on the injected side at the injected level, mm.
    pub root_compression_mm: f64,
}

impl CohortRow {
    /// The label: good outcome, for completed follow-ups only.
    pub fn label(&self) -> Option<bool> {
        self.followup.label(self.clinical.baseline_leg_nrs)
    }
}

/// A typed cell of the table.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Str(Option<String>),
    Bool(Option<bool>),
}

fn column_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "synthetic",
        "patient_index",
        "patient_id",
        "patient_name",
        "accession_number",
        "study_instance_uid",
        "t2_series_instance_uid",
        "t2_series_number",
        "vendor",
        "model",
        "indication",
        "injected_levels",
        "injected_side",
        "age_years",
        "sex",
        "symptom_weeks",
        "symptom_lt_3_months",
        "baseline_leg_nrs",
        "baseline_back_nrs",
        "study_date",
        "injection_date",
        "followup_status",
        "exclusion_reason",
        "followup_date",
        "followup_day",
        "followup_leg_nrs",
        "followup_back_nrs",
        "repeat_injection",
        "surgery",
        "label_good_outcome",
        "outcome_drawn",
        "p_true",
        "p_clinical",
        "root_compression_mm",
        "lordosis_deg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for level in DISC_LEVELS {
        let l = level.to_lowercase().replace('-', "_");
        for field in
            ["herniation_mm", "herniation_side", "stenosis_grade", "pfirrmann", "modic", "disc_height_loss"]
        {
            names.push(format!("{field}_{l}"));
        }
    }
    names
}

fn cells(row: &CohortRow) -> Vec<Cell> {
    let c = &row.clinical;
    let f = &row.followup;
    let int = |v: i64| Cell::Int(Some(v));
    let text = |v: &str| Cell::Str(Some(v.to_string()));
    let mut out = vec![
        Cell::Bool(Some(true)),
        int(i64::from(row.patient_index)),
        text(&row.patient_id),
        text(&row.patient_name),
        text(&row.accession_number),
        text(&row.study_instance_uid),
        text(&row.t2_series_instance_uid),
        int(i64::from(row.t2_series_number)),
        text(row.vendor),
        text(row.model),
        text(c.indication.as_str()),
        text(&c.levels_label()),
        text(c.side.as_str()),
        int(i64::from(c.age_years)),
        text(if c.female { "F" } else { "M" }),
        int(i64::from(c.symptom_weeks)),
        Cell::Bool(Some(c.short_duration())),
        int(i64::from(c.baseline_leg_nrs)),
        int(i64::from(c.baseline_back_nrs)),
        text(&row.study_date),
        text(&row.injection_date),
        text(f.status.as_str()),
        Cell::Str(f.exclusion_reason.map(String::from)),
        Cell::Str(row.followup_date.clone()),
        Cell::Int(f.day.map(i64::from)),
        Cell::Int(f.leg_nrs.map(i64::from)),
        Cell::Int(f.back_nrs.map(i64::from)),
        Cell::Bool(Some(f.exclusion_reason == Some("repeat_injection"))),
        Cell::Bool(Some(f.exclusion_reason == Some("surgery"))),
        Cell::Bool(row.label()),
        Cell::Bool(Some(row.outcome_drawn)),
        Cell::Float(Some(row.p_true)),
        Cell::Float(Some(row.p_clinical)),
        Cell::Float(Some(row.root_compression_mm)),
        Cell::Float(Some(row.latents.lordosis_deg)),
    ];
    for finding in &row.latents.levels {
        out.push(Cell::Float(Some(finding.herniation_mm)));
        out.push(Cell::Str(
            (finding.herniation_mm > 0.0).then(|| finding.herniation_side.as_str().to_string()),
        ));
        out.push(Cell::Int(Some(i64::from(finding.stenosis_grade))));
        out.push(Cell::Int(Some(i64::from(finding.pfirrmann))));
        out.push(Cell::Int(Some(i64::from(finding.modic))));
        out.push(Cell::Float(Some(finding.height_loss)));
    }
    out
}

fn csv_field(cell: &Cell) -> String {
    match cell {
        Cell::Int(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Cell::Float(v) => v.map(|v| format!("{v:.6}")).unwrap_or_default(),
        Cell::Bool(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Cell::Str(v) => {
            let s = v.clone().unwrap_or_default();
            if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
        }
    }
}

/// The columns that describe what the image shows and how the injection relates to it
/// (indication, injected levels and side, root compression, lordosis, every per-level latent):
/// the generator's truth a cohort key carries for auxiliary training targets and error analysis.
pub fn is_latent_column(name: &str) -> bool {
    matches!(
        name,
        "indication" | "injected_levels" | "injected_side" | "root_compression_mm" | "lordosis_deg"
    ) || ["herniation_", "stenosis_grade_", "pfirrmann_", "modic_", "disc_height_loss_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The names and CSV fields of `row`'s columns that `keep` selects, in the cohort's order.
pub fn csv_columns(row: &CohortRow, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    column_names().into_iter().zip(cells(row).iter().map(csv_field)).filter(|(name, _)| keep(name)).collect()
}

/// Writes the cohort as CSV (header row, empty fields for missing values).
pub fn write_csv(rows: &[CohortRow], path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::new(file);
    let mut text = column_names().join(",");
    text.push('\n');
    for row in rows {
        let line: Vec<String> = cells(row).iter().map(csv_field).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    out.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))?;
    out.flush().map_err(|e| Error::io(path, e))
}

/// Builds the Arrow record batch of the cohort.
pub fn record_batch(rows: &[CohortRow]) -> Result<RecordBatch> {
    let names = column_names();
    let table: Vec<Vec<Cell>> = rows.iter().map(cells).collect();
    let template = rows.first().map(cells).unwrap_or_default();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let column = table.iter().map(|r| r[index].clone());
        let (data_type, array): (DataType, ArrayRef) = match template.get(index) {
            Some(Cell::Int(_)) => (
                DataType::Int64,
                Arc::new(column.map(|c| if let Cell::Int(v) = c { v } else { None }).collect::<Int64Array>()),
            ),
            Some(Cell::Float(_)) => (
                DataType::Float64,
                Arc::new(
                    column.map(|c| if let Cell::Float(v) = c { v } else { None }).collect::<Float64Array>(),
                ),
            ),
            Some(Cell::Bool(_)) => (
                DataType::Boolean,
                Arc::new(
                    column.map(|c| if let Cell::Bool(v) = c { v } else { None }).collect::<BooleanArray>(),
                ),
            ),
            Some(Cell::Str(_)) | None => (
                DataType::Utf8,
                Arc::new(
                    column.map(|c| if let Cell::Str(v) = c { v } else { None }).collect::<StringArray>(),
                ),
            ),
        };
        fields.push(Field::new(name, data_type, true));
        arrays.push(array);
    }
    let metadata: std::collections::HashMap<String, String> = [
        ("synthetic".to_string(), "true".to_string()),
        ("generator".to_string(), "tfesi-synth".to_string()),
        ("notice".to_string(), crate::phi::SYNTHETIC_NOTICE.to_string()),
    ]
    .into_iter()
    .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    RecordBatch::try_new(schema, arrays).map_err(|e| Error::Table(e.to_string()))
}

/// Writes the cohort as Parquet (snappy), with `synthetic=true` in the schema metadata.
pub fn write_parquet(rows: &[CohortRow], path: &Path) -> Result<()> {
    let batch = record_batch(rows)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_created_by("tfesi-synth (SYNTHETIC DATA)".to_string())
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| Error::Table(e.to_string()))?;
    writer.write(&batch).map_err(|e| Error::Table(e.to_string()))?;
    writer.close().map_err(|e| Error::Table(e.to_string()))?;
    Ok(())
}

/// The column names, in order (for documentation and tests).
pub fn columns() -> Vec<String> {
    column_names()
}
