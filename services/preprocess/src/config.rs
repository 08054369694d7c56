//! Configuration of `tfesi-preprocess` (environment prefix `TFESI_PREPROCESS__`).

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
    /// Postgres (schema `preprocess`: dead letters).
    pub database: DatabaseConfig,
    /// Redis (the job stream and the tensor cache).
    pub redis: RedisConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(50052),
            telemetry: TelemetryConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        self.database.validate()?;
        self.redis.validate()
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
}
