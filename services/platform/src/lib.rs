//! The platform every TFESI service stands on: configuration, telemetry, the gRPC server
//! (health, reflection, limits, timeouts, drain), Postgres, Redis, and shutdown.
//!
//! It holds no domain types. A service binary is one call:
//!
//! ```ignore
//! tfesi_platform::service_allocator!();
//!
//! fn main() -> std::process::ExitCode {
//!     tfesi_platform::run_main::<tfesi_registry::Config, _, _>(tfesi_registry::run)
//! }
//! ```
//!
//! and the service's `run(config, listener, shutdown)` connects what it needs, registers
//! health checks and serves its gRPC services through [`server::GrpcServer`].

pub mod audit;

#[doc(hidden)]
pub use tikv_jemallocator;

/// Declares the service allocator (jemalloc) as the binary's global allocator; every service
/// binary calls it once at the top of `main.rs`. glibc's malloc keeps freed memory of its
/// per-thread arenas and fragments under the large short-lived buffers a service handles
/// (a 2.9 MB tensor per row, batches of them): the resident memory of `tfesi-inference` kept
/// climbing by steps (+52 MB over the last two thirds of `tests/tests/memory.rs`, 272 MB peak),
/// where jemalloc stays flat (154 MB peak, no growth) at the same speed.
///
/// jemalloc's settings come with it (`_RJEM_MALLOC_CONF` in the environment overrides them): a
/// background thread returns freed pages to the kernel about a second after they were freed. By
/// default jemalloc purges only when the process allocates again, so a service that fell idle
/// after a burst kept it: `tfesi-preprocess` held 178 MB five seconds after a 20-patient load
/// (19.5 MB idle before it), and 29 MB with these settings (`bench/run.sh memory`).
#[macro_export]
macro_rules! service_allocator {
    () => {
        #[global_allocator]
        static SERVICE_ALLOCATOR: $crate::tikv_jemallocator::Jemalloc = $crate::tikv_jemallocator::Jemalloc;

        // Read by jemalloc (built with the `_rjem_` symbol prefix) at its first allocation.
        #[used]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static SERVICE_MALLOC_CONF: &[u8; 60] =
            b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
    };
}
pub mod client;
pub mod config;
pub mod db;
pub mod health;
pub mod jobs;
pub mod objects;
pub mod redis;
pub mod server;
pub mod shed;
pub mod shutdown;
pub mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

pub use config::{
    ClientTlsConfig, ConfigError, DatabaseConfig, RedisConfig, ServerConfig, ServerTlsConfig,
    TelemetryConfig, Validate,
};
pub use health::Health;
pub use server::GrpcServer;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use tfesi_auth::{AuthConfig, AuthMode};

/// What the generic `main` needs to know about a service's configuration.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default + Validate + Send + 'static {
    /// Short name: `ingest`, `preprocess`, `inference`, `registry`. Selects the environment
    /// prefix `TFESI_<NAME>__` and the binary name `tfesi-<name>`.
    const NAME: &'static str;

    /// The gRPC listener settings.
    fn server(&self) -> &ServerConfig;

    /// The telemetry settings.
    fn telemetry(&self) -> &TelemetryConfig;

    /// Who may call (the `auth` section).
    fn auth(&self) -> &AuthConfig;
}

/// The command line every service binary accepts.
#[derive(Debug, Default)]
pub struct MainArgs {
    /// `--config FILE` (or `TFESI_CONFIG`): a TOML file layered over the defaults.
    pub config_file: Option<PathBuf>,
    /// `--print-config`: print the effective configuration as TOML and exit.
    pub print_config: bool,
}

impl MainArgs {
    /// Parses `std::env::args`; `Err` carries the message for a bad command line.
    pub fn from_env() -> Result<Self, String> {
        let mut parsed = MainArgs {
            config_file: std::env::var_os("TFESI_CONFIG").map(PathBuf::from),
            print_config: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => {
                    let path = args.next().ok_or("--config needs a file path")?;
                    parsed.config_file = Some(PathBuf::from(path));
                }
                "--print-config" => parsed.print_config = true,
                "--help" | "-h" => {
                    return Err("usage: [--config FILE] [--print-config]\n  environment: TFESI_<SERVICE>__<SECTION>__<KEY>=value overrides any key".to_owned());
                }
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; usage: [--config FILE] [--print-config]"
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// Loads the configuration, starts telemetry and the metrics endpoint, binds the listener,
/// runs `run` until SIGTERM or SIGINT, then flushes telemetry. Errors print as one line.
pub fn run_main<C, F, Fut>(run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let binary = format!("tfesi-{}", C::NAME);
    let args = match MainArgs::from_env() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{binary}: {message}");
            return ExitCode::from(2);
        }
    };
    let config: C = match config::load(C::NAME, args.config_file.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{binary}: {error}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        return match toml::to_string_pretty(&config) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{binary}: cannot print the configuration: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{binary}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let telemetry = telemetry::Telemetry::init(&binary, config.telemetry())?;
        let (trigger, shutdown) = Shutdown::new();
        let signals = tokio::spawn(async move {
            shutdown::os_signal().await;
            trigger.trigger();
        });
        let served = start_and_run(config, shutdown, run).await;
        signals.abort();
        telemetry.shutdown().await;
        served
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tfesi-{}: {error:#}", C::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn start_and_run<C, F, Fut>(config: C, shutdown: Shutdown, run: F) -> anyhow::Result<()>
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if let Some(metrics_address) = config.telemetry().metrics_listen {
        // The registry is process-global through the meter provider installed by init.
        let bound = telemetry::serve_metrics(metrics_address, telemetry_registry(), shutdown.clone()).await?;
        tracing::info!(address = %bound, "metrics endpoint listening");
    }
    let listener = server::bind(
        config.server().listen,
        &format!("TFESI_{}__SERVER__LISTEN", C::NAME.to_ascii_uppercase()),
    )
    .await?;
    run(config, listener, shutdown).await
}

static PROMETHEUS_REGISTRY: std::sync::OnceLock<prometheus::Registry> = std::sync::OnceLock::new();

/// The Prometheus registry of this process (set by [`telemetry::Telemetry::init`]).
pub fn telemetry_registry() -> prometheus::Registry {
    PROMETHEUS_REGISTRY.get_or_init(prometheus::Registry::new).clone()
}
