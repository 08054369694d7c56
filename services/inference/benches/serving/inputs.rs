//! The rows every system predicts: deterministic images and clinical features for the bundled
//! model `tfesi-test` version 1, kept both as `f32` (in-process) and as Predict requests (gRPC).

use std::path::Path;

use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as pb;

/// `[S, H, W]` of one row of the bundled model's image input.
pub const IMAGE_DIMS: [usize; 3] = [11, 256, 256];
/// Clinical features of the bundled model.
pub const CLINICAL_WIDTH: usize = 8;
/// The model's expected output for row 0 (the card's self-test vector `one_row`).
pub const ROW_ZERO_EXPECTED: f32 = 0.674_590_65;

/// Distinct rows, cycled through by every scenario.
pub struct Inputs {
    pub images: Vec<Vec<f32>>,
    pub clinical: Vec<Vec<f32>>,
    /// One single-row Predict request per row, for the gRPC servers.
    pub requests: Vec<pb::PredictRequest>,
}

impl Inputs {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Encoded size of one request, in bytes.
    pub fn request_bytes(&self) -> usize {
        prost::Message::encoded_len(&self.requests[0])
    }
}

/// The card's self-test pattern: `((i * multiplier + increment) % modulus) * scale + offset`.
fn pattern(
    len: usize,
    multiplier: usize,
    increment: usize,
    modulus: usize,
    scale: f32,
    offset: f32,
) -> Vec<f32> {
    (0..len).map(|i| ((i * multiplier + increment) % modulus) as f32 * scale + offset).collect()
}

/// The clinical feature names of the card in `model_dir`, in card order, and its spec version.
fn read_card(model_dir: &Path) -> (Vec<String>, String) {
    let card = std::fs::read(model_dir.join("model.json")).expect("the model card");
    let card: serde_json::Value = serde_json::from_slice(&card).expect("card JSON");
    let names: Vec<String> = card["clinical_features"]
        .as_array()
        .expect("clinical_features")
        .iter()
        .map(|feature| feature["name"].as_str().expect("a feature name").to_owned())
        .collect();
    assert_eq!(names.len(), CLINICAL_WIDTH, "the bench expects the bundled tfesi-test model");
    let spec_version = card["spec_version"].as_str().expect("spec_version").to_owned();
    (names, spec_version)
}

/// `count` rows; row 0 is the card's `one_row` self-test vector.
pub fn make(model_dir: &Path, count: usize) -> Inputs {
    let (names, spec_version) = read_card(model_dir);
    let [slices, height, width] = IMAGE_DIMS;
    let images: Vec<Vec<f32>> =
        (0..count).map(|row| pattern(slices * height * width, 7919, 17 + row, 1009, 0.004, -2.0)).collect();
    let clinical: Vec<Vec<f32>> =
        (0..count).map(|row| pattern(CLINICAL_WIDTH, 31, 3 + row, 11, 0.1, 0.0)).collect();
    let requests = images
        .iter()
        .zip(&clinical)
        .enumerate()
        .map(|(row, (image, features))| pb::PredictRequest {
            rows: vec![pb::PredictRow {
                row_id: format!("row-{row}"),
                image: Some(common::Tensor {
                    shape: IMAGE_DIMS.iter().map(|&dim| u32::try_from(dim).expect("small")).collect(),
                    dtype: common::DType::Float32.into(),
                    data: image.iter().flat_map(|value| value.to_le_bytes()).collect(),
                }),
                clinical: names
                    .iter()
                    .zip(features)
                    .map(|(name, &value)| common::ClinicalFeature { name: name.clone(), value })
                    .collect(),
                spec_version: spec_version.clone(),
                ..Default::default()
            }],
            model: None,
            skip_shadow: false,
        })
        .collect();
    Inputs { images, clinical, requests }
}
