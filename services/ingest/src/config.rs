//! Configuration of `tfesi-ingest` (environment prefix `TFESI_INGEST__`).

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
    /// Who may call: bearer tokens and their keys (`auth.mode = "disabled"` only in development).
    pub auth: tfesi_platform::AuthConfig,
    /// Postgres (schema `ingest`).
    pub database: DatabaseConfig,
    /// Redis (the job stream).
    pub redis: RedisConfig,
    /// The de-identified object store.
    pub storage: StorageConfig,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// Limits of `Ingest.Upload` streams.
    pub upload: UploadConfig,
    /// The DICOM C-STORE receiver and study completion after a quiet period.
    pub dicom: DicomConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: default_server(),
            telemetry: TelemetryConfig::default(),
            auth: tfesi_platform::AuthConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            storage: StorageConfig::default(),
            relay: RelaySettings::default(),
            upload: UploadConfig::default(),
            dicom: DicomConfig::default(),
        }
    }
}

pub use tfesi_platform::objects::StorageConfig;

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

/// The DICOM C-STORE receiver (SCP) and the completion of studies after a quiet period.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    /// Whether the receiver and the completer run.
    pub enabled: bool,
    /// DICOM listener (default 127.0.0.1:11112).
    pub listen: std::net::SocketAddr,
    /// This node's AE title: associations calling another title are rejected.
    pub ae_title: String,
    /// Calling AE titles allowed to associate; empty accepts any (development only: announced
    /// with a warning at start).
    pub allowed_calling_ae_titles: Vec<String>,
    /// Peer IP addresses allowed to associate; empty accepts any.
    pub allowed_peers: Vec<std::net::IpAddr>,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    pub max_associations: usize,
    /// Largest PDU this node receives, bytes.
    pub max_pdu_length: u32,
    /// A study that received DICOM instances is completed once none arrived for this many seconds
    /// and no open association sent to it.
    pub quiet_period_s: f64,
}

impl Default for DicomConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 11112)),
            ae_title: "TFESI".to_owned(),
            allowed_calling_ae_titles: Vec::new(),
            allowed_peers: Vec::new(),
            max_associations: 16,
            max_pdu_length: 65_536,
            quiet_period_s: 30.0,
        }
    }
}

/// Whether `title` is a valid AE title: 1 to 16 characters of the default repertoire, no
/// backslash, no control characters, not only spaces.
fn valid_ae_title(title: &str) -> bool {
    !title.trim().is_empty()
        && title.len() <= 16
        && title.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\')
}

impl DicomConfig {
    /// The quiet period as a duration.
    pub fn quiet_period(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.quiet_period_s)
    }
}

impl Validate for DicomConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !valid_ae_title(&self.ae_title) {
            return Err(ConfigError::invalid(
                "dicom.ae_title",
                "must be 1 to 16 printable ASCII characters without a backslash",
            ));
        }
        if let Some(bad) = self.allowed_calling_ae_titles.iter().find(|t| !valid_ae_title(t)) {
            return Err(ConfigError::invalid(
                "dicom.allowed_calling_ae_titles",
                format!(
                    "{bad:?} is not an AE title (1 to 16 printable ASCII characters without a backslash)"
                ),
            ));
        }
        if self.max_associations == 0 || self.max_associations > 1024 {
            return Err(ConfigError::invalid("dicom.max_associations", "must be between 1 and 1024"));
        }
        if !(4096..=1_048_576).contains(&self.max_pdu_length) {
            return Err(ConfigError::invalid(
                "dicom.max_pdu_length",
                "must be between 4096 and 1048576 bytes",
            ));
        }
        if !self.quiet_period_s.is_finite() || !(0.1..=86_400.0).contains(&self.quiet_period_s) {
            return Err(ConfigError::invalid(
                "dicom.quiet_period_s",
                "must be between 0.1 and 86400 seconds",
            ));
        }
        Ok(())
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

/// Limits of one `Ingest.Upload` stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Largest instance in bytes; a bigger one is REJECTED (TOO_LARGE) without being buffered.
    pub max_instance_bytes: u64,
    /// Most instances one stream may carry (RESOURCE_EXHAUSTED beyond).
    pub max_instances_per_stream: u32,
    /// Most chunk bytes one stream may carry (RESOURCE_EXHAUSTED beyond).
    pub max_bytes_per_stream: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            max_instance_bytes: 64 * 1024 * 1024,
            max_instances_per_stream: 10_000,
            max_bytes_per_stream: 4 * 1024 * 1024 * 1024,
        }
    }
}

impl Validate for UploadConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        // Parsing holds a whole instance in memory, so the cap bounds memory per stream.
        if !(1..=1024 * 1024 * 1024).contains(&self.max_instance_bytes) {
            return Err(ConfigError::invalid(
                "upload.max_instance_bytes",
                "must be between 1 and 1073741824 bytes",
            ));
        }
        if self.max_instances_per_stream == 0 {
            return Err(ConfigError::invalid("upload.max_instances_per_stream", "must be at least 1"));
        }
        if self.max_bytes_per_stream < self.max_instance_bytes {
            return Err(ConfigError::invalid(
                "upload.max_bytes_per_stream",
                "must be at least upload.max_instance_bytes",
            ));
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
            return Err(ConfigError::invalid("storage.root", "must be a directory path"));
        }
        if self.relay.stream.is_empty() {
            return Err(ConfigError::invalid("relay.stream", "must not be empty"));
        }
        self.dicom.validate()?;
        self.upload.validate()?;
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

    fn auth(&self) -> &tfesi_platform::AuthConfig {
        &self.auth
    }
}

/// The default listener.
pub(crate) fn default_server() -> ServerConfig {
    ServerConfig::on_port(50051)
}
