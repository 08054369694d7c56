//! tfesi-ingest: DICOM intake, validation, de-identification, storage, series selection and the job outbox.

pub mod attrs;
pub mod catalogue;
pub mod deid;
pub mod deid_table;
pub mod ingest;
pub mod instance;
pub mod outbox;
pub mod parse;
pub mod prescan;
pub mod rejection;
pub mod selection;
/// The content-addressed object store (shared with preprocess, which reads it).
pub use tfesi_platform::objects as store;

pub use parse::{ParseLimits, ParsedInstance, Verdict, parse_instance};
pub use rejection::{QuarantineReason, RejectCode, Rejection};

pub mod config;
pub mod grpc;

pub use config::Config;

use anyhow::Context as _;

/// Runs the ingest service until `shutdown`: Postgres (migrated), Redis, the object store
/// directory, the outbox relay, and the gRPC API.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: tfesi_platform::Shutdown,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.root).with_context(|| {
        format!("cannot create the object store at {} (storage.root)", config.storage.root.display())
    })?;
    let health = tfesi_platform::Health::default();
    let pool = tfesi_platform::db::connect(&config.database).await?;
    health.add_check("postgres", tfesi_platform::db::health_check(pool.clone()));
    let redis = tfesi_platform::redis::connect(&config.redis).await?;
    health.add_check("redis", tfesi_platform::redis::health_check(redis.clone()));

    let relay_config = outbox::RelayConfig {
        stream_key: format!("{}:{}", config.redis.key_prefix, config.relay.stream),
        republish_after: std::time::Duration::from_secs(config.relay.republish_after_s),
        ..outbox::RelayConfig::default()
    };
    let relay =
        tokio::spawn(outbox::run_relay(pool.clone(), redis.clone(), relay_config, shutdown.clone().wait()));

    let served = tfesi_platform::GrpcServer::new(&config.server, health)
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            tfesi_proto::ingest::v1::ingest_server::IngestServer::new(grpc::IngestApi)
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes),
        )
        .serve(listener, shutdown)
        .await;
    if let Err(error) = relay.await {
        tracing::warn!(%error, "outbox relay ended abnormally");
    }
    served
}
