//! Registry settings: the platform sections plus the follow-up window and default label rule.

use serde::{Deserialize, Serialize};
use tfesi_platform::{ConfigError, DatabaseConfig, ServerConfig, ServiceConfig, TelemetryConfig, Validate};

use crate::domain::label::DEFAULT_RULE_VERSION;
use crate::domain::validation::FollowUpWindow;

/// Default gRPC port of the registry.
pub const PORT: u16 = 50054;

/// The whole configuration of `tfesi-registry` (environment prefix `TFESI_REGISTRY__`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub telemetry: TelemetryConfig,
    /// Who may call: bearer tokens and their keys (`auth.mode = "disabled"` only in development).
    pub auth: tfesi_platform::AuthConfig,
    pub database: DatabaseConfig,
    pub registry: RegistryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::on_port(PORT),
            telemetry: TelemetryConfig::default(),
            auth: tfesi_platform::AuthConfig::default(),
            database: DatabaseConfig::default(),
            registry: RegistryConfig::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        self.database.validate()?;
        self.registry
            .follow_up_window
            .validate()
            .map_err(|error| ConfigError::invalid("registry.follow_up_window", error.to_string()))?;
        if self.registry.max_page_size == 0 {
            return Err(ConfigError::invalid("registry.max_page_size", "must be positive"));
        }
        Ok(())
    }
}

impl ServiceConfig for Config {
    const NAME: &'static str = "registry";

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

/// Settings of the registry's own rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Days after the injection when a follow-up is accepted and due.
    pub follow_up_window: FollowUpWindow,
    /// Rule applied where a request names none (label counts, snapshots, performance).
    pub default_rule_version: String,
    /// Largest page the list RPCs return.
    pub max_page_size: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            follow_up_window: FollowUpWindow::default(),
            default_rule_version: DEFAULT_RULE_VERSION.to_owned(),
            max_page_size: 500,
        }
    }
}
