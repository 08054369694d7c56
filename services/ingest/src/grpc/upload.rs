//! `Ingest.Upload`: assembles the chunked instances of one stream, enforces the per-instance and per-stream limits, and ingests each instance when it ends.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::upload_request::Part;

use super::convert::{quarantine_reason, reject_reason};
use super::error::ApiError;
use crate::config::UploadConfig;
use crate::ingest::{IngestError, Ingestor, InstanceOutcome, Source};

/// The instance being received.
struct Open {
    client_ref: String,
    declared: u64,
    sha256: Option<String>,
    received: u64,
    /// The bytes so far; dropped (and no longer collected) once over the per-instance limit.
    buffer: BytesMut,
    too_large: bool,
    /// Hashes the bytes only when the client declared a sha256 to check them against.
    hasher: Option<Sha256>,
}

/// One upload stream's progress.
pub struct Upload<'a> {
    ingestor: &'a Ingestor,
    limits: &'a UploadConfig,
    open: Option<Open>,
    begun: u32,
    response: pb::UploadResponse,
}

impl<'a> Upload<'a> {
    /// A new stream.
    pub fn new(ingestor: &'a Ingestor, limits: &'a UploadConfig) -> Self {
        Self { ingestor, limits, open: None, begun: 0, response: pb::UploadResponse::default() }
    }

    /// Handles one message of the stream.
    pub async fn message(&mut self, message: pb::UploadRequest) -> Result<(), ApiError> {
        match message.part {
            Some(Part::Begin(begin)) => self.begin(begin),
            Some(Part::Chunk(chunk)) => self.chunk(&chunk),
            Some(Part::End(_)) => self.end().await,
            None => Err(ApiError::invalid("an UploadRequest has no part: set begin, chunk or end")),
        }
    }

    /// Ends the stream: the response, or INVALID_ARGUMENT when an instance is still open.
    pub fn finish(self) -> Result<pb::UploadResponse, ApiError> {
        if let Some(open) = &self.open {
            return Err(ApiError::invalid(format!(
                "the stream ended inside instance '{}' ({} of {} bytes received): send InstanceEnd before closing",
                open.client_ref, open.received, open.declared
            )));
        }
        Ok(self.response)
    }

    fn begin(&mut self, begin: pb::InstanceBegin) -> Result<(), ApiError> {
        if let Some(open) = &self.open {
            return Err(ApiError::invalid(format!(
                "InstanceBegin '{}' arrived inside the open instance '{}': send InstanceEnd first",
                begin.client_ref, open.client_ref
            )));
        }
        let length = begin.client_ref.chars().count();
        if length == 0 || length > 256 {
            return Err(ApiError::invalid(format!(
                "InstanceBegin.client_ref is {length} characters: it must be 1 to 256 (instance {} of the stream)",
                self.begun + 1
            )));
        }
        if self.begun >= self.limits.max_instances_per_stream {
            return Err(ApiError::ResourceExhausted(format!(
                "more than {} instances in one stream (upload.max_instances_per_stream): the first {} are stored; send the rest in a new stream",
                self.limits.max_instances_per_stream, self.begun
            )));
        }
        self.begun += 1;
        let too_large = begin.declared_size_bytes > self.limits.max_instance_bytes;
        // Never trust the declared size for an allocation beyond the per-instance cap.
        let capacity = begin.declared_size_bytes.min(self.limits.max_instance_bytes).min(16 * 1024 * 1024);
        self.open = Some(Open {
            client_ref: begin.client_ref,
            declared: begin.declared_size_bytes,
            hasher: begin.sha256.as_ref().map(|_| Sha256::new()),
            sha256: begin.sha256,
            received: 0,
            buffer: if too_large {
                BytesMut::new()
            } else {
                BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0))
            },
            too_large,
        });
        Ok(())
    }

    fn chunk(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let Some(open) = self.open.as_mut() else {
            return Err(ApiError::invalid(format!(
                "a chunk of {} bytes arrived without InstanceBegin (after {} instance(s)): begin an instance first",
                chunk.len(),
                self.begun
            )));
        };
        let length = chunk.len() as u64;
        self.response.bytes_received += length;
        if self.response.bytes_received > self.limits.max_bytes_per_stream {
            return Err(ApiError::ResourceExhausted(format!(
                "more than {} bytes in one stream (upload.max_bytes_per_stream): the {} instance(s) finished before are stored; send the rest in a new stream",
                self.limits.max_bytes_per_stream,
                self.response.results.len()
            )));
        }
        open.received += length;
        if open.too_large {
            return Ok(());
        }
        if open.received > self.limits.max_instance_bytes {
            open.too_large = true;
            open.buffer = BytesMut::new();
            return Ok(());
        }
        if let Some(hasher) = open.hasher.as_mut() {
            hasher.update(chunk);
        }
        open.buffer.extend_from_slice(chunk);
        Ok(())
    }

    async fn end(&mut self) -> Result<(), ApiError> {
        let Some(open) = self.open.take() else {
            return Err(ApiError::invalid(format!(
                "InstanceEnd arrived without InstanceBegin (after {} instance(s)): begin an instance first",
                self.begun
            )));
        };
        let result = self.decide(open).await?;
        let counter = match pb::InstanceOutcome::try_from(result.outcome) {
            Ok(pb::InstanceOutcome::Stored) => &mut self.response.stored_count,
            Ok(pb::InstanceOutcome::Duplicate) => &mut self.response.duplicate_count,
            Ok(pb::InstanceOutcome::Quarantined) => &mut self.response.quarantined_count,
            _ => &mut self.response.rejected_count,
        };
        *counter += 1;
        tracing::info!(client_ref = %result.client_ref, outcome = result.outcome().as_str_name(), reason = result.reason().as_str_name(), study_id = %result.study_id, "instance received");
        self.response.results.push(result);
        Ok(())
    }

    async fn decide(&self, open: Open) -> Result<pb::InstanceResult, ApiError> {
        let client_ref = open.client_ref.clone();
        let rejected = |reason: pb::InstanceReason, message: String| pb::InstanceResult {
            client_ref: client_ref.clone(),
            outcome: pb::InstanceOutcome::Rejected as i32,
            reason: reason as i32,
            message,
            ..Default::default()
        };
        let limit = self.limits.max_instance_bytes;
        if open.too_large {
            let message = if open.declared > limit {
                format!(
                    "declared size {} bytes is over the per-instance limit of {limit} bytes",
                    open.declared
                )
            } else {
                format!(
                    "more than {limit} bytes received, over the per-instance limit (declared {} bytes)",
                    open.declared
                )
            };
            return Ok(rejected(pb::InstanceReason::TooLarge, message));
        }
        if open.received != open.declared {
            return Ok(rejected(
                pb::InstanceReason::SizeMismatch,
                format!("received {} bytes but declared_size_bytes is {}", open.received, open.declared),
            ));
        }
        if let Some((expected, hasher)) = open.sha256.as_ref().zip(open.hasher) {
            let digest = hex::encode(hasher.finalize());
            if !expected.eq_ignore_ascii_case(&digest) {
                return Ok(rejected(
                    pb::InstanceReason::ChecksumMismatch,
                    format!(
                        "sha256 of the received bytes is {digest}, not the declared {}",
                        expected.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        let bytes: Bytes = open.buffer.freeze();
        let ingested = match self.ingestor.ingest_filed(bytes, Source::Grpc).await {
            Ok(ingested) => ingested,
            Err(IngestError::Deid(error)) => {
                tracing::warn!(%error, client_ref = %client_ref, "de-identification failed; instance rejected");
                return Ok(rejected(
                    pb::InstanceReason::DeidentificationFailed,
                    "de-identification could not be applied safely; nothing was stored".into(),
                ));
            }
            Err(other) => return Err(other.into()),
        };
        let mut result = pb::InstanceResult { client_ref: client_ref.clone(), ..Default::default() };
        if let Some(filed) = &ingested.filed {
            result.study_id = filed.study_id.to_string();
            result.series_id = filed.series_id.to_string();
            result.patient_id = filed.patient_id.to_string();
            result.sop_instance_uid = filed.sop_instance_uid.clone();
            result.stored_sha256 = filed.stored_sha256.clone().unwrap_or_default();
        }
        match ingested.outcome {
            InstanceOutcome::Stored { .. } => result.outcome = pb::InstanceOutcome::Stored as i32,
            InstanceOutcome::Duplicate { .. } => {
                result.outcome = pb::InstanceOutcome::Duplicate as i32;
                result.message = "this instance was already stored; nothing new was written".into();
            }
            InstanceOutcome::Quarantined { reasons, .. } => {
                result.outcome = pb::InstanceOutcome::Quarantined as i32;
                result.reason =
                    reasons.first().map_or(pb::InstanceReason::Unspecified, |r| quarantine_reason(*r)) as i32;
                result.message =
                    reasons.iter().map(|r| r.message().to_lowercase()).collect::<Vec<_>>().join("; ");
            }
            InstanceOutcome::Rejected(rejection) => {
                return Ok(rejected(reject_reason(&rejection), rejection.message.to_lowercase()));
            }
        }
        Ok(result)
    }
}
