//! The worker's predict and record stages for one job: which models serve, the job's tensor
//! and clinical features, the champion's and the shadow's predictions, and the
//! RecordPrediction request that carries them to the registry.

use tfesi_platform::jobs::PipelineJob;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::registry::v1 as registry;

use crate::failure::Failure;
use crate::features::{self, EpisodeFacts};
use crate::service::{PreparedTensor, prepare_instances, tensor_sha256};
use crate::spec;
use crate::store::Stage;
use crate::upstream::{CardSummary, Upstream};

use super::Pipeline;

/// The serving champion's card and the shadow's, when there is one and its card can be read.
async fn serving_cards(upstream: &Upstream) -> Result<(CardSummary, Option<CardSummary>), Failure> {
    let serving = upstream
        .serving_models()
        .await
        .map_err(|status| Failure::from_status(Stage::Predict, "inference.ListModels", &status))?;
    let champion_ref = serving.champion.clone().ok_or_else(|| {
        Failure::permanent(
            Stage::Predict,
            "no_champion_model",
            "inference has no champion model; promote one",
        )
    })?;
    let champion = upstream
        .card(&champion_ref)
        .await
        .map_err(|status| Failure::from_status(Stage::Predict, "inference.GetModel", &status))?;
    let shadow = match &serving.shadow {
        Some(reference) => match upstream.card(reference).await {
            Ok(card) => Some(card),
            Err(status) => {
                tracing::warn!(code = ?status.code(), "shadow card unavailable; the shadow is skipped");
                None
            }
        },
        None => None,
    };
    Ok((champion, shadow))
}

/// The models, the tensor, the features and the predictions, as a RecordPrediction request.
pub(super) async fn predict(
    pipeline: &Pipeline,
    job: &PipelineJob,
) -> Result<registry::RecordPredictionRequest, Failure> {
    let upstream = &pipeline.upstream;
    // Which models serve (two calls to inference) while the instances are read: neither needs
    // the other, and a job's time to its tensor is what the end-to-end latency is made of.
    let (cards, instances) = tokio::join!(
        serving_cards(upstream),
        crate::objects::load(pipeline.objects.clone(), job.objects.clone())
    );
    let (champion, shadow) = cards?;
    let prep_spec = spec::by_version(&champion.spec_version).ok_or_else(|| {
        Failure::permanent(
            Stage::Prepare,
            "unsupported_spec_version",
            format!("champion expects spec `{}`, which this server cannot produce", champion.spec_version),
        )
    })?;

    let instances = instances.map_err(|error| Failure::from(&error))?;
    if instances.is_empty() {
        return Err(Failure::permanent(Stage::Prepare, "invalid_job", "the job lists no stored instances"));
    }
    let prepared = prepare_instances(instances, prep_spec, pipeline.limits, pipeline.cache.as_ref())
        .await
        .map_err(|error| Failure::from(&error))?;
    tracing::info!(
        cache_hit = prepared.cache_hit,
        compute_ms = prepared.compute_time.as_millis() as u64,
        "tensor ready"
    );

    let facts = clinical_facts(pipeline, job, &champion, shadow.as_ref()).await?;
    let champion_features = encode_for(&champion, facts.as_ref())?;
    let image = image_tensor(&prepared);
    let tensor_sha = tensor_sha256(&prepared.tensor.data);
    let row = |clinical: Vec<common::ClinicalFeature>, card: &CardSummary| inference::PredictRow {
        row_id: job.job_id.clone(),
        image: Some(image.clone()),
        clinical,
        spec_version: card.spec_version.clone(),
        study_id: job.study_id.clone(),
        series_id: job.series_id.clone(),
        job_id: job.job_id.clone(),
    };
    let shadow_shares_inputs = shadow.as_ref().is_some_and(|card| {
        card.clinical_features == champion.clinical_features && card.spec_version == champion.spec_version
    });
    let response = upstream
        .predict(inference::PredictRequest {
            rows: vec![row(champion_features.clone(), &champion)],
            model: None,
            skip_shadow: !shadow_shares_inputs,
        })
        .await
        .map_err(|status| Failure::from_status(Stage::Predict, "inference.Predict", &status))?;
    let result = response.results.into_iter().next().ok_or_else(|| {
        Failure::transient(Stage::Predict, "downstream_unavailable", "inference returned no result")
    })?;
    let answer = result.prediction.ok_or_else(|| {
        Failure::transient(Stage::Predict, "downstream_unavailable", "inference returned no prediction")
    })?;
    if answer.model.as_ref() != Some(&champion.model) {
        return Err(Failure::transient(
            Stage::Predict,
            "champion_changed",
            "the champion changed while the job ran; predicting again",
        ));
    }
    let mut predictions =
        vec![record(job, answer, common::ModelRole::Champion, &tensor_sha, champion_features)];

    if let Some(shadow_card) = &shadow {
        if shadow_shares_inputs {
            match result.shadow {
                Some(shadow_answer) => predictions.push(record(
                    job,
                    shadow_answer,
                    common::ModelRole::Shadow,
                    &tensor_sha,
                    predictions[0].clinical.clone(),
                )),
                None => {
                    tracing::warn!(error = %result.shadow_error, "shadow did not run; only the champion is recorded")
                }
            }
        } else if let Some(shadow_prediction) =
            predict_shadow(pipeline, job, shadow_card, facts.as_ref(), prep_spec.version, &row).await
        {
            predictions.push(record(
                job,
                shadow_prediction.0,
                common::ModelRole::Shadow,
                &tensor_sha,
                shadow_prediction.1,
            ));
        }
    }
    Ok(registry::RecordPredictionRequest {
        job_id: job.job_id.clone(),
        study_id: job.study_id.clone(),
        series_id: job.series_id.clone(),
        predictions,
        // What the tensor was prepared from, so that a snapshot can freeze it: the cache key's
        // content hash and the instances' content addresses (each verified against its bytes
        // when it was read).
        series_content_sha256: prepared.content_hash.clone(),
        instance_sha256: job.objects.clone(),
    })
}

/// A shadow whose inputs differ from the champion's runs as an explicit model with its own
/// features; like any shadow failure, a failure here never fails the job.
async fn predict_shadow(
    pipeline: &Pipeline,
    job: &PipelineJob,
    card: &CardSummary,
    facts: Option<&EpisodeFacts>,
    tensor_spec: &str,
    row: &impl Fn(Vec<common::ClinicalFeature>, &CardSummary) -> inference::PredictRow,
) -> Option<(inference::Prediction, Vec<common::ClinicalFeature>)> {
    let features = match encode_for(card, facts) {
        Ok(features) => features,
        Err(failure) => {
            tracing::warn!(message = %failure.message, "shadow features unavailable; the shadow is skipped");
            return None;
        }
    };
    if card.spec_version != tensor_spec {
        tracing::warn!(shadow_spec = %card.spec_version, tensor_spec, "shadow expects another spec version; skipped");
        return None;
    }
    let request = inference::PredictRequest {
        rows: vec![row(features.clone(), card)],
        model: Some(card.model.clone()),
        skip_shadow: true,
    };
    match pipeline.upstream.predict(request).await {
        Ok(response) => response
            .results
            .into_iter()
            .next()
            .and_then(|result| result.prediction)
            .map(|prediction| (prediction, features)),
        Err(status) => {
            tracing::warn!(job_id = %job.job_id, code = ?status.code(), message = %status.message(),
                "shadow prediction failed; only the champion is recorded");
            None
        }
    }
}

/// The facts of the study's episode when a model needs clinical features; none otherwise.
async fn clinical_facts(
    pipeline: &Pipeline,
    job: &PipelineJob,
    champion: &CardSummary,
    shadow: Option<&CardSummary>,
) -> Result<Option<EpisodeFacts>, Failure> {
    if let Some(unknown) = features::first_unknown(&champion.clinical_features) {
        return Err(Failure::permanent(
            Stage::Predict,
            "unsupported_clinical_feature",
            format!(
                "model {}/{} needs clinical feature `{unknown}`, which has no encoder",
                champion.model.name, champion.model.version
            ),
        ));
    }
    let shadow_needs = shadow.is_some_and(|card| !card.clinical_features.is_empty());
    if champion.clinical_features.is_empty() && !shadow_needs {
        return Ok(None);
    }
    let episodes = pipeline
        .upstream
        .episodes_of_study(&job.study_id)
        .await
        .map_err(|status| Failure::from_status(Stage::Predict, "registry.ListEpisodes", &status))?;
    let Some(episode) = episodes.first() else {
        if champion.clinical_features.is_empty() {
            // Only the shadow needs features: the champion still answers.
            return Ok(None);
        }
        return Err(Failure::transient(
            Stage::Predict,
            "no_linked_episode",
            format!(
                "no treatment episode is linked to the study; model {}/{} needs its clinical features (link it with Registry.LinkStudy)",
                champion.model.name, champion.model.version
            ),
        ));
    };
    if episodes.len() > 1 {
        tracing::warn!(episodes = episodes.len(), episode_id = %episode.episode_id,
            "several episodes are linked to the study; the newest one's features are used");
    }
    EpisodeFacts::from_episode(episode)
        .map(Some)
        .map_err(|error| Failure::permanent(Stage::Predict, "invalid_episode", error.to_string()))
}

fn encode_for(
    card: &CardSummary,
    facts: Option<&EpisodeFacts>,
) -> Result<Vec<common::ClinicalFeature>, Failure> {
    if card.clinical_features.is_empty() {
        return Ok(Vec::new());
    }
    let facts = facts.ok_or_else(|| {
        Failure::transient(Stage::Predict, "no_linked_episode", "no treatment episode is linked to the study")
    })?;
    features::encode(&card.clinical_features, facts).map_err(|error| {
        Failure::permanent(Stage::Predict, "unsupported_clinical_feature", error.to_string())
    })
}

fn image_tensor(prepared: &PreparedTensor) -> common::Tensor {
    common::Tensor {
        shape: prepared.tensor.shape.iter().map(|dim| u32::try_from(*dim).unwrap_or(u32::MAX)).collect(),
        dtype: common::DType::Float32.into(),
        data: prepared.tensor.data.iter().flat_map(|value| value.to_le_bytes()).collect(),
    }
}

fn record(
    job: &PipelineJob,
    prediction: inference::Prediction,
    role: common::ModelRole,
    tensor_sha: &str,
    clinical: Vec<common::ClinicalFeature>,
) -> registry::PredictionRecord {
    let now = chrono::Utc::now();
    registry::PredictionRecord {
        prediction_id: String::new(),
        job_id: job.job_id.clone(),
        study_id: job.study_id.clone(),
        series_id: job.series_id.clone(),
        model: prediction.model,
        role: role.into(),
        spec_version: prediction.spec_version,
        probability: prediction.probability,
        threshold: prediction.threshold,
        predicted_label: prediction.predicted_label,
        execution_provider: prediction.execution_provider,
        predicted_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_micros() * 1000).unwrap_or(0),
        }),
        tensor_sha256: tensor_sha.to_owned(),
        clinical,
    }
}
