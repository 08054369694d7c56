//! `tfesi dev`: the embedded development stack. All four services in one process, each on its
//! own port and still spoken to over gRPC, against the local Postgres and Redis, with a
//! filesystem object store under the data directory and the bundled model repository.
//!
//! [`EmbeddedStack`] is the stack itself, also started by `tfesi demo` when no stack answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use tfesi_platform::{ServiceConfig, Shutdown, ShutdownTrigger, TelemetryConfig};

/// Options of `tfesi dev`. Every service key can still be set through its environment
/// variables (`TFESI_<SERVICE>__<SECTION>__<KEY>`), which win over these flags.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the object store and other local state live.
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// Log filter for the whole process (tracing-subscriber syntax).
    #[arg(long, default_value = "info")]
    log: String,
}

/// The four services' configurations for a development stack under one data directory.
pub struct StackConfigs {
    /// The data directory, canonical.
    pub data_dir: PathBuf,
    /// Ingest (object store under the data directory).
    pub ingest: tfesi_ingest::Config,
    /// Preprocess (same object store).
    pub preprocess: tfesi_preprocess::Config,
    /// Inference.
    pub inference: tfesi_inference::Config,
    /// Registry.
    pub registry: tfesi_registry::Config,
    /// The development HS256 secret every service accepts, when `tfesi dev` manages it.
    pub auth_secret_file: Option<PathBuf>,
}

impl StackConfigs {
    /// Creates `data_dir` if needed and loads every service's configuration (defaults, then the
    /// `TFESI_<SERVICE>__...` environment), with the development object store under it.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let data_dir = std::fs::canonicalize(data_dir)?;
        let ingest: tfesi_ingest::Config = tfesi_platform::config::load("ingest", None)?;
        let preprocess: tfesi_preprocess::Config = tfesi_platform::config::load("preprocess", None)?;
        let inference: tfesi_inference::Config = tfesi_platform::config::load("inference", None)?;
        let registry: tfesi_registry::Config = tfesi_platform::config::load("registry", None)?;
        let inference = development_models(inference, &data_dir)?;
        let mut configs = Self {
            ingest: ingest.for_development(&data_dir),
            preprocess: preprocess.for_development(&data_dir),
            inference,
            registry,
            auth_secret_file: None,
            data_dir,
        };
        configs.use_development_secret()?;
        Ok(configs)
    }

    /// Where no service has keys configured, every service accepts tokens signed with one
    /// development secret kept under the data directory (created on first use, mode 0600), so
    /// the development stack checks tokens like production does and `tfesi` commands mint
    /// theirs from the same file.
    fn use_development_secret(&mut self) -> anyhow::Result<()> {
        let unconfigured = |auth: &tfesi_platform::AuthConfig| {
            auth.mode == tfesi_platform::AuthMode::Jwt
                && auth.hs256_secret_file.is_none()
                && auth.public_key_file.is_none()
                && auth.jwks_file.is_none()
        };
        let auths = [&self.ingest.auth, &self.preprocess.auth, &self.inference.auth, &self.registry.auth];
        if !auths.into_iter().all(unconfigured) {
            return Ok(());
        }
        let path = self.data_dir.join(crate::endpoints::DEV_SECRET);
        if !path.is_file() {
            write_secret(&path)?;
        }
        for auth in [
            &mut self.ingest.auth,
            &mut self.preprocess.auth,
            &mut self.inference.auth,
            &mut self.registry.auth,
        ] {
            auth.hs256_secret_file = Some(path.clone());
        }
        self.auth_secret_file = Some(path);
        Ok(())
    }
}

/// The development stack's model repository: `<data_dir>/models`, holding a copy of every
/// bundled model version (`models/` of the checkout) that it does not have yet, so registering,
/// promoting or rolling back models in development (which writes `state.json` and new versions)
/// never writes into the checkout, and a bundled version added later (a pull) still arrives.
/// Applies only while `repository_dir` is the default and the checkout's `models/` is here.
fn development_models(
    mut inference: tfesi_inference::Config,
    data_dir: &Path,
) -> anyhow::Result<tfesi_inference::Config> {
    let bundled = tfesi_inference::Config::default().repository_dir;
    if inference.repository_dir != bundled || !bundled.is_dir() {
        return Ok(inference);
    }
    let repository = data_dir.join("models");
    sync_models(&bundled, &repository)?;
    inference.repository_dir = repository;
    Ok(inference)
}

/// Copies into `repository` every model version of `bundled` it does not have; returns how many.
fn sync_models(bundled: &Path, repository: &Path) -> anyhow::Result<usize> {
    let mut copied = 0;
    for name in std::fs::read_dir(bundled).with_context(|| format!("cannot read {}", bundled.display()))? {
        let name = name?;
        if !name.file_type()?.is_dir() {
            continue;
        }
        for version in std::fs::read_dir(name.path())? {
            let version = version?;
            let target = repository.join(name.file_name()).join(version.file_name());
            if version.file_type()?.is_dir() && !target.exists() {
                copy_version(&version.path(), repository, &target)?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

/// Copies one model version directory (flat: model.onnx, model.json and what lies beside them)
/// to `to` through a temporary directory at the repository's root (a name the repository never
/// reads as a model), so a half-copied version is never seen as installed.
fn copy_version(from: &Path, repository: &Path, to: &Path) -> anyhow::Result<()> {
    let parent = to.parent().context("a model version has a parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let partial = repository.join(format!(".copying-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    for file in std::fs::read_dir(from)? {
        let file = file?;
        if file.file_type()?.is_file() {
            std::fs::copy(file.path(), partial.join(file.file_name()))
                .with_context(|| format!("cannot copy {}", file.path().display()))?;
        }
    }
    std::fs::rename(&partial, to).with_context(|| format!("cannot install {}", to.display()))?;
    Ok(())
}

/// Writes a fresh random HS256 secret (64 hex characters) readable only by its owner.
fn write_secret(path: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let secret: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the development secret {}", path.display()))?;
    file.write_all(hex::encode(secret).as_bytes())?;
    Ok(())
}

/// A service of the stack: its name, where it listens, and its task.
struct Member {
    name: &'static str,
    listen: SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The four services running as tasks of the current Tokio runtime.
pub struct EmbeddedStack {
    members: Vec<Member>,
    trigger: ShutdownTrigger,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where ingest's DICOM receiver listens (when enabled).
    pub dicom: Option<(SocketAddr, String)>,
    /// The development secret the services accept (when the stack manages one).
    pub auth_secret_file: Option<PathBuf>,
    /// The nurse desk, served when the stack manages the secret it mints tokens with.
    pub desk: Option<crate::dev_desk::DevDesk>,
}

impl EmbeddedStack {
    /// Binds every gRPC listener and spawns the services (registry and inference first: the
    /// pipeline worker calls them). Fails when a port is taken.
    pub async fn start(configs: StackConfigs) -> anyhow::Result<Self> {
        let StackConfigs { data_dir, ingest, preprocess, inference, registry, auth_secret_file } = configs;
        let dicom = ingest.dicom.enabled.then(|| (ingest.dicom.listen, ingest.dicom.ae_title.clone()));
        let (trigger, shutdown) = Shutdown::new();
        let mut stack = Self { members: Vec::new(), trigger, data_dir, dicom, auth_secret_file, desk: None };
        stack.members.push(start(registry, shutdown.clone(), tfesi_registry::run).await?);
        stack.members.push(start(inference, shutdown.clone(), tfesi_inference::run).await?);
        stack.members.push(start(ingest, shutdown.clone(), tfesi_ingest::run).await?);
        stack.members.push(start(preprocess, shutdown.clone(), tfesi_preprocess::run).await?);
        if let (Some(secret), Some(registry), Some(ingest)) =
            (stack.auth_secret_file.clone(), stack.address("registry"), stack.address("ingest"))
        {
            // The desk is a convenience of the development stack: a busy port leaves it out.
            match crate::dev_desk::start(&stack.data_dir, &secret, registry, ingest, shutdown).await {
                Ok(desk) => stack.desk = Some(desk),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "the nurse desk is not served"),
            }
        }
        Ok(stack)
    }

    /// Each service's name and gRPC address.
    pub fn endpoints(&self) -> Vec<(&'static str, SocketAddr)> {
        self.members.iter().map(|member| (member.name, member.listen)).collect()
    }

    /// The gRPC address of `name`.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        self.members.iter().find(|member| member.name == name).map(|member| member.listen)
    }

    /// Waits until a service stops (which it only does on failure while the stack runs) and
    /// returns why; the service is no longer part of the stack.
    pub async fn first_failure(&mut self) -> anyhow::Error {
        let (result, index) = std::future::poll_fn(|cx| {
            for (index, member) in self.members.iter_mut().enumerate() {
                if let std::task::Poll::Ready(result) = std::pin::Pin::new(&mut member.task).poll(cx) {
                    return std::task::Poll::Ready((result, index));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        let name = self.members.remove(index).name;
        describe_exit(name, result)
    }

    /// The failure of a service that already stopped, without waiting.
    pub async fn failure_now(&mut self) -> Option<anyhow::Error> {
        if self.members.iter().any(|member| member.task.is_finished()) {
            Some(self.first_failure().await)
        } else {
            None
        }
    }

    /// Triggers the graceful shutdown and waits for every service; errors are logged.
    pub async fn stop(self) {
        self.trigger.trigger();
        if let Some(desk) = self.desk
            && let Ok(Err(error)) = desk.task.await
        {
            tracing::warn!(error = %format!("{error:#}"), "the desk stopped with an error");
        }
        for member in self.members {
            match member.task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(service = member.name, error = %format!("{error:#}"), "stopped with an error")
                }
                Err(join) => tracing::warn!(service = member.name, %join, "task ended abnormally"),
            }
        }
    }
}

fn describe_exit(
    name: &'static str,
    result: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Error {
    match result {
        Ok(Ok(())) => anyhow::anyhow!("{name} stopped unexpectedly"),
        Ok(Err(error)) => error.context(format!("{name} failed")),
        Err(join) => anyhow::anyhow!("{name} panicked: {join}"),
    }
}

/// Starts every service, prints the endpoints, and runs until SIGTERM or SIGINT.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let configs = StackConfigs::load(&args.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let telemetry_config =
            TelemetryConfig { log_filter: args.log.clone(), ..configs.ingest.telemetry().clone() };
        let telemetry = tfesi_platform::telemetry::Telemetry::init("tfesi-dev", &telemetry_config)?;
        let mut stack = EmbeddedStack::start(configs).await?;

        println!("tfesi dev: the stack is starting (Ctrl-C stops it)");
        println!("  data directory  {}", stack.data_dir.display());
        for (name, listen) in stack.endpoints() {
            println!("  {name:<11} grpc://{listen}");
        }
        if let Some(secret) = &stack.auth_secret_file {
            println!("  auth            tokens signed with {} (tfesi commands use it)", secret.display());
        }
        if let Some(desk) = &stack.desk {
            println!(
                "  nurse desk      http://{} (user nurse, password in {})",
                desk.listen,
                desk.password_file.display()
            );
        }
        println!("  check health with: tfesi status");

        let mut first_failure = None;
        tokio::select! {
            () = tfesi_platform::shutdown::os_signal() => {}
            error = stack.first_failure() => first_failure = Some(error),
        }
        stack.stop().await;
        telemetry.shutdown().await;
        match first_failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    })
}

async fn start<C, F, Fut>(config: C, shutdown: Shutdown, run: F) -> anyhow::Result<Member>
where
    C: ServiceConfig,
    F: FnOnce(C, tokio::net::TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let key = format!("TFESI_{}__SERVER__LISTEN", C::NAME.to_ascii_uppercase());
    let listener = tfesi_platform::server::bind(config.server().listen, &key).await?;
    let listen = listener.local_addr()?;
    let task = tokio::spawn(run(config, listener, shutdown));
    Ok(Member { name: C::NAME, listen, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn bundled_versions_are_copied_once_and_never_overwritten() {
        let bundled = tempfile::tempdir().expect("tempdir");
        let repository = tempfile::tempdir().expect("tempdir");
        let (bundled, repository) = (bundled.path(), repository.path().join("models"));
        write(&bundled.join("tfesi-cnn/a/model.json"), "card a");
        write(&bundled.join("tfesi-cnn/a/model.onnx"), "onnx a");
        write(&bundled.join("tfesi-cnn/README.md"), "not a version");
        write(&bundled.join("tfesi-test/1/model.json"), "card 1");

        assert_eq!(sync_models(bundled, &repository).expect("sync"), 2);
        assert_eq!(
            std::fs::read_to_string(repository.join("tfesi-cnn/a/model.onnx")).expect("copied"),
            "onnx a"
        );
        assert!(!repository.join("tfesi-cnn/README.md").exists(), "only version directories");

        // What development wrote is kept; a version added to the checkout later arrives.
        write(&repository.join("tfesi-cnn/a/model.json"), "changed in development");
        write(&bundled.join("tfesi-cnn/b/model.json"), "card b");
        assert_eq!(sync_models(bundled, &repository).expect("sync"), 1);
        assert_eq!(
            std::fs::read_to_string(repository.join("tfesi-cnn/a/model.json")).expect("kept"),
            "changed in development"
        );
        assert!(repository.join("tfesi-cnn/b/model.json").is_file());
        let leftovers: Vec<_> = std::fs::read_dir(&repository)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "no temporary directory left: {leftovers:?}");
    }
}
