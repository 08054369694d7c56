//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables named `TFESI_<SERVICE>__<SECTION>__<KEY>`.
//!
//! Every section rejects unknown keys, so a misspelt variable or file key stops the service at
//! start with an error that names it instead of being silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A configuration that could not be loaded or failed validation. Its message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a default could not be read as the expected type,
    /// or named a key that does not exist.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value was read but is not acceptable.
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    /// An invalid-value error for `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), reason: reason.into() }
    }
}

/// A service configuration: validated after loading, before anything starts.
pub trait Validate {
    /// Checks values that their types alone cannot constrain.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The environment variable prefix of `service`, e.g. `TFESI_INGEST__`.
pub fn env_prefix(service: &str) -> String {
    format!("TFESI_{}__", service.to_ascii_uppercase())
}

/// Loads the configuration of `service`: `T::default()`, then `file` when given, then the
/// environment, then `T::validate`.
pub fn load<T>(service: &str, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default + Validate,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Parse(format!("config file {} does not exist", path.display())));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(&env_prefix(service)).split("__"));
    let config: T = figment.extract().map_err(|error| {
        // figment may gather several errors; the first one is enough to act on.
        let first = error.into_iter().next().map(|e| e.to_string()).unwrap_or_default();
        ConfigError::Parse(first)
    })?;
    config.validate()?;
    Ok(config)
}

/// The gRPC listener and its limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the gRPC server binds, e.g. `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// Largest encoded or decoded gRPC message, in bytes. Larger payloads are streamed.
    pub max_message_bytes: usize,
    /// Longest a unary request may run when the client sends no shorter `grpc-timeout`, in ms.
    pub request_timeout_ms: u64,
    /// How long SIGTERM waits for in-flight requests before closing connections, in ms.
    pub drain_timeout_ms: u64,
    /// Most requests served at once on one connection.
    pub concurrency_limit_per_connection: usize,
    /// Most requests held at once across all connections (health checks aside); one more is
    /// answered RESOURCE_EXHAUSTED at once, before its body is read (see `shed.rs`).
    pub max_in_flight_requests: usize,
    /// TLS on this port; absent means plaintext (development on loopback only).
    pub tls: Option<ServerTlsConfig>,
    /// A second, plaintext port serving only `grpc.health.v1` (for probes that cannot speak
    /// TLS, such as Kubernetes' gRPC probes). Unset: health is served on `listen` only.
    pub health_listen: Option<SocketAddr>,
    /// HTTP/2 receive window of one request stream, in bytes: how much of a request body a
    /// client may send before it must wait for this server to acknowledge (hyper's default is
    /// 1 MiB, so a 2.9 MB tensor waited for acknowledgements three times).
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 receive window of one connection, shared by its streams, in bytes (at least the
    /// stream window): bounds the request bytes buffered per connection before they are read.
    pub http2_connection_window_bytes: u32,
    /// Largest HTTP/2 frame this server accepts, in bytes (16,384 to 16,777,215). hyper's
    /// default, HTTP/2's minimum of 16 KiB, cut a 2.9 MB Predict into 180 DATA frames, each
    /// handled on its own: with 256 KiB (and the larger windows) the inference bench served
    /// 30-35% more predictions per second (bench/README.md).
    pub http2_max_frame_bytes: u32,
}

/// TLS of a gRPC port (`server.tls`): the server's certificate and, for mutual TLS, the CA
/// whose certificates clients must present.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain of this server.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, every client must present a certificate they signed
    /// (mutual TLS, used between the services).
    pub client_ca_file: Option<PathBuf>,
}

/// TLS towards a gRPC server (the `tls` of an upstream section): the CA that signed the
/// servers' certificates and, for mutual TLS, this client's own certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA certificates trusted for the servers.
    pub ca_file: PathBuf,
    /// PEM certificate this client presents (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name expected in the servers' certificates when it differs from the endpoint's host.
    pub domain_name: Option<String>,
}

impl ServerConfig {
    /// The default listener of a service on `port` of 127.0.0.1.
    pub fn on_port(port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            max_message_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 30_000,
            drain_timeout_ms: 20_000,
            concurrency_limit_per_connection: 256,
            max_in_flight_requests: 128,
            tls: None,
            health_listen: None,
            http2_stream_window_bytes: 4 * 1024 * 1024,
            http2_connection_window_bytes: 16 * 1024 * 1024,
            http2_max_frame_bytes: 256 * 1024,
        }
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The drain timeout as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::on_port(0)
    }
}

impl Validate for ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_message_bytes < 64 * 1024 {
            return Err(ConfigError::invalid("server.max_message_bytes", "must be at least 65536"));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid("server.request_timeout_ms", "must be positive"));
        }
        if self.max_in_flight_requests == 0 {
            return Err(ConfigError::invalid("server.max_in_flight_requests", "must be positive"));
        }
        if self.concurrency_limit_per_connection == 0 {
            return Err(ConfigError::invalid("server.concurrency_limit_per_connection", "must be positive"));
        }
        // RFC 9113 6.9.2 and 6.5.2: windows from 65,535 to 2^31 - 1, frames from 2^14 to 2^24 - 1.
        if !(65_535..=i32::MAX as u32).contains(&self.http2_stream_window_bytes) {
            return Err(ConfigError::invalid(
                "server.http2_stream_window_bytes",
                "must be from 65535 to 2147483647",
            ));
        }
        if self.http2_connection_window_bytes < self.http2_stream_window_bytes
            || self.http2_connection_window_bytes > i32::MAX as u32
        {
            return Err(ConfigError::invalid(
                "server.http2_connection_window_bytes",
                "must be at least server.http2_stream_window_bytes and at most 2147483647",
            ));
        }
        if !(16_384..=16_777_215).contains(&self.http2_max_frame_bytes) {
            return Err(ConfigError::invalid(
                "server.http2_max_frame_bytes",
                "must be from 16384 to 16777215",
            ));
        }
        Ok(())
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logs, traces and metrics.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing-subscriber filter, e.g. `info` or `info,tfesi_ingest=debug`.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint, e.g. `http://127.0.0.1:4317`. Unset: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// Address of the Prometheus text endpoint (`GET /metrics`). Unset: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Share of traces kept, 0.0 to 1.0 (parent-based: a sampled caller is always followed).
    pub trace_sample_ratio: f64,
}

impl TelemetryConfig {
    /// Defaults with the metrics endpoint on `port` of 127.0.0.1.
    pub fn with_metrics_port(port: u16) -> Self {
        Self { metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], port))), ..Self::default() }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            metrics_listen: None,
            trace_sample_ratio: 1.0,
        }
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err(ConfigError::invalid("telemetry.trace_sample_ratio", "must be in 0.0..=1.0"));
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "telemetry.otlp_endpoint",
                "must start with http:// or https://",
            ));
        }
        Ok(())
    }
}

/// The Postgres connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// Longest wait for a connection from the pool, in ms.
    pub acquire_timeout_ms: u64,
    /// How long start-up waits for Postgres before giving up, in ms.
    pub startup_wait_ms: u64,
    /// Create the database when it does not exist (development convenience).
    pub create_if_missing: bool,
    /// Apply `migrations/` at start (under Postgres' advisory lock, so replicas may race).
    pub run_migrations: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/tfesi".to_owned(),
            max_connections: 10,
            acquire_timeout_ms: 3_000,
            startup_wait_ms: 15_000,
            create_if_missing: true,
            run_migrations: true,
        }
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid("database.url", "must start with postgres://"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("database.max_connections", "must be positive"));
        }
        Ok(())
    }
}

/// The Redis connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Longest wait for one command's answer, in ms (blocking reads use their own connection).
    pub response_timeout_ms: u64,
    /// How long start-up waits for Redis before giving up, in ms.
    pub startup_wait_ms: u64,
    /// Prefix of every key this deployment writes, so several can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            response_timeout_ms: 2_000,
            startup_wait_ms: 15_000,
            key_prefix: "tfesi".to_owned(),
        }
    }
}

impl Validate for RedisConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err(ConfigError::invalid("redis.url", "must start with redis:// or rediss://"));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::invalid("redis.key_prefix", "must be a non-empty word"));
        }
        Ok(())
    }
}

/// Where the project keeps downloaded runtime files (the ONNX Runtime library): the
/// `TFESI_CACHE_DIR` variable, else `$HOME/.cache/tfesi`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TFESI_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tfesi")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own large error type
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        server: ServerConfig,
        database: DatabaseConfig,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            self.server.validate()?;
            self.database.validate()
        }
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("svc.toml", "[server]\nlisten = \"127.0.0.1:7000\"\nrequest_timeout_ms = 5\n")?;
            jail.set_env("TFESI_SAMPLE__SERVER__LISTEN", "127.0.0.1:7001");
            let config: Sample = load("sample", Some(Path::new("svc.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, SocketAddr::from(([127, 0, 0, 1], 7001)));
            assert_eq!(config.server.request_timeout_ms, 5);
            assert_eq!(config.database, DatabaseConfig::default());
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_key_is_named_in_the_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TFESI_SAMPLE__SERVER__LISTN", "127.0.0.1:7001");
            let error = load::<Sample>("sample", None).expect_err("unknown key must fail");
            assert!(error.to_string().contains("listn"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn invalid_value_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TFESI_SAMPLE__DATABASE__URL", "mysql://x");
            let error = load::<Sample>("sample", None).expect_err("bad url must fail");
            assert!(error.to_string().contains("database.url"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn http2_windows_and_frames_outside_the_protocol_limits_are_refused_by_name() {
        let refused = |edit: fn(&mut ServerConfig)| {
            let mut server = ServerConfig::default();
            edit(&mut server);
            server.validate().expect_err("must be refused").to_string()
        };
        assert!(ServerConfig::default().validate().is_ok());
        let small_stream = refused(|server| server.http2_stream_window_bytes = 1024);
        assert!(small_stream.contains("server.http2_stream_window_bytes"), "{small_stream}");
        let small_connection = refused(|server| {
            server.http2_connection_window_bytes = server.http2_stream_window_bytes - 1;
        });
        assert!(small_connection.contains("server.http2_connection_window_bytes"), "{small_connection}");
        let huge_frame = refused(|server| server.http2_max_frame_bytes = 1 << 24);
        assert!(huge_frame.contains("server.http2_max_frame_bytes"), "{huge_frame}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let error = load::<Sample>("sample", Some(Path::new("/nonexistent/tfesi.toml")))
            .expect_err("missing file must fail");
        assert!(error.to_string().contains("/nonexistent/tfesi.toml"));
    }
}
