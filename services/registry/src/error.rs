//! The registry's error type and its one exhaustive mapping onto gRPC status codes.

use chrono::NaiveDate;
use uuid::Uuid;

/// Result of every fallible registry operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the registry, each with the status a caller will see.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed or out of range (the message names the field).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// The referenced record does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },

    /// The episode already has a current follow-up; corrections go through AmendFollowUp.
    #[error("episode {episode_id} already has a follow-up; correct it with AmendFollowUp")]
    FollowUpExists { episode_id: Uuid },

    /// The episode is linked to another study already.
    #[error("episode {episode_id} is already linked to study {linked}")]
    StudyConflict { episode_id: Uuid, linked: Uuid },

    /// AmendFollowUp named a version that is no longer current (a concurrent amendment won).
    #[error("follow-up version {expected} is not the current version {current}")]
    VersionMismatch { expected: u32, current: u32 },

    /// The episode already has its index injection.
    #[error("episode {episode_id} already has an injection")]
    InjectionExists { episode_id: Uuid },

    /// A follow-up cannot be dated before the injection.
    #[error("follow-up date {follow_up_date} is before the injection date {injection_date}")]
    FollowUpBeforeInjection { follow_up_date: NaiveDate, injection_date: NaiveDate },

    /// A follow-up outside the window is refused unless the caller flags it explicitly.
    #[error(
        "follow-up on day {days} after the injection is outside the window (day {window_start} to {window_end}); set accept_out_of_window to record it"
    )]
    OutsideWindow { days: i64, window_start: u32, window_end: u32 },

    /// A follow-up needs the injection it follows.
    #[error("episode {episode_id} has no injection recorded")]
    NoInjection { episode_id: Uuid },

    /// The operation is not allowed in the episode's current outcome status.
    #[error("episode {episode_id} is {status}: {reason}")]
    StatusConflict { episode_id: Uuid, status: String, reason: &'static str },

    /// AmendFollowUp on an episode that has no follow-up to amend.
    #[error("episode {episode_id} has no follow-up to amend")]
    NothingToAmend { episode_id: Uuid },

    /// A label rule version exists with a different definition (rules are immutable).
    #[error("label rule {rule_version} already exists with a different definition; choose a new version")]
    RuleExists { rule_version: String },

    /// The same idempotency key arrived with a different request.
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReused,

    /// The episode kept changing while a write was being made (each attempt found it changed
    /// since it was read); the caller may retry.
    #[error("episode {episode_id} changed while the follow-up was being recorded; retry")]
    Contended { episode_id: Uuid },

    /// A job's predictions were already recorded with different content.
    #[error("job {job_id} was already recorded with different content")]
    PredictionConflict { job_id: String },

    /// Postgres failed; the cause is logged, the caller gets a plain message.
    #[error("database error")]
    Database(#[from] sqlx::Error),

    /// A stored or hashed value could not be (de)serialised.
    #[error("serialisation error")]
    Serialisation(#[from] serde_json::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field, reason: reason.into() }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Error::NotFound { entity, id: id.to_string() }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { .. } => tonic::Status::invalid_argument(message),
            Error::NotFound { .. } | Error::NothingToAmend { .. } => tonic::Status::not_found(message),
            Error::FollowUpExists { .. } | Error::InjectionExists { .. } | Error::RuleExists { .. } => {
                tonic::Status::already_exists(message)
            }
            Error::FollowUpBeforeInjection { .. }
            | Error::OutsideWindow { .. }
            | Error::NoInjection { .. }
            | Error::StatusConflict { .. }
            | Error::StudyConflict { .. }
            | Error::IdempotencyKeyReused
            | Error::PredictionConflict { .. } => tonic::Status::failed_precondition(message),
            Error::VersionMismatch { .. } | Error::Contended { .. } => tonic::Status::aborted(message),
            Error::Database(cause) => {
                tracing::error!(error = %cause, "registry database error");
                match cause {
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                        tonic::Status::unavailable("database unavailable, retry")
                    }
                    _ => tonic::Status::internal("internal error"),
                }
            }
            Error::Serialisation(cause) => {
                tracing::error!(error = %cause, "registry serialisation error");
                tonic::Status::internal("internal error")
            }
        }
    }
}
