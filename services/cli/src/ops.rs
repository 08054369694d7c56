//! Operator commands over the services' gRPC APIs: `study`, `jobs` and `model`.
//! Each prints a table for people or, with `--json`, one JSON document for scripts.

use clap::Subcommand;
use serde_json::{Value, json};
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::preprocess::v1 as preprocess;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

use crate::endpoints::{Endpoints, call_failed};

/// `tfesi study ...`
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// One study: its series, each series' selection decision with reasons, processing status.
    Show {
        /// Surrogate study id (UUID).
        study_id: String,
    },
    /// Recent studies, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
}

/// `tfesi jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Queue depth, jobs in flight, dead letters.
    Status,
    /// Jobs in the dead-letter state with their reasons.
    Dead {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
    /// Puts a dead-lettered job back on the queue (after the cause was fixed).
    Retry {
        /// Job id (UUID).
        job_id: String,
    },
}

/// `tfesi model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Registered models with their serving state (champion, shadow, idle).
    List,
    /// Makes a registered model the champion.
    Promote {
        /// `name:version`.
        model: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
    /// Runs a model as the shadow beside the champion (`--clear` stops it).
    Shadow {
        /// `name:version`; omit with --clear.
        model: Option<String>,
        /// Stop shadowing.
        #[arg(long)]
        clear: bool,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
    /// Puts the previous champion back.
    Rollback {
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
    /// A model's prospective performance from the registry's labeled outcomes.
    Performance {
        /// `name:version`.
        model: String,
    },
}

fn model_ref(text: &str) -> anyhow::Result<common::ModelRef> {
    let (name, version) = text
        .split_once(':')
        .filter(|(name, version)| !name.is_empty() && !version.is_empty())
        .ok_or_else(|| anyhow::anyhow!("model '{text}' must be written name:version, e.g. tfesi-test:1"))?;
    Ok(common::ModelRef { name: name.to_owned(), version: version.to_owned() })
}

fn show_ref(model: Option<&common::ModelRef>) -> String {
    model.map_or_else(|| "-".to_owned(), |m| format!("{}:{}", m.name, m.version))
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase().replace('_', " ")
}

fn print(json_output: bool, value: &Value, table: impl FnOnce()) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table();
    }
    Ok(())
}

/// Runs a `study` command.
pub async fn study(endpoints: &Endpoints, json_output: bool, command: StudyCommand) -> anyhow::Result<()> {
    let mut client = IngestClient::new(endpoints.connect("ingest", &endpoints.ingest).await?);
    match command {
        StudyCommand::Show { study_id } => {
            let study = client
                .get_study(ingest::GetStudyRequest { study_id })
                .await
                .map_err(call_failed("Ingest.GetStudy"))?
                .into_inner()
                .study
                .unwrap_or_default();
            let processing = study.processing.clone().unwrap_or_default();
            let state = |value: i32| {
                ingest::ProcessingState::try_from(value)
                    .map(|s| enum_name(s.as_str_name(), "PROCESSING_STATE_"))
                    .unwrap_or_default()
            };
            let series: Vec<Value> = study
                .series
                .iter()
                .map(|s| {
                    json!({
                        "series_id": s.series_id,
                        "description": s.description,
                        "plane": ingest::Plane::try_from(s.plane).map(|p| enum_name(p.as_str_name(), "PLANE_")).unwrap_or_default(),
                        "weighting": ingest::Weighting::try_from(s.weighting).map(|w| enum_name(w.as_str_name(), "WEIGHTING_")).unwrap_or_default(),
                        "instances": s.instance_count,
                        "decision": ingest::SeriesDecision::try_from(s.decision).map(|d| enum_name(d.as_str_name(), "SERIES_DECISION_")).unwrap_or_default(),
                        "reasons": s.reasons.iter().map(|r| r.message.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let value = json!({
                "study_id": study.study_id,
                "patient_id": study.patient_id,
                "instances": study.instance_count,
                "selection": ingest::SelectionOutcome::try_from(study.selection_outcome).map(|o| enum_name(o.as_str_name(), "SELECTION_OUTCOME_")).unwrap_or_default(),
                "selected_series_id": study.selected_series_id,
                "processing": {"state": state(processing.state), "job_id": processing.job_id, "attempts": processing.attempts, "last_error": processing.last_error},
                "prediction_available": study.prediction_available,
                "series": series,
            });
            print(json_output, &value, || {
                println!("study       {}", value["study_id"].as_str().unwrap_or_default());
                println!("patient     {}", value["patient_id"].as_str().unwrap_or_default());
                println!("instances   {}", study.instance_count);
                println!("selection   {}", value["selection"].as_str().unwrap_or_default());
                println!(
                    "processing  {} (job {}, attempts {}){}",
                    value["processing"]["state"].as_str().unwrap_or_default(),
                    if processing.job_id.is_empty() { "-" } else { &processing.job_id },
                    processing.attempts,
                    if processing.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", processing.last_error)
                    }
                );
                println!("prediction  {}", if study.prediction_available { "available" } else { "not yet" });
                println!(
                    "{:<38} {:<24} {:<10} {:<8} {:>5}  DECISION",
                    "SERIES", "DESCRIPTION", "PLANE", "WEIGHT", "N"
                );
                for s in &series {
                    println!(
                        "{:<38} {:<24} {:<10} {:<8} {:>5}  {}{}",
                        s["series_id"].as_str().unwrap_or_default(),
                        s["description"].as_str().unwrap_or_default(),
                        s["plane"].as_str().unwrap_or_default(),
                        s["weighting"].as_str().unwrap_or_default(),
                        s["instances"],
                        s["decision"].as_str().unwrap_or_default(),
                        s["reasons"]
                            .as_array()
                            .filter(|r| !r.is_empty())
                            .map(|r| format!(
                                ": {}",
                                r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
                            ))
                            .unwrap_or_default()
                    );
                }
            })
        }
        StudyCommand::List { limit } => {
            let response = client
                .list_studies(ingest::ListStudiesRequest {
                    page: Some(common::PageRequest { page_size: limit, page_token: String::new() }),
                    ..Default::default()
                })
                .await
                .map_err(call_failed("Ingest.ListStudies"))?
                .into_inner();
            let rows: Vec<Value> = response
                .studies
                .iter()
                .map(|s| {
                    json!({
                        "study_id": s.study_id,
                        "instances": s.instance_count,
                        "series": s.series_count,
                        "selection": ingest::SelectionOutcome::try_from(s.selection_outcome).map(|o| enum_name(o.as_str_name(), "SELECTION_OUTCOME_")).unwrap_or_default(),
                        "processing": ingest::ProcessingState::try_from(s.processing.clone().unwrap_or_default().state).map(|p| enum_name(p.as_str_name(), "PROCESSING_STATE_")).unwrap_or_default(),
                        "prediction_available": s.prediction_available,
                    })
                })
                .collect();
            print(json_output, &Value::Array(rows.clone()), || {
                println!(
                    "{:<38} {:>9} {:>6} {:<20} {:<12} PREDICTION",
                    "STUDY", "INSTANCES", "SERIES", "SELECTION", "PROCESSING"
                );
                for r in &rows {
                    println!(
                        "{:<38} {:>9} {:>6} {:<20} {:<12} {}",
                        r["study_id"].as_str().unwrap_or_default(),
                        r["instances"],
                        r["series"],
                        r["selection"].as_str().unwrap_or_default(),
                        r["processing"].as_str().unwrap_or_default(),
                        if r["prediction_available"].as_bool().unwrap_or(false) { "yes" } else { "no" }
                    );
                }
            })
        }
    }
}

/// Runs a `jobs` command.
pub async fn jobs(endpoints: &Endpoints, json_output: bool, command: JobsCommand) -> anyhow::Result<()> {
    let mut client = PreprocessClient::new(endpoints.connect("preprocess", &endpoints.preprocess).await?);
    match command {
        JobsCommand::Status => {
            let status = client
                .get_pipeline_status(preprocess::GetPipelineStatusRequest {})
                .await
                .map_err(call_failed("Preprocess.GetPipelineStatus"))?
                .into_inner();
            let oldest = status.oldest_pending_age.map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9);
            let value = json!({
                "queue_depth": status.queue_depth,
                "pending": status.pending,
                "in_flight": status.in_flight,
                "dead_letters": status.dead_letter_count,
                "consumers": status.consumer_count,
                "oldest_pending_age_s": oldest,
                "completed_since_start": status.completed_since_start,
            });
            print(json_output, &value, || {
                for (key, item) in value.as_object().into_iter().flatten() {
                    println!("{key:<24} {item}");
                }
            })
        }
        JobsCommand::Dead { limit } => {
            let response = client
                .list_dead_letters(preprocess::ListDeadLettersRequest {
                    page: Some(common::PageRequest { page_size: limit, page_token: String::new() }),
                })
                .await
                .map_err(call_failed("Preprocess.ListDeadLetters"))?
                .into_inner();
            let rows: Vec<Value> = response
                .dead_letters
                .iter()
                .map(|d| {
                    json!({"job_id": d.job_id, "study_id": d.study_id, "reason_code": d.reason_code,
                           "message": d.message, "attempts": d.attempts})
                })
                .collect();
            print(json_output, &Value::Array(rows.clone()), || {
                println!("{:<38} {:<38} {:>8}  REASON", "JOB", "STUDY", "ATTEMPTS");
                for r in &rows {
                    println!(
                        "{:<38} {:<38} {:>8}  {}: {}",
                        r["job_id"].as_str().unwrap_or_default(),
                        r["study_id"].as_str().unwrap_or_default(),
                        r["attempts"],
                        r["reason_code"].as_str().unwrap_or_default(),
                        r["message"].as_str().unwrap_or_default()
                    );
                }
            })
        }
        JobsCommand::Retry { job_id } => {
            let response = client
                .retry_dead_letter(preprocess::RetryDeadLetterRequest { job_id })
                .await
                .map_err(call_failed("Preprocess.RetryDeadLetter"))?
                .into_inner();
            let value = json!({"job_id": response.job_id, "requeued": response.requeued});
            print(json_output, &value, || {
                if response.requeued {
                    println!("job {} is queued again", response.job_id);
                } else {
                    println!("job {} was already queued again: nothing changed", response.job_id);
                }
            })
        }
    }
}

/// Runs a `model` command.
pub async fn model(endpoints: &Endpoints, json_output: bool, command: ModelCommand) -> anyhow::Result<()> {
    if let ModelCommand::Performance { model } = command {
        let mut client = RegistryClient::new(endpoints.connect("registry", &endpoints.registry).await?);
        let response = client
            .get_model_performance(registry::GetModelPerformanceRequest {
                model: Some(model_ref(&model)?),
                ..Default::default()
            })
            .await
            .map_err(call_failed("Registry.GetModelPerformance"))?
            .into_inner();
        let metrics = response.metrics.unwrap_or_default();
        let value = json!({
            "model": model, "label_rule_version": response.label_rule_version,
            "labeled": metrics.labeled_count, "positive": metrics.positive_count,
            "auc": metrics.auc, "auc_ci": [metrics.auc_ci_lower, metrics.auc_ci_upper],
            "brier": metrics.brier, "threshold": metrics.threshold,
            "sensitivity": metrics.sensitivity, "specificity": metrics.specificity,
        });
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
        return print(json_output, &value, || {
            println!("model        {model} (label rule {})", response.label_rule_version);
            println!("labeled      {} ({} good outcomes)", metrics.labeled_count, metrics.positive_count);
            println!(
                "AUC          {} (95% CI {} to {})",
                fmt(metrics.auc),
                fmt(metrics.auc_ci_lower),
                fmt(metrics.auc_ci_upper)
            );
            println!("Brier        {}", fmt(metrics.brier));
            println!(
                "at {:.2}      sensitivity {}, specificity {}",
                metrics.threshold,
                fmt(metrics.sensitivity),
                fmt(metrics.specificity)
            );
        });
    }
    let mut client = InferenceClient::new(endpoints.connect("inference", &endpoints.inference).await?);
    match command {
        ModelCommand::List => {
            let response = client
                .list_models(inference::ListModelsRequest::default())
                .await
                .map_err(call_failed("Inference.ListModels"))?
                .into_inner();
            let rows: Vec<Value> = response
                .models
                .iter()
                .map(|m| {
                    let card = m.card.clone().unwrap_or_default();
                    json!({
                        "model": show_ref(card.model.as_ref()),
                        "state": inference::ServingState::try_from(m.serving_state).map(|s| enum_name(s.as_str_name(), "SERVING_STATE_")).unwrap_or_default(),
                        "spec_version": card.spec_version,
                        "threshold": card.threshold,
                        "synthetic": card.synthetic,
                        "sha256": m.sha256,
                    })
                })
                .collect();
            print(json_output, &Value::Array(rows.clone()), || {
                println!("{:<24} {:<10} {:<16} {:>9}  SHA256", "MODEL", "STATE", "SPEC", "THRESHOLD");
                for r in &rows {
                    println!(
                        "{:<24} {:<10} {:<16} {:>9}  {}",
                        r["model"].as_str().unwrap_or_default(),
                        r["state"].as_str().unwrap_or_default(),
                        r["spec_version"].as_str().unwrap_or_default(),
                        r["threshold"],
                        r["sha256"].as_str().unwrap_or_default().get(..12).unwrap_or_default()
                    );
                }
            })
        }
        ModelCommand::Promote { model, reason } => {
            let response = client
                .promote(inference::PromoteRequest {
                    model: Some(model_ref(&model)?),
                    expected_champion: None,
                    reason,
                })
                .await
                .map_err(call_failed("Inference.Promote"))?
                .into_inner();
            let value = json!({"champion": show_ref(response.champion.as_ref()),
                               "previous_champion": show_ref(response.previous_champion.as_ref())});
            print(json_output, &value, || {
                println!(
                    "champion is now {} (was {})",
                    show_ref(response.champion.as_ref()),
                    show_ref(response.previous_champion.as_ref())
                );
            })
        }
        ModelCommand::Shadow { model, clear, reason } => {
            let target = match (model, clear) {
                (Some(model), false) => inference::set_shadow_request::Target::Model(model_ref(&model)?),
                (None, true) => inference::set_shadow_request::Target::Clear(true),
                _ => anyhow::bail!("give either a model (name:version) or --clear, not both or neither"),
            };
            let response = client
                .set_shadow(inference::SetShadowRequest { target: Some(target), reason })
                .await
                .map_err(call_failed("Inference.SetShadow"))?
                .into_inner();
            let value = json!({"shadow": show_ref(response.shadow.as_ref()),
                               "previous_shadow": show_ref(response.previous_shadow.as_ref())});
            print(json_output, &value, || {
                println!(
                    "shadow is now {} (was {})",
                    show_ref(response.shadow.as_ref()),
                    show_ref(response.previous_shadow.as_ref())
                );
            })
        }
        ModelCommand::Rollback { reason } => {
            let response = client
                .rollback(inference::RollbackRequest { expected_champion: None, reason })
                .await
                .map_err(call_failed("Inference.Rollback"))?
                .into_inner();
            let value = json!({"champion": show_ref(response.champion.as_ref()),
                               "rolled_back": show_ref(response.rolled_back.as_ref())});
            print(json_output, &value, || {
                println!(
                    "champion is now {} ({} rolled back)",
                    show_ref(response.champion.as_ref()),
                    show_ref(response.rolled_back.as_ref())
                );
            })
        }
        ModelCommand::Performance { .. } => Ok(()),
    }
}
