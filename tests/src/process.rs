//! Child processes of the real binaries, with their output captured to a file and a guard that
//! kills them by PID.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory holding the workspace's binaries (`target/debug`), found from this test
/// executable's own path (`target/debug/deps/<test>`).
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// The path of a workspace binary, with a message saying how to build it when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A memory figure of process `pid` in MB (kB / 1024, as /proc counts), from the `field` line of
/// `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`, `VmHWM`...); `None` when the process is
/// gone or has no such line.
pub fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resident memory of process `pid` in MB (VmRSS); `None` when it is gone.
pub fn rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmRSS")
}

/// A running service binary. Killed (SIGKILL) on drop unless it already exited.
pub struct ServiceProcess {
    child: Child,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
    /// The gRPC address it was told to listen on.
    pub address: SocketAddr,
}

impl ServiceProcess {
    /// Starts `binary` (e.g. `tfesi-registry`) for service `name` (e.g. `registry`) on a free
    /// port with the given extra environment (`KEY=value` pairs, e.g. the database URL).
    pub fn start(binary_name: &str, service: &str, env: &[(String, String)]) -> Self {
        let log_dir = tempfile::tempdir().expect("temp dir for logs");
        let log_path = log_dir.path().join(format!("{binary_name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let log_err = log.try_clone().expect("log file handle");
        let port = crate::free_port();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let prefix = format!("TFESI_{}__", service.to_ascii_uppercase());
        let mut command = Command::new(binary(binary_name));
        command
            .env(format!("{prefix}SERVER__LISTEN"), address.to_string())
            .env(format!("{prefix}SERVER__DRAIN_TIMEOUT_MS"), "10000")
            .env(format!("{prefix}TELEMETRY__LOG_FILTER"), "info")
            .env_remove("TFESI_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("service binary starts");
        Self { child, log_path, _log_dir: log_dir, address }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `within` for the process to exit; returns its exit code (None: still running
    /// or killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
