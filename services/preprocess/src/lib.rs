//! tfesi-preprocess: a selected T2 sagittal series to the model's input tensor, exactly and fast.

pub mod attrs;
pub mod cache;
pub mod decode;
pub mod error;
pub mod geometry;
pub mod prepare;
pub mod resample;
pub mod scan;
pub mod service;
pub mod spec;

pub use error::{Error, Result};
pub mod config;
pub mod grpc;

pub use config::Config;

/// Runs the preprocess service until `shutdown`: Postgres (migrated), Redis, and the gRPC API.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: tfesi_platform::Shutdown,
) -> anyhow::Result<()> {
    let health = tfesi_platform::Health::default();
    let pool = tfesi_platform::db::connect(&config.database).await?;
    health.add_check("postgres", tfesi_platform::db::health_check(pool));
    let redis = tfesi_platform::redis::connect(&config.redis).await?;
    health.add_check("redis", tfesi_platform::redis::health_check(redis));
    tfesi_platform::GrpcServer::new(&config.server, health)
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            tfesi_proto::preprocess::v1::preprocess_server::PreprocessServer::new(grpc::PreprocessApi)
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes),
        )
        .serve(listener, shutdown)
        .await
}
