//! Where the services listen, shared by every command that talks to the stack, and the
//! channel each command opens.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tonic::transport::{Channel, Endpoint};

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
}

impl Endpoints {
    /// Opens a channel to `service` at `endpoint`, failing with a message that says what to
    /// check when nothing answers.
    pub async fn connect(&self, service: &str, endpoint: &str) -> anyhow::Result<Channel> {
        let parsed = Endpoint::from_shared(endpoint.to_owned())
            .with_context(|| {
                format!("{service} endpoint '{endpoint}' is not a URL (e.g. http://127.0.0.1:50051)")
            })?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(self.timeout_s.max(1)));
        parsed.connect().await.with_context(|| {
            format!(
                "cannot reach {service} at {endpoint}: is the stack running? (`scripts/dev.sh` starts it; \
                 --{service} or TFESI_{}_ENDPOINT point elsewhere)",
                service.to_ascii_uppercase()
            )
        })
    }
}

/// A gRPC status as one line for people: code, message.
pub fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Turns a failed call into an error naming the call.
pub fn call_failed(call: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |status| anyhow::anyhow!("{call} failed: {}", describe(&status))
}
