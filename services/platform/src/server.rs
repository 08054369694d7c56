//! The gRPC server every service runs: its own services plus `grpc.health.v1`, server
//! reflection, message size limits, request timeouts, per-RPC telemetry, and a graceful drain.

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use anyhow::Context as _;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use std::sync::Arc;

use tfesi_auth::{AuthConfig, AuthLayer, Authenticator};
use tonic::transport::{Certificate, Identity};

use crate::config::{ServerConfig, ServerTlsConfig};
use crate::health::Health;
use crate::shutdown::Shutdown;
use crate::telemetry::{RpcMetrics, incoming_context};
use opentelemetry::trace::TraceContextExt as _;

/// Binds `address`, turning "address in use" into an error that names the config key to change.
pub async fn bind(address: std::net::SocketAddr, config_key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address}: is another process using the port? set {config_key} to a free address")
    })
}

/// The accepted connections of `listener`, with `TCP_NODELAY` set on each: tonic ignores its
/// builder's `tcp_nodelay` when given a stream of connections, and without it a small answer
/// after a large request waits for the peer's delayed ACK (about 40 ms on Linux).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Builds the gRPC server of one service.
pub struct GrpcServer {
    config: ServerConfig,
    routes: RoutesBuilder,
    service_names: Vec<String>,
    descriptor_sets: Vec<&'static [u8]>,
    health: Health,
    auth: Option<Arc<Authenticator>>,
    refusals: Option<Arc<dyn tfesi_auth::RefusalSink>>,
    audit_pool: Option<sqlx::PgPool>,
}

impl GrpcServer {
    /// A server with the limits of `config` whose health follows the checks of `health`.
    pub fn new(config: &ServerConfig, health: Health) -> Self {
        Self {
            config: config.clone(),
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            descriptor_sets: Vec::new(),
            health,
            auth: None,
            refusals: None,
            audit_pool: None,
        }
    }

    /// Checks every request against `config` (bearer token and the role table of
    /// `tfesi_auth::policy`). Required: [`GrpcServer::serve`] refuses to start without it, so
    /// no service can be served open by omission. `auth.mode = "disabled"` is announced with
    /// an error-level log line.
    pub fn with_auth(mut self, config: &AuthConfig) -> anyhow::Result<Self> {
        let authenticator = Authenticator::from_config(config).context("invalid auth configuration")?;
        if authenticator.enabled() {
            tracing::info!(issuer = %config.issuer, audience = %config.audience, "every RPC needs a bearer token");
        } else {
            tracing::error!(
                "AUTHENTICATION IS DISABLED (auth.mode = \"disabled\"): every caller may call every RPC; \
                 development only, never with patient data"
            );
        }
        self.auth = Some(Arc::new(authenticator));
        Ok(self)
    }

    /// Declares that this service writes the audit log in `pool` (as `service`): every request
    /// refused to a caller with a valid token (PERMISSION_DENIED) is recorded before the refusal
    /// is answered, and while the server runs it chains committed records
    /// ([`crate::audit::run_chainer`]; every writer runs one, so records are chained while any
    /// of them is up).
    #[must_use]
    pub fn audit(mut self, service: &'static str, pool: sqlx::PgPool) -> Self {
        self.refusals = Some(Arc::new(crate::audit::RefusalAudit::new(service, pool.clone())));
        self.audit_pool = Some(pool);
        self
    }

    /// Adds a generated tonic service. Set its message limits first, e.g.
    /// `FooServer::new(handler).max_decoding_message_size(config.max_message_bytes)`.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME.to_owned());
        self.routes.add_service(service);
        self
    }

    /// Registers an encoded `FileDescriptorSet` for reflection (e.g. `tfesi_proto::FILE_DESCRIPTOR_SET`).
    pub fn with_descriptor_set(mut self, encoded: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded);
        self
    }

    /// Serves until `shutdown`, then stops accepting, reports NOT_SERVING, and waits up to the
    /// drain timeout for requests in flight.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { config, mut routes, service_names, descriptor_sets, health, auth, refusals, audit_pool } =
            self;
        let auth = auth
            .context("GrpcServer::with_auth was not called: a server without an auth decision is refused")?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        // tonic-health starts "" as SERVING and knows no named service: until the first check,
        // every name says NOT_SERVING instead (never a premature SERVING or a NOT_FOUND).
        crate::health::set_all(&reporter, &service_names, tonic_health::ServingStatus::NotServing).await;
        if let Some(health_address) = config.health_listen {
            let listener = bind(health_address, "server.health_listen").await?;
            tracing::info!(address = %health_address, "plaintext health port listening");
            let probes = tonic::transport::Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(incoming(listener), shutdown.clone().wait());
            tokio::spawn(async move {
                if let Err(error) = probes.await {
                    tracing::error!(%error, "the health port failed");
                }
            });
        }
        routes.add_service(health_service);

        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let mut reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for encoded in &descriptor_sets {
            reflection = reflection.register_encoded_file_descriptor_set(encoded);
            reflection_alpha = reflection_alpha.register_encoded_file_descriptor_set(encoded);
        }
        routes.add_service(reflection.build_v1().context("building the reflection service")?);
        routes.add_service(reflection_alpha.build_v1alpha().context("building the reflection service")?);

        let address = listener.local_addr()?;
        tokio::spawn(health.drive(reporter, service_names.clone(), shutdown.clone()));
        if let Some(pool) = audit_pool {
            tokio::spawn(crate::audit::run_chainer(pool, shutdown.clone()));
        }
        tracing::info!(%address, services = ?service_names, "grpc server listening");

        let routes: Routes = routes.routes();
        let drain_timeout = config.drain_timeout();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &config.tls {
            builder = builder.tls_config(server_tls(tls)?).context("invalid server.tls")?;
            tracing::info!(mutual = tls.client_ca_file.is_some(), "TLS on the gRPC port");
        }
        let server = builder
            .timeout(config.request_timeout())
            .concurrency_limit_per_connection(config.concurrency_limit_per_connection)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .initial_stream_window_size(config.http2_stream_window_bytes)
            .initial_connection_window_size(config.http2_connection_window_bytes)
            .max_frame_size(config.http2_max_frame_bytes)
            .layer(RpcTelemetryLayer { metrics: RpcMetrics::new() })
            .layer(crate::shed::LoadShedLayer::new(config.max_in_flight_requests))
            .layer(match refusals {
                Some(sink) => AuthLayer::new(auth).with_refusals(sink),
                None => AuthLayer::new(auth),
            })
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming(listener), shutdown.clone().wait());

        // tonic waits for every connection to finish after the signal; bound that wait.
        let drain_deadline = async move {
            shutdown.wait().await;
            tracing::info!(?drain_timeout, "draining requests in flight");
            tokio::time::sleep(drain_timeout).await;
        };
        tokio::select! {
            served = server => served.context("grpc server failed")?,
            () = drain_deadline => tracing::warn!("drain timeout reached; closing remaining connections"),
        }
        tracing::info!(%address, "grpc server stopped");
        Ok(())
    }
}

/// The tonic TLS settings of `server.tls`: files are read now, so a missing one fails the start.
fn server_tls(config: &ServerTlsConfig) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read the TLS file {}", path.display()))
    };
    let identity = Identity::from_pem(read(&config.cert_file)?, read(&config.key_file)?);
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.client_ca_file {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// Adds a span (joined to the caller's W3C trace), a log line and metrics to every RPC.
#[derive(Clone)]
struct RpcTelemetryLayer {
    metrics: RpcMetrics,
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
struct RpcTelemetry<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for RpcTelemetry<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RequestBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let parent = incoming_context(request.headers());
        let trace_id = parent.span().span_context().trace_id().to_string();
        let span = tracing::info_span!("rpc", rpc = %method, trace_id = %trace_id, otel.kind = "server");
        if span.set_parent(parent).is_err() {
            tracing::debug!("rpc span parent not set");
        }
        // The clone that was polled ready is the one that must serve the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let started = Instant::now();
                let result = inner.call(request).await;
                let elapsed = started.elapsed();
                let status = match &result {
                    // Trailers-only responses (errors) carry the status in the headers; streams
                    // that start successfully report 0 here.
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport_error".to_owned(),
                };
                metrics.record(&method, &status, elapsed.as_secs_f64());
                tracing::info!(grpc_status = %status, elapsed_us = elapsed.as_micros() as u64, "rpc finished");
                result
            }
            .instrument(span),
        )
    }
}
