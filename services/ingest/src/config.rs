//! Configuration of `tfesi-ingest` (environment prefix `TFESI_INGEST__`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tfesi_platform::{ConfigError, DatabaseConfig, RedisConfig, ServerConfig, TelemetryConfig, Validate};

/// Everything `tfesi-ingest` reads at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listener (default 127.0.0.1:50051).
    pub server: ServerConfig,
    /// Logs, traces, metrics.
    pub telemetry: TelemetryConfig,
    /// Postgres (schema `ingest`).
    pub database: DatabaseConfig,
    /// Redis (the job stream).
    pub redis: RedisConfig,
    /// The de-identified object store.
    pub storage: StorageConfig,
    /// The outbox relay.
    pub relay: RelaySettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: default_server(),
            telemetry: TelemetryConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            storage: StorageConfig::default(),
            relay: RelaySettings::default(),
        }
    }
}

/// Where de-identified instances are stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root directory of the content-addressed store.
    pub root: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { root: PathBuf::from("data/objects") }
    }
}

/// How outbox rows reach the Redis job stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// Stream key (the Redis key prefix is prepended).
    pub stream: String,
    /// Unconfirmed jobs are published again after this many seconds.
    pub republish_after_s: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self { stream: "jobs".to_owned(), republish_after_s: 60 }
    }
}

impl Config {
    /// The development defaults of `tfesi dev`: the object store under `data_dir`.
    pub fn for_development(mut self, data_dir: &std::path::Path) -> Self {
        if self.storage.root == StorageConfig::default().root {
            self.storage.root = data_dir.join("objects");
        }
        self
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        self.database.validate()?;
        self.redis.validate()?;
        if self.storage.root.as_os_str().is_empty() {
            return Err(ConfigError::invalid("storage.root", "must be a directory path"));
        }
        if self.relay.stream.is_empty() {
            return Err(ConfigError::invalid("relay.stream", "must not be empty"));
        }
        Ok(())
    }
}

impl tfesi_platform::ServiceConfig for Config {
    const NAME: &'static str = "ingest";

    fn server(&self) -> &ServerConfig {
        &self.server
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// The default listener.
pub(crate) fn default_server() -> ServerConfig {
    ServerConfig::on_port(50051)
}
