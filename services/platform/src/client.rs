//! Calling another service: a lazily connected channel (plaintext or TLS, mutual TLS when the
//! client has a certificate) and the interceptor that carries the caller's trace context and
//! bearer token on every request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tfesi_auth::{BearerInterceptor, TokenSource};
use tonic::transport::{Certificate, Channel, Endpoint, Identity};

use crate::config::ClientTlsConfig;
use crate::telemetry::inject_current_context;

/// A channel to `endpoint` that connects on first use. With `tls`, the endpoint must be an
/// `https://` URL and the server's certificate must chain to `tls.ca_file`.
pub fn lazy_channel(
    endpoint: &str,
    tls: Option<&ClientTlsConfig>,
    connect_timeout: Duration,
) -> anyhow::Result<Channel> {
    let mut builder = Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("'{endpoint}' is not a URL (e.g. http://127.0.0.1:50051)"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    if let Some(tls) = tls {
        builder = builder
            .tls_config(client_tls(tls)?)
            .with_context(|| format!("cannot use TLS towards {endpoint}"))?;
    }
    Ok(builder.connect_lazy())
}

/// The tonic TLS settings of `config`, files read now so a missing file fails at start.
pub fn client_tls(config: &ClientTlsConfig) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read the TLS file {}", path.display()))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&config.ca_file)?));
    match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => anyhow::bail!("tls.cert_file and tls.key_file must be set together (mutual TLS needs both)"),
    }
    if let Some(name) = &config.domain_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(tls)
}

/// Puts the current span's `traceparent` and the caller's bearer token on every request.
#[derive(Clone, Debug)]
pub struct Outgoing {
    bearer: BearerInterceptor,
}

impl Outgoing {
    /// Sends the tokens of `source`.
    pub fn new(source: Arc<TokenSource>) -> Self {
        Self { bearer: BearerInterceptor::new(source) }
    }
}

impl tonic::service::Interceptor for Outgoing {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current_context(&mut request);
        self.bearer.apply(&mut request)?;
        Ok(request)
    }
}
