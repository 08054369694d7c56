//! Clients of the services preprocess calls (ingest, inference, registry): lazy channels, a
//! deadline on every call, the current trace context on every request, and a cache of model
//! cards (a registered name and version never changes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tfesi_auth::TokenSource;
use tfesi_platform::client::{Outgoing, lazy_channel};
use tfesi_proto::common::v1::{ModelRef, PageRequest};
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::config::UpstreamConfig;

type Traced = InterceptedService<Channel, Outgoing>;

/// Largest response accepted from a downstream service.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The card fields the worker needs, per model version.
#[derive(Debug, Clone, PartialEq)]
pub struct CardSummary {
    pub model: ModelRef,
    pub spec_version: String,
    /// Clinical feature names in input order; empty for image-only models.
    pub clinical_features: Vec<String>,
}

/// The serving champion and shadow.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingModels {
    pub champion: Option<ModelRef>,
    pub shadow: Option<ModelRef>,
}

/// The three downstream clients with their deadline.
#[derive(Clone)]
pub struct Upstream {
    ingest: IngestClient<Traced>,
    inference: InferenceClient<Traced>,
    registry: RegistryClient<Traced>,
    call_timeout: Duration,
    cards: Arc<Mutex<HashMap<(String, String), CardSummary>>>,
}

impl Upstream {
    /// Clients for the configured endpoints, sending the tokens of `token`; nothing connects
    /// until the first call.
    pub fn new(
        config: &UpstreamConfig,
        call_timeout: Duration,
        token: Arc<TokenSource>,
    ) -> anyhow::Result<Self> {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let tls = config.tls.as_ref();
        let outgoing = Outgoing::new(token);
        let ingest = IngestClient::with_interceptor(
            lazy_channel(&config.ingest, tls, connect_timeout)?,
            outgoing.clone(),
        )
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let inference = InferenceClient::with_interceptor(
            lazy_channel(&config.inference, tls, connect_timeout)?,
            outgoing.clone(),
        )
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let registry =
            RegistryClient::with_interceptor(lazy_channel(&config.registry, tls, connect_timeout)?, outgoing)
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Self { ingest, inference, registry, call_timeout, cards: Arc::new(Mutex::new(HashMap::new())) })
    }

    /// The per-call deadline.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.call_timeout);
        request
    }

    /// Runs a call under the deadline on this side too (a server that never answers).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!("no answer within {:?}", self.call_timeout))),
        }
    }

    /// Ingest.GetSeries.
    pub async fn get_series(&self, series_id: &str) -> Result<ingest::GetSeriesResponse, Status> {
        let mut client = self.ingest.clone();
        let request = self.request(ingest::GetSeriesRequest { series_id: series_id.to_owned() });
        self.bounded(client.get_series(request)).await
    }

    /// Ingest.ReportJobStatus.
    pub async fn report_job_status(
        &self,
        job_id: &str,
        state: ingest::ProcessingState,
        attempts: u32,
        last_error: &str,
    ) -> Result<(), Status> {
        let mut client = self.ingest.clone();
        let request = self.request(ingest::ReportJobStatusRequest {
            job_id: job_id.to_owned(),
            state: state.into(),
            attempts,
            last_error: last_error.to_owned(),
        });
        self.bounded(client.report_job_status(request)).await.map(|_| ())
    }

    /// The champion and shadow now (Inference.ListModels; the page itself is not needed).
    pub async fn serving_models(&self) -> Result<ServingModels, Status> {
        let mut client = self.inference.clone();
        let request = self.request(inference::ListModelsRequest {
            page: Some(PageRequest { page_size: 1, page_token: String::new() }),
            name: String::new(),
        });
        let response = self.bounded(client.list_models(request)).await?;
        Ok(ServingModels { champion: response.champion, shadow: response.shadow })
    }

    /// The card of a model version (Inference.GetModel), cached.
    pub async fn card(&self, model: &ModelRef) -> Result<CardSummary, Status> {
        let key = (model.name.clone(), model.version.clone());
        if let Some(card) = self.cards.lock().ok().and_then(|cards| cards.get(&key).cloned()) {
            return Ok(card);
        }
        let mut client = self.inference.clone();
        let request = self.request(inference::GetModelRequest { model: Some(model.clone()) });
        let response = self.bounded(client.get_model(request)).await?;
        let card = response
            .model
            .and_then(|info| info.card)
            .ok_or_else(|| Status::internal("inference returned a model without its card"))?;
        let summary = CardSummary {
            model: card.model.unwrap_or_else(|| model.clone()),
            spec_version: card.spec_version,
            clinical_features: card.clinical_features,
        };
        if let Ok(mut cards) = self.cards.lock() {
            cards.insert(key, summary.clone());
        }
        Ok(summary)
    }

    /// Inference.Predict.
    pub async fn predict(
        &self,
        request: inference::PredictRequest,
    ) -> Result<inference::PredictResponse, Status> {
        let mut client = self.inference.clone();
        let request = self.request(request);
        self.bounded(client.predict(request)).await
    }

    /// Episodes linked to a study, newest first (Registry.ListEpisodes with its study filter).
    pub async fn episodes_of_study(&self, study_id: &str) -> Result<Vec<registry::Episode>, Status> {
        let mut client = self.registry.clone();
        let request = self.request(registry::ListEpisodesRequest {
            page: Some(PageRequest { page_size: 10, page_token: String::new() }),
            study_id: study_id.to_owned(),
            ..registry::ListEpisodesRequest::default()
        });
        Ok(self.bounded(client.list_episodes(request)).await?.episodes)
    }

    /// Registry.RecordPrediction.
    pub async fn record_prediction(
        &self,
        request: registry::RecordPredictionRequest,
    ) -> Result<registry::RecordPredictionResponse, Status> {
        let mut client = self.registry.clone();
        let request = self.request(request);
        self.bounded(client.record_prediction(request)).await
    }
}
