//! The services the pipeline worker talks to, run in-process on ephemeral ports against the
//! test's own Postgres database and a Redis key prefix of its own: ingest (relay, job status,
//! series), inference (a temporary copy of the bundled model as versions 1 and 2), registry,
//! and preprocess itself.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tfesi_ingest::catalogue::complete_study;
use tfesi_ingest::ingest::{Ingestor, InstanceOutcome};
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::{ParseLimits, store::ObjectStore};
use tfesi_platform::jobs::PipelineJob;
use tfesi_platform::{DatabaseConfig, RedisConfig, ServerConfig, Shutdown, ShutdownTrigger};
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tonic::transport::Channel;
use uuid::Uuid;

/// Longest any test waits for the pipeline.
pub const WAIT: Duration = Duration::from_secs(180);

/// A running service.
struct Running {
    name: &'static str,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// How to start the stack.
pub struct Options {
    pub redis_url: String,
    /// Set the second model version as shadow.
    pub shadow: bool,
    /// Start preprocess (with its worker) at once.
    pub start_preprocess: bool,
    pub worker: tfesi_preprocess::config::WorkerConfig,
    /// Ingest's relay publishes unconfirmed jobs again after this long.
    pub republish_after_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".to_owned(),
            shadow: false,
            start_preprocess: true,
            republish_after_s: 1,
            worker: tfesi_preprocess::config::WorkerConfig {
                concurrency: 2,
                claim_idle_ms: 1_000,
                max_attempts: 3,
                backoff_base_ms: 50,
                backoff_max_ms: 200,
                call_timeout_ms: 60_000,
                block_ms: 200,
                shutdown_grace_ms: 10_000,
                ..tfesi_preprocess::config::WorkerConfig::default()
            },
        }
    }
}

pub struct Stack {
    pub pool: PgPool,
    pub redis: ConnectionManager,
    pub redis_url: String,
    pub prefix: String,
    pub objects: tempfile::TempDir,
    _models: tempfile::TempDir,
    database_url: String,
    worker: tfesi_preprocess::config::WorkerConfig,
    pub ingest: SocketAddr,
    pub inference: SocketAddr,
    pub registry: SocketAddr,
    pub preprocess: Option<SocketAddr>,
    services: Vec<Running>,
    preprocess_service: Option<Running>,
}

fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL names a database");
    let name = pool.connect_options().get_database().expect("test database name").to_owned();
    format!("{server}/{name}")
}

fn database(url: &str) -> DatabaseConfig {
    DatabaseConfig { url: url.to_owned(), max_connections: 4, ..DatabaseConfig::default() }
}

fn copy_models(into: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tfesi-test/1");
    for version in ["1", "2"] {
        let dir = into.join("tfesi-test").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(source.join("model.onnx"), dir.join("model.onnx")).unwrap();
        let card = std::fs::read_to_string(source.join("model.json")).unwrap();
        let card = card.replacen("\"version\": \"1\"", &format!("\"version\": \"{version}\""), 1);
        std::fs::write(dir.join("model.json"), card).unwrap();
    }
}

async fn spawn<C, F, Fut>(name: &'static str, config: C, run: F) -> (SocketAddr, Running)
where
    F: FnOnce(C, tokio::net::TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(run(config, listener, shutdown));
    (address, Running { name, trigger, task })
}

async fn channel(address: SocketAddr) -> Channel {
    let started = Instant::now();
    loop {
        match Channel::from_shared(format!("http://{address}")).unwrap().connect().await {
            Ok(channel) => return channel,
            Err(error) => {
                assert!(started.elapsed() < Duration::from_secs(60), "{address} did not come up: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, at most `WAIT`.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job's row in the preprocess ledger: state, attempts, reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub state: String,
    pub attempts: i32,
    pub reason_code: Option<String>,
}

impl Stack {
    pub async fn start(pool: PgPool, options: Options) -> Self {
        let database_url = database_url(&pool);
        let prefix = format!("test-preprocess-{}", Uuid::new_v4().simple());
        let redis_config = RedisConfig {
            url: options.redis_url.clone(),
            key_prefix: prefix.clone(),
            ..RedisConfig::default()
        };
        let redis =
            ConnectionManager::new(redis::Client::open(options.redis_url.as_str()).unwrap()).await.unwrap();
        let objects = tempfile::tempdir().unwrap();
        let models = tempfile::tempdir().unwrap();
        copy_models(models.path());
        let mut services = Vec::new();

        let registry_config = tfesi_registry::Config {
            server: ServerConfig::on_port(0),
            database: database(&database_url),
            auth: tfesi_platform::AuthConfig::disabled(),
            ..tfesi_registry::Config::default()
        };
        let (registry_address, running) = spawn("registry", registry_config, tfesi_registry::run).await;
        services.push(running);

        let mut inference_config = tfesi_inference::Config {
            server: ServerConfig::on_port(0),
            repository_dir: models.path().to_path_buf(),
            default_model: "tfesi-test".to_owned(),
            auth: tfesi_platform::AuthConfig::disabled(),
            ..tfesi_inference::Config::default()
        };
        inference_config.runtime.sessions_per_model = 1;
        let (inference_address, running) = spawn("inference", inference_config, tfesi_inference::run).await;
        services.push(running);

        let mut ingest_config = tfesi_ingest::Config {
            server: ServerConfig::on_port(0),
            database: database(&database_url),
            redis: redis_config.clone(),
            auth: tfesi_platform::AuthConfig::disabled(),
            ..tfesi_ingest::Config::default()
        };
        ingest_config.storage.root = objects.path().to_path_buf();
        ingest_config.relay.republish_after_s = options.republish_after_s;
        ingest_config.dicom.enabled = false;
        let (ingest_address, running) = spawn("ingest", ingest_config, tfesi_ingest::run).await;
        services.push(running);

        // Ready: the registry answers, inference has a champion.
        let mut registry_client = RegistryClient::new(channel(registry_address).await);
        wait_for("the registry", || {
            let mut client = registry_client.clone();
            async move { client.list_label_rules(registry::ListLabelRulesRequest {}).await.ok() }
        })
        .await;
        let mut inference_client = InferenceClient::new(channel(inference_address).await);
        wait_for("an inference champion", || {
            let mut client = inference_client.clone();
            async move {
                let models = client.list_models(inference::ListModelsRequest::default()).await.ok()?;
                models.into_inner().champion
            }
        })
        .await;
        if options.shadow {
            inference_client
                .set_shadow(inference::SetShadowRequest {
                    target: Some(inference::set_shadow_request::Target::Model(model("1"))),
                    reason: "pipeline test".to_owned(),
                })
                .await
                .expect("shadow set");
        }
        let _ = &mut registry_client;
        let _ = channel(ingest_address).await;

        let mut stack = Self {
            pool,
            redis,
            redis_url: options.redis_url,
            prefix,
            objects,
            _models: models,
            database_url,
            worker: options.worker,
            ingest: ingest_address,
            inference: inference_address,
            registry: registry_address,
            preprocess: None,
            services,
            preprocess_service: None,
        };
        if options.start_preprocess {
            stack.start_preprocess().await;
        }
        stack
    }

    /// The preprocess configuration of this stack.
    pub fn preprocess_config(&self) -> tfesi_preprocess::Config {
        let mut config = tfesi_preprocess::Config {
            server: ServerConfig::on_port(0),
            database: database(&self.database_url),
            redis: RedisConfig {
                url: self.redis_url.clone(),
                key_prefix: self.prefix.clone(),
                ..RedisConfig::default()
            },
            worker: self.worker.clone(),
            auth: tfesi_platform::AuthConfig::disabled(),
            ..tfesi_preprocess::Config::default()
        };
        config.storage.root = self.objects.path().to_path_buf();
        config.upstream.ingest = format!("http://{}", self.ingest);
        config.upstream.inference = format!("http://{}", self.inference);
        config.upstream.registry = format!("http://{}", self.registry);
        config
    }

    /// Starts tfesi-preprocess (API and worker).
    pub async fn start_preprocess(&mut self) {
        let (address, running) = spawn("preprocess", self.preprocess_config(), tfesi_preprocess::run).await;
        let _ = channel(address).await;
        self.preprocess = Some(address);
        self.preprocess_service = Some(running);
    }

    /// Stops tfesi-preprocess (SIGTERM-like), bounded.
    pub async fn stop_preprocess(&mut self) {
        if let Some(running) = self.preprocess_service.take() {
            stop(running).await;
        }
        self.preprocess = None;
    }

    pub async fn preprocess_client(&self) -> PreprocessClient<Channel> {
        PreprocessClient::new(channel(self.preprocess.expect("preprocess is running")).await)
            .max_decoding_message_size(64 << 20)
    }

    pub async fn registry_client(&self) -> RegistryClient<Channel> {
        RegistryClient::new(channel(self.registry).await)
    }

    /// The job stream key.
    pub fn stream_key(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Stores the T2 sagittal series of synthetic patient `seed` through ingest's library and
    /// completes the study, which writes the job to the outbox.
    pub async fn ingest_study(&self, seed: u64) -> PipelineJob {
        let ingestor = Ingestor::new(
            self.pool.clone(),
            ObjectStore::open(self.objects.path()).unwrap(),
            ParseLimits::default(),
        )
        .await
        .unwrap();
        let study = tokio::task::spawn_blocking(move || {
            tfesi_synth::generate_patient(seed, 0, &Default::default()).unwrap()
        })
        .await
        .unwrap();
        let mut study_id = None;
        for file in
            study.files.iter().filter(|file| file.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal)
        {
            if let InstanceOutcome::Stored { study_id: id, .. } =
                ingestor.ingest(Bytes::from(file.bytes.clone())).await.unwrap()
            {
                study_id = Some(id);
            }
        }
        let (_, job) =
            complete_study(&self.pool, study_id.expect("stored"), &SelectionRules::default()).await.unwrap();
        job.expect("a series was selected")
    }

    /// Creates a treatment episode linked to the study.
    pub async fn link_episode(&self, study_id: &str) {
        let mut client = self.registry_client().await;
        client
            .create_episode(registry::CreateEpisodeRequest {
                idempotency_key: Uuid::new_v4().to_string(),
                details: Some(registry::EpisodeDetails {
                    patient_id: Uuid::new_v4().to_string(),
                    study_id: study_id.to_owned(),
                    indication: common::Indication::HerniatedDisc as i32,
                    planned_levels: vec![common::SpinalLevel::L4L5 as i32],
                    planned_side: common::Side::Left as i32,
                    baseline_leg_nrs: 7,
                    baseline_back_nrs: Some(4),
                    symptom_duration_days: 40,
                    age_years: 61,
                    sex: common::Sex::Female as i32,
                    baseline_date: None,
                }),
            })
            .await
            .expect("episode created");
    }

    /// Publishes every due outbox job now (as the relay does) and returns how many outbox jobs
    /// have been published at least once. The in-process ingest runs its own relay, which may
    /// have published a job first: either way each job reaches the stream once from the outbox.
    /// The relay may also hold a job's row (`FOR UPDATE SKIP LOCKED`) at the moment this runs,
    /// so this skips it and the relay's commit lands a moment later: the count is read once no
    /// unconfirmed row is left unpublished (a CI rehearsal caught the count read in between, 0 for 1).
    pub async fn publish(&self) -> usize {
        let config = tfesi_ingest::outbox::RelayConfig {
            stream_key: self.stream_key(),
            republish_after: Duration::from_secs(3600),
            ..tfesi_ingest::outbox::RelayConfig::default()
        };
        let mut redis = self.redis.clone();
        tfesi_ingest::outbox::publish_due(&self.pool, &mut redis, &config).await.unwrap();
        wait_for("every outbox job published by this call or by ingest's relay", || async {
            let (published, waiting): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE published_at IS NOT NULL),
                        count(*) FILTER (WHERE published_at IS NULL AND confirmed_at IS NULL)
                 FROM ingest.outbox",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            (waiting == 0).then(|| usize::try_from(published).unwrap())
        })
        .await
    }

    /// Adds a job to the stream directly.
    pub async fn add_job(&self, job: &PipelineJob) {
        let mut redis = self.redis.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.stream_key())
            .arg("*")
            .arg("job_id")
            .arg(&job.job_id)
            .arg("payload")
            .arg(serde_json::to_string(job).unwrap())
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    pub async fn ledger(&self, job_id: &str) -> Option<Ledger> {
        let row: Option<(String, i32, Option<String>)> = sqlx::query_as(
            "SELECT state, attempts, reason_code FROM preprocess.jobs WHERE job_id = $1::uuid",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
        .unwrap();
        row.map(|(state, attempts, reason_code)| Ledger { state, attempts, reason_code })
    }

    /// Waits until the job reaches `state` in the ledger.
    pub async fn wait_state(&self, job_id: &str, state: &str) -> Ledger {
        wait_for(&format!("job {job_id} to be {state}"), || async {
            self.ledger(job_id).await.filter(|ledger| ledger.state == state)
        })
        .await
    }

    /// (model version, role) of every prediction the registry stored for a job.
    pub async fn predictions(&self, job_id: &str) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT model_version, model_role FROM registry.predictions WHERE job_id::text = $1 ORDER BY model_role",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Entries of the group not yet acknowledged.
    pub async fn pending(&self) -> i64 {
        let mut redis = self.redis.clone();
        let reply: redis::RedisResult<redis::Value> =
            redis::cmd("XPENDING").arg(self.stream_key()).arg("preprocess").query_async(&mut redis).await;
        match reply {
            Ok(redis::Value::Array(items)) => match items.first() {
                Some(redis::Value::Int(count)) => *count,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Stops everything and deletes this stack's Redis keys.
    pub async fn stop(mut self) {
        self.stop_preprocess().await;
        while let Some(running) = self.services.pop() {
            stop(running).await;
        }
        let mut redis = self.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        for key in keys {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query_async(&mut redis).await;
        }
    }
}

async fn stop(running: Running) {
    running.trigger.trigger();
    match tokio::time::timeout(Duration::from_secs(30), running.task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => panic!("{} failed: {error:#}", running.name),
        Ok(Err(join)) => panic!("{} panicked: {join}", running.name),
        Err(_) => panic!("{} did not stop within 30 s", running.name),
    }
}

pub fn model(version: &str) -> common::ModelRef {
    common::ModelRef { name: "tfesi-test".to_owned(), version: version.to_owned() }
}

/// A Redis server of the test's own (for FLUSHALL), killed when dropped.
pub struct PrivateRedis {
    child: std::process::Child,
    pub url: String,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/setup.sh)");
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str()).unwrap();
        wait_for("the private redis", || {
            let client = client.clone();
            async move { client.get_multiplexed_async_connection().await.ok().map(|_| ()) }
        })
        .await;
        Self { child, url }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
