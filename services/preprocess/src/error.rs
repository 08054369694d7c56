//! Errors of the preprocess service: every way a series can fail to become a tensor.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a DICOM instance or a series could not be turned into a tensor.
///
/// Messages name what was wrong (transfer syntax, tag, slice position) and never carry
/// patient identifiers: only de-identified instances reach this service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is larger than the configured cap, refused before parsing.
    #[error("instance of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// Not a DICOM Part 10 file (no preamble and `DICM` magic, or no usable file meta group).
    #[error("not a DICOM file: {0}")]
    NotDicom(String),
    /// The byte stream is malformed: truncated, a length past the end, a bad delimiter.
    #[error("malformed DICOM stream at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// Sequences nested deeper than the configured limit.
    #[error("sequences nested deeper than {limit} levels at byte {offset}")]
    NestingTooDeep { offset: usize, limit: usize },
    /// dicom-object refused the stream.
    #[error("DICOM parse error: {0}")]
    Parse(String),
    /// The transfer syntax is not one this service decodes.
    #[error("unsupported transfer syntax {uid} ({name}): {reason}")]
    UnsupportedTransferSyntax { uid: String, name: String, reason: String },
    /// A required attribute is missing or has an unusable value.
    #[error("invalid attribute {attribute}: {reason}")]
    InvalidAttribute { attribute: &'static str, reason: String },
    /// The pixel data could not be decoded.
    #[error("pixel data of transfer syntax {uid} could not be decoded: {reason}")]
    PixelDecode { uid: String, reason: String },
    /// The decoder panicked; the panic was caught and the instance refused.
    #[error("pixel decoder panicked on transfer syntax {uid}: {message}")]
    DecoderPanic { uid: String, message: String },
    /// The slices of a series do not form one usable stack.
    #[error("series geometry: {0}")]
    Geometry(String),
    /// The series cannot satisfy the preprocessing spec (too few slices, blank image).
    #[error("series does not meet preprocessing spec {spec}: {reason}")]
    Spec { spec: &'static str, reason: String },
    /// A failure of this service, not of the input (a crashed worker task); retrying may help.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn malformed(offset: usize, reason: impl Into<String>) -> Self {
        Self::Malformed { offset, reason: reason.into() }
    }

    pub(crate) fn attribute(attribute: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidAttribute { attribute, reason: reason.into() }
    }

    /// Whether retrying the same input can ever succeed (false: the input itself is bad).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::InputTooLarge { .. }
            | Self::NotDicom(_)
            | Self::Malformed { .. }
            | Self::NestingTooDeep { .. }
            | Self::Parse(_)
            | Self::UnsupportedTransferSyntax { .. }
            | Self::InvalidAttribute { .. }
            | Self::PixelDecode { .. }
            | Self::DecoderPanic { .. }
            | Self::Geometry(_)
            | Self::Spec { .. } => true,
            Self::Internal(_) => false,
        }
    }
}
