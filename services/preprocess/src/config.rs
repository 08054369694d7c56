//! Configuration of `tfesi-preprocess` (environment prefix `TFESI_PREPROCESS__`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tfesi_platform::{ConfigError, DatabaseConfig, RedisConfig, ServerConfig, TelemetryConfig, Validate};

/// Everything `tfesi-preprocess` reads at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listener (default 127.0.0.1:50052).
    pub server: ServerConfig,
    /// Logs, traces, metrics.
    pub telemetry: TelemetryConfig,
    /// Who may call: bearer tokens and their keys (`auth.mode = "disabled"` only in development).
    pub auth: tfesi_platform::AuthConfig,
    /// Postgres (schema `preprocess`: the job ledger and dead letters).
    pub database: DatabaseConfig,
    /// Redis (the job stream and the tensor cache).
    pub redis: RedisConfig,
    /// The de-identified object store ingest writes (read only here).
    pub storage: StorageConfig,
    /// The pipeline worker.
    pub worker: WorkerConfig,
    /// The services this one calls.
    pub upstream: UpstreamConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(50052),
            telemetry: TelemetryConfig::default(),
            auth: tfesi_platform::AuthConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            storage: StorageConfig::default(),
            worker: WorkerConfig::default(),
            upstream: UpstreamConfig::default(),
        }
    }
}

impl Config {
    /// The development defaults of `tfesi dev`: the object store under `data_dir`, the same
    /// directory ingest's `for_development` chooses.
    pub fn for_development(mut self, data_dir: &std::path::Path) -> Self {
        if self.storage.root == StorageConfig::default().root {
            self.storage.root = data_dir.join("objects");
        }
        self
    }

    /// The job stream key: `<redis.key_prefix>:<worker.stream>` (ingest's relay writes it).
    pub fn stream_key(&self) -> String {
        format!("{}:{}", self.redis.key_prefix, self.worker.stream)
    }

    /// Key prefix of the tensor cache.
    pub fn cache_prefix(&self) -> String {
        format!("{}:preprocess:", self.redis.key_prefix)
    }
}

pub use tfesi_platform::objects::StorageConfig;

/// The pipeline worker: a Redis consumer group over the job stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Run the worker in this process (the gRPC API runs either way).
    pub enabled: bool,
    /// Stream key without the Redis key prefix (ingest's `relay.stream`).
    pub stream: String,
    /// Consumer group name, shared by every preprocess replica.
    pub group: String,
    /// This consumer's name; empty means `<hostname>-<pid>`.
    pub consumer: String,
    /// Jobs processed at the same time by this process, 1 to 256.
    pub concurrency: usize,
    /// Pending jobs of any consumer idle longer than this are reclaimed (XAUTOCLAIM), ms.
    pub claim_idle_ms: u64,
    /// Attempts before a job that keeps failing transiently is dead-lettered, 1 to 100.
    pub max_attempts: u32,
    /// First retry delay, ms; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Deadline of each downstream call (inference, registry, ingest), ms.
    pub call_timeout_ms: u64,
    /// Longest a blocking stream read waits for new jobs, ms.
    pub block_ms: u64,
    /// On shutdown, jobs in hand get this long to finish; the rest stay unacknowledged, ms.
    pub shutdown_grace_ms: u64,
    /// How long a job waits out a dependency outage (a downstream service unavailable,
    /// overloaded or timing out) without spending its attempts, ms. After that, each further
    /// failure counts as an attempt as usual.
    pub outage_budget_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stream: "jobs".to_owned(),
            group: "preprocess".to_owned(),
            consumer: String::new(),
            concurrency: 4,
            claim_idle_ms: 60_000,
            max_attempts: 5,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            call_timeout_ms: 30_000,
            block_ms: 2_000,
            shutdown_grace_ms: 20_000,
            outage_budget_ms: 600_000,
        }
    }
}

impl WorkerConfig {
    /// The consumer name to use: the configured one, or `<hostname>-<pid>`.
    pub fn consumer_name(&self) -> String {
        if !self.consumer.is_empty() {
            return self.consumer.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "preprocess".to_owned());
        format!("{host}-{}", std::process::id())
    }

    /// Deadline of one downstream call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// Idle time after which a pending job is reclaimed.
    pub fn claim_idle(&self) -> Duration {
        Duration::from_millis(self.claim_idle_ms)
    }
}

impl Validate for WorkerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let name_ok =
            |value: &str| !value.is_empty() && value.len() <= 200 && !value.chars().any(char::is_whitespace);
        if !name_ok(&self.stream) {
            return Err(ConfigError::invalid("worker.stream", "must be 1 to 200 characters without spaces"));
        }
        if !name_ok(&self.group) {
            return Err(ConfigError::invalid("worker.group", "must be 1 to 200 characters without spaces"));
        }
        if !self.consumer.is_empty() && !name_ok(&self.consumer) {
            return Err(ConfigError::invalid(
                "worker.consumer",
                "must be empty (hostname-pid) or 1 to 200 characters without spaces",
            ));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(ConfigError::invalid("worker.concurrency", "must be 1 to 256"));
        }
        if !(100..=3_600_000).contains(&self.claim_idle_ms) {
            return Err(ConfigError::invalid("worker.claim_idle_ms", "must be 100 to 3600000"));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(ConfigError::invalid("worker.max_attempts", "must be 1 to 100"));
        }
        if !(1..=600_000).contains(&self.backoff_base_ms) {
            return Err(ConfigError::invalid("worker.backoff_base_ms", "must be 1 to 600000"));
        }
        if self.backoff_max_ms < self.backoff_base_ms || self.backoff_max_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                "worker.backoff_max_ms",
                "must be at least worker.backoff_base_ms and at most 3600000",
            ));
        }
        if !(10..=600_000).contains(&self.call_timeout_ms) {
            return Err(ConfigError::invalid("worker.call_timeout_ms", "must be 10 to 600000"));
        }
        if self.outage_budget_ms > 86_400_000 {
            return Err(ConfigError::invalid("worker.outage_budget_ms", "must be at most 86400000 (a day)"));
        }
        if !(10..=60_000).contains(&self.block_ms) {
            return Err(ConfigError::invalid("worker.block_ms", "must be 10 to 60000"));
        }
        if self.shutdown_grace_ms > 600_000 {
            return Err(ConfigError::invalid("worker.shutdown_grace_ms", "must be at most 600000"));
        }
        Ok(())
    }
}

/// gRPC endpoints of the services preprocess calls.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// tfesi-ingest (GetSeries, ReportJobStatus), as a URL: `http://host:port` (a DNS name
    /// such as `http://ingest:50051` in Compose or Kubernetes, or an address).
    pub ingest: String,
    /// tfesi-inference (Predict, models), e.g. `http://inference:50053`.
    pub inference: String,
    /// tfesi-registry (episodes, RecordPrediction), e.g. `http://registry:50054`.
    pub registry: String,
    /// Connection timeout, ms.
    pub connect_timeout_ms: u64,
    /// TLS towards the three services (their endpoints are then `https://`); with a client
    /// certificate this is mutual TLS.
    pub tls: Option<tfesi_platform::ClientTlsConfig>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            ingest: "http://127.0.0.1:50051".to_owned(),
            inference: "http://127.0.0.1:50053".to_owned(),
            registry: "http://127.0.0.1:50054".to_owned(),
            connect_timeout_ms: 2_000,
            tls: None,
        }
    }
}

/// Checks that `endpoint` is `http://host:port` (or https) with a port other than 0.
fn validate_endpoint(key: &str, endpoint: &str) -> Result<(), ConfigError> {
    let usage = "must be a URL like http://ingest:50051";
    let uri: http::Uri = endpoint.parse().map_err(|_| ConfigError::invalid(key, usage))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(ConfigError::invalid(key, usage));
    }
    match uri.port_u16() {
        Some(0) | None => {
            Err(ConfigError::invalid(key, "needs an explicit port other than 0, e.g. http://ingest:50051"))
        }
        Some(_) => Ok(()),
    }
}

impl Validate for UpstreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, endpoint) in [
            ("upstream.ingest", &self.ingest),
            ("upstream.inference", &self.inference),
            ("upstream.registry", &self.registry),
        ] {
            validate_endpoint(key, endpoint)?;
        }
        if !(10..=60_000).contains(&self.connect_timeout_ms) {
            return Err(ConfigError::invalid("upstream.connect_timeout_ms", "must be 10 to 60000"));
        }
        Ok(())
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        self.database.validate()?;
        self.redis.validate()?;
        if self.storage.root.as_os_str().is_empty() {
            return Err(ConfigError::invalid("storage.root", "must not be empty"));
        }
        self.worker.validate()?;
        self.upstream.validate()
    }
}

impl tfesi_platform::ServiceConfig for Config {
    const NAME: &'static str = "preprocess";

    fn server(&self) -> &ServerConfig {
        &self.server
    }

    fn telemetry(&self) -> &TelemetryConfig {
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
    fn defaults_are_valid_and_point_at_the_other_services() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.upstream.ingest, "http://127.0.0.1:50051");
        assert_eq!(config.upstream.inference, "http://127.0.0.1:50053");
        assert_eq!(config.upstream.registry, "http://127.0.0.1:50054");
        assert_eq!(config.stream_key(), "tfesi:jobs");
    }

    #[test]
    fn invalid_worker_values_name_their_key() {
        let mut config = Config::default();
        config.worker.concurrency = 0;
        let message = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("worker.concurrency"), "{message}");

        let mut config = Config::default();
        config.worker.backoff_max_ms = 1;
        let message = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("worker.backoff_max_ms"), "{message}");

        let mut config = Config::default();
        config.upstream.registry = "http://127.0.0.1:0".to_owned();
        let message = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("upstream.registry"), "{message}");

        let mut config = Config::default();
        config.upstream.ingest = "ingest:50051".to_owned();
        let message = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("upstream.ingest") && message.contains("http://"), "{message}");

        let mut config = Config::default();
        config.upstream.ingest = "http://ingest:50051".to_owned();
        assert!(config.validate().is_ok(), "a DNS name is a valid upstream");
    }

    #[test]
    fn development_config_uses_the_data_directory_unless_set() {
        let config = Config::default().for_development(std::path::Path::new("/tmp/dev"));
        assert_eq!(config.storage.root, std::path::PathBuf::from("/tmp/dev/objects"));
        let mut custom = Config::default();
        custom.storage.root = std::path::PathBuf::from("/srv/objects");
        assert_eq!(
            custom.for_development(std::path::Path::new("/tmp/dev")).storage.root,
            std::path::PathBuf::from("/srv/objects")
        );
    }

    #[test]
    fn consumer_name_defaults_to_host_and_pid() {
        let name = WorkerConfig::default().consumer_name();
        assert!(name.ends_with(&format!("-{}", std::process::id())), "{name}");
    }
}
