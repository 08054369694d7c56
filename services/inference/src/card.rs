//! The model card (`model.json`): the contract between a model and the service that runs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format tag every card carries.
pub const CARD_FORMAT: &str = "tfesi-model-card/1";
/// Name of the image input.
pub const IMAGE_INPUT: &str = "image";
/// Name of the optional clinical input.
pub const CLINICAL_INPUT: &str = "clinical";

/// One declared tensor: name, element type and shape (`null` for the dynamic batch dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorDecl {
    /// Input or output name in the ONNX graph.
    pub name: String,
    /// Element type; only `float32` in v1.
    pub dtype: String,
    /// Dimensions, `None` where dynamic (the batch dimension).
    pub shape: Vec<Option<u64>>,
    /// What it holds.
    #[serde(default)]
    pub description: String,
}

/// The model output and what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDecl {
    /// Output name in the ONNX graph.
    pub name: String,
    /// Element type; only `float32` in v1.
    pub dtype: String,
    /// `[null]` or `[null, 1]`.
    pub shape: Vec<Option<u64>>,
    /// What the value is, e.g. the probability of a good outcome.
    pub meaning: String,
}

/// One clinical feature of the `clinical` input, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalFeatureDecl {
    /// Feature name, as callers send it.
    pub name: String,
    /// Units and encoding.
    pub encoding: String,
}

/// A deterministic fill: `value_i = offset + scale * ((multiplier * i + increment) mod modulus)`,
/// the integer part exact and the rest in two float32 operations, so every implementation gets
/// the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// Multiplier of the element index.
    pub multiplier: u64,
    /// Added before the modulus.
    pub increment: u64,
    /// Modulus, at least 1 and below 2^24 so that every residue is an exact float32.
    pub modulus: u64,
    /// Scale (float32).
    pub scale: f32,
    /// Offset (float32).
    pub offset: f32,
}

impl Pattern {
    /// The `count` values of this pattern.
    pub fn values(&self, count: usize) -> Vec<f32> {
        let modulus = self.modulus.max(1);
        (0..count as u64)
            .map(|index| {
                let residue = index.wrapping_mul(self.multiplier).wrapping_add(self.increment) % modulus;
                // Lossless: the residue is below 2^24 (checked by validation).
                #[allow(clippy::cast_precision_loss)]
                let residue = residue as f32;
                self.offset + self.scale * residue
            })
            .collect()
    }
}

/// A self-test input: a shape plus inline values or a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestTensor {
    /// Full shape including the batch dimension.
    pub shape: Vec<usize>,
    /// Inline row-major values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    /// Generated values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
}

impl TestTensor {
    /// Number of elements the shape holds.
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The tensor's values (inline or generated).
    pub fn materialize(&self) -> Result<Vec<f32>, String> {
        let count = self.element_count();
        match (&self.values, &self.pattern) {
            (Some(values), None) if values.len() == count => Ok(values.clone()),
            (Some(values), None) => {
                Err(format!("{} values for shape {:?} ({count} elements)", values.len(), self.shape))
            }
            (None, Some(pattern)) => Ok(pattern.values(count)),
            _ => Err("exactly one of values and pattern must be given".to_owned()),
        }
    }
}

/// One self-test case: inputs and the outputs the training framework produced for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTestVector {
    /// Case name.
    pub name: String,
    /// Inputs by input name.
    pub inputs: BTreeMap<String, TestTensor>,
    /// Expected output, one value per row.
    pub expected: Vec<f32>,
}

/// Self-test vectors and the tolerance they are checked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTest {
    /// Largest accepted absolute difference per output value.
    pub tolerance: f32,
    /// The cases.
    pub vectors: Vec<SelfTestVector>,
}

/// A model card as stored in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Always [`CARD_FORMAT`].
    pub format: String,
    /// Model name (the repository directory).
    pub name: String,
    /// Model version (the repository subdirectory).
    pub version: String,
    /// Free text; for a model trained on synthetic data its first line says so.
    #[serde(default)]
    pub description: String,
    /// True when trained on synthetic data only (or not trained at all): no clinical validity.
    #[serde(default)]
    pub synthetic: bool,
    /// SHA-256 (hex) of `model.onnx`.
    pub model_sha256: String,
    /// Preprocessing spec version the model expects, e.g. `tfesi-prep-v1`.
    pub spec_version: String,
    /// Declared inputs: `image` and optionally `clinical`.
    pub inputs: Vec<TensorDecl>,
    /// Clinical features in `clinical` input order (empty without a `clinical` input).
    #[serde(default)]
    pub clinical_features: Vec<ClinicalFeatureDecl>,
    /// The output.
    pub output: OutputDecl,
    /// Decision threshold on the output.
    pub threshold: f32,
    /// Dataset snapshot the model was trained on, when trained.
    #[serde(default)]
    pub training_snapshot_id: Option<String>,
    /// Validation metrics by name (e.g. `auc`).
    #[serde(default)]
    pub validation_metrics: BTreeMap<String, f64>,
    /// Intended use.
    pub intended_use: String,
    /// Limitations.
    pub limitations: String,
    /// Self-test vectors.
    pub self_test: SelfTest,
}

/// Image input geometry: slices, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageDims {
    /// Slices (channels).
    pub slices: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageDims {
    /// Elements in one row (one study).
    pub fn row_len(&self) -> usize {
        self.slices * self.height * self.width
    }
}

/// Checks that a model or version name is 1 to 64 characters of `[A-Za-z0-9._-]` and not a
/// path component such as `.` or `..`.
pub fn valid_identifier(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && !text.starts_with('.')
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

fn fixed_dims(decl: &TensorDecl, rank: usize) -> Result<Vec<usize>, String> {
    if decl.dtype != "float32" {
        return Err(format!("input {} must be float32, not {}", decl.name, decl.dtype));
    }
    if decl.shape.len() != rank || decl.shape.first() != Some(&None) {
        return Err(format!(
            "input {} must have rank {rank} with a dynamic first dimension, got {:?}",
            decl.name, decl.shape
        ));
    }
    decl.shape[1..]
        .iter()
        .map(|dim| match dim {
            Some(size) if *size >= 1 => usize::try_from(*size).map_err(|_| "dimension too large".to_owned()),
            _ => Err(format!("input {} has a non-fixed inner dimension", decl.name)),
        })
        .collect()
}

impl ModelCard {
    /// Parses a card from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The `image` input's geometry.
    pub fn image_dims(&self) -> Result<ImageDims, String> {
        let decl = self
            .inputs
            .iter()
            .find(|input| input.name == IMAGE_INPUT)
            .ok_or("the card declares no image input")?;
        let dims = fixed_dims(decl, 4)?;
        Ok(ImageDims { slices: dims[0], height: dims[1], width: dims[2] })
    }

    /// Width of the `clinical` input, `None` when the model takes none.
    pub fn clinical_width(&self) -> Result<Option<usize>, String> {
        let Some(decl) = self.inputs.iter().find(|input| input.name == CLINICAL_INPUT) else {
            return Ok(None);
        };
        let dims = fixed_dims(decl, 2)?;
        Ok(Some(dims[0]))
    }

    /// Checks the card's internal consistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != CARD_FORMAT {
            return Err(format!("format is {:?}, expected {CARD_FORMAT:?}", self.format));
        }
        if !valid_identifier(&self.name) || !valid_identifier(&self.version) {
            return Err("name and version must be 1 to 64 characters of [A-Za-z0-9._-]".to_owned());
        }
        if self.model_sha256.len() != 64 || !self.model_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("model_sha256 must be 64 hexadecimal characters".to_owned());
        }
        if self.spec_version.is_empty() {
            return Err("spec_version is empty".to_owned());
        }
        for input in &self.inputs {
            if input.name != IMAGE_INPUT && input.name != CLINICAL_INPUT {
                return Err(format!("unknown input {:?} (only image and clinical)", input.name));
            }
        }
        self.image_dims()?;
        let clinical_width = self.clinical_width()?.unwrap_or(0);
        if clinical_width != self.clinical_features.len() {
            return Err(format!(
                "clinical input has width {clinical_width} but {} clinical features are named",
                self.clinical_features.len()
            ));
        }
        let output_ok = self.output.dtype == "float32"
            && (self.output.shape == [None] || self.output.shape == [None, Some(1)]);
        if !output_ok {
            return Err("output must be float32 [N] or [N, 1]".to_owned());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {} is outside [0, 1]", self.threshold));
        }
        self.validate_self_test()
    }

    fn validate_self_test(&self) -> Result<(), String> {
        let tolerance = self.self_test.tolerance;
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err("self_test.tolerance must be a finite number >= 0".to_owned());
        }
        if self.self_test.vectors.is_empty() {
            return Err("self_test has no vectors".to_owned());
        }
        for vector in &self.self_test.vectors {
            let declared: Vec<&str> = self.inputs.iter().map(|input| input.name.as_str()).collect();
            let given: Vec<&str> = vector.inputs.keys().map(String::as_str).collect();
            let mut declared_sorted = declared.clone();
            declared_sorted.sort_unstable();
            if declared_sorted != given {
                return Err(format!(
                    "self-test {} gives inputs {given:?}, the card declares {declared:?}",
                    vector.name
                ));
            }
            for tensor in vector.inputs.values() {
                if let Some(pattern) = &tensor.pattern
                    && !(1..(1 << 24)).contains(&pattern.modulus)
                {
                    return Err(format!("self-test {}: pattern modulus must be in [1, 2^24)", vector.name));
                }
                if tensor.shape.first() != Some(&vector.expected.len()) {
                    return Err(format!(
                        "self-test {}: {} expected values for a batch of {:?}",
                        vector.name,
                        vector.expected.len(),
                        tensor.shape.first()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_CARD: &str = include_str!("../../../models/tfesi-test/1/model.json");

    #[test]
    fn bundled_test_card_is_valid() {
        let card = ModelCard::from_json(TEST_CARD.as_bytes()).expect("parses");
        card.validate().expect("valid");
        let dims = card.image_dims().expect("image dims");
        assert_eq!(dims.row_len(), dims.slices * dims.height * dims.width);
        assert_eq!(card.clinical_width().expect("clinical"), Some(card.clinical_features.len()));
    }

    #[test]
    fn card_whose_clinical_width_disagrees_with_its_features_is_invalid() {
        let mut card = ModelCard::from_json(TEST_CARD.as_bytes()).expect("parses");
        card.clinical_features.pop();
        assert!(card.validate().is_err_and(|reason| reason.contains("clinical")));
    }

    #[test]
    fn pattern_matches_the_python_generator_formula() {
        let pattern = Pattern { multiplier: 7, increment: 3, modulus: 5, scale: 0.5, offset: -1.0 };
        // k = (7i + 3) mod 5 for i = 0..4 is 3, 0, 2, 4, 1.
        assert_eq!(pattern.values(5), vec![0.5, -1.0, 0.0, 1.0, -0.5]);
    }

    #[test]
    fn identifiers_refuse_path_tricks() {
        assert!(valid_identifier("tfesi-cnn"));
        assert!(valid_identifier("2026.11.0"));
        assert!(!valid_identifier(".."));
        assert!(!valid_identifier("a/b"));
        assert!(!valid_identifier(""));
    }
}
