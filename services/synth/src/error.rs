//! Errors of the synthetic cohort generator.

use std::path::PathBuf;

/// Everything that can go wrong while generating or writing a synthetic cohort.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is out of its documented range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Writing a file or creating a folder failed.
    #[error("i/o error at {path}: {source}")]
    Io {
        /// The file or folder being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// dicom-rs refused to build or encode a data set.
    #[error("dicom encoding failed: {0}")]
    Dicom(String),
    /// Building the Arrow batch or writing Parquet failed.
    #[error("parquet/arrow error: {0}")]
    Table(String),
    /// Encoding the PNG preview failed.
    #[error("png encoding failed: {0}")]
    Png(String),
    /// Serialising the summary failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The rayon thread pool could not be built.
    #[error("thread pool error: {0}")]
    ThreadPool(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an i/o error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
