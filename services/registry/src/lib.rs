//! Outcome registry: episodes, injections, predictions, follow-ups, labels, snapshots and
//! prospective model performance, stored in Postgres schema `registry`, served over gRPC.

pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use tfesi_platform::{GrpcServer, Health, Shutdown};
use tfesi_proto::registry::v1::registry_server::RegistryServer;
use tokio::net::TcpListener;

pub use config::{Config, RegistryConfig};
pub use error::{Error, Result};
pub use store::Store;

/// Connects Postgres (applying the migrations), starts the event listener and serves the
/// Registry service on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let health = Health::default();
    let pool = tfesi_platform::db::connect(&config.database).await?;
    health.add_check("postgres", tfesi_platform::db::health_check(pool.clone()));
    let store = Store::new(pool.clone(), config.registry.clone())?;
    let hub = Arc::new(store::events::EventHub::start(&pool).await?);
    let service = grpc::RegistryService::new(store, hub);
    GrpcServer::new(&config.server, health)
        .with_auth(&config.auth)?
        .audit("registry", pool.clone())
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            RegistryServer::new(service)
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes),
        )
        .serve(listener, shutdown)
        .await
}
