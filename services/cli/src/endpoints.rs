//! Where the services listen, shared by every command that talks to the stack, the
//! credentials each call carries, and the channel each command opens.
//!
//! The bearer token comes from `--token` (`TFESI_TOKEN`); without it, `tfesi` mints a
//! short-lived admin token with the development secret of `--auth-secret-file`
//! (`TFESI_AUTH_SECRET_FILE`, default: the one `tfesi dev` writes under `data/dev`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tfesi_auth::{AuthConfig, Role, TokenSource};
use tfesi_platform::ClientTlsConfig;
use tfesi_platform::client::Outgoing;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A channel whose requests carry the caller's token and trace context.
pub type AuthChannel = InterceptedService<Channel, Outgoing>;

/// Where `tfesi dev` keeps the development HS256 secret, relative to its data directory.
pub const DEV_SECRET: &str = "auth/hs256.secret";
/// The default data directory of `tfesi dev` and `tfesi demo`.
pub const DEFAULT_DATA_DIR: &str = "data/dev";

/// gRPC endpoints of the four services (defaults: the development stack's ports).
#[derive(Debug, Clone, Args)]
pub struct Endpoints {
    /// Ingest's gRPC endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051", env = "TFESI_INGEST_ENDPOINT")]
    pub ingest: String,
    /// Preprocess's gRPC endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50052", env = "TFESI_PREPROCESS_ENDPOINT")]
    pub preprocess: String,
    /// Inference's gRPC endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50053", env = "TFESI_INFERENCE_ENDPOINT")]
    pub inference: String,
    /// Registry's gRPC endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50054", env = "TFESI_REGISTRY_ENDPOINT")]
    pub registry: String,
    /// Deadline of each call, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    pub timeout_s: u64,
    /// Bearer token (JWT) sent with every call.
    #[arg(long, global = true, env = "TFESI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Development HS256 secret used to mint an admin token when no --token is given
    /// (default: data/dev/auth/hs256.secret when it exists).
    #[arg(long, global = true, env = "TFESI_AUTH_SECRET_FILE")]
    pub auth_secret_file: Option<PathBuf>,
    /// CA certificate (PEM) of the services' TLS certificates; the endpoints are then https://.
    #[arg(long, global = true, env = "TFESI_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, env = "TFESI_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(long, global = true, env = "TFESI_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl Endpoints {
    /// The token source of this command: `--token`, else an admin token minted with the
    /// development secret, else none (the services then answer UNAUTHENTICATED).
    pub fn token_source(&self) -> anyhow::Result<Arc<TokenSource>> {
        if let Some(token) = &self.token {
            return Ok(TokenSource::fixed(token.clone()));
        }
        let default_secret = Path::new(DEFAULT_DATA_DIR).join(DEV_SECRET);
        let secret_file = match &self.auth_secret_file {
            Some(path) => Some(path.clone()),
            None => default_secret.is_file().then_some(default_secret),
        };
        let Some(secret_file) = secret_file else {
            return Ok(TokenSource::none());
        };
        let secret = std::fs::read(&secret_file).with_context(|| {
            format!("cannot read the development secret {} (--auth-secret-file)", secret_file.display())
        })?;
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        let source = TokenSource::minted(
            &secret,
            &AuthConfig::default(),
            &format!("tfesi-cli:{user}"),
            &[Role::Admin],
        );
        source.header().context("cannot mint a token with the development secret")?;
        Ok(source)
    }

    /// The TLS settings of the command line, when a CA is given.
    pub fn tls(&self) -> Option<ClientTlsConfig> {
        self.tls_ca_file.as_ref().map(|ca_file| ClientTlsConfig {
            ca_file: ca_file.clone(),
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            domain_name: None,
        })
    }

    /// Opens a channel to `service` at `endpoint` whose calls carry this command's token,
    /// failing with a message that says what to check when nothing answers.
    pub async fn connect(&self, service: &str, endpoint: &str) -> anyhow::Result<AuthChannel> {
        let channel = self.connect_plain(service, endpoint).await?;
        Ok(InterceptedService::new(channel, Outgoing::new(self.token_source()?)))
    }

    /// Opens a channel without credentials (health checks).
    pub async fn connect_plain(&self, service: &str, endpoint: &str) -> anyhow::Result<Channel> {
        let mut parsed = Endpoint::from_shared(endpoint.to_owned())
            .with_context(|| {
                format!("{service} endpoint '{endpoint}' is not a URL (e.g. http://127.0.0.1:50051)")
            })?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(self.timeout_s.max(1)));
        if let Some(tls) = self.tls() {
            parsed = parsed
                .tls_config(tfesi_platform::client::client_tls(&tls)?)
                .with_context(|| format!("cannot use TLS towards {endpoint}"))?;
        }
        parsed.connect().await.with_context(|| {
            format!(
                "cannot reach {service} at {endpoint}: is the stack running? (`scripts/dev.sh` starts it; \
                 --{service} or TFESI_{}_ENDPOINT point elsewhere)",
                service.to_ascii_uppercase()
            )
        })
    }
}

/// A gRPC status as one line for people: code, message, and for a refused token what to do.
pub fn describe(status: &tonic::Status) -> String {
    let hint = match status.code() {
        tonic::Code::Unauthenticated => {
            " (pass a token with --token or TFESI_TOKEN; for a development stack, --auth-secret-file \
             names the secret `tfesi dev` wrote under data/dev/auth)"
        }
        tonic::Code::PermissionDenied => {
            " (the token's roles do not allow this call; see `tfesi token --help`)"
        }
        _ => "",
    };
    format!("{:?}: {}{hint}", status.code(), status.message())
}

/// Turns a failed call into an error naming the call.
pub fn call_failed(call: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |status| anyhow::anyhow!("{call} failed: {}", describe(&status))
}
