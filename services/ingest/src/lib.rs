//! tfesi-ingest: DICOM intake, validation, de-identification, storage, series selection and the job outbox.
//!
//! Without the default `service` feature only the bounded parsing of one untrusted instance is
//! built ([`parse_instance`] and the modules it uses), for the fuzz targets.

pub mod attrs;
pub mod instance;
pub mod parse;
pub mod prescan;
pub mod rejection;

#[cfg(feature = "service")]
pub mod catalogue;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod deid;
#[cfg(feature = "service")]
pub mod deid_table;
#[cfg(feature = "service")]
pub mod grpc;
#[cfg(feature = "service")]
pub mod ingest;
#[cfg(feature = "service")]
pub mod outbox;
#[cfg(feature = "service")]
pub mod scp;
#[cfg(feature = "service")]
pub mod selection;
/// The content-addressed object store (shared with preprocess, which reads it).
#[cfg(feature = "service")]
pub use tfesi_platform::objects as store;

pub use parse::{ParseLimits, ParsedInstance, Verdict, parse_instance};
pub use rejection::{QuarantineReason, RejectCode, Rejection};

#[cfg(feature = "service")]
pub use config::Config;

#[cfg(feature = "service")]
use anyhow::Context as _;

/// Runs the ingest service until `shutdown`: Postgres (migrated), Redis, the object store
/// directory, the outbox relay, and the gRPC API.
#[cfg(feature = "service")]
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

    // Everything that can fail at start (ports, the object store) comes before any task is
    // spawned, so a failed start leaves nothing running.
    let dicom_listener =
        if config.dicom.enabled {
            Some(tokio::net::TcpListener::bind(config.dicom.listen).await.with_context(|| {
                format!("cannot listen for DICOM on {} (dicom.listen)", config.dicom.listen)
            })?)
        } else {
            None
        };
    let object_store = store::ObjectStore::open(&config.storage.root)
        .with_context(|| format!("cannot open the object store at {}", config.storage.root.display()))?;
    // A crashed ingest may have left half-written files in tmp/: none is visible as an object.
    match object_store.sweep_stale_partials(std::time::Duration::from_secs(3600)) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed partial files left by a crashed writer"),
        Err(error) => tracing::warn!(%error, "cannot sweep the object store's tmp directory"),
    }
    let parse_limits = ParseLimits {
        max_instance_bytes: usize::try_from(config.upload.max_instance_bytes).unwrap_or(usize::MAX),
        ..ParseLimits::default()
    };
    let ingestor = ingest::Ingestor::new(pool.clone(), object_store, parse_limits).await?;

    let relay_config = outbox::RelayConfig {
        stream_key: format!("{}:{}", config.redis.key_prefix, config.relay.stream),
        republish_after: std::time::Duration::from_secs(config.relay.republish_after_s),
        wake: ingestor.relay_wake.clone(),
        ..outbox::RelayConfig::default()
    };
    let relay =
        tokio::spawn(outbox::run_relay(pool.clone(), redis.clone(), relay_config, shutdown.clone().wait()));

    // DICOM C-STORE receiver and the completion of quiet DICOM studies (scp.rs).
    let dicom = dicom_listener.map(|dicom_listener| {
        let activity = scp::Activity::default();
        let completer = tokio::spawn(scp::run_completer(
            pool.clone(),
            activity.clone(),
            config.dicom.quiet_period(),
            selection::SelectionRules::default(),
            ingestor.relay_wake.clone(),
            shutdown.clone().wait(),
        ));
        let receiver = tokio::spawn(scp::serve(
            dicom_listener,
            ingestor.clone(),
            config.dicom.clone(),
            activity,
            config.server.drain_timeout(),
            shutdown.clone(),
        ));
        (receiver, completer)
    });

    let api = grpc::IngestApi::new(ingestor, selection::SelectionRules::default(), config.upload.clone());

    let served = tfesi_platform::GrpcServer::new(&config.server, health)
        .with_auth(&config.auth)?
        .audit("ingest", pool.clone())
        .with_descriptor_set(tfesi_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            tfesi_proto::ingest::v1::ingest_server::IngestServer::new(api)
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes),
        )
        .serve(listener, shutdown)
        .await;
    if let Err(error) = relay.await {
        tracing::warn!(%error, "outbox relay ended abnormally");
    }
    if let Some((receiver, completer)) = dicom {
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "DICOM receiver ended with an error"),
            Err(error) => tracing::warn!(%error, "DICOM receiver ended abnormally"),
        }
        if let Err(error) = completer.await {
            tracing::warn!(%error, "DICOM study completer ended abnormally");
        }
    }
    served
}
