//! `tfesi ingest DIR`: uploads every file under a directory to ingest over gRPC (several
//! streams in parallel), then completes the studies it touched, and prints what happened to
//! each instance, grouped by outcome and reason.
//!
//! Client references sent to the server are counters (`file-000042`), never paths: paths from
//! a PACS export can hold patient names, and the server logs client references.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tokio_stream::wrappers::ReceiverStream;

use crate::endpoints::{Endpoints, call_failed};

/// Exit code when the upload worked but some instances were rejected.
pub const EXIT_SOME_REJECTED: u8 = 3;

/// Arguments of `tfesi ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Directory to upload (recursively; every regular file is sent, ingest decides what is DICOM).
    pub dir: PathBuf,
    /// Upload streams in flight at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Instances per upload stream.
    #[arg(long, default_value_t = 64)]
    pub per_stream: usize,
    /// Chunk size in KiB.
    #[arg(long, default_value_t = 256)]
    pub chunk_kib: usize,
    /// Do not complete the studies afterwards (more instances will follow).
    #[arg(long)]
    pub no_complete: bool,
}

/// One file's result.
#[derive(Debug, Serialize)]
struct FileResult {
    file: String,
    outcome: &'static str,
    reason: &'static str,
    message: String,
    study_id: String,
}

/// One completed study.
#[derive(Debug, Serialize)]
struct StudyResult {
    study_id: String,
    selection: &'static str,
    selected_series_id: String,
    job_created: bool,
}

/// What `tfesi ingest` prints with `--json`.
#[derive(Debug, Serialize, Default)]
pub struct IngestReport {
    files: usize,
    bytes: u64,
    stored: usize,
    duplicate: usize,
    quarantined: usize,
    rejected: usize,
    not_accepted: Vec<FileResult>,
    studies: Vec<StudyResult>,
}

impl IngestReport {
    /// Whether any instance was rejected.
    pub fn any_rejected(&self) -> bool {
        self.rejected > 0
    }
}

/// Every regular file under `dir`, sorted, following no symbolic links.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot read directory {}", current.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read directory {}", current.display()))?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Where an uploaded instance's bytes come from.
pub enum Source {
    /// A file, read when its turn comes.
    File(PathBuf),
    /// Bytes already in memory.
    Bytes(Vec<u8>),
}

/// Uploads one batch of instances on one stream (client references are `file-<index>`);
/// returns each instance's result in order.
pub async fn upload_batch(
    mut client: IngestClient<crate::endpoints::AuthChannel>,
    batch: Vec<(usize, Source)>,
    chunk_bytes: usize,
    progress: ProgressBar,
) -> anyhow::Result<Vec<(usize, pb::InstanceResult)>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<pb::UploadRequest>(8);
    let refs: Vec<usize> = batch.iter().map(|(index, _)| *index).collect();
    let producer = tokio::spawn(async move {
        for (index, source) in batch {
            let bytes = match source {
                Source::File(path) => {
                    tokio::fs::read(&path).await.with_context(|| format!("cannot read {}", path.display()))?
                }
                Source::Bytes(bytes) => bytes,
            };
            let begin = pb::InstanceBegin {
                client_ref: format!("file-{index:06}"),
                declared_size_bytes: bytes.len() as u64,
                sha256: Some(hex::encode(Sha256::digest(&bytes))),
            };
            let part = |part| pb::UploadRequest { part: Some(part) };
            if sender.send(part(pb::upload_request::Part::Begin(begin))).await.is_err() {
                return Ok(());
            }
            for chunk in bytes.chunks(chunk_bytes.max(1)) {
                if sender.send(part(pb::upload_request::Part::Chunk(chunk.to_vec()))).await.is_err() {
                    return Ok(());
                }
            }
            if sender.send(part(pb::upload_request::Part::End(pb::InstanceEnd {}))).await.is_err() {
                return Ok(());
            }
            progress.inc(1);
        }
        anyhow::Ok(())
    });
    let response = client.upload(ReceiverStream::new(receiver)).await.map_err(call_failed("Ingest.Upload"));
    producer.await.context("upload producer task")??;
    let results = response?.into_inner().results;
    anyhow::ensure!(
        results.len() == refs.len(),
        "Ingest.Upload answered {} results for {} instances",
        results.len(),
        refs.len()
    );
    Ok(refs.into_iter().zip(results).collect())
}

pub fn outcome_name(outcome: i32) -> &'static str {
    match pb::InstanceOutcome::try_from(outcome) {
        Ok(pb::InstanceOutcome::Stored) => "stored",
        Ok(pb::InstanceOutcome::Duplicate) => "duplicate",
        Ok(pb::InstanceOutcome::Rejected) => "rejected",
        Ok(pb::InstanceOutcome::Quarantined) => "quarantined",
        _ => "unknown",
    }
}

pub fn reason_name(reason: i32) -> &'static str {
    pb::InstanceReason::try_from(reason)
        .map(|reason| reason.as_str_name().trim_start_matches("INSTANCE_REASON_"))
        .unwrap_or("UNKNOWN")
}

/// Uploads `args.dir`, completes the studies, and returns the report.
pub async fn ingest_dir(endpoints: &Endpoints, args: &IngestArgs) -> anyhow::Result<IngestReport> {
    let files = files_under(&args.dir)?;
    anyhow::ensure!(!files.is_empty(), "{} holds no files to upload", args.dir.display());
    let channel = endpoints.connect("ingest", &endpoints.ingest).await?;
    let client = IngestClient::new(channel).max_decoding_message_size(64 << 20);
    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("uploading {bar:30} {pos}/{len} files  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = IngestReport { files: files.len(), ..IngestReport::default() };
    report.bytes = files.iter().filter_map(|path| std::fs::metadata(path).ok()).map(|meta| meta.len()).sum();
    let mut indexed = files.iter().cloned().map(Source::File).enumerate().peekable();
    let per_stream = args.per_stream.max(1);
    let mut batches = std::iter::from_fn(move || {
        indexed.peek()?;
        Some(indexed.by_ref().take(per_stream).collect::<Vec<_>>())
    });
    let mut running = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(files.len());
    loop {
        while running.len() < args.parallel.max(1) {
            let Some(batch) = batches.next() else { break };
            running.spawn(upload_batch(
                client.clone(),
                batch,
                args.chunk_kib.max(1) * 1024,
                progress.clone(),
            ));
        }
        let Some(done) = running.join_next().await else { break };
        results.extend(done.context("upload task")??);
    }
    progress.finish_and_clear();
    results.sort_by_key(|(index, _)| *index);

    let mut studies = BTreeSet::new();
    for (index, result) in &results {
        let outcome = outcome_name(result.outcome);
        match outcome {
            "stored" => report.stored += 1,
            "duplicate" => report.duplicate += 1,
            "quarantined" => report.quarantined += 1,
            _ => report.rejected += 1,
        }
        if !result.study_id.is_empty() && outcome != "rejected" {
            studies.insert(result.study_id.clone());
        }
        if outcome == "rejected" || outcome == "quarantined" {
            report.not_accepted.push(FileResult {
                file: files[*index].display().to_string(),
                outcome,
                reason: reason_name(result.reason),
                message: result.message.clone(),
                study_id: result.study_id.clone(),
            });
        }
    }
    if !args.no_complete {
        let mut client = client;
        for study_id in studies {
            let response = client
                .complete_study(pb::CompleteStudyRequest { study_id: study_id.clone() })
                .await
                .map_err(call_failed("Ingest.CompleteStudy"))?
                .into_inner();
            let study = response.study.unwrap_or_default();
            report.studies.push(StudyResult {
                study_id,
                selection: pb::SelectionOutcome::try_from(study.selection_outcome)
                    .map(|outcome| match outcome {
                        pb::SelectionOutcome::Selected => "selected",
                        pb::SelectionOutcome::NoEligibleSeries => "no eligible series",
                        pb::SelectionOutcome::Pending => "pending",
                        pb::SelectionOutcome::Unspecified => "unspecified",
                    })
                    .unwrap_or("unknown"),
                selected_series_id: study.selected_series_id,
                job_created: response.job_created,
            });
        }
    }
    Ok(report)
}

/// Prints the report for people.
pub fn print_table(report: &IngestReport) {
    println!(
        "{} files ({:.1} MB): {} stored, {} duplicate, {} quarantined, {} rejected",
        report.files,
        report.bytes as f64 / 1e6,
        report.stored,
        report.duplicate,
        report.quarantined,
        report.rejected
    );
    let mut by_reason: BTreeMap<(&str, &str, &str), Vec<&str>> = BTreeMap::new();
    for file in &report.not_accepted {
        by_reason.entry((file.outcome, file.reason, &file.message)).or_default().push(&file.file);
    }
    for ((outcome, reason, message), files) in by_reason {
        println!("  {outcome} {reason} x{}: {message}", files.len());
        for file in files.iter().take(3) {
            println!("      {file}");
        }
        if files.len() > 3 {
            println!("      ... and {} more", files.len() - 3);
        }
    }
    if !report.studies.is_empty() {
        println!("{:<38} {:<20} {:<38} JOB", "STUDY", "SELECTION", "SELECTED SERIES");
        for study in &report.studies {
            println!(
                "{:<38} {:<20} {:<38} {}",
                study.study_id,
                study.selection,
                if study.selected_series_id.is_empty() { "-" } else { &study.selected_series_id },
                if study.job_created { "queued" } else { "-" }
            );
        }
    }
}
