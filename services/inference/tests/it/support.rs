//! Helpers shared by the integration tests: repositories in temp dirs, configs, input rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;
use tfesi_inference::Config;
use tfesi_inference::config::{BatchConfig, RuntimeConfig};
use tfesi_inference::model::PredictInput;
use tfesi_inference::repository::ModelKey;

/// Slices, rows, columns of the test model.
pub const DIMS: [usize; 3] = [11, 256, 256];
/// Spec version of the test model.
pub const SPEC: &str = "tfesi-prep-v1";
/// Clinical feature names of the test model, in card order.
pub const FEATURES: [&str; 8] = [
    "baseline_leg_nrs",
    "age_years",
    "level_l4_l5",
    "level_l5_s1",
    "side_left",
    "indication_stenosis",
    "sex_female",
    "symptom_duration_lt_3_months",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory of version 1 (the bundled default) or 2 (test fixture, other weights).
pub fn source_dir(version: &str) -> PathBuf {
    match version {
        "1" => crate_dir().join("../../models/tfesi-test/1"),
        other => crate_dir().join("tests/fixtures/tfesi-test").join(other),
    }
}

/// A temp repository holding the given versions of `tfesi-test`.
pub fn repository_with(versions: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for version in versions {
        copy_version(dir.path(), version);
    }
    dir
}

/// Copies one version into `root`.
pub fn copy_version(root: &Path, version: &str) {
    let target = root.join("tfesi-test").join(version);
    std::fs::create_dir_all(&target).expect("mkdir");
    for file in ["model.onnx", "model.json"] {
        std::fs::copy(source_dir(version).join(file), target.join(file)).expect("copy");
    }
}

/// A config for `root` with the given batching.
pub fn config(root: &Path, batching: BatchConfig) -> Config {
    Config {
        repository_dir: root.to_path_buf(),
        default_model: "tfesi-test".to_owned(),
        runtime: RuntimeConfig { sessions_per_model: 2, intra_op_threads: 1, ..RuntimeConfig::default() },
        batching,
        auth: tfesi_platform::AuthConfig::disabled(),
        ..Config::default()
    }
}

/// Batching that gathers generously (to make batches form in tests).
pub fn gathering() -> BatchConfig {
    BatchConfig { max_batch_size: 8, max_delay_us: 20_000, queue_capacity: 64, ..BatchConfig::default() }
}

/// No batching at all: every request runs alone.
pub fn solo() -> BatchConfig {
    BatchConfig { max_batch_size: 1, max_delay_us: 0, queue_capacity: 64, ..BatchConfig::default() }
}

/// A deterministic image row and clinical features derived from `seed`.
pub fn row(seed: u64) -> PredictInput {
    let count = DIMS.iter().product::<usize>();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let image: Vec<f32> = (0..count)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            unit * 4.0 - 2.0
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let clinical = FEATURES
        .iter()
        .enumerate()
        .map(|(index, name)| ((*name).to_owned(), ((seed as usize + index) % 10) as f32 / 10.0))
        .collect();
    PredictInput {
        spec_version: SPEC.to_owned(),
        image_shape: DIMS.to_vec(),
        image: Arc::new(image),
        clinical,
    }
}

/// `tfesi-test/<version>`.
pub fn key(version: &str) -> ModelKey {
    ModelKey::new("tfesi-test", version)
}
