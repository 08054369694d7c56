//! `tfesi snapshot create|show|export`: frozen, content-addressed training snapshots of the
//! registry, and their export to Parquet or JSON Lines for a retraining job.
//!
//! A snapshot's id is the SHA-256 of its canonical manifest: the same inputs over the same data
//! give the same id, which `create` and `export` print so MLOps can check that a training run
//! used exactly the data it claims. `export` also prints the SHA-256 of each file it wrote.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

use crate::endpoints::{Endpoints, call_failed, describe};
use crate::records_view::{self as view, Indication, Level, Split};
use crate::snapshot_file::{ExportWriter, FlatRow};

/// `tfesi snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Freezes a snapshot of labeled episodes (idempotent: the same inputs over the same data
    /// return the existing snapshot).
    Create(CreateArgs),
    /// A snapshot's metadata: counts per split and label, rule, seed, as-of instant.
    Show {
        /// Snapshot id (its content hash, 64 hex digits).
        snapshot_id: String,
    },
    /// Streams a snapshot's rows into a Parquet and/or JSON Lines file.
    Export(ExportArgs),
}

/// `tfesi snapshot create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Data as of this instant (RFC 3339, or a date for its midnight UTC); default now.
    #[arg(long, value_parser = view::parse_instant)]
    pub as_of: Option<DateTime<Utc>>,
    /// Label rule version, e.g. responder-50-v1 (Registry.ListLabelRules names them); default
    /// the registry's default rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Seed of the patient-level train/validation/test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training share; with --validation and --test, summing to 1. Default 0.7/0.15/0.15.
    #[arg(long, requires_all = ["validation", "test"])]
    pub train: Option<f64>,
    /// Validation share.
    #[arg(long, requires_all = ["train", "test"])]
    pub validation: Option<f64>,
    /// Test share.
    #[arg(long, requires_all = ["train", "validation"])]
    pub test: Option<f64>,
    /// Only these indications (repeatable).
    #[arg(long = "indication", value_enum)]
    pub indications: Vec<Indication>,
    /// Only episodes whose injected levels include one of these (repeatable).
    #[arg(long = "level", value_enum, ignore_case = true)]
    pub levels: Vec<Level>,
    /// Only episodes injected on or after this date (YYYY-MM-DD).
    #[arg(long, value_parser = view::parse_date)]
    pub injected_from: Option<NaiveDate>,
    /// Only episodes injected on or before this date (YYYY-MM-DD).
    #[arg(long, value_parser = view::parse_date)]
    pub injected_to: Option<NaiveDate>,
    /// Only episodes with an MRI study linked.
    #[arg(long)]
    pub require_study: bool,
    /// Also take unlabelable episodes (as rows without a label).
    #[arg(long)]
    pub include_unlabeled: bool,
    /// Free-text description (up to 500 characters; not part of the content hash).
    #[arg(long, default_value = "")]
    pub description: String,
}

/// `tfesi snapshot export`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("output").required(true).multiple(true).args(["parquet", "jsonl"])))]
pub struct ExportArgs {
    /// Snapshot id (its content hash, 64 hex digits).
    pub snapshot_id: String,
    /// Write the rows to this Parquet file (snappy), replacing it once complete.
    #[arg(long)]
    pub parquet: Option<PathBuf>,
    /// Write the rows to this JSON Lines file (one object per row, same keys as the columns).
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// Only rows of this split.
    #[arg(long, value_enum)]
    pub split: Option<Split>,
}

/// A snapshot's metadata as JSON.
fn snapshot_json(snapshot: &registry::Snapshot) -> Value {
    let filter = snapshot.filter.clone().unwrap_or_default();
    let fractions = snapshot.fractions.unwrap_or_default();
    json!({
        "snapshot_id": snapshot.snapshot_id,
        "content_hash": snapshot.snapshot_id,
        "as_of": view::exact_time_text(snapshot.as_of.as_ref()),
        "label_rule_version": snapshot.label_rule_version,
        "split_seed": snapshot.split_seed,
        "fractions": {"train": fractions.train, "validation": fractions.validation, "test": fractions.test},
        "filter": {
            "indications": filter.indications.iter().map(|&i| view::indication_name(i)).collect::<Vec<_>>(),
            "levels": filter.levels.iter().map(|&l| view::level_name(l)).collect::<Vec<_>>(),
            "injected_from": view::date_text(filter.injected_from.as_ref()),
            "injected_to": view::date_text(filter.injected_to.as_ref()),
            "require_study": filter.require_study,
            "include_unlabeled": filter.include_unlabeled,
        },
        "rows": snapshot.row_count,
        "patients": snapshot.patient_count,
        "train": snapshot.train_count,
        "validation": snapshot.validation_count,
        "test": snapshot.test_count,
        "good": snapshot.good_count,
        "poor": snapshot.poor_count,
        "manifest_version": snapshot.manifest_version,
        "created_at": view::time_text(snapshot.created_at.as_ref()),
        "description": snapshot.description,
    })
}

fn print_snapshot(snapshot: &registry::Snapshot) {
    println!("snapshot     {} (content hash)", snapshot.snapshot_id);
    println!(
        "data as of   {}; label rule {}; split seed {}",
        view::time_text(snapshot.as_of.as_ref()).unwrap_or_default(),
        snapshot.label_rule_version,
        snapshot.split_seed
    );
    println!(
        "rows         {} from {} patients: train {}, validation {}, test {}",
        snapshot.row_count,
        snapshot.patient_count,
        snapshot.train_count,
        snapshot.validation_count,
        snapshot.test_count
    );
    println!("labels       {} good, {} poor", snapshot.good_count, snapshot.poor_count);
    if !snapshot.description.is_empty() {
        println!("description  {}", snapshot.description);
    }
}

fn print(json_output: bool, value: &Value, table: impl FnOnce()) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table();
    }
    Ok(())
}

/// Runs a `snapshot` command.
pub async fn snapshot(
    endpoints: &Endpoints,
    json_output: bool,
    command: SnapshotCommand,
) -> anyhow::Result<()> {
    let mut client = RegistryClient::new(endpoints.connect("registry", &endpoints.registry).await?);
    match command {
        SnapshotCommand::Create(args) => {
            let fractions = match (args.train, args.validation, args.test) {
                (Some(train), Some(validation), Some(test)) => {
                    let sum = train + validation + test;
                    if (sum - 1.0).abs() > 1e-9
                        || [train, validation, test].iter().any(|f| !(0.0..=1.0).contains(f))
                    {
                        anyhow::bail!(
                            "--train {train} --validation {validation} --test {test} must each lie in 0..1 \
                             and sum to 1 (they sum to {sum})"
                        );
                    }
                    Some(registry::SplitFractions { train, validation, test })
                }
                _ => None,
            };
            let response = client
                .create_snapshot(registry::CreateSnapshotRequest {
                    as_of: Some(view::proto_timestamp(args.as_of.unwrap_or_else(Utc::now))),
                    filter: Some(registry::SnapshotFilter {
                        indications: args
                            .indications
                            .iter()
                            .map(|&indication| common::Indication::from(indication) as i32)
                            .collect(),
                        levels: view::level_numbers(&args.levels),
                        injected_from: args.injected_from.map(view::proto_date),
                        injected_to: args.injected_to.map(view::proto_date),
                        require_study: args.require_study,
                        include_unlabeled: args.include_unlabeled,
                    }),
                    label_rule_version: args.rule.unwrap_or_default(),
                    split_seed: args.seed,
                    fractions,
                    description: args.description,
                })
                .await
                .map_err(call_failed("Registry.CreateSnapshot"))?
                .into_inner();
            let snapshot = response
                .snapshot
                .ok_or_else(|| anyhow::anyhow!("Registry.CreateSnapshot answered without the snapshot"))?;
            let mut value = snapshot_json(&snapshot);
            value["created"] = Value::Bool(response.created);
            print(json_output, &value, || {
                print_snapshot(&snapshot);
                if response.created {
                    println!(
                        "created: export it with `tfesi snapshot export {} --parquet FILE`",
                        snapshot.snapshot_id
                    );
                } else {
                    println!("already existed: the same inputs over the same data (nothing new was stored)");
                }
            })
        }
        SnapshotCommand::Show { snapshot_id } => {
            let snapshot = client
                .get_snapshot(registry::GetSnapshotRequest { snapshot_id: snapshot_id.clone() })
                .await
                .map_err(call_failed("Registry.GetSnapshot"))?
                .into_inner()
                .snapshot
                .ok_or_else(|| anyhow::anyhow!("Registry.GetSnapshot answered without the snapshot"))?;
            print(json_output, &snapshot_json(&snapshot), || print_snapshot(&snapshot))
        }
        SnapshotCommand::Export(args) => {
            let mut stream = client
                .export_snapshot(registry::ExportSnapshotRequest {
                    snapshot_id: args.snapshot_id.clone(),
                    split: args.split.map_or(registry::Split::Unspecified, registry::Split::from) as i32,
                })
                .await
                .map_err(call_failed("Registry.ExportSnapshot"))?
                .into_inner();
            use registry::export_snapshot_response::Part;
            let first = stream.message().await.map_err(call_failed("Registry.ExportSnapshot"))?;
            let Some(registry::ExportSnapshotResponse { part: Some(Part::Snapshot(snapshot)) }) = first
            else {
                anyhow::bail!(
                    "Registry.ExportSnapshot did not start with the snapshot's metadata: nothing was written"
                );
            };
            let metadata = [
                ("tfesi.snapshot_id", snapshot.snapshot_id.clone()),
                ("tfesi.label_rule_version", snapshot.label_rule_version.clone()),
                ("tfesi.split_seed", snapshot.split_seed.to_string()),
                ("tfesi.as_of", view::exact_time_text(snapshot.as_of.as_ref()).unwrap_or_default()),
                ("tfesi.manifest_version", snapshot.manifest_version.to_string()),
                (
                    "tfesi.split",
                    args.split
                        .map_or("all".to_owned(), |s| view::split_name(registry::Split::from(s) as i32)),
                ),
            ];
            let mut writer = ExportWriter::create(args.parquet.as_deref(), args.jsonl.as_deref(), &metadata)?;
            let expected = match args.split {
                None => snapshot.row_count,
                Some(Split::Train) => snapshot.train_count,
                Some(Split::Validation) => snapshot.validation_count,
                Some(Split::Test) => snapshot.test_count,
            };
            let streamed = async {
                while let Some(message) = stream.message().await.map_err(|status| {
                    anyhow::anyhow!(
                        "Registry.ExportSnapshot failed after {} rows: {}",
                        writer.rows(),
                        describe(&status)
                    )
                })? {
                    match message.part {
                        Some(Part::Row(row)) => writer.push(&FlatRow::from(&row))?,
                        Some(Part::Snapshot(_)) => {
                            anyhow::bail!("Registry.ExportSnapshot sent the metadata twice")
                        }
                        None => anyhow::bail!("Registry.ExportSnapshot sent an empty message"),
                    }
                }
                if writer.rows() != expected {
                    anyhow::bail!(
                        "Registry.ExportSnapshot sent {} rows but the snapshot has {expected}",
                        writer.rows()
                    );
                }
                Ok(())
            }
            .await;
            if let Err(error) = streamed {
                writer.abandon();
                return Err(error.context(format!(
                    "export of snapshot {} failed and wrote nothing; run it again",
                    args.snapshot_id
                )));
            }
            let rows = writer.rows();
            let files = writer.finish()?;
            let value = json!({
                "snapshot_id": snapshot.snapshot_id,
                "content_hash": snapshot.snapshot_id,
                "label_rule_version": snapshot.label_rule_version,
                "split": metadata[5].1,
                "rows": rows,
                "files": files,
            });
            print(json_output, &value, || {
                println!(
                    "snapshot  {} (content hash), label rule {}",
                    snapshot.snapshot_id, snapshot.label_rule_version
                );
                println!("rows      {rows} ({})", metadata[5].1);
                for file in &files {
                    println!(
                        "{:<9} {} ({} bytes, sha256 {})",
                        file.format,
                        file.path.display(),
                        file.bytes,
                        file.sha256
                    );
                }
            })
        }
    }
}
