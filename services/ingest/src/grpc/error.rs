//! Errors of the Ingest API and their one exhaustive mapping onto gRPC status codes.

use crate::catalogue::CompleteError;
use crate::ingest::IngestError;

/// Everything an Ingest RPC can fail with, each with the status a caller sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is malformed or out of range; the message names the field and the fix.
    #[error("{0}")]
    InvalidArgument(String),
    /// The referenced record does not exist.
    #[error("{entity} '{id}' not found")]
    NotFound {
        /// What was looked for ("study_id", "job_id", ...).
        entity: &'static str,
        /// The id as given (surrogate ids only; never a hospital identifier).
        id: String,
    },
    /// A lookup by hospital identifier found nothing (the key value is never echoed).
    #[error("{0}")]
    NoMatch(String),
    /// The caller's role may not call this RPC.
    #[error("{0}")]
    PermissionDenied(String),
    /// A per-stream upload limit was exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The audit record of a PHI access could not be written, so the access was not served.
    #[error("audit record could not be written")]
    Audit(#[source] sqlx::Error),
    /// Postgres failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The intake path failed (not the instance: ours).
    #[error("intake error")]
    Ingest(#[from] IngestError),
}

impl ApiError {
    /// Shorthand for [`ApiError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Shorthand for [`ApiError::NotFound`].
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound { entity, id: id.to_string() }
    }
}

impl From<CompleteError> for ApiError {
    fn from(error: CompleteError) -> Self {
        match error {
            // The caller names the study; the handler turns this into NotFound with its id.
            CompleteError::NotFound => Self::NotFound { entity: "study_id", id: String::new() },
            CompleteError::Db(cause) => Self::Database(cause),
        }
    }
}

/// Whether a database error means "Postgres is unreachable or saturated" (retry later).
fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}

fn database_status(error: &sqlx::Error, what: &str) -> tonic::Status {
    tracing::error!(error = %error, "ingest {what} failed");
    if is_unavailable(error) {
        tonic::Status::unavailable(format!("{what} is unavailable (postgres unreachable); retry later"))
    } else {
        tonic::Status::internal(format!("{what} failed; the cause is in the ingest service log"))
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            ApiError::NotFound { .. } | ApiError::NoMatch(_) => tonic::Status::not_found(message),
            ApiError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            ApiError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            ApiError::Audit(cause) => {
                tracing::error!(error = %cause, "ingest audit write failed; request refused");
                let reason = if is_unavailable(&cause) { " (postgres unreachable)" } else { "" };
                tonic::Status::internal(format!(
                    "the audit record (audit.log) could not be written{reason}, so the request was not served"
                ))
            }
            ApiError::Database(cause) => database_status(&cause, "the ingest catalogue"),
            ApiError::Ingest(cause) => match cause {
                IngestError::Db(db) => database_status(&db, "the ingest catalogue"),
                IngestError::Store(io) => {
                    tracing::error!(error = %io, "object store write failed");
                    tonic::Status::unavailable(
                        "the object store could not write the instance; nothing was acknowledged, retry later",
                    )
                }
                IngestError::Deid(deid) => {
                    tracing::error!(error = %deid, "de-identification failed");
                    tonic::Status::internal(
                        "de-identification failed; the cause is in the ingest service log",
                    )
                }
                IngestError::Join(join) => {
                    tracing::error!(error = %join, "intake worker task failed");
                    tonic::Status::internal("an intake worker failed; the cause is in the ingest service log")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_other_failures_are_internal() {
        let down: tonic::Status = ApiError::Database(sqlx::Error::PoolTimedOut).into();
        assert_eq!(down.code(), tonic::Code::Unavailable);
        let broken: tonic::Status = ApiError::Database(sqlx::Error::RowNotFound).into();
        assert_eq!(broken.code(), tonic::Code::Internal);
        let audit: tonic::Status = ApiError::Audit(sqlx::Error::PoolClosed).into();
        assert_eq!(audit.code(), tonic::Code::Internal);
        assert!(audit.message().contains("audit"), "{}", audit.message());
    }

    #[test]
    fn a_missing_record_names_its_id() {
        let status: tonic::Status = ApiError::not_found("study_id", "0000").into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "study_id '0000' not found");
    }
}
