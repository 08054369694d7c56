//! tfesi-inference: the model repository, ONNX Runtime sessions, dynamic batching, champion and shadow.

pub mod batcher;
pub mod card;
pub mod config;
pub mod convert;
pub mod error;
pub mod grpc;
pub mod manager;
pub mod metrics;
pub mod model;
pub mod repository;
pub mod runtime;
pub mod session;

pub use config::Config;
pub use error::{Error, Result};
pub use manager::ModelManager;

use tfesi_proto::inference::v1::inference_server::InferenceServer;

/// Runs the inference service on `listener` until `shutdown`: loads ONNX Runtime and the model
/// repository, brings the champion and shadow live, and serves `tfesi.inference.v1.Inference`
/// with health (NOT_SERVING while no champion is live) and reflection.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: tfesi_platform::Shutdown,
) -> anyhow::Result<()> {
    let manager = ModelManager::open(config.clone())
        .await
        .map_err(|error| anyhow::anyhow!(error::cause_chain(&error)))?;
    let (serving, detail) = manager.health();
    tracing::info!(serving, detail = %detail, "inference models");
    let health = tfesi_platform::Health::default();
    let checked = std::sync::Arc::clone(&manager);
    health.add_check("model", move || {
        let (serving, detail) = checked.health();
        async move { if serving { Ok(()) } else { Err(detail) } }
    });
    let service = InferenceServer::new(grpc::InferenceService::new(manager))
        .max_decoding_message_size(config.server.max_message_bytes)
        .max_encoding_message_size(config.server.max_message_bytes);
    tfesi_platform::GrpcServer::new(&config.server, health)
        .with_auth(&config.auth)?
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(service)
        .serve(listener, shutdown)
        .await
}
