//! Why an instance was refused or quarantined: a stable code plus a message a person can act on.

use std::fmt;

/// Stable machine-readable reason for refusing an instance.
///
/// Messages built from these never contain attribute values that could identify a patient:
/// they name tags, lengths, UIDs of SOP classes and transfer syntaxes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The instance is larger than the configured byte cap.
    TooLarge,
    /// Not a DICOM Part 10 stream (no preamble, no `DICM` prefix).
    NotDicom,
    /// The file meta information group is missing or malformed.
    BadFileMeta,
    /// The byte stream ends inside an element or an undefined-length container.
    Truncated,
    /// An element declares more bytes than the stream holds.
    LengthBeyondEnd,
    /// Sequences are nested deeper than the configured limit.
    TooDeep,
    /// More elements than the configured limit.
    TooManyElements,
    /// The stream is structurally invalid in another way.
    Malformed,
    /// The transfer syntax is unknown or cannot be decoded here.
    UnsupportedTransferSyntax,
    /// The SOP class is not one this service takes (not MR).
    UnsupportedSopClass,
    /// A required attribute is missing or empty.
    MissingAttribute,
    /// An attribute has an unusable value.
    InvalidAttribute,
    /// Pixel data is missing or inconsistent with the image attributes.
    PixelData,
    /// The pixel data codestream could not be decoded.
    PixelDecode,
    /// The DICOM library panicked on this input (caught).
    DecoderPanic,
}

impl RejectCode {
    /// Short snake_case name used in logs, metrics and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotDicom => "not_dicom",
            Self::BadFileMeta => "bad_file_meta",
            Self::Truncated => "truncated",
            Self::LengthBeyondEnd => "length_beyond_end",
            Self::TooDeep => "too_deep",
            Self::TooManyElements => "too_many_elements",
            Self::Malformed => "malformed",
            Self::UnsupportedTransferSyntax => "unsupported_transfer_syntax",
            Self::UnsupportedSopClass => "unsupported_sop_class",
            Self::MissingAttribute => "missing_attribute",
            Self::InvalidAttribute => "invalid_attribute",
            Self::PixelData => "pixel_data",
            Self::PixelDecode => "pixel_decode",
            Self::DecoderPanic => "decoder_panic",
        }
    }

    /// Whether the limit that was hit is a resource limit (RESOURCE_EXHAUSTED) rather than bad input.
    pub fn is_resource_limit(self) -> bool {
        matches!(self, Self::TooLarge | Self::TooManyElements)
    }
}

/// An instance refused before storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable reason code.
    pub code: RejectCode,
    /// Human-readable explanation, free of PHI.
    pub message: String,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Rejection {}

/// Why an otherwise valid instance is kept out of the pipeline (visible to operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuarantineReason {
    /// (0028,0301) Burned In Annotation is present and not `NO`.
    BurnedInAnnotation,
    /// (0008,0008) Image Type says DERIVED or SECONDARY.
    DerivedOrSecondary,
    /// The SOP class is a Secondary Capture class.
    SecondaryCapture,
}

impl QuarantineReason {
    /// Short snake_case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BurnedInAnnotation => "burned_in_annotation",
            Self::DerivedOrSecondary => "derived_or_secondary",
            Self::SecondaryCapture => "secondary_capture",
        }
    }

    /// Human-readable explanation.
    pub fn message(self) -> &'static str {
        match self {
            Self::BurnedInAnnotation => {
                "burned in annotation (0028,0301) is not NO: pixels may carry identifying text"
            }
            Self::DerivedOrSecondary => {
                "image type (0008,0008) is DERIVED or SECONDARY: not an original acquisition"
            }
            Self::SecondaryCapture => "secondary capture SOP class: pixels may carry identifying text",
        }
    }
}
