//! Structured logs, OpenTelemetry traces and metrics, W3C trace context, and the Prometheus
//! text endpoint.
//!
//! One [`Telemetry`] per process (the development stack runs four services in one process and
//! shares it). Spans are always created through an SDK tracer, so trace ids are real and flow
//! between services even when no collector is configured; they are exported only when
//! `telemetry.otlp_endpoint` is set, and a collector that does not answer only costs log lines.

use std::net::SocketAddr;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tokio::net::TcpListener;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};

/// The process' telemetry providers; call [`Telemetry::shutdown`] before exiting to flush.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
}

impl Telemetry {
    /// Installs the global subscriber, tracer, meter and propagator. Must run inside a Tokio
    /// runtime (the OTLP exporter needs one). Fails when a subscriber is already installed.
    pub fn init(process_name: &str, config: &TelemetryConfig) -> anyhow::Result<Self> {
        let resource = Resource::builder().with_service_name(process_name.to_owned()).build();

        let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone()).with_sampler(
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.trace_sample_ratio))),
        );
        if let Some(endpoint) = &config.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .context("building the OTLP span exporter")?;
            tracer_builder = tracer_builder.with_batch_exporter(exporter);
        }
        let tracer_provider = tracer_builder.build();

        let registry = crate::telemetry_registry();
        let prometheus_reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .context("building the Prometheus exporter")?;
        let mut meter_builder =
            SdkMeterProvider::builder().with_resource(resource).with_reader(prometheus_reader);
        if let Some(endpoint) = &config.otlp_endpoint {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .context("building the OTLP metric exporter")?;
            meter_builder = meter_builder.with_periodic_exporter(exporter);
        }
        let meter_provider = meter_builder.build();

        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(tracer_provider.clone());
        global::set_meter_provider(meter_provider.clone());

        let filter = EnvFilter::try_new(&config.log_filter)
            .with_context(|| format!("invalid telemetry.log_filter `{}`", config.log_filter))?;
        let otel_layer =
            tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer(process_name.to_owned()));
        let registry_subscriber = tracing_subscriber::registry().with(filter).with(otel_layer);
        let installed = match config.log_format {
            LogFormat::Text => {
                registry_subscriber.with(tracing_subscriber::fmt::layer().with_target(true)).try_init()
            }
            LogFormat::Json => registry_subscriber
                .with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false))
                .try_init(),
        };
        installed.context("a tracing subscriber is already installed")?;

        Ok(Self { tracer_provider, meter_provider, registry })
    }

    /// The Prometheus registry the metrics endpoint serves.
    pub fn registry(&self) -> prometheus::Registry {
        self.registry.clone()
    }

    /// Flushes and stops exporters. Runs off the async threads: the SDK's shutdown blocks.
    pub async fn shutdown(self) {
        let Self { tracer_provider, meter_provider, .. } = self;
        let flushed = tokio::task::spawn_blocking(move || {
            let traces = tracer_provider.shutdown();
            let metrics = meter_provider.shutdown();
            (traces, metrics)
        })
        .await;
        if let Ok((traces, metrics)) = flushed {
            if let Err(error) = traces {
                tracing::debug!(%error, "trace provider shutdown");
            }
            if let Err(error) = metrics {
                tracing::debug!(%error, "meter provider shutdown");
            }
        }
    }
}

/// Serves `GET /metrics` (Prometheus text format) on `address` until `shutdown` resolves.
/// Returns the bound address (useful with port 0).
pub async fn serve_metrics(
    address: SocketAddr,
    registry: prometheus::Registry,
    shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!(
            "cannot bind the metrics endpoint on {address} (telemetry.metrics_listen): is the port in use?"
        )
    })?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let encoder = prometheus::TextEncoder::new();
                match encoder.encode_to_string(&registry.gather()) {
                    Ok(text) => (http::StatusCode::OK, text),
                    Err(error) => (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
                }
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.wait()).await;
        if let Err(error) = served {
            tracing::warn!(%error, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// Reads W3C trace context from HTTP/2 headers.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes W3C trace context into gRPC metadata.
pub struct MetadataInjector<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = tonic::metadata::MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_str()) {
            self.0.insert(key, value);
        }
    }
}

/// The trace context of an incoming request, or a fresh root context with a random trace id
/// when the caller sent none, so every request's logs carry a trace id.
pub fn incoming_context(headers: &http::HeaderMap) -> Context {
    let extracted =
        global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if extracted.span().span_context().is_valid() {
        return extracted;
    }
    let trace_id = TraceId::from_bytes(rand::random::<[u8; 16]>());
    let span_id = opentelemetry::trace::SpanId::from_bytes(rand::random::<[u8; 8]>());
    let root = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::default());
    Context::new().with_remote_span_context(root)
}

/// The trace id of the current span as 32 hex digits (all zeros when there is none).
pub fn current_trace_id() -> String {
    tracing::Span::current().context().span().span_context().trace_id().to_string()
}

/// Adds the current span's trace context to an outgoing request, so the callee joins the trace.
pub fn inject_current_context<T>(request: &mut tonic::Request<T>) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
    });
}

/// The W3C `traceparent` value of the current span, for carrying a trace inside a queued job.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace named by a stored `traceparent` (from a queued job).
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let context = global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    if span.set_parent(context).is_err() {
        tracing::debug!("span already started; trace parent not set");
    }
}

/// Per-RPC instruments shared by every server in the process.
#[derive(Clone)]
pub(crate) struct RpcMetrics {
    pub(crate) requests: opentelemetry::metrics::Counter<u64>,
    pub(crate) duration: opentelemetry::metrics::Histogram<f64>,
}

impl RpcMetrics {
    pub(crate) fn new() -> Self {
        let meter = global::meter("tfesi");
        Self {
            requests: meter
                .u64_counter("rpc.server.requests")
                .with_description("gRPC requests handled, by method and status code")
                .build(),
            duration: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("gRPC request latency until the response headers, by method")
                .with_boundaries(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0, 30.0,
                ])
                .build(),
        }
    }

    pub(crate) fn record(&self, method: &str, status: &str, seconds: f64) {
        let attributes = [
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.grpc.status_code", status.to_owned()),
        ];
        self.requests.add(1, &attributes);
        self.duration.record(seconds, &attributes[..1]);
    }
}
