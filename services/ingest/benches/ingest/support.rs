//! What every system of the ingest bench shares: the synthetic cohort, the storescu sender, the
//! scratch directory and databases, and the summary statistics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sqlx::{Connection as _, Executor as _, PgConnection};

/// How long one storescu association may take before it is killed (by its PID) and the run fails.
const STORESCU_WITHIN: Duration = Duration::from_secs(300);

/// One synthetic patient's study: its Part 10 files on disk and in memory.
pub struct Study {
    /// The study's directory (what storescu is given).
    pub dir: PathBuf,
    /// Every file of the study: its path and its bytes.
    pub files: Vec<(PathBuf, Bytes)>,
}

impl Study {
    /// Total file bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, bytes)| bytes.len() as u64).sum()
    }
}

/// Generates patients `first..first + count` of `seed` into `out` (two threads: the cohort
/// costs about 1.5 CPU-seconds per patient).
pub fn generate_cohort(out: &Path, seed: u64, first: u32, count: u32) -> Vec<Study> {
    let indexes: Vec<u32> = (first..first + count).collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, 4);
    let per_thread = indexes.len().div_ceil(threads).max(1);
    let mut studies: Vec<(u32, Study)> = std::thread::scope(|scope| {
        let workers: Vec<_> = indexes
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&index| (index, write_patient(out, seed, index)))
                        .collect::<Vec<(u32, Study)>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("a cohort thread")).collect()
    });
    studies.sort_by_key(|(index, _)| *index);
    studies.into_iter().map(|(_, study)| study).collect()
}

fn write_patient(out: &Path, seed: u64, index: u32) -> Study {
    let patient = tfesi_synth::generate_patient(seed, index, &tfesi_synth::PatientOptions::default())
        .expect("a synthetic patient");
    tfesi_synth::write_study(out, &patient).expect("write the synthetic study");
    let files: Vec<(PathBuf, Bytes)> = patient
        .files
        .into_iter()
        .map(|file| (out.join(file.relative_path(index)), Bytes::from(file.bytes)))
        .collect();
    Study { dir: out.join(format!("studies/{index:04}")), files }
}

/// The MR storage classes the cohort uses and the transfer syntaxes it is written in: storescu
/// proposes each file's own transfer syntax, so nothing is transcoded on the way.
const SOP_CLASSES: [&str; 2] = ["1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1"];

/// Writes a storescu association profile (one presentation context per SOP class and transfer
/// syntax) into `dir`; the same profile is used against both receivers.
pub fn storescu_profile(dir: &Path) -> PathBuf {
    let syntaxes: Vec<&str> =
        tfesi_synth::protocol::TransferSyntaxKind::ALL.iter().map(|kind| kind.uid()).collect();
    let mut text = String::from("[[TransferSyntaxes]]\n");
    for (index, syntax) in syntaxes.iter().enumerate() {
        text.push_str(&format!("[TS{index}]\nTransferSyntax1 = {syntax}\n"));
    }
    text.push_str("[[PresentationContexts]]\n[Contexts]\n");
    let mut number = 0;
    for class in SOP_CLASSES {
        for index in 0..syntaxes.len() {
            number += 1;
            text.push_str(&format!("PresentationContext{number} = {class}\\TS{index}\n"));
        }
    }
    text.push_str("[[Profiles]]\n[BENCH]\nPresentationContexts = Contexts\n");
    let path = dir.join("storescu.cfg");
    std::fs::write(&path, text).expect("write the storescu profile");
    path
}

/// Sends every study with dcmtk's storescu to `address` (called AE title `called`), one
/// association (one storescu process) per study, `associations` of them at once. Panics with
/// storescu's output when one fails or reports a failed store.
pub async fn storescu(
    address: SocketAddr,
    called: &str,
    profile: &Path,
    studies: &[&Study],
    associations: usize,
) {
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(associations.max(1)));
    let mut tasks = Vec::new();
    for study in studies {
        let permit = std::sync::Arc::clone(&semaphore).acquire_owned().await.expect("semaphore");
        let mut command = tokio::process::Command::new("storescu");
        command
            .args(["-nh", "-aet", "BENCHSCU", "-aec", called, "-xf"])
            .arg(profile)
            .args(["BENCH", "+sd", "+r"])
            .arg(address.ip().to_string())
            .arg(address.port().to_string())
            .arg(&study.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("storescu starts (dcmtk; scripts/setup.sh installs it)");
        let dir = study.dir.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            // On the timeout the future, and with it the child, is dropped: kill_on_drop kills
            // that storescu by its PID.
            let output = tokio::time::timeout(STORESCU_WITHIN, child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("storescu of {} took over {STORESCU_WITHIN:?}", dir.display()))
                .expect("storescu output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                output.status.success() && !text.contains("E: "),
                "storescu of {} failed ({}):\n{text}",
                dir.display(),
                output.status
            );
        }));
    }
    for task in tasks {
        task.await.expect("a storescu task");
    }
}

/// The bench's scratch directory and the databases it created; all removed when dropped, also
/// on a panic.
pub struct Scratch {
    pub admin_url: String,
    pub dir: PathBuf,
    databases: Mutex<Vec<String>>,
}

impl Scratch {
    pub fn new(admin_url: &str, dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self { admin_url: admin_url.to_owned(), dir, databases: Mutex::new(Vec::new()) }
    }

    /// Creates a fresh database (remembered, to be dropped) and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        debug_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let mut admin = PgConnection::connect(&self.admin_url).await.expect("connect to Postgres");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a bench database");
        self.databases.lock().expect("database list").push(name.to_owned());
        let (server, _) = self.admin_url.rsplit_once('/').expect("the admin URL names a database");
        format!("{server}/{name}")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let databases = std::mem::take(&mut *self.databases.lock().unwrap_or_else(|e| e.into_inner()));
        let admin_url = self.admin_url.clone();
        // Drop runs outside the runtime's tasks: a small runtime of its own, on its own thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                let mut dropped = 0;
                for database in &databases {
                    let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                    if conn.execute(sqlx::AssertSqlSafe(sql)).await.is_ok() {
                        dropped += 1;
                    }
                }
                (dropped == databases.len()).then_some(dropped)
            })
        })
        .join();
        match dropped {
            Ok(Some(count)) => eprintln!("ingest: dropped {count} bench databases"),
            _ => eprintln!("ingest: could not drop every tfesi_bench_ingest_* database; drop them by hand"),
        }
    }
}

/// A unique name stem for this run's databases and Redis keys.
pub fn unique_stem() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("tfesi_bench_ingest_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Polls `probe` until it answers or `within` passes.
pub async fn wait_until<F, Fut, T>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(answer) = probe().await {
            return Some(answer);
        }
        if started.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CPU seconds (user + system) process `pid` has used so far, from /proc (USER_HZ is 100 on
/// Linux); NaN when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // The command name may hold spaces: the fields after it start past the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}
