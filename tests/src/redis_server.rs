//! A private, real `redis-server` for tests that flush or restart Redis: the machine's shared
//! Redis (127.0.0.1:6379) serves other tests and must never be flushed or restarted.
//!
//! It listens on 127.0.0.1 only, on a free port, keeps nothing on disk (`--save ""
//! --appendonly no`, so a restart comes back empty, as after losing the node), and is stopped by
//! its own PID (SIGKILL) when asked and when the guard drops.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// How long a start may take before the test fails.
const START_WITHIN: Duration = Duration::from_secs(20);

/// Ports tried by [`RedisServer::start`] when the chosen one is taken before redis binds it.
const PORT_TRIES: u32 = 5;

/// Why a start failed.
enum StartFailure {
    /// Another process bound the port first.
    PortTaken,
    /// Anything else, described with the server's log.
    Other(String),
}

/// A running private Redis.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    starts: u32,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and waits until it answers PING. The port is
    /// free when chosen but can be taken before redis binds it (by any process's outgoing
    /// connection, say): then it tries another, up to five ports.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("directory of the private redis");
        let mut server = Self { child: None, port: crate::free_port(), dir, starts: 0 };
        for _ in 1..PORT_TRIES {
            match server.try_spawn() {
                Ok(()) => return server,
                Err(StartFailure::PortTaken) => server.port = crate::free_port(),
                Err(StartFailure::Other(message)) => panic!("{message}"),
            }
        }
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id of the running server (None while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server (SIGKILL, by its own PID) and reaps it. Everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a fresh, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends one command (inline protocol) and returns the first line of the reply, e.g.
    /// `+OK` for `FLUSHALL`.
    pub fn command(&self, line: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.address(), Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{line}\r\n").as_bytes())?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while reply.len() < 4096 {
            stream.read_exact(&mut byte)?;
            if byte[0] == b'\n' {
                break;
            }
            reply.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }

    /// `FLUSHALL`: every key of every database is gone (streams, consumer groups, caches).
    pub fn flushall(&self) {
        let reply = self.command("FLUSHALL").expect("FLUSHALL reaches the private redis");
        assert_eq!(reply, "+OK", "FLUSHALL answered {reply}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        match self.try_spawn() {
            Ok(()) => {}
            Err(StartFailure::PortTaken) => {
                panic!("redis-server could not bind {}: in use; its log:\n{}", self.address(), self.log())
            }
            Err(StartFailure::Other(message)) => panic!("{message}"),
        }
    }

    fn try_spawn(&mut self) -> Result<(), StartFailure> {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: install Debian's redis-server"
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file of the private redis");
        let log_err = log.try_clone().expect("log file handle");
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--logfile", "", "--dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.starts += 1;
        let started = Instant::now();
        loop {
            if self.command("PING").is_ok_and(|reply| reply == "+PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self.log();
                // Only this start's lines: the log is appended to across restarts.
                let this_start = log.rsplit("Redis is starting").next().unwrap_or_default();
                if this_start.contains("Address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                return Err(StartFailure::Other(format!(
                    "redis-server exited at start ({status}); its log:\n{log}"
                )));
            }
            if started.elapsed() >= START_WITHIN {
                return Err(StartFailure::Other(format!(
                    "redis-server (start {}) did not answer PING on {} within {START_WITHIN:?}; its log:\n{}",
                    self.starts,
                    self.address(),
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
