//! The preprocessing spec, versioned in code: a change of any value is a new version.
//! The reasons for each value are in docs/preprocessing.md.

use serde::Serialize;

/// Everything that decides the tensor a series becomes. Two tensors made under the same
/// version from the same pixels are identical (within floating-point rounding, 1e-4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrepSpec {
    /// Version stamped into every tensor and every prediction.
    pub version: &'static str,
    /// Number of central sagittal slices that form the channels (S).
    pub slices: usize,
    /// In-plane spacing the slices are resampled to (mm per output pixel, both axes).
    pub spacing_mm: f64,
    /// Output height (craniocaudal, superior at the top), pixels.
    pub height: usize,
    /// Output width (anteroposterior, anterior on the left), pixels.
    pub width: usize,
    /// Lower intensity percentile (0-100) mapped to 0.
    pub lower_percentile: f64,
    /// Upper intensity percentile (0-100) mapped to 1.
    pub upper_percentile: f64,
    /// Gaussian truncation in standard deviations (kernel radius = round(truncate * sigma)).
    pub gaussian_truncate: f64,
    /// Smoothing of the canal profile when locating the spine (mm).
    pub spine_profile_sigma_mm: f64,
    /// Fraction of the anteroposterior extent, centred, searched for the canal.
    pub spine_search_fraction: f64,
}

/// `tfesi-prep-v1`: 11 central slices, 1.0 mm in-plane, 256 x 256 around the canal,
/// 0.5th-99.5th percentile scaled to [0, 1].
pub const SPEC_V1: PrepSpec = PrepSpec {
    version: "tfesi-prep-v1",
    slices: 11,
    spacing_mm: 1.0,
    height: 256,
    width: 256,
    lower_percentile: 0.5,
    upper_percentile: 99.5,
    gaussian_truncate: 4.0,
    spine_profile_sigma_mm: 5.0,
    spine_search_fraction: 0.8,
};

/// The spec new tensors are made with.
pub const CURRENT: PrepSpec = SPEC_V1;

/// Every spec version this build can produce, newest first.
pub const KNOWN: &[PrepSpec] = &[SPEC_V1];

/// Look up a spec by its version string.
pub fn by_version(version: &str) -> Option<PrepSpec> {
    KNOWN.iter().copied().find(|spec| spec.version == version)
}

impl PrepSpec {
    /// Anti-aliasing Gaussian sigma (in source pixels) before shrinking an axis whose pixels
    /// are `source_spacing_mm` apart: `(factor - 1) / 2` with `factor = target / source`
    /// (scikit-image's `rescale` rule), 0 when the axis is not shrunk.
    pub fn antialias_sigma(&self, source_spacing_mm: f64) -> f64 {
        let factor = self.spacing_mm / source_spacing_mm;
        if factor > 1.0 { (factor - 1.0) / 2.0 } else { 0.0 }
    }

    /// Number of values in one tensor (`S * H * W`).
    pub fn tensor_len(&self) -> usize {
        self.slices * self.height * self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_current_is_known() {
        let mut versions: Vec<_> = KNOWN.iter().map(|spec| spec.version).collect();
        versions.dedup();
        assert_eq!(versions.len(), KNOWN.len());
        assert_eq!(by_version(CURRENT.version), Some(CURRENT));
    }

    #[test]
    fn antialiasing_applies_only_when_shrinking() {
        assert_eq!(SPEC_V1.antialias_sigma(1.25), 0.0);
        assert!((SPEC_V1.antialias_sigma(0.5) - 0.5).abs() < 1e-12);
    }
}
