//! `tfesi dev`: the embedded development stack. All four services in one process, each on its
//! own port and still spoken to over gRPC, against the local Postgres and Redis, with a
//! filesystem object store under the data directory and the bundled model repository.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tfesi_platform::{ServiceConfig, Shutdown, TelemetryConfig};

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

/// A service of the stack: its name, its configuration, and how to start it.
struct Member {
    name: &'static str,
    listen: std::net::SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts every service, prints the endpoints, and runs until SIGTERM or SIGINT.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    let ingest: tfesi_ingest::Config = tfesi_platform::config::load("ingest", None)?;
    let preprocess: tfesi_preprocess::Config = tfesi_platform::config::load("preprocess", None)?;
    let inference: tfesi_inference::Config = tfesi_platform::config::load("inference", None)?;
    let registry: tfesi_registry::Config = tfesi_platform::config::load("registry", None)?;
    let ingest = ingest.for_development(&data_dir);
    let preprocess = preprocess.for_development(&data_dir);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let telemetry_config = TelemetryConfig { log_filter: args.log.clone(), ..ingest.telemetry().clone() };
        let telemetry = tfesi_platform::telemetry::Telemetry::init("tfesi-dev", &telemetry_config)?;
        let (trigger, shutdown) = Shutdown::new();

        // Registry and inference first: the pipeline worker calls them.
        let mut members = Vec::new();
        members.push(start(registry, shutdown.clone(), tfesi_registry::run).await?);
        members.push(start(inference, shutdown.clone(), tfesi_inference::run).await?);
        members.push(start(ingest, shutdown.clone(), tfesi_ingest::run).await?);
        members.push(start(preprocess, shutdown.clone(), tfesi_preprocess::run).await?);

        println!("tfesi dev: the stack is starting (Ctrl-C stops it)");
        println!("  data directory  {}", data_dir.display());
        for member in &members {
            println!("  {:<11} grpc://{}", member.name, member.listen);
        }
        println!("  check health with: tfesi status");

        let mut first_failure = None;
        let mut pending: Vec<_> = members.into_iter().map(|member| (member.name, member.task)).collect();
        tokio::select! {
            () = tfesi_platform::shutdown::os_signal() => {}
            (result, index, _) = futures_select_all(&mut pending) => {
                let (name, _finished) = pending.remove(index);
                first_failure = Some(match result {
                    Ok(Ok(())) => anyhow::anyhow!("{name} stopped unexpectedly"),
                    Ok(Err(error)) => error.context(format!("{name} failed")),
                    Err(join) => anyhow::anyhow!("{name} panicked: {join}"),
                });
            }
        }
        trigger.trigger();
        for (name, task) in pending {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(service = name, error = %format!("{error:#}"), "stopped with an error")
                }
                Err(join) => tracing::warn!(service = name, %join, "task ended abnormally"),
            }
        }
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

/// Waits for the first task of `tasks` to finish, without taking the others.
async fn futures_select_all(
    tasks: &mut [(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)],
) -> (Result<anyhow::Result<()>, tokio::task::JoinError>, usize, ()) {
    std::future::poll_fn(|cx| {
        for (index, (_, task)) in tasks.iter_mut().enumerate() {
            if let std::task::Poll::Ready(result) = std::pin::Pin::new(task).poll(cx) {
                return std::task::Poll::Ready((result, index, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}
