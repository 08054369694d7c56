//! Why a pipeline attempt failed, and whether retrying can help: transient failures are retried
//! with exponential backoff, permanent ones go to the dead-letter state at once.

use std::time::Duration;

use tonic::{Code, Status};

use crate::error::Error;
use crate::objects::LoadError;
use crate::store::Stage;

/// Retry or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Permanent,
}

/// A failed attempt: class, stage, machine-readable reason and a message without PHI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub stage: Stage,
    pub reason_code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn transient(stage: Stage, reason_code: &'static str, message: impl Into<String>) -> Self {
        Self { class: Class::Transient, stage, reason_code, message: message.into() }
    }

    pub fn permanent(stage: Stage, reason_code: &'static str, message: impl Into<String>) -> Self {
        Self { class: Class::Permanent, stage, reason_code, message: message.into() }
    }

    /// Whether the failure is a dependency being down or saturated rather than anything about
    /// this job: such failures wait out `worker.outage_budget_ms` without spending attempts.
    pub fn is_outage(&self) -> bool {
        self.class == Class::Transient
            && matches!(
                self.reason_code,
                "downstream_unavailable" | "downstream_overloaded" | "downstream_deadline_exceeded"
            )
    }

    /// A failed downstream call: `what` names the call.
    pub fn from_status(stage: Stage, what: &str, status: &Status) -> Self {
        let message = format!("{what}: {} ({:?})", status.message(), status.code());
        match status.code() {
            Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Aborted | Code::Internal => {
                Self::transient(stage, "downstream_unavailable", message)
            }
            Code::DeadlineExceeded => Self::transient(stage, "downstream_deadline_exceeded", message),
            Code::ResourceExhausted => Self::transient(stage, "downstream_overloaded", message),
            Code::FailedPrecondition => Self::permanent(stage, "downstream_failed_precondition", message),
            Code::InvalidArgument | Code::OutOfRange => {
                Self::permanent(stage, "downstream_rejected_input", message)
            }
            Code::NotFound => Self::permanent(stage, "downstream_not_found", message),
            Code::AlreadyExists => Self::permanent(stage, "downstream_conflict", message),
            Code::PermissionDenied | Code::Unauthenticated => {
                Self::permanent(stage, "downstream_permission_denied", message)
            }
            Code::Unimplemented => Self::permanent(stage, "downstream_unimplemented", message),
            Code::DataLoss => Self::permanent(stage, "downstream_data_loss", message),
            Code::Ok => Self::transient(stage, "downstream_unavailable", message),
        }
    }

    /// A Postgres or Redis failure of the worker's own bookkeeping.
    pub fn infrastructure(stage: Stage, what: &str, error: &dyn std::fmt::Display) -> Self {
        Self::transient(stage, "infrastructure_unavailable", format!("{what}: {error}"))
    }
}

/// Reason code of a series that cannot become a tensor (exhaustive: a new error variant must
/// choose one).
pub fn prepare_reason(error: &Error) -> &'static str {
    match error {
        Error::UnsupportedTransferSyntax { .. } => "unsupported_transfer_syntax",
        Error::PixelDecode { .. } | Error::DecoderPanic { .. } => "corrupt_pixel_data",
        Error::Geometry(_) => "inconsistent_geometry",
        Error::Spec { .. } => "series_not_usable",
        Error::InvalidAttribute { .. } => "invalid_attribute",
        Error::InputTooLarge { .. }
        | Error::NotDicom(_)
        | Error::Malformed { .. }
        | Error::NestingTooDeep { .. }
        | Error::Parse(_) => "invalid_instance",
        Error::Internal(_) => "internal_error",
    }
}

impl From<&Error> for Failure {
    fn from(error: &Error) -> Self {
        let class = if error.is_permanent() { Class::Permanent } else { Class::Transient };
        Self { class, stage: Stage::Prepare, reason_code: prepare_reason(error), message: error.to_string() }
    }
}

impl From<&LoadError> for Failure {
    fn from(error: &LoadError) -> Self {
        let reason_code = match error {
            LoadError::BadName(_) => "invalid_job",
            LoadError::Missing(_) => "missing_object",
            LoadError::HashMismatch { .. } => "object_hash_mismatch",
            LoadError::Io { .. } | LoadError::Task(_) => "object_store_unavailable",
        };
        let class = if error.is_transient() { Class::Transient } else { Class::Permanent };
        Self { class, stage: Stage::Prepare, reason_code, message: error.to_string() }
    }
}

/// Delay before retry number `attempt` (1 after the first failure): base x 2^(attempt-1),
/// capped, with up to 25 % random jitter subtracted so replicas do not retry in step.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let uncapped = base.saturating_mul(1u32 << exponent);
    let capped = uncapped.min(max);
    capped.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_transient_and_contract_failures_permanent() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::ResourceExhausted] {
            let failure = Failure::from_status(Stage::Predict, "inference.Predict", &Status::new(code, "x"));
            assert_eq!(failure.class, Class::Transient, "{code:?}");
        }
        for code in [Code::FailedPrecondition, Code::InvalidArgument, Code::NotFound] {
            let failure =
                Failure::from_status(Stage::Record, "registry.RecordPrediction", &Status::new(code, "x"));
            assert_eq!(failure.class, Class::Permanent, "{code:?}");
        }
    }

    #[test]
    fn bad_pixels_and_bad_objects_are_permanent_with_named_reasons() {
        let corrupt =
            Failure::from(&Error::PixelDecode { uid: "1.2.840.10008.1.2.5".into(), reason: "short".into() });
        assert_eq!((corrupt.class, corrupt.reason_code), (Class::Permanent, "corrupt_pixel_data"));
        let syntax = Failure::from(&Error::UnsupportedTransferSyntax {
            uid: "1.2.3".into(),
            name: "x".into(),
            reason: "y".into(),
        });
        assert_eq!(syntax.reason_code, "unsupported_transfer_syntax");
        let mismatch = Failure::from(&LoadError::HashMismatch { sha256: "a".into(), actual: "b".into() });
        assert_eq!((mismatch.class, mismatch.reason_code), (Class::Permanent, "object_hash_mismatch"));
        let internal = Failure::from(&Error::Internal("task".into()));
        assert_eq!(internal.class, Class::Transient);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(2, base, max, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(4, base, max, 0.0), Duration::from_millis(800));
        assert_eq!(backoff(5, base, max, 0.0), max);
        assert_eq!(backoff(100, base, max, 0.0), max);
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_millis(75));
    }
}
