//! A loaded, self-tested model: its card, provider, batcher, and the checks a request must pass.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::batcher::{Batcher, JobOutput};
use crate::card::{ImageDims, ModelCard};
use crate::config::{BatchConfig, RuntimeConfig};
use crate::error::{Error, Result};
use crate::manager::{Prediction, Role};
use crate::metrics::{MetricsSnapshot, ModelMetrics};
use crate::repository::{ModelKey, StoredModel, sha256_hex};
use crate::runtime::Runtime;
use crate::session::{BatchInput, ProviderInUse, SelfTestReport, create_session};

/// One prediction row as the domain sees it (decoded from gRPC, not yet checked).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictInput {
    /// Preprocessing spec version that produced the image.
    pub spec_version: String,
    /// Image shape, `[S, H, W]`.
    pub image_shape: Vec<usize>,
    /// Row-major image values (shared, so champion and shadow need no copy).
    pub image: Arc<Vec<f32>>,
    /// Named clinical features (ignored by image-only models).
    pub clinical: Vec<(String, f32)>,
}

/// Decodes packed little-endian float32 bytes; `field` names the bytes in errors.
pub fn decode_f32_le(field: &str, bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::invalid(
            field,
            format!("{} bytes is not a whole number of float32 values", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect())
}

/// A model that loaded and passed its self-test, ready to serve.
#[derive(Debug)]
pub struct LoadedModel {
    card: ModelCard,
    sha256: String,
    provider: ProviderInUse,
    dims: ImageDims,
    clinical_width: Option<usize>,
    batcher: Batcher,
    metrics: Arc<ModelMetrics>,
    loaded_at: SystemTime,
    self_test: SelfTestReport,
    /// How long the warm-up at every batch size took, when `runtime.warm_up_batch_sizes` asked for it.
    warm_up: Option<std::time::Duration>,
    size_bytes: u64,
}

impl LoadedModel {
    /// Creates the session pool, runs the self-test on it, and starts the batcher. Blocking: call
    /// it from `spawn_blocking`.
    pub fn load(
        runtime: &Runtime,
        config: &RuntimeConfig,
        batching: BatchConfig,
        stored: StoredModel,
    ) -> Result<Self> {
        let StoredModel { card, onnx } = stored;
        let refused = |reason: String| Error::ModelRefused {
            name: card.name.clone(),
            version: card.version.clone(),
            reason,
        };
        card.validate().map_err(refused)?;
        let sha256 = sha256_hex(&onnx);
        if sha256 != card.model_sha256 {
            return Err(refused(format!(
                "model.onnx has sha256 {sha256}, the card says {}",
                card.model_sha256
            )));
        }
        let dims = card.image_dims().map_err(refused)?;
        let clinical_width = card.clinical_width().map_err(refused)?;
        let session_count = config.sessions_per_model.max(1);
        let mut sessions = Vec::with_capacity(session_count);
        let mut tested = None;
        for _ in 0..session_count {
            let (mut session, in_use) = create_session(runtime, config, &card, &onnx)?;
            if tested.is_none() {
                let report = session.self_test(&card, in_use.kind)?;
                tested = Some((in_use, report));
            }
            sessions.push(session);
        }
        let (provider, self_test) = tested.ok_or_else(|| refused("no session was created".to_owned()))?;
        let warm_up = if config.warm_up_batch_sizes {
            let started = std::time::Instant::now();
            for session in &mut sessions {
                session
                    .warm_up(batching.max_batch_size)
                    .map_err(|error| refused(format!("warm-up: {error}")))?;
            }
            let took = started.elapsed();
            tracing::info!(
                model = %card.name,
                version = %card.version,
                sessions = sessions.len(),
                batch_sizes = batching.max_batch_size,
                ms = took.as_millis(),
                "sessions warmed up at every batch size"
            );
            Some(took)
        } else {
            None
        };
        let label = format!("{}/{}", card.name, card.version);
        let metrics = Arc::new(ModelMetrics::default());
        let batcher = Batcher::start(&label, sessions, batching, Arc::clone(&metrics))?;
        tracing::info!(
            model = %card.name,
            version = %card.version,
            provider = %provider,
            vectors = self_test.vectors,
            max_abs_error = self_test.max_abs_error,
            tolerance = self_test.tolerance,
            "model loaded and self-tested"
        );
        let size_bytes = onnx.len() as u64;
        Ok(Self {
            card,
            sha256,
            provider,
            dims,
            clinical_width,
            batcher,
            metrics,
            loaded_at: SystemTime::now(),
            self_test,
            warm_up,
            size_bytes,
        })
    }

    /// Name and version.
    pub fn key(&self) -> ModelKey {
        ModelKey::new(self.card.name.clone(), self.card.version.clone())
    }

    /// Turns a batcher output of one row into a prediction.
    pub fn prediction(&self, output: &JobOutput, role: Role, spec_version: String) -> Prediction {
        Prediction {
            model: self.key(),
            probability: output.values.first().copied().unwrap_or(f32::NAN),
            threshold: self.card.threshold,
            provider: self.provider.clone(),
            role,
            spec_version,
            batch_size: output.batch_rows,
            latency: output.latency,
        }
    }

    /// The model's card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// SHA-256 of its ONNX bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The execution provider it runs on.
    pub fn provider(&self) -> &ProviderInUse {
        &self.provider
    }

    /// When it went live.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The self-test it passed when it loaded.
    pub fn self_test(&self) -> &SelfTestReport {
        &self.self_test
    }

    /// How long the sessions' warm-up at every batch size took; `None` when it was not asked for.
    pub fn warm_up(&self) -> Option<std::time::Duration> {
        self.warm_up
    }

    /// Size of its ONNX file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Its batching settings.
    pub fn batching(&self) -> BatchConfig {
        self.batcher.config()
    }

    /// Its counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Checks `input` against the card and lays it out as model rows.
    pub fn prepare(&self, input: &PredictInput) -> Result<BatchInput> {
        if input.spec_version != self.card.spec_version {
            return Err(Error::invalid(
                "spec_version",
                format!(
                    "tensor made with {:?}, model {}/{} expects {:?}",
                    input.spec_version, self.card.name, self.card.version, self.card.spec_version
                ),
            ));
        }
        let dims = self.dims;
        if input.image_shape != [dims.slices, dims.height, dims.width] {
            return Err(Error::invalid(
                "image.shape",
                format!(
                    "{:?} does not match [{}, {}, {}] of model {}/{}",
                    input.image_shape,
                    dims.slices,
                    dims.height,
                    dims.width,
                    self.card.name,
                    self.card.version
                ),
            ));
        }
        if input.image.len() != dims.row_len() {
            return Err(Error::invalid(
                "image.data",
                format!("{} values for shape {:?}", input.image.len(), input.image_shape),
            ));
        }
        if let Some(index) = input.image.iter().position(|value| !value.is_finite()) {
            return Err(Error::invalid("image.data", format!("value at index {index} is not finite")));
        }
        let clinical = match self.clinical_width {
            None => None,
            Some(width) => Some(self.encode_clinical(&input.clinical, width)?),
        };
        Ok(BatchInput { rows: 1, image: Arc::clone(&input.image), clinical })
    }

    fn encode_clinical(&self, given: &[(String, f32)], width: usize) -> Result<Vec<f32>> {
        let mut values = vec![None; width];
        for (name, value) in given {
            let field = format!("clinical[{name}]");
            let index =
                self.card.clinical_features.iter().position(|feature| feature.name == *name).ok_or_else(
                    || {
                        Error::invalid(
                            &field,
                            format!("not a feature of model {}/{}", self.card.name, self.card.version),
                        )
                    },
                )?;
            if !value.is_finite() {
                return Err(Error::invalid(&field, "value is not finite"));
            }
            if values[index].replace(*value).is_some() {
                return Err(Error::invalid(&field, "given twice"));
            }
        }
        self.card
            .clinical_features
            .iter()
            .zip(values)
            .map(|(feature, value)| {
                value.ok_or_else(|| Error::invalid(format!("clinical[{}]", feature.name), "missing"))
            })
            .collect()
    }

    /// Checks `input` and runs it through the batcher; the outputs are this request's rows only.
    pub async fn predict(&self, input: &PredictInput, deadline: Option<Instant>) -> Result<JobOutput> {
        let rows = self.prepare(input)?;
        self.batcher.infer(rows, deadline).await
    }

    /// Runs already prepared rows (benchmarks and tests).
    pub async fn infer(&self, rows: BatchInput, deadline: Option<Instant>) -> Result<JobOutput> {
        self.batcher.infer(rows, deadline).await
    }
}
