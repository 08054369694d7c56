//! The whole platform as four real binaries sharing one fresh database, one Redis key prefix
//! and one object store directory: what the pipeline, CLI and fault tests run against.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::process::ServiceProcess;
use crate::{drop_database, unique_database, wait_for_health};

/// How long the stack may take to report SERVING (a cold debug build loads ONNX Runtime).
pub const START_WITHIN: Duration = Duration::from_secs(120);

/// A private copy of a directory tree (the bundled model repository: inference writes its
/// champion state there, which must not touch the checkout).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    for entry in std::fs::read_dir(from).expect("read directory to copy") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The bundled model repository of the checkout.
pub fn bundled_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Four running services wired to each other.
pub struct Stack {
    /// Ingest (gRPC).
    pub ingest: ServiceProcess,
    /// Ingest's DICOM C-STORE receiver (called AE title `TFESI`).
    pub dicom_address: SocketAddr,
    /// Inference.
    pub inference: ServiceProcess,
    /// Registry.
    pub registry: ServiceProcess,
    /// Preprocess and its pipeline worker.
    pub preprocess: ServiceProcess,
    /// The database all four share (each in its own schema).
    pub database: String,
    /// The Redis key prefix of this stack.
    pub redis_prefix: String,
    /// Object store and model repository live here.
    pub dir: tempfile::TempDir,
}

/// Extra settings for one service, e.g. `("preprocess", "WORKER__MAX_ATTEMPTS", "2")`.
pub type Setting<'a> = (&'a str, &'a str, &'a str);

fn common_env(
    service: &str,
    database: &str,
    prefix: &str,
    settings: &[Setting<'_>],
) -> Vec<(String, String)> {
    let upper = format!("TFESI_{}__", service.to_ascii_uppercase());
    let mut env = vec![
        (format!("{upper}TELEMETRY__LOG_FORMAT"), "json".to_owned()),
        (format!("{upper}DATABASE__URL"), format!("postgres://postgres@127.0.0.1:5432/{database}")),
        (format!("{upper}REDIS__URL"), "redis://127.0.0.1:6379/0".to_owned()),
        (format!("{upper}REDIS__KEY_PREFIX"), prefix.to_owned()),
    ];
    for (target, key, value) in settings {
        if *target == service {
            env.push((format!("{upper}{key}"), (*value).to_owned()));
        }
    }
    env
}

impl Stack {
    /// Starts the four services and waits until each is SERVING.
    pub async fn start(settings: &[Setting<'_>]) -> Self {
        let database = unique_database("tfesi_stack");
        let redis_prefix = database.clone();
        let dir = tempfile::tempdir().expect("stack directory");
        let objects = dir.path().join("objects");
        let models = dir.path().join("models");
        copy_tree(&bundled_models(), &models);

        let mut ingest_env = common_env("ingest", &database, &redis_prefix, settings);
        ingest_env.push(("TFESI_INGEST__STORAGE__ROOT".to_owned(), objects.display().to_string()));
        let dicom_address: SocketAddr =
            format!("127.0.0.1:{}", crate::free_port()).parse().expect("DICOM address");
        ingest_env.push(("TFESI_INGEST__DICOM__LISTEN".to_owned(), dicom_address.to_string()));
        let ingest = ServiceProcess::start("tfesi-ingest", "ingest", &ingest_env);
        let mut registry_env = common_env("registry", &database, &redis_prefix, settings);
        registry_env.retain(|(key, _)| !key.contains("__REDIS__"));
        let registry = ServiceProcess::start("tfesi-registry", "registry", &registry_env);
        let mut inference_env = vec![
            ("TFESI_INFERENCE__TELEMETRY__LOG_FORMAT".to_owned(), "json".to_owned()),
            ("TFESI_INFERENCE__REPOSITORY_DIR".to_owned(), models.display().to_string()),
        ];
        inference_env.extend(common_env("inference", &database, &redis_prefix, settings).into_iter().skip(4));
        let inference = ServiceProcess::start("tfesi-inference", "inference", &inference_env);

        let mut preprocess_env = common_env("preprocess", &database, &redis_prefix, settings);
        preprocess_env.extend([
            ("TFESI_PREPROCESS__STORAGE__ROOT".to_owned(), objects.display().to_string()),
            ("TFESI_PREPROCESS__UPSTREAM__INGEST".to_owned(), format!("http://{}", ingest.address)),
            ("TFESI_PREPROCESS__UPSTREAM__INFERENCE".to_owned(), format!("http://{}", inference.address)),
            ("TFESI_PREPROCESS__UPSTREAM__REGISTRY".to_owned(), format!("http://{}", registry.address)),
        ]);
        let preprocess = ServiceProcess::start("tfesi-preprocess", "preprocess", &preprocess_env);
        let stack =
            Self { ingest, dicom_address, inference, registry, preprocess, database, redis_prefix, dir };
        for (process, name) in stack.services() {
            let status = wait_for_health(process.address, "", ServingStatus::Serving, START_WITHIN).await;
            assert_eq!(
                status,
                Some(ServingStatus::Serving),
                "{name} did not start; its log:\n{}",
                process.log()
            );
        }
        stack
    }

    /// The services with their names.
    pub fn services(&self) -> [(&ServiceProcess, &'static str); 4] {
        [
            (&self.ingest, "ingest"),
            (&self.registry, "registry"),
            (&self.inference, "inference"),
            (&self.preprocess, "preprocess"),
        ]
    }

    /// A channel to a service.
    pub async fn channel(address: SocketAddr) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("connect to a service of the stack")
    }

    /// All logs, for assertion messages.
    pub fn logs(&self) -> String {
        self.services().iter().map(|(process, name)| format!("===== {name}\n{}", process.log())).collect()
    }

    /// Stops every service with SIGTERM, checks they exit cleanly, and drops the database.
    pub async fn finish(mut self) {
        for process in [&self.preprocess, &self.ingest, &self.inference, &self.registry] {
            process.terminate();
        }
        let mut codes = Vec::new();
        for (process, name) in [
            (&mut self.preprocess, "preprocess"),
            (&mut self.ingest, "ingest"),
            (&mut self.inference, "inference"),
            (&mut self.registry, "registry"),
        ] {
            codes.push((name, process.wait_exit(Duration::from_secs(30))));
        }
        let logs = self.logs();
        for (name, code) in codes {
            assert_eq!(code, Some(0), "{name} exits cleanly on SIGTERM; logs:\n{logs}");
        }
        let mut redis = redis_connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
        }
        drop_database(&self.database).await;
    }
}

/// A plain connection to the local Redis.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0")
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the local Redis")
}
