//! tfesi-preprocess: a selected T2 sagittal series to the model's input tensor, exactly and fast.
//!
//! Without the default `service` feature only series-to-tensor is built (decode, geometry,
//! resampling, the spec: [`decode::decode_instance`], [`prepare::prepare_series`]), for the fuzz
//! targets.

pub mod attrs;
pub mod decode;
pub mod error;
pub mod geometry;
pub mod prepare;
pub mod resample;
pub mod scan;
pub mod spec;

pub use error::{Error, Result};

#[cfg(feature = "service")]
pub mod cache;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod failure;
#[cfg(feature = "service")]
pub mod features;
#[cfg(feature = "service")]
pub mod grpc;
#[cfg(feature = "service")]
pub mod objects;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod stream;
#[cfg(feature = "service")]
pub mod upstream;
#[cfg(feature = "service")]
pub mod worker;

#[cfg(feature = "service")]
pub use config::Config;

#[cfg(feature = "service")]
use std::sync::Arc;

#[cfg(feature = "service")]
use anyhow::Context as _;

/// Runs the preprocess service until `shutdown`: Postgres (migrated), Redis, the tensor cache,
/// the gRPC API and, when `worker.enabled`, the pipeline worker. On shutdown the worker stops
/// claiming jobs and finishes the ones in hand within `worker.shutdown_grace_ms`.
#[cfg(feature = "service")]
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: tfesi_platform::Shutdown,
) -> anyhow::Result<()> {
    let health = tfesi_platform::Health::default();
    let pool = tfesi_platform::db::connect(&config.database).await?;
    health.add_check("postgres", tfesi_platform::db::health_check(pool.clone()));
    let redis = tfesi_platform::redis::connect(&config.redis).await?;
    health.add_check("redis", tfesi_platform::redis::health_check(redis.clone()));
    let objects = tfesi_platform::objects::ObjectStore::open(&config.storage.root).with_context(|| {
        format!("cannot open the object store at {} (storage.root)", config.storage.root.display())
    })?;
    let token = tfesi_auth::TokenSource::for_service(&config.auth, "preprocess")
        .context("preprocess has no token for its calls to ingest, inference and registry")?;
    let upstream = upstream::Upstream::new(&config.upstream, config.worker.call_timeout(), token)
        .context("invalid upstream settings (upstream.*)")?;
    let cache = cache::TensorCache::new(
        redis.clone(),
        cache::CacheSettings { prefix: config.cache_prefix(), ..cache::CacheSettings::default() },
    );
    let stream = stream::JobStream::new(
        redis.clone(),
        config.stream_key(),
        config.worker.group.clone(),
        config.worker.consumer_name(),
    );
    let stats = Arc::new(worker::WorkerStats::default());
    let limits = decode::DecodeLimits::default();

    let worker_task = if config.worker.enabled {
        let checked = Arc::clone(&stats);
        health.add_check("worker", move || {
            let state = checked.health();
            async move { state }
        });
        let pipeline = Arc::new(worker::Pipeline {
            pool: pool.clone(),
            stream: stream.clone(),
            upstream: upstream.clone(),
            cache: Some(cache.clone()),
            objects: objects.clone(),
            config: config.worker.clone(),
            limits,
            stats: Arc::clone(&stats),
        });
        Some(tokio::spawn(worker::run(pipeline, config.redis.clone(), shutdown.clone())))
    } else {
        tracing::info!("pipeline worker disabled (worker.enabled = false)");
        None
    };

    let api = grpc::PreprocessApi { pool, stream, upstream, cache: Some(cache), objects, limits, stats };
    let served = tfesi_platform::GrpcServer::new(&config.server, health)
        .with_auth(&config.auth)?
        .audit("preprocess", api.pool.clone())
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            tfesi_proto::preprocess::v1::preprocess_server::PreprocessServer::new(api)
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes),
        )
        .serve(listener, shutdown)
        .await;
    if let Some(task) = worker_task
        && let Err(error) = task.await
    {
        tracing::warn!(%error, "pipeline worker ended abnormally");
    }
    served
}
