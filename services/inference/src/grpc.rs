//! Thin gRPC handlers of `tfesi.inference.v1.Inference`: convert, call the manager, convert back.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use tfesi_proto::inference::v1 as pb;
use tfesi_proto::inference::v1::inference_server::Inference;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::Error;
use crate::manager::{ModelManager, RegisterHeader, RowOutcome};
use crate::repository::ModelKey;

/// Default and largest ListModels page.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Prediction counters, labelled by model, version, role and the provider that ran it.
#[derive(Debug, Clone)]
struct PredictionMetrics {
    predictions: Counter<u64>,
    batch_size: Histogram<u64>,
}

impl PredictionMetrics {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("tfesi");
        Self {
            predictions: meter
                .u64_counter("inference.predictions")
                .with_description("rows predicted, by model, version, role and execution provider")
                .build(),
            batch_size: meter
                .u64_histogram("inference.batch_size")
                .with_description("rows in the batch each predicted row ran in")
                .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
                .build(),
        }
    }

    fn record(&self, outcomes: &[RowOutcome]) {
        let predictions = outcomes
            .iter()
            .flat_map(|outcome| std::iter::once(&outcome.prediction).chain(outcome.shadow.as_ref()));
        for prediction in predictions {
            let attributes = [
                KeyValue::new("model", prediction.model.name.clone()),
                KeyValue::new("version", prediction.model.version.clone()),
                KeyValue::new("role", format!("{:?}", prediction.role).to_lowercase()),
                KeyValue::new("provider", prediction.provider.kind.as_str()),
                KeyValue::new("provider_fallback", prediction.provider.fallback_reason.is_some()),
            ];
            self.predictions.add(1, &attributes);
            self.batch_size.record(prediction.batch_size as u64, &attributes[..2]);
        }
    }
}

/// The gRPC face of a [`ModelManager`].
#[derive(Debug, Clone)]
pub struct InferenceService {
    manager: Arc<ModelManager>,
    metrics: PredictionMetrics,
}

impl InferenceService {
    /// Serves `manager`.
    pub fn new(manager: Arc<ModelManager>) -> Self {
        Self { manager, metrics: PredictionMetrics::new() }
    }

    fn size_of(&self, key: &ModelKey) -> u64 {
        let path = self
            .manager
            .repository()
            .root()
            .join(&key.name)
            .join(&key.version)
            .join(crate::repository::MODEL_FILE);
        std::fs::metadata(path).map_or(0, |meta| meta.len())
    }

    fn info(&self, key: &ModelKey) -> Result<pb::ModelInfo, Error> {
        let info = self.manager.get(key)?;
        Ok(convert::model_info(&info, self.size_of(key)))
    }
}

fn page_bounds(
    page: Option<&tfesi_proto::common::v1::PageRequest>,
    name: &str,
) -> Result<(usize, usize), Error> {
    let (size, token) = page.map_or((0, ""), |page| (page.page_size, page.page_token.as_str()));
    let size = match usize::try_from(size) {
        Ok(0) | Err(_) => DEFAULT_PAGE,
        Ok(size) => size.min(MAX_PAGE),
    };
    if token.is_empty() {
        return Ok((0, size));
    }
    let (offset, token_name) = token
        .split_once(':')
        .ok_or_else(|| Error::invalid("page.page_token", "not a token from this server"))?;
    if token_name != name {
        return Err(Error::invalid("page.page_token", "was issued for another name filter"));
    }
    let offset =
        offset.parse().map_err(|_| Error::invalid("page.page_token", "not a token from this server"))?;
    Ok((offset, size))
}

#[tonic::async_trait]
impl Inference for InferenceService {
    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let deadline = convert::deadline(request.metadata());
        let (domain, row_ids) =
            convert::predict_request(request.into_inner(), self.manager.config().max_rows_per_request)?;
        let outcomes = self.manager.predict(&domain, deadline).await?;
        self.metrics.record(&outcomes);
        Ok(Response::new(convert::predict_response(&outcomes, row_ids)))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let request = request.into_inner();
        let (offset, size) = page_bounds(request.page.as_ref(), &request.name)?;
        let name = (!request.name.is_empty()).then_some(request.name.as_str());
        let all = self.manager.list(name)?;
        let total = all.len();
        let models = all
            .iter()
            .skip(offset)
            .take(size)
            .map(|info| convert::model_info(info, self.size_of(&info.key)))
            .collect();
        let next = offset + size;
        let next_page_token = if next < total { format!("{next}:{}", request.name) } else { String::new() };
        let state = self.manager.state().await;
        Ok(Response::new(pb::ListModelsResponse {
            models,
            champion: state.champion.as_ref().map(convert::model_ref),
            shadow: state.shadow.as_ref().map(convert::model_ref),
            page: Some(tfesi_proto::common::v1::PageResponse {
                next_page_token,
                total_size: Some(total as u64),
            }),
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        let key = convert::model_key("model", request.get_ref().model.as_ref())?;
        Ok(Response::new(pb::GetModelResponse { model: Some(self.info(&key)?) }))
    }

    async fn register_model(
        &self,
        request: Request<Streaming<pb::RegisterModelRequest>>,
    ) -> Result<Response<pb::RegisterModelResponse>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.and_then(|message| message.part);
        let Some(pb::register_model_request::Part::Header(header)) = first else {
            return Err(Error::invalid("header", "the first message must be a RegisterModelHeader").into());
        };
        let key = convert::model_key("header.model", header.model.as_ref())?;
        let limit = self.manager.config().max_model_bytes;
        if header.size_bytes == 0 {
            return Err(Error::invalid("header.size_bytes", "must be at least 1").into());
        }
        if header.size_bytes > limit {
            return Err(Error::TooLarge(format!(
                "model of {} bytes is over the limit of {limit} bytes",
                header.size_bytes
            ))
            .into());
        }
        let declared = usize::try_from(header.size_bytes)
            .map_err(|_| Error::TooLarge("model too large for this machine".to_owned()))?;
        let mut onnx = Vec::with_capacity(declared);
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(pb::register_model_request::Part::Chunk(chunk)) => {
                    if onnx.len() + chunk.len() > declared {
                        return Err(Error::DataLoss(format!(
                            "more than the declared {declared} bytes were sent"
                        ))
                        .into());
                    }
                    onnx.extend_from_slice(&chunk);
                }
                Some(pb::register_model_request::Part::Header(_)) => {
                    return Err(Error::invalid("header", "sent more than once").into());
                }
                None => return Err(Error::invalid("part", "empty message").into()),
            }
        }
        let domain = RegisterHeader {
            key: key.clone(),
            card_json: header.card_json,
            sha256: header.sha256,
            size_bytes: header.size_bytes,
            set_as_shadow: header.set_as_shadow,
            registered_by: String::new(),
        };
        let outcome = self.manager.register(domain, onnx).await?;
        Ok(Response::new(pb::RegisterModelResponse {
            model: Some(convert::model_info(&outcome.info, self.size_of(&key))),
            self_test: Some(convert::self_test(&outcome.self_test)),
            created: outcome.created,
        }))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::PromoteResponse>, Status> {
        let request = request.into_inner();
        let key = convert::model_key("model", request.model.as_ref())?;
        let expected = request
            .expected_champion
            .as_ref()
            .map(|model| convert::model_key("expected_champion", Some(model)))
            .transpose()?;
        convert::reason(&request.reason)?;
        let (previous, state) = self.manager.promote(&key, expected.as_ref()).await?;
        tracing::info!(model = %key, reason = %request.reason, "promote");
        Ok(Response::new(pb::PromoteResponse {
            champion: state.champion.as_ref().map(convert::model_ref),
            previous_champion: previous.as_ref().map(convert::model_ref),
            shadow: state.shadow.as_ref().map(convert::model_ref),
        }))
    }

    async fn set_shadow(
        &self,
        request: Request<pb::SetShadowRequest>,
    ) -> Result<Response<pb::SetShadowResponse>, Status> {
        let request = request.into_inner();
        convert::reason(&request.reason)?;
        let key = match request.target {
            Some(pb::set_shadow_request::Target::Model(model)) => {
                Some(convert::model_key("model", Some(&model))?)
            }
            Some(pb::set_shadow_request::Target::Clear(true)) => None,
            Some(pb::set_shadow_request::Target::Clear(false)) | None => {
                return Err(Error::invalid("target", "give a model or clear = true").into());
            }
        };
        let (previous, state) = self.manager.set_shadow(key.as_ref()).await?;
        tracing::info!(shadow = ?key.as_ref().map(ToString::to_string), reason = %request.reason, "set shadow");
        Ok(Response::new(pb::SetShadowResponse {
            shadow: state.shadow.as_ref().map(convert::model_ref),
            previous_shadow: previous.as_ref().map(convert::model_ref),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let request = request.into_inner();
        let expected = request
            .expected_champion
            .as_ref()
            .map(|model| convert::model_key("expected_champion", Some(model)))
            .transpose()?;
        convert::reason(&request.reason)?;
        let (champion, rolled_back) = self.manager.rollback(expected.as_ref()).await?;
        tracing::info!(champion = %champion, rolled_back = %rolled_back, reason = %request.reason, "rollback");
        Ok(Response::new(pb::RollbackResponse {
            champion: Some(convert::model_ref(&champion)),
            rolled_back: Some(convert::model_ref(&rolled_back)),
        }))
    }
}
