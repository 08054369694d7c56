//! Configuration of the inference service: repository, runtime, providers, pools and batching.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tfesi_platform::{ConfigError, Validate};

/// Execution provider a deployment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA execution provider (crate feature `cuda`, onnxruntime-gpu library).
    Cuda,
}

impl ProviderKind {
    /// Lowercase name used in logs, metrics and health details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// How cuDNN picks a convolution algorithm when a session's input shape changes (ONNX
/// Runtime's `cudnn_conv_algo_search`). With dynamic batching the shape is the batch size, and
/// it changes from one batch to the next.
///
/// Measured on an NVIDIA H200 (`scripts/gpu-bench.sh trace`, bench/README.md): with
/// `exhaustive`, batches of 2 to 6 rows took 14-29 ms each (median) against 0.6 ms for a lone
/// row, and one lone row in ten was as slow, with or without a warm-up at every batch size at
/// load; 8 callers got 279 predictions/s from 2 sessions. With `heuristic`, a 2-row batch took
/// 3.2 ms, the same load got 716/s, and a lone row took as long as with `exhaustive` (0.56
/// against 0.58 ms). Hence the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgoSearch {
    /// Time every algorithm cuDNN offers and keep the fastest (ONNX Runtime's own default):
    /// pays off only when the batch size never changes (`batching.max_batch_size = 1`).
    Exhaustive,
    /// Take cuDNN's heuristic ranking without timing anything.
    #[default]
    Heuristic,
    /// cuDNN's default algorithm for the layer, with no search at all.
    Default,
}

/// How ONNX Runtime sessions are created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The ONNX Runtime library; when unset: `ORT_DYLIB_PATH`, then the setup script's cache path.
    pub library_path: Option<PathBuf>,
    /// Execution provider asked for.
    pub provider: ProviderKind,
    /// When the provider asked for cannot be registered, use CPU (and say so) instead of failing.
    pub allow_cpu_fallback: bool,
    /// CUDA device ordinal.
    pub cuda_device_id: i32,
    /// Let cuDNN and cuBLAS use TensorFloat-32 (10-bit mantissa) for convolutions and matrix
    /// products on Ampere and later cards: faster, but the outputs drift from the training
    /// framework's float32. Off by default, and set explicitly either way, so that a prediction
    /// does not depend on ONNX Runtime's default.
    pub cuda_tf32: bool,
    /// How cuDNN chooses convolution algorithms on CUDA (always passed, like TF32, so that
    /// ONNX Runtime's default does not decide).
    pub cuda_conv_algo_search: ConvAlgoSearch,
    /// At load, run every session once at each batch size from 1 to the model's
    /// `max_batch_size` (zeros), so that each session's first runs (about 6 ms on an H200) are
    /// paid before the model serves instead of by callers. It does not help `exhaustive` cuDNN
    /// search, whose slow runs come back at every change of batch size.
    pub warm_up_batch_sizes: bool,
    /// Sessions per loaded model (each runs one batch at a time, on its own thread).
    pub sessions_per_model: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            library_path: None,
            provider: ProviderKind::Cpu,
            allow_cpu_fallback: false,
            cuda_device_id: 0,
            cuda_tf32: false,
            cuda_conv_algo_search: ConvAlgoSearch::Heuristic,
            warm_up_batch_sizes: false,
            sessions_per_model: cores.clamp(1, 8),
            intra_op_threads: 1,
        }
    }
}

/// Dynamic batching of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most rows run together in one batch.
    pub max_batch_size: usize,
    /// Longest time the first request of a batch waits for others, in microseconds; it waits
    /// only while requests arrive more often than this (a lone caller never waits).
    pub max_delay_us: u64,
    /// Requests waiting beyond this are refused with RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
    /// Admission by queued work: a request is refused at once with RESOURCE_EXHAUSTED when the
    /// rows already waiting would take longer than this to run (rows waiting times the measured
    /// cost of a row, divided by the sessions), so whatever is admitted starts within about this
    /// long and overload is refused in microseconds instead of queued. 0 turns the check off.
    pub max_queue_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_batch_size: 8, max_delay_us: 500, queue_capacity: 256, max_queue_wait_ms: 1000 }
    }
}

impl BatchConfig {
    /// The maximum delay as a [`Duration`].
    pub fn max_delay(&self) -> Duration {
        Duration::from_micros(self.max_delay_us)
    }

    /// The admission limit on queued work, `None` when turned off.
    pub fn max_queue_wait(&self) -> Option<Duration> {
        (self.max_queue_wait_ms > 0).then(|| Duration::from_millis(self.max_queue_wait_ms))
    }
}

/// Default gRPC port of the inference service.
pub const DEFAULT_PORT: u16 = 50053;

/// The inference service's configuration (`TFESI_INFERENCE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listener and limits.
    pub server: tfesi_platform::ServerConfig,
    /// Logs, traces, metrics.
    pub telemetry: tfesi_platform::TelemetryConfig,
    /// Who may call: bearer tokens and their keys (`auth.mode = "disabled"` only in development).
    pub auth: tfesi_platform::AuthConfig,
    /// Root of the model repository (`<name>/<version>/{model.onnx,model.json}`).
    pub repository_dir: PathBuf,
    /// Model name used when a request names none: by default `tfesi-cnn`, the model trained on
    /// the synthetic cohort that the repository ships under `models/` (`tfesi-test` is the
    /// small untrained model the tests use).
    pub default_model: String,
    /// ONNX Runtime settings.
    pub runtime: RuntimeConfig,
    /// Batching used for every model without an entry in `model_batching`.
    pub batching: BatchConfig,
    /// Per model name batching overrides.
    pub model_batching: BTreeMap<String, BatchConfig>,
    /// Largest model file accepted by RegisterModel, in bytes.
    pub max_model_bytes: u64,
    /// Most rows in one Predict request.
    pub max_rows_per_request: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: tfesi_platform::ServerConfig::on_port(DEFAULT_PORT),
            telemetry: tfesi_platform::TelemetryConfig::default(),
            auth: tfesi_platform::AuthConfig::default(),
            repository_dir: PathBuf::from("models"),
            default_model: "tfesi-cnn".to_owned(),
            runtime: RuntimeConfig::default(),
            batching: BatchConfig::default(),
            model_batching: BTreeMap::new(),
            max_model_bytes: 512 * 1024 * 1024,
            max_rows_per_request: 64,
        }
    }
}

impl Config {
    /// Batching for `model_name`.
    pub fn batching_for(&self, model_name: &str) -> BatchConfig {
        self.model_batching.get(model_name).copied().unwrap_or(self.batching)
    }
}

fn check_batching(key: &str, batching: &BatchConfig) -> Result<(), ConfigError> {
    if batching.max_batch_size == 0 {
        return Err(ConfigError::invalid(format!("{key}.max_batch_size"), "must be at least 1"));
    }
    if batching.queue_capacity == 0 {
        return Err(ConfigError::invalid(format!("{key}.queue_capacity"), "must be at least 1"));
    }
    if batching.max_delay_us > 1_000_000 {
        return Err(ConfigError::invalid(format!("{key}.max_delay_us"), "must be at most 1000000 (1 s)"));
    }
    Ok(())
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        if self.default_model.is_empty() {
            return Err(ConfigError::invalid("default_model", "must not be empty"));
        }
        if self.runtime.sessions_per_model == 0 || self.runtime.sessions_per_model > 64 {
            return Err(ConfigError::invalid("runtime.sessions_per_model", "must be 1 to 64"));
        }
        if self.runtime.intra_op_threads == 0 || self.runtime.intra_op_threads > 256 {
            return Err(ConfigError::invalid("runtime.intra_op_threads", "must be 1 to 256"));
        }
        if self.max_rows_per_request == 0 {
            return Err(ConfigError::invalid("max_rows_per_request", "must be at least 1"));
        }
        if self.max_model_bytes == 0 {
            return Err(ConfigError::invalid("max_model_bytes", "must be positive"));
        }
        check_batching("batching", &self.batching)?;
        for (name, batching) in &self.model_batching {
            check_batching(&format!("model_batching.{name}"), batching)?;
        }
        Ok(())
    }
}

impl tfesi_platform::ServiceConfig for Config {
    const NAME: &'static str = "inference";

    fn server(&self) -> &tfesi_platform::ServerConfig {
        &self.server
    }

    fn telemetry(&self) -> &tfesi_platform::TelemetryConfig {
        &self.telemetry
    }

    fn auth(&self) -> &tfesi_platform::AuthConfig {
        &self.auth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_listens_on_the_inference_port() {
        let config = Config::default();
        config.validate().expect("valid");
        assert_eq!(config.server.listen.port(), DEFAULT_PORT);
    }

    #[test]
    fn cudnn_search_defaults_to_heuristic_and_reads_each_setting() {
        assert_eq!(RuntimeConfig::default().cuda_conv_algo_search, ConvAlgoSearch::Heuristic);
        for (text, expected) in [
            ("exhaustive", ConvAlgoSearch::Exhaustive),
            ("heuristic", ConvAlgoSearch::Heuristic),
            ("default", ConvAlgoSearch::Default),
        ] {
            let runtime: RuntimeConfig =
                serde_json::from_value(serde_json::json!({ "cuda_conv_algo_search": text })).expect(text);
            assert_eq!(runtime.cuda_conv_algo_search, expected);
        }
        let error = serde_json::from_value::<RuntimeConfig>(
            serde_json::json!({ "cuda_conv_algo_search": "fastest" }),
        )
        .expect_err("an unknown search is refused");
        assert!(error.to_string().contains("exhaustive"), "the error names the choices: {error}");
    }

    #[test]
    fn zero_batch_size_is_refused_naming_the_key() {
        let mut config = Config::default();
        config
            .model_batching
            .insert("m".to_owned(), BatchConfig { max_batch_size: 0, ..BatchConfig::default() });
        let error = config.validate().expect_err("invalid");
        assert!(error.to_string().contains("model_batching.m.max_batch_size"), "{error}");
    }
}
