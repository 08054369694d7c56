//! ONNX Runtime sessions: provider selection (CUDA made visible, never a silent CPU fallback),
//! contract checks against the card, batch runs and the self-test.

use std::fmt;
use std::sync::Arc;

use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use serde::{Deserialize, Serialize};

use crate::card::{CLINICAL_INPUT, IMAGE_INPUT, ImageDims, ModelCard};
use crate::config::{ProviderKind, RuntimeConfig};
use crate::error::{Error, Result, cause_chain};
use crate::runtime::Runtime;

/// The execution provider a model actually runs on, and why if it is not the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInUse {
    /// Provider in use.
    pub kind: ProviderKind,
    /// Set when the configured provider failed and CPU was used instead (the cause chain).
    pub fallback_reason: Option<String>,
}

impl fmt::Display for ProviderInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fallback_reason {
            None => f.write_str(self.kind.as_str()),
            Some(reason) => write!(f, "{} (fallback: {reason})", self.kind.as_str()),
        }
    }
}

/// Rows of one batch, laid out as the model's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    /// Rows in the batch.
    pub rows: usize,
    /// `rows * S * H * W` values.
    pub image: Arc<Vec<f32>>,
    /// `rows * F` values, when the model takes clinical features.
    pub clinical: Option<Vec<f32>>,
}

/// One ONNX Runtime session plus what it needs to run a batch.
pub struct ModelSession {
    session: Session,
    dims: ImageDims,
    clinical_width: Option<usize>,
    output_name: String,
}

impl fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelSession").field("dims", &self.dims).finish_non_exhaustive()
    }
}

fn refused(card: &ModelCard, reason: impl Into<String>) -> Error {
    Error::ModelRefused { name: card.name.clone(), version: card.version.clone(), reason: reason.into() }
}

/// Builds one ONNX Runtime session of `onnx` with the service's settings: the configured
/// intra-op threads, one inter-op thread, and on CUDA the provider of [`cuda_provider`]. The
/// serving benchmark's in-process limit is built with it too.
pub fn build_session(
    runtime: &Runtime,
    config: &RuntimeConfig,
    onnx: &[u8],
    use_cuda: bool,
) -> std::result::Result<Session, ort::Error> {
    let mut builder = Session::builder(runtime.environment())?
        .with_intra_threads(config.intra_op_threads.max(1))?
        .with_inter_threads(1)?;
    if use_cuda {
        builder = builder.with_execution_providers([cuda_provider(config)?])?;
    }
    builder.commit_from_memory(onnx)
}

/// The CUDA execution provider as the service registers it: the configured device, TF32 and
/// cuDNN's convolution algorithm search as configured (never ONNX Runtime's defaults), and
/// `error_on_failure`, so that a CUDA that cannot be used is an error instead of a silent run on
/// the CPU.
#[cfg(feature = "cuda")]
pub fn cuda_provider(
    config: &RuntimeConfig,
) -> std::result::Result<ort::ep::ExecutionProviderDispatch, ort::Error> {
    use crate::config::ConvAlgoSearch;
    Ok(ort::ep::CUDA::default()
        .with_device_id(config.cuda_device_id)
        .with_tf32(config.cuda_tf32)
        .with_conv_algorithm_search(match config.cuda_conv_algo_search {
            ConvAlgoSearch::Exhaustive => ort::ep::cuda::ConvAlgorithmSearch::Exhaustive,
            ConvAlgoSearch::Heuristic => ort::ep::cuda::ConvAlgorithmSearch::Heuristic,
            ConvAlgoSearch::Default => ort::ep::cuda::ConvAlgorithmSearch::Default,
        })
        .build()
        .error_on_failure())
}

/// Without the `cuda` feature: the error saying so.
#[cfg(not(feature = "cuda"))]
pub fn cuda_provider(
    _config: &RuntimeConfig,
) -> std::result::Result<ort::ep::ExecutionProviderDispatch, ort::Error> {
    Err(ort::Error::new("this build of tfesi-inference has no CUDA support (rebuild with --features cuda)"))
}

/// Builds one session with the configured provider; returns it with the provider in use.
/// CUDA is registered with `error_on_failure`, so a CUDA failure is an error unless the config
/// allows the CPU fallback, which is then reported.
pub fn create_session(
    runtime: &Runtime,
    config: &RuntimeConfig,
    card: &ModelCard,
    onnx: &[u8],
) -> Result<(ModelSession, ProviderInUse)> {
    let (session, provider) = match config.provider {
        ProviderKind::Cpu => {
            let session = build_session(runtime, config, onnx, false)
                .map_err(|error| refused(card, cause_chain(&error)))?;
            (session, ProviderInUse { kind: ProviderKind::Cpu, fallback_reason: None })
        }
        ProviderKind::Cuda => match build_session(runtime, config, onnx, true) {
            Ok(session) => (session, ProviderInUse { kind: ProviderKind::Cuda, fallback_reason: None }),
            Err(cuda_error) => {
                let chain = cause_chain(&cuda_error);
                if !config.allow_cpu_fallback {
                    return Err(Error::ProviderUnavailable { requested: "cuda".to_owned(), chain });
                }
                tracing::warn!(model = %card.name, version = %card.version, cause = %chain, "cuda unavailable, running on cpu");
                let session = build_session(runtime, config, onnx, false)
                    .map_err(|error| refused(card, cause_chain(&error)))?;
                (session, ProviderInUse { kind: ProviderKind::Cpu, fallback_reason: Some(chain) })
            }
        },
    };
    let model_session = ModelSession::new(session, card)?;
    Ok((model_session, provider))
}

fn check_outlet(card: &ModelCard, name: &str, ty: &ValueType, expected: &[Option<u64>]) -> Result<()> {
    let ValueType::Tensor { ty: element, shape, .. } = ty else {
        return Err(refused(card, format!("graph value {name} is not a tensor")));
    };
    if *element != ort::value::TensorElementType::Float32 {
        return Err(refused(card, format!("graph value {name} is {element:?}, the card says float32")));
    }
    let graph_dims: Vec<i64> = shape.iter().copied().collect();
    let matches = graph_dims.len() == expected.len()
        && graph_dims.iter().zip(expected).all(|(graph, card_dim)| match card_dim {
            None => *graph < 0,
            Some(size) => i64::try_from(*size).is_ok_and(|size| size == *graph),
        });
    if matches {
        Ok(())
    } else {
        Err(refused(card, format!("graph value {name} has shape {graph_dims:?}, the card says {expected:?}")))
    }
}

impl ModelSession {
    fn new(session: Session, card: &ModelCard) -> Result<Self> {
        let dims = card.image_dims().map_err(|reason| refused(card, reason))?;
        let clinical_width = card.clinical_width().map_err(|reason| refused(card, reason))?;
        let graph_inputs: Vec<&str> = session.inputs().iter().map(|outlet| outlet.name()).collect();
        let mut card_inputs: Vec<&str> = card.inputs.iter().map(|decl| decl.name.as_str()).collect();
        let mut sorted_graph = graph_inputs.clone();
        sorted_graph.sort_unstable();
        card_inputs.sort_unstable();
        if sorted_graph != card_inputs {
            return Err(refused(
                card,
                format!("graph inputs are {graph_inputs:?}, the card declares {card_inputs:?}"),
            ));
        }
        for outlet in session.inputs() {
            let decl = card.inputs.iter().find(|decl| decl.name == outlet.name());
            if let Some(decl) = decl {
                check_outlet(card, outlet.name(), outlet.dtype(), &decl.shape)?;
            }
        }
        let output = session
            .outputs()
            .iter()
            .find(|outlet| outlet.name() == card.output.name)
            .ok_or_else(|| refused(card, format!("the graph has no output {}", card.output.name)))?;
        check_outlet(card, output.name(), output.dtype(), &card.output.shape)?;
        Ok(Self { session, dims, clinical_width, output_name: card.output.name.clone() })
    }

    /// Runs one batch; returns one output value per row.
    pub fn run(&mut self, batch: &BatchInput) -> Result<Vec<f32>> {
        let rows = batch.rows;
        debug_assert_eq!(batch.image.len(), rows * self.dims.row_len());
        let image_shape = [rows, self.dims.slices, self.dims.height, self.dims.width];
        let image = TensorRef::from_array_view((image_shape, batch.image.as_slice()))
            .map_err(|error| Error::Inference(cause_chain(&error)))?;
        let outputs = match (self.clinical_width, &batch.clinical) {
            (Some(width), Some(clinical)) => {
                debug_assert_eq!(clinical.len(), rows * width);
                let clinical = TensorRef::from_array_view(([rows, width], clinical.as_slice()))
                    .map_err(|error| Error::Inference(cause_chain(&error)))?;
                self.session.run(ort::inputs![IMAGE_INPUT => image, CLINICAL_INPUT => clinical])
            }
            (None, None) => self.session.run(ort::inputs![IMAGE_INPUT => image]),
            _ => return Err(Error::Inference("clinical input does not match the model".to_owned())),
        }
        .map_err(|error| Error::Inference(cause_chain(&error)))?;
        let value = outputs
            .get(&self.output_name)
            .ok_or_else(|| Error::Inference(format!("no output {}", self.output_name)))?;
        let (_, values) =
            value.try_extract_tensor::<f32>().map_err(|error| Error::Inference(cause_chain(&error)))?;
        if values.len() != rows {
            return Err(Error::Inference(format!("{} output values for {rows} rows", values.len())));
        }
        Ok(values.to_vec())
    }

    /// Runs one batch of zeros of every size from 1 to `max_rows`, so that what a provider does
    /// the first time it meets an input shape (the arena growing, kernels loading) happens while
    /// the model loads instead of inside a caller's request.
    pub fn warm_up(&mut self, max_rows: usize) -> Result<()> {
        let mut image = Arc::new(Vec::new());
        for rows in 1..=max_rows.max(1) {
            Arc::make_mut(&mut image).resize(rows * self.dims.row_len(), 0.0);
            let batch = BatchInput {
                rows,
                image: Arc::clone(&image),
                clinical: self.clinical_width.map(|width| vec![0.0; rows * width]),
            };
            self.run(&batch)?;
        }
        Ok(())
    }

    /// Runs the card's self-test vectors; every output must be finite and within the card's
    /// tolerance. Fails with [`Error::SelfTestFailed`] naming the worst vector.
    pub fn self_test(&mut self, card: &ModelCard, provider: ProviderKind) -> Result<SelfTestReport> {
        let tolerance = card.self_test.tolerance;
        let mut worst: Option<(f32, String)> = None;
        for vector in &card.self_test.vectors {
            let tensor = |name: &str| -> Result<Option<Vec<f32>>> {
                vector
                    .inputs
                    .get(name)
                    .map(|tensor| {
                        tensor
                            .materialize()
                            .map_err(|reason| refused(card, format!("self-test {}: {reason}", vector.name)))
                    })
                    .transpose()
            };
            let image = tensor(IMAGE_INPUT)?
                .ok_or_else(|| refused(card, format!("self-test {} has no image", vector.name)))?;
            let batch = BatchInput {
                rows: vector.expected.len(),
                image: Arc::new(image),
                clinical: tensor(CLINICAL_INPUT)?,
            };
            if batch.image.len() != batch.rows * self.dims.row_len() {
                return Err(refused(
                    card,
                    format!("self-test {}: image size does not match the card", vector.name),
                ));
            }
            let outputs = self
                .run(&batch)
                .map_err(|error| refused(card, format!("self-test {} did not run: {error}", vector.name)))?;
            for (row, (got, expected)) in outputs.iter().zip(&vector.expected).enumerate() {
                let error = if got.is_finite() { (got - expected).abs() } else { f32::INFINITY };
                if worst.as_ref().is_none_or(|(largest, _)| error > *largest) {
                    worst = Some((
                        error,
                        format!("vector {} row {row}: got {got}, expected {expected}", vector.name),
                    ));
                }
            }
        }
        let (max_abs_error, message) = worst.unwrap_or((0.0, String::new()));
        let report = SelfTestReport {
            passed: max_abs_error <= tolerance,
            vectors: card.self_test.vectors.len(),
            max_abs_error,
            tolerance,
            provider,
            message,
        };
        if report.passed {
            Ok(report)
        } else {
            Err(Error::SelfTestFailed {
                name: card.name.clone(),
                version: card.version.clone(),
                reason: format!("{} (max abs error {max_abs_error}, tolerance {tolerance})", report.message),
            })
        }
    }
}

/// Outcome of a self-test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTestReport {
    /// Every vector matched within tolerance.
    pub passed: bool,
    /// Vectors run.
    pub vectors: usize,
    /// Largest absolute difference seen (infinite for a non-finite output).
    pub max_abs_error: f32,
    /// Tolerance applied.
    pub tolerance: f32,
    /// Provider it ran on.
    pub provider: ProviderKind,
    /// The worst row, described.
    pub message: String,
}
