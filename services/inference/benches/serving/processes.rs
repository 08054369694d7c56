//! The servers under test as child processes on 127.0.0.1: the real `tfesi-inference` binary and
//! the Python baseline. Each is stopped by its PID (SIGTERM, then SIGKILL) when dropped, so an
//! error or a panic in the bench does not leave a server behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tfesi_inference::config::ProviderKind;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server; stopped on drop.
pub struct Server {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Server {
    /// Everything it wrote to its log so far (for error messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}) during the bench; its log:\n{}", self.name, self.log());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The services' log filter: `TFESI_BENCH_SERVICE_LOG_FILTER`, else `warn`. A trace of every
/// batch (rows, assembly and run time) is `warn,tfesi_inference::batcher=debug`.
fn service_log_filter() -> String {
    std::env::var("TFESI_BENCH_SERVICE_LOG_FILTER").unwrap_or_else(|_| "warn".to_owned())
}

fn log_file(dir: &Path, name: &str) -> (std::fs::File, PathBuf) {
    let path = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&path).expect("create a log file");
    (file, path)
}

/// Starts `tfesi-inference` on a free port, serving `repository` with HS256 tokens signed by
/// the secret in `secret_file`; `extra_env` adds or overrides `TFESI_INFERENCE__*` settings.
/// Returns once its health check says SERVING.
pub async fn start_inference(
    binary: &Path,
    name: &str,
    repository: &Path,
    secret_file: &Path,
    extra_env: &[(&str, &str)],
    log_dir: &Path,
) -> Server {
    let address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (log, log_path) = log_file(log_dir, name);
    let mut command = Command::new(binary);
    command
        .env_remove("TFESI_CONFIG")
        .env("TFESI_INFERENCE__SERVER__LISTEN", address.to_string())
        .env("TFESI_INFERENCE__REPOSITORY_DIR", repository)
        .env("TFESI_INFERENCE__DEFAULT_MODEL", "tfesi-test")
        .env("TFESI_INFERENCE__AUTH__HS256_SECRET_FILE", secret_file)
        .env("TFESI_INFERENCE__TELEMETRY__LOG_FILTER", service_log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log));
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let mut server = Server { name: name.to_owned(), child, log_path, address };
    wait_until_serving(&mut server).await;
    server
}

async fn wait_until_serving(server: &mut Server) {
    let started = Instant::now();
    let endpoint = format!("http://{}", server.address);
    while started.elapsed() < START_TIMEOUT {
        server.assert_running();
        if let Ok(channel) =
            tonic::transport::Endpoint::from_shared(endpoint.clone()).expect("endpoint").connect().await
        {
            let answer =
                HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
            if answer.is_ok_and(|answer| answer.into_inner().status() == ServingStatus::Serving) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} was not SERVING after {START_TIMEOUT:?}; its log:\n{}", server.name, server.log());
}

/// Starts `bench/inference/python_server.py` with `python` on a free port, serving the model in
/// `model_dir` on `provider` with a pool of `workers` threads; returns once it prints that it
/// listens.
pub fn start_python(
    python: &Path,
    script: &Path,
    model_dir: &Path,
    provider: ProviderKind,
    workers: usize,
    log_dir: &Path,
) -> Server {
    let port = free_port();
    let (log, log_path) = log_file(log_dir, "python-server");
    let mut child = Command::new(python)
        .arg(script)
        .arg("--model-dir")
        .arg(model_dir)
        .args(["--port", &port.to_string(), "--workers", &workers.to_string(), "--intra-op-threads", "1"])
        .args(["--provider", provider.as_str()])
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {} (run scripts/setup.sh): {error}", python.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let server =
        Server { name: "python server".to_owned(), child, log_path, address: ([127, 0, 0, 1], port).into() };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    match receiver.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.trim() == format!("ready {port}") => server,
        Ok(line) => panic!("python server said {line:?} instead of ready; its log:\n{}", server.log()),
        Err(_) => panic!("python server did not start in {START_TIMEOUT:?}; its log:\n{}", server.log()),
    }
}

/// Copies a directory tree (the model repository, so the service may write next to it).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the directory to copy") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
