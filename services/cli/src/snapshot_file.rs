//! The files `tfesi snapshot export` writes: one flat row per exported `SnapshotRow`, as a
//! Parquet file (snappy) and/or JSON Lines with the same column names and values.
//!
//! Files are written beside their destination as `<name>.partial` and renamed only once the
//! whole stream has arrived and matched the snapshot's row count, so a file at the destination
//! path is always a complete export. The Parquet file carries the snapshot's id (its content
//! hash), label rule, seed and as-of instant in its key-value metadata.

use std::fs::File;
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use arrow::array::{ArrayRef, Float64Builder, Int32Builder, ListBuilder, StringBuilder, UInt64Builder};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tfesi_proto::registry::v1 as registry;

use crate::records_view as view;

/// Rows buffered before a Parquet row group batch is written.
const BATCH_ROWS: usize = 4096;

/// One exported row, flat: the Parquet columns and the keys of each JSON line, in this order.
/// Ids absent from the row (no study linked, no champion prediction) are null, never "".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlatRow {
    /// Row index in manifest order (0-based, over the whole snapshot).
    pub index: u64,
    /// Episode id (UUID).
    pub episode_id: String,
    /// Surrogate patient id (UUID).
    pub patient_id: String,
    /// `train`, `validation` or `test`.
    pub split: String,
    /// Surrogate study id (UUID).
    pub study_id: Option<String>,
    /// Surrogate series id (UUID).
    pub series_id: Option<String>,
    /// Series content hash (SHA-256 hex).
    pub series_content_sha256: Option<String>,
    /// Content addresses of the series' instances.
    pub instance_sha256: Vec<String>,
    /// `herniated_disc` or `spinal_stenosis`.
    pub indication: String,
    /// Planned levels (`L4-L5`).
    pub planned_levels: Vec<String>,
    /// Planned side.
    pub planned_side: String,
    /// Baseline leg NRS (0 to 10).
    pub baseline_leg_nrs: i32,
    /// Baseline back NRS (0 to 10).
    pub baseline_back_nrs: Option<i32>,
    /// Symptom duration at baseline, days.
    pub symptom_duration_days: i32,
    /// Age at baseline, years.
    pub age_years: i32,
    /// `female`, `male`, `other` or `unspecified`.
    pub sex: String,
    /// Injected levels.
    pub injected_levels: Vec<String>,
    /// Injected side.
    pub injected_side: String,
    /// Follow-up leg NRS.
    pub follow_up_leg_nrs: Option<i32>,
    /// Follow-up back NRS.
    pub follow_up_back_nrs: Option<i32>,
    /// Days from the injection to the follow-up.
    pub days_to_follow_up: Option<i32>,
    /// Label rule version.
    pub label_rule_version: String,
    /// `good` or `poor`; null when unlabelable.
    pub label: Option<String>,
    /// Why not labelable; null when labeled.
    pub unlabelable_reason: Option<String>,
    /// (baseline - follow-up) / baseline.
    pub reduction: Option<f64>,
    /// Follow-up version the label came from (0 when none).
    pub follow_up_version: i32,
    /// Champion model (`name:version`) of the stored prediction.
    pub champion_model: Option<String>,
    /// Its P(good outcome).
    pub champion_probability: Option<f64>,
    /// Its decision threshold.
    pub champion_threshold: Option<f64>,
    /// Its preprocessing spec version.
    pub champion_spec_version: Option<String>,
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

impl From<&registry::SnapshotRow> for FlatRow {
    fn from(row: &registry::SnapshotRow) -> Self {
        let details = row.details.clone().unwrap_or_default();
        let label = row.label.clone().unwrap_or_default();
        let champion = row.champion_prediction.as_ref();
        let levels = |levels: &[i32]| levels.iter().map(|&level| view::level_name(level)).collect();
        Self {
            index: row.index,
            episode_id: row.episode_id.clone(),
            patient_id: row.patient_id.clone(),
            split: view::split_name(row.split),
            study_id: non_empty(&row.study_id),
            series_id: non_empty(&row.series_id),
            series_content_sha256: non_empty(&row.series_content_sha256),
            instance_sha256: row.instance_sha256.clone(),
            indication: view::indication_name(details.indication),
            planned_levels: levels(&details.planned_levels),
            planned_side: view::side_name(details.planned_side),
            baseline_leg_nrs: details.baseline_leg_nrs,
            baseline_back_nrs: details.baseline_back_nrs,
            symptom_duration_days: details.symptom_duration_days,
            age_years: details.age_years,
            sex: view::sex_name(details.sex),
            injected_levels: levels(&row.injected_levels),
            injected_side: view::side_name(row.injected_side),
            follow_up_leg_nrs: row.follow_up_leg_nrs,
            follow_up_back_nrs: row.follow_up_back_nrs,
            days_to_follow_up: row.days_to_follow_up,
            label_rule_version: label.rule_version.clone(),
            label: view::label_name(label.label),
            unlabelable_reason: (label.unlabelable_reason != 0)
                .then(|| view::unlabelable_name(label.unlabelable_reason)),
            reduction: label.reduction,
            follow_up_version: label.follow_up_version,
            champion_model: champion.map(|p| view::model_text(p.model.as_ref())),
            champion_probability: champion.map(|p| p.probability),
            champion_threshold: champion.map(|p| p.threshold),
            champion_spec_version: champion.and_then(|p| non_empty(&p.spec_version)),
        }
    }
}

/// Arrow builders, one per [`FlatRow`] field, in the same order.
#[derive(Default)]
struct Columns {
    index: UInt64Builder,
    episode_id: StringBuilder,
    patient_id: StringBuilder,
    split: StringBuilder,
    study_id: StringBuilder,
    series_id: StringBuilder,
    series_content_sha256: StringBuilder,
    instance_sha256: ListBuilder<StringBuilder>,
    indication: StringBuilder,
    planned_levels: ListBuilder<StringBuilder>,
    planned_side: StringBuilder,
    baseline_leg_nrs: Int32Builder,
    baseline_back_nrs: Int32Builder,
    symptom_duration_days: Int32Builder,
    age_years: Int32Builder,
    sex: StringBuilder,
    injected_levels: ListBuilder<StringBuilder>,
    injected_side: StringBuilder,
    follow_up_leg_nrs: Int32Builder,
    follow_up_back_nrs: Int32Builder,
    days_to_follow_up: Int32Builder,
    label_rule_version: StringBuilder,
    label: StringBuilder,
    unlabelable_reason: StringBuilder,
    reduction: Float64Builder,
    follow_up_version: Int32Builder,
    champion_model: StringBuilder,
    champion_probability: Float64Builder,
    champion_threshold: Float64Builder,
    champion_spec_version: StringBuilder,
    rows: usize,
}

fn push_list(builder: &mut ListBuilder<StringBuilder>, items: &[String]) {
    for item in items {
        builder.values().append_value(item);
    }
    builder.append(true);
}

impl Columns {
    fn push(&mut self, row: &FlatRow) {
        self.index.append_value(row.index);
        self.episode_id.append_value(&row.episode_id);
        self.patient_id.append_value(&row.patient_id);
        self.split.append_value(&row.split);
        self.study_id.append_option(row.study_id.as_deref());
        self.series_id.append_option(row.series_id.as_deref());
        self.series_content_sha256.append_option(row.series_content_sha256.as_deref());
        push_list(&mut self.instance_sha256, &row.instance_sha256);
        self.indication.append_value(&row.indication);
        push_list(&mut self.planned_levels, &row.planned_levels);
        self.planned_side.append_value(&row.planned_side);
        self.baseline_leg_nrs.append_value(row.baseline_leg_nrs);
        self.baseline_back_nrs.append_option(row.baseline_back_nrs);
        self.symptom_duration_days.append_value(row.symptom_duration_days);
        self.age_years.append_value(row.age_years);
        self.sex.append_value(&row.sex);
        push_list(&mut self.injected_levels, &row.injected_levels);
        self.injected_side.append_value(&row.injected_side);
        self.follow_up_leg_nrs.append_option(row.follow_up_leg_nrs);
        self.follow_up_back_nrs.append_option(row.follow_up_back_nrs);
        self.days_to_follow_up.append_option(row.days_to_follow_up);
        self.label_rule_version.append_value(&row.label_rule_version);
        self.label.append_option(row.label.as_deref());
        self.unlabelable_reason.append_option(row.unlabelable_reason.as_deref());
        self.reduction.append_option(row.reduction);
        self.follow_up_version.append_value(row.follow_up_version);
        self.champion_model.append_option(row.champion_model.as_deref());
        self.champion_probability.append_option(row.champion_probability);
        self.champion_threshold.append_option(row.champion_threshold);
        self.champion_spec_version.append_option(row.champion_spec_version.as_deref());
        self.rows += 1;
    }

    /// The buffered rows as one batch (the builders start empty again).
    fn finish(&mut self) -> anyhow::Result<RecordBatch> {
        self.rows = 0;
        // Nullability is declared, not inferred: an empty first batch must give the same schema.
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            ("index", Arc::new(self.index.finish()), false),
            ("episode_id", Arc::new(self.episode_id.finish()), false),
            ("patient_id", Arc::new(self.patient_id.finish()), false),
            ("split", Arc::new(self.split.finish()), false),
            ("study_id", Arc::new(self.study_id.finish()), true),
            ("series_id", Arc::new(self.series_id.finish()), true),
            ("series_content_sha256", Arc::new(self.series_content_sha256.finish()), true),
            ("instance_sha256", Arc::new(self.instance_sha256.finish()), false),
            ("indication", Arc::new(self.indication.finish()), false),
            ("planned_levels", Arc::new(self.planned_levels.finish()), false),
            ("planned_side", Arc::new(self.planned_side.finish()), false),
            ("baseline_leg_nrs", Arc::new(self.baseline_leg_nrs.finish()), false),
            ("baseline_back_nrs", Arc::new(self.baseline_back_nrs.finish()), true),
            ("symptom_duration_days", Arc::new(self.symptom_duration_days.finish()), false),
            ("age_years", Arc::new(self.age_years.finish()), false),
            ("sex", Arc::new(self.sex.finish()), false),
            ("injected_levels", Arc::new(self.injected_levels.finish()), false),
            ("injected_side", Arc::new(self.injected_side.finish()), false),
            ("follow_up_leg_nrs", Arc::new(self.follow_up_leg_nrs.finish()), true),
            ("follow_up_back_nrs", Arc::new(self.follow_up_back_nrs.finish()), true),
            ("days_to_follow_up", Arc::new(self.days_to_follow_up.finish()), true),
            ("label_rule_version", Arc::new(self.label_rule_version.finish()), false),
            ("label", Arc::new(self.label.finish()), true),
            ("unlabelable_reason", Arc::new(self.unlabelable_reason.finish()), true),
            ("reduction", Arc::new(self.reduction.finish()), true),
            ("follow_up_version", Arc::new(self.follow_up_version.finish()), false),
            ("champion_model", Arc::new(self.champion_model.finish()), true),
            ("champion_probability", Arc::new(self.champion_probability.finish()), true),
            ("champion_threshold", Arc::new(self.champion_threshold.finish()), true),
            ("champion_spec_version", Arc::new(self.champion_spec_version.finish()), true),
        ];
        RecordBatch::try_from_iter_with_nullable(columns)
            .context("cannot assemble the exported rows into an Arrow batch")
    }
}

/// The `<name>.partial` path a file is written to before it is complete.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| {
        format!("cannot create {}: check that its directory exists and is writable", path.display())
    })
}

/// A finished export file.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenFile {
    /// `parquet` or `jsonl`.
    pub format: &'static str,
    /// Where it is.
    pub path: PathBuf,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The Parquet and/or JSON Lines files of one export, filled row by row.
pub struct ExportWriter {
    parquet: Option<(PathBuf, ArrowWriter<File>, Columns)>,
    jsonl: Option<(PathBuf, BufWriter<File>)>,
    rows: u64,
}

impl ExportWriter {
    /// Opens the `.partial` files of the requested outputs; `metadata` goes into the Parquet
    /// file's key-value metadata.
    pub fn create(
        parquet: Option<&Path>,
        jsonl: Option<&Path>,
        metadata: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let parquet = match parquet {
            Some(path) => {
                let schema = Columns::default().finish()?.schema();
                let properties = WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .set_created_by("tfesi snapshot export".to_owned())
                    .set_key_value_metadata(Some(
                        metadata
                            .iter()
                            .map(|(key, value)| KeyValue::new((*key).to_owned(), value.clone()))
                            .collect(),
                    ))
                    .build();
                let file = create(&partial_path(path))?;
                let writer = ArrowWriter::try_new(file, schema, Some(properties))
                    .context("cannot start the Parquet writer")?;
                Some((path.to_path_buf(), writer, Columns::default()))
            }
            None => None,
        };
        let jsonl = match jsonl {
            Some(path) => Some((path.to_path_buf(), BufWriter::new(create(&partial_path(path))?))),
            None => None,
        };
        Ok(Self { parquet, jsonl, rows: 0 })
    }

    /// Appends one row to every output.
    pub fn push(&mut self, row: &FlatRow) -> anyhow::Result<()> {
        if let Some((path, writer, columns)) = &mut self.parquet {
            columns.push(row);
            if columns.rows >= BATCH_ROWS {
                writer
                    .write(&columns.finish()?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        if let Some((path, writer)) = &mut self.jsonl {
            serde_json::to_writer(&mut *writer, row)?;
            writer.write_all(b"\n").with_context(|| format!("cannot write {}", path.display()))?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Completes every file, moves it to its destination and returns what was written.
    pub fn finish(mut self) -> anyhow::Result<Vec<WrittenFile>> {
        let mut written = Vec::new();
        if let Some((path, mut writer, mut columns)) = self.parquet.take() {
            if columns.rows > 0 {
                writer
                    .write(&columns.finish()?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let file = writer.into_inner().with_context(|| format!("cannot complete {}", path.display()))?;
            file.sync_all().with_context(|| format!("cannot flush {}", path.display()))?;
            written.push(complete("parquet", &path)?);
        }
        if let Some((path, writer)) = self.jsonl.take() {
            let file = writer
                .into_inner()
                .map_err(|error| error.into_error())
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.sync_all().with_context(|| format!("cannot flush {}", path.display()))?;
            written.push(complete("jsonl", &path)?);
        }
        Ok(written)
    }

    /// Removes the `.partial` files (the export failed; nothing reaches the destinations).
    pub fn abandon(mut self) {
        for path in
            self.parquet.take().map(|(path, ..)| path).into_iter().chain(self.jsonl.take().map(|(p, _)| p))
        {
            let _ = std::fs::remove_file(partial_path(&path));
        }
    }
}

/// Renames the finished `.partial` file onto `path` and hashes it.
fn complete(format: &'static str, path: &Path) -> anyhow::Result<WrittenFile> {
    std::fs::rename(partial_path(path), path)
        .with_context(|| format!("cannot move the finished export onto {}", path.display()))?;
    let mut file = File::open(path).with_context(|| format!("cannot read back {}", path.display()))?;
    let (mut hasher, mut buffer, mut bytes) = (Sha256::new(), vec![0_u8; 1 << 16], 0_u64);
    loop {
        let read = file.read(&mut buffer).with_context(|| format!("cannot read back {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok(WrittenFile { format, path: path.to_path_buf(), sha256: hex::encode(hasher.finalize()), bytes })
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    use tfesi_proto::common::v1 as common;

    use super::*;

    fn row(index: u64, labeled: bool) -> registry::SnapshotRow {
        registry::SnapshotRow {
            index,
            episode_id: format!("episode-{index}"),
            patient_id: "patient".to_owned(),
            split: registry::Split::Train as i32,
            details: Some(registry::EpisodeDetails {
                planned_levels: vec![common::SpinalLevel::L4L5 as i32, common::SpinalLevel::L5S1 as i32],
                baseline_leg_nrs: 8,
                ..Default::default()
            }),
            follow_up_leg_nrs: labeled.then_some(3),
            label: Some(registry::Label {
                rule_version: "responder-50-v1".to_owned(),
                label: if labeled { common::OutcomeLabel::Good as i32 } else { 0 },
                unlabelable_reason: if labeled { 0 } else { registry::UnlabelableReason::NoFollowUp as i32 },
                reduction: labeled.then_some(0.625),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn parquet_columns_are_the_json_keys_in_order() {
        let schema = Columns::default().finish().unwrap().schema();
        let names: Vec<&str> = schema.fields().iter().map(|field| field.name().as_str()).collect();
        let flat = serde_json::to_value(FlatRow::from(&row(0, true))).unwrap();
        let mut keys: Vec<&str> = flat.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        keys.sort_unstable();
        assert_eq!(sorted_names, keys, "every field is a column and every column a field");
    }

    #[test]
    fn an_export_is_complete_or_absent() {
        let dir = tempfile_dir();
        let parquet_path = dir.join("rows.parquet");
        let jsonl_path = dir.join("rows.jsonl");
        let mut writer = ExportWriter::create(
            Some(&parquet_path),
            Some(&jsonl_path),
            &[("tfesi.snapshot_id", "abc".to_owned())],
        )
        .unwrap();
        for index in 0..5 {
            writer.push(&FlatRow::from(&row(index, index % 2 == 0))).unwrap();
        }
        assert!(!parquet_path.exists(), "nothing at the destination before finish");
        let written = writer.finish().unwrap();
        assert_eq!(written.len(), 2);
        let reader = SerializedFileReader::new(File::open(&parquet_path).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 5);
        let metadata = reader.metadata().file_metadata().key_value_metadata().unwrap();
        assert!(
            metadata.iter().any(|kv| kv.key == "tfesi.snapshot_id" && kv.value.as_deref() == Some("abc"))
        );
        let lines = std::fs::read_to_string(&jsonl_path).unwrap();
        let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(first["planned_levels"], serde_json::json!(["L4-L5", "L5-S1"]));
        assert_eq!(first["label"], "good");
        assert_eq!(lines.lines().count(), 5);

        let abandoned = dir.join("abandoned.parquet");
        let mut writer = ExportWriter::create(Some(&abandoned), None, &[]).unwrap();
        writer.push(&FlatRow::from(&row(0, false))).unwrap();
        writer.abandon();
        assert!(!abandoned.exists() && !partial_path(&abandoned).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh directory under the system temp dir (the crate has no tempfile dependency).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tfesi-cli-export-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
