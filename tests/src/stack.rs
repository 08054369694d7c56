//! The whole platform as four real binaries sharing one fresh database, one Redis key prefix
//! and one object store directory: what the pipeline, CLI and fault tests run against.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tfesi_auth::{AuthConfig, Role, TokenSource};
use tfesi_platform::client::Outgoing;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::process::ServiceProcess;
use crate::{drop_database, unique_database, wait_for_health};

/// A channel whose calls carry a token of the stack.
pub type AuthChannel = InterceptedService<Channel, Outgoing>;

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
/// The model the test stacks serve: `tfesi-test`, small, untrained and fast, with fixed weights
/// (the trained default model, `tfesi-cnn`, has its own test in `tests/tests/bundled_model.rs`).
pub const TEST_MODEL: &str = "tfesi-test";

/// The repository's model directory (`models/`).
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
    /// The HS256 secret every service of this stack accepts tokens from.
    auth_secret_file: PathBuf,
    /// How each service was started, to start it again after a kill.
    launches: Vec<Launch>,
    /// Logs of service processes that were killed and replaced, oldest first.
    earlier_logs: Vec<(&'static str, String)>,
    /// The Redis of ingest and preprocess.
    redis_url: String,
}

/// The binary and environment a service was started with.
struct Launch {
    name: &'static str,
    binary: &'static str,
    env: Vec<(String, String)>,
}

/// The Redis every stack uses unless told otherwise (shared by the tests of this machine: never
/// flush or restart it; use [`crate::redis_server::RedisServer`] for that).
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Options of [`Stack::start_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StackOptions<'a> {
    /// Extra settings, as for [`Stack::start`].
    pub settings: &'a [Setting<'a>],
    /// The Redis of ingest and preprocess; [`SHARED_REDIS_URL`] when `None`.
    pub redis_url: Option<&'a str>,
    /// A bundled model (`models/<name>`, e.g. the shipped `tfesi-cnn`) to copy beside
    /// [`TEST_MODEL`] and serve as the champion; [`TEST_MODEL`] when `None`.
    pub default_model: Option<&'a str>,
}

/// Extra settings for one service, e.g. `("preprocess", "WORKER__MAX_ATTEMPTS", "2")`.
pub type Setting<'a> = (&'a str, &'a str, &'a str);

fn common_env(
    service: &str,
    secret: &Path,
    database: &str,
    (redis_url, prefix): (&str, &str),
    settings: &[Setting<'_>],
) -> Vec<(String, String)> {
    let upper = format!("TFESI_{}__", service.to_ascii_uppercase());
    let mut env = vec![
        (format!("{upper}AUTH__HS256_SECRET_FILE"), secret.display().to_string()),
        (format!("{upper}TELEMETRY__LOG_FORMAT"), "json".to_owned()),
        (format!("{upper}DATABASE__URL"), format!("postgres://postgres@127.0.0.1:5432/{database}")),
        (format!("{upper}REDIS__URL"), redis_url.to_owned()),
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
        Self::start_with(StackOptions { settings, ..StackOptions::default() }).await
    }

    /// Starts the four services with `options` (e.g. a private Redis) and waits until each is
    /// SERVING.
    pub async fn start_with(options: StackOptions<'_>) -> Self {
        let settings = options.settings;
        let redis_url = options.redis_url.unwrap_or(SHARED_REDIS_URL);
        let database = unique_database("tfesi_stack");
        let redis_prefix = database.clone();
        let dir = tempfile::tempdir().expect("stack directory");
        let objects = dir.path().join("objects");
        let models = dir.path().join("models");
        let default_model = options.default_model.unwrap_or(TEST_MODEL);
        for model in [TEST_MODEL, default_model] {
            if !models.join(model).exists() {
                copy_tree(&bundled_models().join(model), &models.join(model));
            }
        }
        // Tokens are checked as in production: HS256 with a secret of this stack.
        let secret = dir.path().join("hs256.secret");
        std::fs::write(&secret, format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()))
            .expect("write the stack's secret");

        let mut ingest_env = common_env("ingest", &secret, &database, (redis_url, &redis_prefix), settings);
        ingest_env.push(("TFESI_INGEST__STORAGE__ROOT".to_owned(), objects.display().to_string()));
        let dicom_address: SocketAddr =
            format!("127.0.0.1:{}", crate::free_port()).parse().expect("DICOM address");
        ingest_env.push(("TFESI_INGEST__DICOM__LISTEN".to_owned(), dicom_address.to_string()));
        let ingest = ServiceProcess::start("tfesi-ingest", "ingest", &ingest_env);
        let mut launches = vec![Launch { name: "ingest", binary: "tfesi-ingest", env: ingest_env }];
        let mut registry_env =
            common_env("registry", &secret, &database, (redis_url, &redis_prefix), settings);
        registry_env.retain(|(key, _)| !key.contains("__REDIS__"));
        let registry = ServiceProcess::start("tfesi-registry", "registry", &registry_env);
        launches.push(Launch { name: "registry", binary: "tfesi-registry", env: registry_env });
        let mut inference_env = vec![
            ("TFESI_INFERENCE__TELEMETRY__LOG_FORMAT".to_owned(), "json".to_owned()),
            ("TFESI_INFERENCE__REPOSITORY_DIR".to_owned(), models.display().to_string()),
            ("TFESI_INFERENCE__DEFAULT_MODEL".to_owned(), default_model.to_owned()),
        ];
        inference_env.extend(
            common_env("inference", &secret, &database, (redis_url, &redis_prefix), settings)
                .into_iter()
                .filter(|(key, _)| {
                    !key.contains("__REDIS__") && !key.contains("__DATABASE__") && !key.contains("LOG_FORMAT")
                }),
        );
        let inference = ServiceProcess::start("tfesi-inference", "inference", &inference_env);
        launches.push(Launch { name: "inference", binary: "tfesi-inference", env: inference_env });

        let mut preprocess_env =
            common_env("preprocess", &secret, &database, (redis_url, &redis_prefix), settings);
        preprocess_env.extend([
            ("TFESI_PREPROCESS__STORAGE__ROOT".to_owned(), objects.display().to_string()),
            ("TFESI_PREPROCESS__UPSTREAM__INGEST".to_owned(), format!("http://{}", ingest.address)),
            ("TFESI_PREPROCESS__UPSTREAM__INFERENCE".to_owned(), format!("http://{}", inference.address)),
            ("TFESI_PREPROCESS__UPSTREAM__REGISTRY".to_owned(), format!("http://{}", registry.address)),
        ]);
        let preprocess = ServiceProcess::start("tfesi-preprocess", "preprocess", &preprocess_env);
        launches.push(Launch { name: "preprocess", binary: "tfesi-preprocess", env: preprocess_env });
        let stack = Self {
            ingest,
            dicom_address,
            inference,
            registry,
            preprocess,
            database,
            redis_prefix,
            dir,
            auth_secret_file: secret,
            launches,
            earlier_logs: Vec::new(),
            redis_url: redis_url.to_owned(),
        };
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

    /// The HS256 secret the services of this stack accept.
    pub fn auth_secret_file(&self) -> &Path {
        &self.auth_secret_file
    }

    /// A token of this stack for `subject` with `roles`, valid for an hour.
    pub fn token(&self, subject: &str, roles: &[Role]) -> String {
        let secret = std::fs::read(&self.auth_secret_file).expect("the stack's secret");
        tfesi_auth::mint_hs256(&secret, &AuthConfig::default(), subject, roles, 3600).expect("mint a token")
    }

    /// A channel to a service whose calls carry an operator's token (roles admin and service).
    pub async fn channel(&self, address: SocketAddr) -> AuthChannel {
        let token = self.token("e2e-operator", &[Role::Admin, Role::Service]);
        InterceptedService::new(Self::plain_channel(address).await, Outgoing::new(TokenSource::fixed(token)))
    }

    /// A channel without credentials.
    pub async fn plain_channel(address: SocketAddr) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("connect to a service of the stack")
    }

    /// Runs `tfesi demo` for `patients` synthetic patients generated from `seed` against this
    /// stack (half the studies over C-STORE, half over gRPC; it waits for every prediction,
    /// then plays the follow-ups), with an operator's token; returns its JSON report. Panics
    /// with the stack's logs if it fails or outlasts `within`.
    pub async fn run_demo(&self, patients: u64, seed: u64, within: Duration) -> serde_json::Value {
        let url = |process: &ServiceProcess| format!("http://{}", process.address);
        let mut command = tokio::process::Command::new(crate::process::binary("tfesi"));
        command
            .args(["demo", "--patients", &patients.to_string(), "--seed", &seed.to_string()])
            .args(["--wait-s", &within.as_secs().saturating_sub(20).max(10).to_string(), "--json"])
            .args(["--ingest", &url(&self.ingest), "--preprocess", &url(&self.preprocess)])
            .args(["--inference", &url(&self.inference), "--registry", &url(&self.registry)])
            .args(["--dicom", &self.dicom_address.to_string()])
            .env_remove("TFESI_CONFIG")
            .env_remove("TFESI_AUTH_SECRET_FILE")
            // An operator's token, as a production operator would pass it.
            .env("TFESI_TOKEN", self.token("demo-operator", &[Role::Admin]))
            .kill_on_drop(true);
        let output = tokio::time::timeout(within, command.output())
            .await
            .unwrap_or_else(|_| panic!("tfesi demo did not finish within {within:?}; logs:\n{}", self.logs()))
            .expect("tfesi demo runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "tfesi demo failed: {stderr}\n{stdout}\nlogs:\n{}", self.logs());
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("tfesi demo printed no JSON ({e}): {stdout}"))
    }

    /// All logs, for assertion messages (killed processes first, marked so).
    pub fn logs(&self) -> String {
        let earlier =
            self.earlier_logs.iter().map(|(name, log)| format!("===== {name} (killed, replaced)\n{log}"));
        let current =
            self.services().into_iter().map(|(process, name)| format!("===== {name}\n{}", process.log()));
        earlier.chain(current).collect()
    }

    fn process_mut(&mut self, name: &str) -> &mut ServiceProcess {
        match name {
            "ingest" => &mut self.ingest,
            "registry" => &mut self.registry,
            "inference" => &mut self.inference,
            "preprocess" => &mut self.preprocess,
            other => panic!("no service `{other}` in the stack"),
        }
    }

    /// Kills service `name` (`ingest`, `registry`, `inference` or `preprocess`) with SIGKILL,
    /// by its own PID, and waits until it is gone; returns the PID killed. Start it again with
    /// [`Stack::restart`].
    pub fn kill(&mut self, name: &str) -> u32 {
        let process = self.process_mut(name);
        let pid = process.pid();
        let status = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -KILL {pid} ({name}) failed");
        process.wait_exit(Duration::from_secs(10));
        assert!(process.has_exited(), "{name} (pid {pid}) still runs after SIGKILL");
        pid
    }

    /// Stops service `name` with SIGTERM, by its own PID, and waits up to `within` for it to
    /// exit; returns its PID and exit code (`None`: killed by a signal or still running, which
    /// fails the caller's assertions). Start it again with [`Stack::restart`].
    pub fn terminate(&mut self, name: &str, within: Duration) -> (u32, Option<i32>) {
        let process = self.process_mut(name);
        let pid = process.pid();
        process.terminate();
        let code = process.wait_exit(within);
        (pid, code)
    }

    /// Starts service `name` again with the environment and address it first had (after
    /// [`Stack::kill`], or after it exited) and waits until it is SERVING. The old process's
    /// log stays in [`Stack::logs`].
    pub async fn restart(&mut self, name: &str) {
        let Some(launch) = self.launches.iter().find(|launch| launch.name == name) else {
            panic!("no service `{name}` in the stack");
        };
        let (name, binary, mut env) = (launch.name, launch.binary, launch.env.clone());
        let old = self.process_mut(name);
        assert!(old.has_exited(), "{name} still runs: kill it before restarting it");
        let address = old.address;
        env.push((format!("TFESI_{}__SERVER__LISTEN", name.to_ascii_uppercase()), address.to_string()));
        let mut fresh = ServiceProcess::start(binary, name, &env);
        fresh.address = address;
        let old = std::mem::replace(self.process_mut(name), fresh);
        self.earlier_logs.push((name, old.log()));
        drop(old);
        let status = wait_for_health(address, "", ServingStatus::Serving, START_WITHIN).await;
        assert_eq!(
            status,
            Some(ServingStatus::Serving),
            "{name} did not come back on {address}; logs:\n{}",
            self.logs()
        );
    }

    /// Deletes preprocess' cached tensors of this stack (`<prefix>:preprocess:tensor:*`, see
    /// services/preprocess/src/cache.rs), so the next Prepare of a series computes; returns how
    /// many there were.
    pub async fn clear_tensor_cache(&self) -> usize {
        self.delete_redis_keys(":preprocess:tensor:*").await.expect("delete the stack's cached tensors")
    }

    /// Deletes this stack's Redis keys matching `<prefix><pattern>`; returns how many there were.
    async fn delete_redis_keys(&self, pattern: &str) -> redis::RedisResult<usize> {
        let mut redis =
            redis::Client::open(self.redis_url.as_str())?.get_multiplexed_async_connection().await?;
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}{pattern}", self.redis_prefix)).query_async(&mut redis).await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await?;
        }
        Ok(keys.len())
    }

    /// After a panic caught around work on the stack: stops the services by PID (their guards),
    /// drops the stack's database, then resumes the panic, so that a failing bench leaves nothing
    /// behind.
    pub async fn abandon(self, panic: Box<dyn std::any::Any + Send>) -> ! {
        let database = self.database.clone();
        drop(self);
        crate::drop_database(&database).await;
        std::panic::resume_unwind(panic)
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
        // Best effort: a stack's keys are namespaced by its prefix, so leftovers harm no other test.
        let _ = self.delete_redis_keys("*").await;
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
