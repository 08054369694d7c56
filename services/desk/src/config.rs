//! Desk settings: the web listener and sessions, the services it calls, the token it mints,
//! telemetry. Loaded like every service's (`TFESI_DESK__<SECTION>__<KEY>` overrides).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tfesi_auth::AuthConfig;
use tfesi_platform::{ConfigError, TelemetryConfig, Validate};

/// Default HTTP port of the desk.
pub const PORT: u16 = 8080;

/// The whole configuration of `tfesi-desk` (environment prefix `TFESI_DESK__`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The web application.
    pub desk: DeskConfig,
    /// The gRPC services the desk calls.
    pub upstream: UpstreamConfig,
    /// How the nurse's token is minted: with `hs256_secret_file` (development) unless
    /// `desk.signing_key_file` is set; issuer and audience as the services expect.
    pub auth: AuthConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.desk.validate()?;
        self.upstream.validate()?;
        self.telemetry.validate()?;
        if self.auth.hs256_secret_file.is_none() && self.desk.signing_key_file.is_none() {
            return Err(ConfigError::invalid(
                "desk.signing_key_file",
                "the desk mints each nurse's token: set desk.signing_key_file (ES256 private key whose public \
                 half the registry and ingest accept) or, in development, auth.hs256_secret_file",
            ));
        }
        Ok(())
    }
}

/// The web listener, the accounts and the sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeskConfig {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// File of nurse accounts, one per line (`tfesi-desk hash-password` prints a line).
    pub accounts_file: Option<PathBuf>,
    /// How long a sign-in lasts, seconds (the minted token lives as long).
    pub session_ttl_s: u64,
    /// Send the session cookie only over HTTPS (`Secure`). Turn off only for plain-HTTP
    /// development and tests on 127.0.0.1.
    pub secure_cookies: bool,
    /// Deadline of each gRPC call, ms.
    pub call_timeout_ms: u64,
    /// ES256 private key (PEM, PKCS#8) the nurse's tokens are signed with in production; the
    /// services verify them with the public half (`auth.public_key_file` or `auth.jwks_file`).
    pub signing_key_file: Option<PathBuf>,
    /// `kid` put in the tokens' header, naming the public key in a JWKS document.
    pub signing_key_id: Option<String>,
}

impl Default for DeskConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], PORT)),
            accounts_file: None,
            session_ttl_s: 8 * 3600,
            secure_cookies: true,
            call_timeout_ms: 10_000,
            signing_key_file: None,
            signing_key_id: None,
        }
    }
}

impl Validate for DeskConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.accounts_file.is_none() {
            return Err(ConfigError::invalid(
                "desk.accounts_file",
                "names the file of nurse accounts; create lines with `tfesi-desk hash-password`",
            ));
        }
        if !(60..=24 * 3600).contains(&self.session_ttl_s) {
            return Err(ConfigError::invalid("desk.session_ttl_s", "must be from 60 to 86400 seconds"));
        }
        if self.call_timeout_ms == 0 {
            return Err(ConfigError::invalid("desk.call_timeout_ms", "must be positive"));
        }
        Ok(())
    }
}

/// gRPC endpoints of the services the desk calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// tfesi-registry (worklist, follow-ups, outcome status), e.g. `http://registry:50054`.
    pub registry: String,
    /// tfesi-ingest (ResolvePatient), e.g. `http://ingest:50051`.
    pub ingest: String,
    /// Connection timeout, ms.
    pub connect_timeout_ms: u64,
    /// TLS towards the services (endpoints `https://`); with a client certificate, mutual TLS.
    pub tls: Option<tfesi_platform::ClientTlsConfig>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            registry: "http://127.0.0.1:50054".to_owned(),
            ingest: "http://127.0.0.1:50051".to_owned(),
            connect_timeout_ms: 2_000,
            tls: None,
        }
    }
}

/// Checks that `endpoint` is `http://host:port` (or https) with a port other than 0.
fn validate_endpoint(key: &str, endpoint: &str) -> Result<(), ConfigError> {
    let usage = "must be a URL like http://registry:50054";
    let uri: http::Uri = endpoint.parse().map_err(|_| ConfigError::invalid(key, usage))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(ConfigError::invalid(key, usage));
    }
    match uri.port_u16() {
        Some(0) | None => Err(ConfigError::invalid(key, "needs an explicit port other than 0")),
        Some(_) => Ok(()),
    }
}

impl Validate for UpstreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        validate_endpoint("upstream.registry", &self.registry)?;
        validate_endpoint("upstream.ingest", &self.ingest)?;
        if self.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid("upstream.connect_timeout_ms", "must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        let mut config = Config::default();
        config.desk.accounts_file = Some(PathBuf::from("/etc/tfesi/desk-accounts"));
        config.auth.hs256_secret_file = Some(PathBuf::from("/etc/tfesi/secret"));
        config
    }

    #[test]
    fn a_config_with_accounts_and_secret_is_valid() {
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn missing_accounts_file_is_named() {
        let mut config = valid();
        config.desk.accounts_file = None;
        let error = config.validate().expect_err("accounts file is required").to_string();
        assert!(error.contains("desk.accounts_file"), "{error}");
    }

    #[test]
    fn missing_secret_is_named() {
        let mut config = valid();
        config.auth.hs256_secret_file = None;
        let error = config.validate().expect_err("secret is required").to_string();
        assert!(error.contains("auth.hs256_secret_file"), "{error}");
    }

    #[test]
    fn an_endpoint_without_port_is_rejected() {
        let mut config = valid();
        config.upstream.registry = "http://registry".to_owned();
        let error = config.validate().expect_err("port is required").to_string();
        assert!(error.contains("upstream.registry"), "{error}");
    }
}
