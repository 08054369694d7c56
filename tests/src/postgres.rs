//! A private, real PostgreSQL cluster for one test, so that a test may crash Postgres
//! (`pg_ctl stop -m immediate`) without touching the machine's shared server on port 5432, which
//! other tests use.
//!
//! The cluster is made with the machine's own binaries (`/usr/lib/postgresql/<version>/bin`, the
//! highest version that has `initdb`; `TFESI_PG_BIN` overrides the directory): `initdb` with trust
//! authentication and superuser `postgres` into a temporary directory, then `pg_ctl start` on a
//! free port of 127.0.0.1 with its Unix socket in that directory and `fsync=on` (a crash test
//! must not be flattered by a server that skips fsync). Nothing listens beyond loopback.
//!
//! Postgres refuses to run as root. When the test runs as root (`id -u` is 0, as on the
//! development machine and in CI containers), the directory is handed to the `postgres` system
//! account (`chown`) and every Postgres binary runs through `runuser -u postgres --`; otherwise the
//! binaries run as the current user.
//!
//! Every wait is bounded. On drop the server is stopped (`-m immediate`: its data is thrown away
//! anyway) and the directory removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long `pg_ctl start` may take, crash recovery included.
const START_WITHIN: Duration = Duration::from_secs(60);

/// A running (or deliberately stopped) private Postgres cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Creates the cluster and starts it; panics with the tool's output when that fails.
    pub fn start_new() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new().prefix("tfesi-pg-").tempdir().expect("temp dir for postgres");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of {} to postgres failed", dir.path().display());
        }
        let cluster = Self { bin, dir, port: crate::free_port(), as_postgres };
        let data = cluster.data_dir();
        let output = cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                // The initial sync of a throw-away cluster; the server itself runs with fsync=on.
                "--no-sync",
            ],
        );
        assert!(output.status.success(), "initdb failed:\n{}", text(&output));
        cluster.start();
        cluster
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server, as superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Starts the server (after [`PgCluster::stop_immediate`]: crash recovery runs) and waits
    /// until it accepts connections on its TCP port.
    pub fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on -c synchronous_commit=on",
            self.port,
            self.dir.path().display()
        );
        let output = self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                &START_WITHIN.as_secs().to_string(),
                "-D",
                &self.data_dir().display().to_string(),
                "-l",
                &self.log_file().display().to_string(),
                "-o",
                &options,
            ],
        );
        assert!(output.status.success(), "pg_ctl start failed:\n{}\nlog:\n{}", text(&output), self.log());
        let started = Instant::now();
        loop {
            let ready = self.run(
                "pg_isready",
                &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-t", "2"],
            );
            if ready.status.success() {
                return;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "postgres on port {} does not accept connections:\n{}\nlog:\n{}",
                self.port,
                text(&ready),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`: no checkpoint, every
    /// connection cut; the next start replays the WAL).
    pub fn stop_immediate(&self) {
        let output = self.run(
            "pg_ctl",
            &["stop", "-w", "-t", "30", "-m", "immediate", "-D", &self.data_dir().display().to_string()],
        );
        assert!(output.status.success(), "pg_ctl stop failed:\n{}", text(&output));
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Runs one of the Postgres binaries (as `postgres` when we are root) in the cluster's
    /// directory, so that the `postgres` account never needs access to our working directory.
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .output()
            .unwrap_or_else(|error| panic!("{} cannot run: {error}", program.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Best effort: the directory goes with the TempDir either way.
        let _ = self.run(
            "pg_ctl",
            &["stop", "-w", "-t", "30", "-m", "immediate", "-D", &self.data_dir().display().to_string()],
        );
    }
}

/// Whether this process runs as root (`id -u` is 0).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The directory of the Postgres binaries: `TFESI_PG_BIN`, or the highest
/// `/usr/lib/postgresql/<version>/bin` that holds `initdb`.
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TFESI_PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries under {}: install postgresql, or set TFESI_PG_BIN",
            root.display()
        )
    })
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
