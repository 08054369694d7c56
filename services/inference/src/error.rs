//! Errors of the inference service and their gRPC status codes.

use std::path::PathBuf;

/// Result with the inference service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the inference service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed; `field` names it as the caller wrote it.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field, e.g. `image.shape` or `clinical[age_years]`.
        field: String,
        /// What is wrong with it, in words a caller can act on.
        reason: String,
    },
    /// No such model, version, or role assignment.
    #[error("{0}")]
    NotFound(String),
    /// The model version is already in the repository.
    #[error("model {name} version {version} already exists")]
    AlreadyExists {
        /// Model name.
        name: String,
        /// Model version.
        version: String,
    },
    /// A model was refused: it did not load, its card is inconsistent, or its self-test failed.
    /// The previously serving model (if any) keeps serving.
    #[error("model {name} version {version} refused: {reason}")]
    ModelRefused {
        /// Model name.
        name: String,
        /// Model version.
        version: String,
        /// Why, with the whole cause chain.
        reason: String,
    },
    /// A model passed its structural checks but its self-test outputs differ from the card's.
    #[error("model {name} version {version} failed its self-test: {reason}")]
    SelfTestFailed {
        /// Model name.
        name: String,
        /// Model version.
        version: String,
        /// The worst vector and its error.
        reason: String,
    },
    /// A compare-and-set precondition (expected champion) did not hold.
    #[error("{0}")]
    Aborted(String),
    /// Uploaded bytes do not match their declared size or checksum.
    #[error("{0}")]
    DataLoss(String),
    /// An upload is over the server's limit.
    #[error("{0}")]
    TooLarge(String),
    /// The operation cannot run in the current state (no champion, nothing to roll back to).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The model's request queue is full; the caller should back off and retry.
    #[error("queue of model {model} is full ({capacity} requests waiting)")]
    QueueFull {
        /// `name/version` of the model.
        model: String,
        /// Queue capacity in requests.
        capacity: usize,
    },
    /// The work already queued for the model would take longer than the admission limit.
    #[error(
        "model {model} is overloaded: about {queued_ms} ms of work is queued, over the {limit_ms} ms limit; retry with backoff"
    )]
    Overloaded {
        /// `name/version` of the model.
        model: String,
        /// Estimated time to run what is queued, in milliseconds.
        queued_ms: u64,
        /// The configured limit (`batching.max_queue_wait_ms`).
        limit_ms: u64,
    },
    /// The request's deadline passed before it could run; it was not run.
    #[error("deadline passed before the request ran")]
    DeadlineExceeded,
    /// The model is being unloaded or the service is shutting down.
    #[error("model {0} is shutting down")]
    Unavailable(String),
    /// The ONNX Runtime library is not where it should be.
    #[error(
        "ONNX Runtime library not found at {path}: run scripts/setup-onnxruntime.sh or set ORT_DYLIB_PATH"
    )]
    RuntimeMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The ONNX Runtime library exists but could not be loaded or initialised.
    #[error("ONNX Runtime from {path} could not be initialised: {chain}")]
    RuntimeInit {
        /// The library file.
        path: PathBuf,
        /// The whole cause chain, outermost first.
        chain: String,
    },
    /// The configured execution provider could not be used and falling back to CPU is not allowed.
    #[error("execution provider {requested} unavailable: {chain}")]
    ProviderUnavailable {
        /// The provider asked for, e.g. `cuda`.
        requested: String,
        /// The whole cause chain.
        chain: String,
    },
    /// ONNX Runtime failed while running a batch.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model repository could not be read or written.
    #[error("model repository i/o on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A repository file is not valid JSON of the expected shape.
    #[error("cannot parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Joins an error and its `source()` chain with ": ", outermost first.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = cause.source();
    }
    parts.join(": ")
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { .. } | Error::ModelRefused { .. } => Self::invalid_argument(message),
            Error::NotFound(_) => Self::not_found(message),
            Error::AlreadyExists { .. } => Self::already_exists(message),
            Error::SelfTestFailed { .. }
            | Error::FailedPrecondition(_)
            | Error::ProviderUnavailable { .. } => Self::failed_precondition(message),
            Error::Aborted(_) => Self::aborted(message),
            Error::DataLoss(_) => Self::data_loss(message),
            Error::TooLarge(_) | Error::QueueFull { .. } | Error::Overloaded { .. } => {
                Self::resource_exhausted(message)
            }
            Error::DeadlineExceeded => Self::deadline_exceeded(message),
            Error::Unavailable(_) => Self::unavailable(message),
            Error::RuntimeMissing { .. }
            | Error::RuntimeInit { .. }
            | Error::Inference(_)
            | Error::Io { .. }
            | Error::Json { .. } => {
                tracing::error!(error = %message, "internal error");
                Self::internal("internal error in the inference service")
            }
        }
    }
}
