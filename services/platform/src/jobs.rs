//! The pipeline job contract between ingest (producer, through its outbox and relay) and the
//! preprocess worker (consumer).
//!
//! Ingest writes a [`PipelineJob`] to `ingest.outbox` in the transaction that completes a
//! study; the relay `XADD`s it to the Redis stream `<key_prefix>:<relay.stream>` (default
//! `tfesi:jobs`) as two fields, `job_id` and `payload` (the job as JSON). The stream is a
//! delivery mechanism only: Postgres is the truth and the relay re-publishes any job that was
//! not confirmed, so a consumer must be idempotent on `job_id` (the registry is).
//!
//! A consumer confirms a finished job by calling `Ingest.ReportJobStatus` with SUCCEEDED (or
//! DEAD_LETTER); it may also `XADD` `job_id` to `<stream>:done`, which the relay reads as a
//! confirmation too.

use serde::{Deserialize, Serialize};

/// Stream field holding the job id.
pub const FIELD_JOB_ID: &str = "job_id";
/// Stream field holding the JSON payload.
pub const FIELD_PAYLOAD: &str = "payload";

/// One unit of pipeline work: the selected series of a completed study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineJob {
    /// Job id (UUID): the idempotency key downstream (`Registry.RecordPrediction`).
    pub job_id: String,
    /// Surrogate study id (UUID).
    pub study_id: String,
    /// Surrogate patient id (UUID).
    pub patient_uuid: String,
    /// Surrogate series id (UUID) of the selected series (`Ingest.GetSeries`).
    #[serde(default)]
    pub series_id: String,
    /// De-identified Series Instance UID of the selected series.
    pub series_uid: String,
    /// sha256 names of the series' stored instances in the object store.
    pub objects: Vec<String>,
    /// W3C `traceparent` of the request that completed the study, so one trace spans
    /// upload to stored prediction. Absent when no trace was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl PipelineJob {
    /// Stream key of confirmations for a job stream key.
    pub fn done_key(stream_key: &str) -> String {
        format!("{stream_key}:done")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_without_optional_fields_still_decodes() {
        let json = r#"{"job_id":"j","study_id":"s","patient_uuid":"p","series_uid":"1.2","objects":["ab"]}"#;
        let job: PipelineJob = serde_json::from_str(json).expect("decodes");
        assert_eq!(job.series_id, "");
        assert_eq!(job.traceparent, None);
        assert_eq!(job.objects, vec!["ab".to_string()]);
    }
}
