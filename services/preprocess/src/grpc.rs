//! The `tfesi.preprocess.v1.Preprocess` gRPC service: thin handlers over the tensor code
//! (`service.rs`), ingest's object store, the job ledger (`store.rs`) and the job stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use sqlx::PgPool;
use tfesi_platform::objects::ObjectStore;
use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1::ProcessingState;
use tfesi_proto::preprocess::v1 as pb;
use tfesi_proto::preprocess::v1::preprocess_server::Preprocess;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cache::TensorCache;
use crate::decode::DecodeLimits;
use crate::error::Error;
use crate::objects::LoadError;
use crate::prepare::TensorMeta;
use crate::service::{PreparedTensor, chunks, prepare_instances, tensor_sha256};
use crate::spec::{self, PrepSpec};
use crate::store::{self, Retry, RetryError, Stage};
use crate::stream::JobStream;
use crate::upstream::Upstream;
use crate::worker::WorkerStats;

/// Default and bounds of `max_chunk_bytes`.
const DEFAULT_CHUNK_BYTES: u32 = 1024 * 1024;
const MIN_CHUNK_BYTES: u32 = 4 * 1024;
const MAX_CHUNK_BYTES: u32 = 4 * 1024 * 1024;
/// Dead letters per page: default and maximum.
const DEFAULT_PAGE_SIZE: i32 = 50;
const MAX_PAGE_SIZE: i32 = 500;

/// The handler set of the Preprocess service and what it reads.
#[derive(Clone)]
pub struct PreprocessApi {
    pub pool: PgPool,
    pub stream: JobStream,
    pub upstream: Upstream,
    pub cache: Option<TensorCache>,
    pub objects: ObjectStore,
    pub limits: DecodeLimits,
    pub stats: Arc<WorkerStats>,
}

/// Status of a series that cannot become a tensor, as the Prepare contract lists them
/// (exhaustive: a new variant must choose).
fn prepare_status(error: &Error) -> Status {
    match error {
        Error::UnsupportedTransferSyntax { .. }
        | Error::Geometry(_)
        | Error::Spec { .. }
        | Error::InvalidAttribute { .. } => Status::failed_precondition(error.to_string()),
        Error::PixelDecode { .. }
        | Error::DecoderPanic { .. }
        | Error::InputTooLarge { .. }
        | Error::NotDicom(_)
        | Error::Malformed { .. }
        | Error::NestingTooDeep { .. }
        | Error::Parse(_) => Status::data_loss(error.to_string()),
        Error::Internal(_) => {
            tracing::error!(%error, "preparing a tensor failed");
            Status::internal("preparing the tensor failed")
        }
    }
}

fn load_status(error: &LoadError) -> Status {
    match error {
        LoadError::BadName(_) => Status::data_loss(error.to_string()),
        LoadError::Missing(_) | LoadError::HashMismatch { .. } => Status::data_loss(error.to_string()),
        LoadError::Io { .. } | LoadError::Task(_) => {
            tracing::error!(%error, "object store read failed");
            Status::unavailable("the object store cannot be read")
        }
    }
}

fn internal(what: &str, error: &dyn std::fmt::Display) -> Status {
    tracing::error!(%error, "{what} failed");
    Status::unavailable(format!("{what} failed; retry later"))
}

fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or(0),
    }
}

fn geometry(meta: &TensorMeta, spec: &PrepSpec) -> pb::TensorGeometry {
    // The tensor records the positions of the slices it used (ascending), so the indices of
    // the chosen slices are all of them, in order.
    let used = meta.slice_positions_mm.len();
    let centre_rows = meta.centre_px[0] * meta.source_pixel_spacing_mm[0] / spec.spacing_mm;
    let centre_columns = meta.centre_px[1] * meta.source_pixel_spacing_mm[1] / spec.spacing_mm;
    pb::TensorGeometry {
        orientation: meta.orientation.to_vec(),
        slice_normal: meta.slice_axis.to_vec(),
        slice_positions_mm: meta.slice_positions_mm.clone(),
        selected_slice_indices: (0..used).map(|index| u32::try_from(index).unwrap_or(u32::MAX)).collect(),
        slice_spacing_mm: meta.slice_spacing_mm,
        source_pixel_spacing_mm: meta.source_pixel_spacing_mm.to_vec(),
        source_shape: meta.source_shape.iter().map(|dim| u32::try_from(*dim).unwrap_or(u32::MAX)).collect(),
        target_pixel_spacing_mm: vec![spec.spacing_mm, spec.spacing_mm],
        crop_origin: vec![
            (centre_rows - spec.height as f64 / 2.0).round() as i32,
            (centre_columns - spec.width as f64 / 2.0).round() as i32,
        ],
        obliquity_degrees: meta.obliquity_deg,
        normalisation_bounds: vec![meta.intensity_low, meta.intensity_high],
    }
}

fn header(
    prepared: &PreparedTensor,
    spec: &PrepSpec,
    study_id: String,
    series_id: String,
) -> pb::TensorHeader {
    let tensor = &prepared.tensor;
    pb::TensorHeader {
        tensor: Some(common::TensorInfo {
            shape: tensor.shape.iter().map(|dim| u32::try_from(*dim).unwrap_or(u32::MAX)).collect(),
            dtype: common::DType::Float32.into(),
            size_bytes: (tensor.data.len() * 4) as u64,
            sha256: tensor_sha256(&tensor.data),
            spec_version: tensor.spec_version.to_owned(),
        }),
        study_id,
        series_id,
        series_content_sha256: prepared.content_hash.clone(),
        geometry: Some(geometry(&tensor.meta, spec)),
        cache_hit: prepared.cache_hit,
        compute_time: Some(duration(prepared.compute_time)),
    }
}

/// Page token of ListDeadLetters: `<dead_lettered_at micros>.<job_id>`, hex-encoded.
fn encode_token(row: &store::DeadLetterRow) -> String {
    hex::encode(format!("{}.{}", row.dead_lettered_at.timestamp_micros(), row.job_id))
}

fn decode_token(token: &str) -> Option<(chrono::DateTime<chrono::Utc>, Uuid)> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let (micros, job_id) = text.split_once('.')?;
    let time = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((time, Uuid::parse_str(job_id).ok()?))
}

fn stage_message(stage: Option<Stage>) -> pb::PipelineStage {
    match stage {
        Some(Stage::Prepare) => pb::PipelineStage::Prepare,
        Some(Stage::Predict) => pb::PipelineStage::Predict,
        Some(Stage::Record) => pb::PipelineStage::Record,
        None => pb::PipelineStage::Unspecified,
    }
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
        request: Request<pb::PrepareRequest>,
    ) -> Result<Response<Self::PrepareStream>, Status> {
        let request = request.into_inner();
        let series_id = Uuid::parse_str(&request.series_id)
            .map_err(|_| Status::invalid_argument("series_id must be a UUID"))?
            .to_string();
        let prep_spec = if request.spec_version.is_empty() {
            spec::CURRENT
        } else {
            spec::by_version(&request.spec_version).ok_or_else(|| {
                Status::invalid_argument(format!("unknown spec_version `{}`", request.spec_version))
            })?
        };
        let chunk_bytes = match request.max_chunk_bytes {
            0 => DEFAULT_CHUNK_BYTES,
            size if (MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&size) => size,
            _ => return Err(Status::invalid_argument("max_chunk_bytes must be 0 or 4096 to 4194304")),
        };
        let series = self.upstream.get_series(&series_id).await.map_err(|status| match status.code() {
            tonic::Code::NotFound => Status::not_found(format!("unknown series_id {series_id}")),
            tonic::Code::InvalidArgument => Status::invalid_argument(status.message().to_owned()),
            code => {
                tracing::warn!(?code, message = %status.message(), "ingest.GetSeries failed");
                Status::new(code, format!("ingest.GetSeries: {}", status.message()))
            }
        })?;
        let names: Vec<String> = series.objects.iter().map(|object| object.sha256.clone()).collect();
        if names.is_empty() {
            return Err(Status::failed_precondition("the series has no stored instances"));
        }
        let instances =
            crate::objects::load(self.objects.clone(), names).await.map_err(|error| load_status(&error))?;
        let prepared = prepare_instances(instances, prep_spec, self.limits, self.cache.as_ref())
            .await
            .map_err(|error| prepare_status(&error))?;
        let first = pb::PrepareResponse {
            part: Some(pb::prepare_response::Part::Header(header(
                &prepared,
                &prep_spec,
                series.study_id,
                series_id,
            ))),
        };
        // The whole tensor exists before the first message: the stream can only end complete.
        let mut messages = vec![Ok(first)];
        messages.extend(chunks(&prepared.tensor.data, chunk_bytes as usize).map(|(offset, data)| {
            Ok(pb::PrepareResponse {
                part: Some(pb::prepare_response::Part::Chunk(pb::TensorChunk { offset, data })),
            })
        }));
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
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
        let figures =
            self.stream.figures().await.map_err(|error| internal("reading the job stream", &error))?;
        let counts =
            store::counts(&self.pool).await.map_err(|error| internal("reading the job ledger", &error))?;
        Ok(Response::new(pb::GetPipelineStatusResponse {
            queue_depth: figures.lag,
            pending: figures.pending,
            in_flight: counts.in_progress.max(self.stats.in_flight.load(Ordering::Relaxed)),
            dead_letter_count: counts.dead_letters,
            consumer_count: figures.consumers,
            oldest_pending_age: figures.oldest_pending_idle.map(duration),
            completed_since_start: self.stats.completed.load(Ordering::Relaxed),
            as_of: Some(timestamp(chrono::Utc::now())),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let page = request.into_inner().page.unwrap_or_default();
        let page_size = match page.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if (1..=MAX_PAGE_SIZE).contains(&size) => size,
            _ => return Err(Status::invalid_argument("page.page_size must be 0 to 500")),
        };
        let after = if page.page_token.is_empty() {
            None
        } else {
            Some(decode_token(&page.page_token).ok_or_else(|| Status::invalid_argument("bad page token"))?)
        };
        let mut rows = store::list_dead_letters(&self.pool, after, i64::from(page_size) + 1)
            .await
            .map_err(|error| internal("reading dead letters", &error))?;
        let more = rows.len() > usize::try_from(page_size).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        let next_page_token =
            if more { rows.last().map(encode_token).unwrap_or_default() } else { String::new() };
        let counts =
            store::counts(&self.pool).await.map_err(|error| internal("reading the job ledger", &error))?;
        let dead_letters = rows
            .into_iter()
            .map(|row| pb::DeadLetter {
                job_id: row.job_id.to_string(),
                study_id: row.study_id,
                series_id: row.series_id,
                stage: stage_message(row.stage).into(),
                reason_code: row.reason_code,
                message: row.message,
                attempts: row.attempts.max(1),
                first_failed_at: row.first_failed_at.map(timestamp),
                dead_lettered_at: Some(timestamp(row.dead_lettered_at)),
            })
            .collect();
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters,
            page: Some(common::PageResponse { next_page_token, total_size: Some(counts.dead_letters) }),
        }))
    }

    async fn retry_dead_letter(
        &self,
        request: Request<pb::RetryDeadLetterRequest>,
    ) -> Result<Response<pb::RetryDeadLetterResponse>, Status> {
        let job_id_text = request.into_inner().job_id;
        let job_id =
            Uuid::parse_str(&job_id_text).map_err(|_| Status::invalid_argument("job_id must be a UUID"))?;
        let stream = self.stream.clone();
        let text = job_id.to_string();
        let outcome = store::retry_dead_letter(&self.pool, job_id, |payload| async move {
            stream.publish(&text, &payload).await.map(|_| ())
        })
        .await
        .map_err(|error| match error {
            RetryError::Db(error) => internal("updating the job ledger", &error),
            RetryError::Publish(error) => internal("adding the job to the stream", &error),
        })?;
        let requeued = match outcome {
            Retry::NotFound => return Err(Status::not_found(format!("unknown job_id {job_id}"))),
            Retry::AlreadySucceeded => {
                return Err(Status::failed_precondition(format!("job {job_id} already succeeded")));
            }
            Retry::NotDeadLettered => false,
            Retry::Requeued { .. } => true,
        };
        if requeued {
            tracing::info!(%job_id, "dead letter queued again");
            if let Err(status) =
                self.upstream.report_job_status(&job_id.to_string(), ProcessingState::Queued, 0, "").await
            {
                tracing::warn!(code = ?status.code(), message = %status.message(), "ingest.ReportJobStatus failed");
            }
        }
        Ok(Response::new(pb::RetryDeadLetterResponse { job_id: job_id.to_string(), requeued }))
    }
}
