//! The `tfesi.ingest.v1.Ingest` gRPC service.
//!
//! The domain behind it (parsing, validation, de-identification, storage, catalogue, series
//! selection, outbox) exists and is tested; the RPC handlers that expose it are not built yet,
//! so each RPC answers UNIMPLEMENTED naming the missing capability rather than pretending.

use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_server::Ingest;
use tonic::{Request, Response, Status, Streaming};

/// The handler set of the Ingest service.
#[derive(Clone, Debug, Default)]
pub struct IngestApi;

fn missing(capability: &str) -> Status {
    Status::unimplemented(format!(
        "{capability} is not available yet in tfesi-ingest (issue 4: the gRPC layer)"
    ))
}

#[tonic::async_trait]
impl Ingest for IngestApi {
    async fn upload(
        &self,
        _request: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        Err(missing("gRPC instance upload"))
    }

    async fn complete_study(
        &self,
        _request: Request<pb::CompleteStudyRequest>,
    ) -> Result<Response<pb::CompleteStudyResponse>, Status> {
        Err(missing("study completion over gRPC"))
    }

    async fn get_study(
        &self,
        _request: Request<pb::GetStudyRequest>,
    ) -> Result<Response<pb::GetStudyResponse>, Status> {
        Err(missing("study lookup"))
    }

    async fn list_studies(
        &self,
        _request: Request<pb::ListStudiesRequest>,
    ) -> Result<Response<pb::ListStudiesResponse>, Status> {
        Err(missing("study listing"))
    }

    async fn lookup_ids(
        &self,
        _request: Request<pb::LookupIdsRequest>,
    ) -> Result<Response<pb::LookupIdsResponse>, Status> {
        Err(missing("surrogate id lookup"))
    }

    async fn resolve_patient(
        &self,
        _request: Request<pb::ResolvePatientRequest>,
    ) -> Result<Response<pb::ResolvePatientResponse>, Status> {
        Err(missing("patient re-identification"))
    }

    async fn list_quarantine(
        &self,
        _request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        Err(missing("quarantine listing"))
    }

    async fn get_series(
        &self,
        _request: Request<pb::GetSeriesRequest>,
    ) -> Result<Response<pb::GetSeriesResponse>, Status> {
        Err(missing("series lookup"))
    }

    async fn report_job_status(
        &self,
        _request: Request<pb::ReportJobStatusRequest>,
    ) -> Result<Response<pb::ReportJobStatusResponse>, Status> {
        Err(missing("job status reports"))
    }
}
