//! The `tfesi.preprocess.v1.Preprocess` gRPC service.
//!
//! `GetSpec` serves the versioned spec of `spec.rs`. The series-to-tensor code behind `Prepare`
//! exists and is tested, but no contract yet gives this service the bytes of a series (ingest
//! owns the object store), and the pipeline worker is not built: those RPCs answer
//! UNIMPLEMENTED naming the missing capability.

use std::pin::Pin;

use futures::Stream;
use tfesi_proto::preprocess::v1 as pb;
use tfesi_proto::preprocess::v1::preprocess_server::Preprocess;
use tonic::{Request, Response, Status};

use crate::spec::{self, PrepSpec};

/// The handler set of the Preprocess service.
#[derive(Clone, Debug, Default)]
pub struct PreprocessApi;

fn missing(capability: &str) -> Status {
    Status::unimplemented(format!("{capability} is not available yet in tfesi-preprocess (issue 5)"))
}

fn spec_message(spec: &PrepSpec) -> pb::PreprocessingSpec {
    pb::PreprocessingSpec {
        version: spec.version.to_owned(),
        slice_count: u32::try_from(spec.slices).unwrap_or(u32::MAX),
        target_spacing_mm: spec.spacing_mm,
        height: u32::try_from(spec.height).unwrap_or(u32::MAX),
        width: u32::try_from(spec.width).unwrap_or(u32::MAX),
        lower_percentile: spec.lower_percentile,
        upper_percentile: spec.upper_percentile,
        output_min: 0.0,
        output_max: 1.0,
        description: format!(
            "{} central sagittal slices ordered along the slice normal; in-plane resampling to {} mm with \
             Gaussian anti-aliasing when shrinking; a {}x{} window centred on the spinal canal; \
             per-series clipping to the {}th-{}th percentiles scaled to [0, 1] (docs/preprocessing.md)",
            spec.slices,
            spec.spacing_mm,
            spec.height,
            spec.width,
            spec.lower_percentile,
            spec.upper_percentile
        ),
    }
}

type TensorStream = Pin<Box<dyn Stream<Item = Result<pb::PrepareResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Preprocess for PreprocessApi {
    type PrepareStream = TensorStream;

    async fn prepare(
        &self,
        _request: Request<pb::PrepareRequest>,
    ) -> Result<Response<Self::PrepareStream>, Status> {
        Err(missing("Prepare over gRPC (series bytes from ingest's object store)"))
    }

    async fn get_spec(
        &self,
        request: Request<pb::GetSpecRequest>,
    ) -> Result<Response<pb::GetSpecResponse>, Status> {
        let asked = request.into_inner().version;
        let chosen = if asked.is_empty() {
            spec::CURRENT
        } else {
            spec::by_version(&asked).ok_or_else(|| {
                let known: Vec<&str> = spec::KNOWN.iter().map(|known| known.version).collect();
                Status::not_found(format!(
                    "unknown preprocessing spec version `{asked}`; known: {}",
                    known.join(", ")
                ))
            })?
        };
        Ok(Response::new(pb::GetSpecResponse {
            spec: Some(spec_message(&chosen)),
            current_version: spec::CURRENT.version.to_owned(),
            available_versions: spec::KNOWN.iter().map(|known| known.version.to_owned()).collect(),
        }))
    }

    async fn get_pipeline_status(
        &self,
        _request: Request<pb::GetPipelineStatusRequest>,
    ) -> Result<Response<pb::GetPipelineStatusResponse>, Status> {
        Err(missing("pipeline status (the pipeline worker)"))
    }

    async fn list_dead_letters(
        &self,
        _request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        Err(missing("dead-letter listing (the pipeline worker)"))
    }

    async fn retry_dead_letter(
        &self,
        _request: Request<pb::RetryDeadLetterRequest>,
    ) -> Result<Response<pb::RetryDeadLetterResponse>, Status> {
        Err(missing("dead-letter retry (the pipeline worker)"))
    }
}
