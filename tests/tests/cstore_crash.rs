//! C-STORE crash (RELIABILITY.md): dcmtk's `storescu` sends a synthetic cohort's instances to
//! the real `tfesi-ingest`, which is SIGKILLed part way. After a restart nothing partial or
//! orphaned is left (no `.partial` file, no row without its object), and sending everything again
//! succeeds without a duplicate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tfesi_e2e::process::ServiceProcess;
use tfesi_e2e::{drop_database, free_port, unique_database, wait_for_health};
use tonic_health::pb::health_check_response::ServingStatus;

/// Patients of the cohort sent (about 200 instances in all).
const PATIENTS: u32 = 4;

struct Ingest {
    database: String,
    objects: PathBuf,
    secret: PathBuf,
    dicom: std::net::SocketAddr,
}

impl Ingest {
    fn start(&self) -> ServiceProcess {
        let env = [
            ("TFESI_INGEST__DATABASE__URL", format!("postgres://postgres@127.0.0.1:5432/{}", self.database)),
            ("TFESI_INGEST__REDIS__KEY_PREFIX", self.database.clone()),
            ("TFESI_INGEST__STORAGE__ROOT", self.objects.display().to_string()),
            ("TFESI_INGEST__DICOM__LISTEN", self.dicom.to_string()),
            ("TFESI_INGEST__AUTH__HS256_SECRET_FILE", self.secret.display().to_string()),
        ];
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        ServiceProcess::start("tfesi-ingest", "ingest", &env)
    }
}

/// Writes the cohort's files (explicit little endian, which storescu proposes by default).
fn write_cohort(dir: &Path) -> Vec<PathBuf> {
    let options = tfesi_synth::PatientOptions {
        transfer_syntax: Some(tfesi_synth::protocol::TransferSyntaxKind::ExplicitLittle),
        ..Default::default()
    };
    let mut files = Vec::new();
    for index in 0..PATIENTS {
        let patient = tfesi_synth::generate_patient(2026, index, &options).expect("synthetic patient");
        for (n, file) in patient.files.iter().enumerate() {
            let path = dir.join(format!("p{index}-{n:04}.dcm"));
            std::fs::write(&path, &file.bytes).expect("write instance");
            files.push(path);
        }
    }
    files
}

async fn storescu(dicom: std::net::SocketAddr, dir: &Path) -> tokio::process::Child {
    tokio::process::Command::new("storescu")
        .args(["-aet", "CRASHSCU", "-aec", "TFESI", "+sd", "+r", "-nh"])
        .arg(dicom.ip().to_string())
        .arg(dicom.port().to_string())
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("storescu (dcmtk, installed by scripts/setup.sh) runs")
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect("count")
}

/// Every stored object file under the store (not tmp/).
fn object_files(root: &Path) -> HashSet<String> {
    let mut names = HashSet::new();
    for prefix in std::fs::read_dir(root).expect("store") {
        let prefix = prefix.expect("entry");
        if prefix.file_name() == "tmp" || !prefix.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(prefix.path()).expect("prefix dir") {
            let name = file.expect("entry").file_name().to_string_lossy().into_owned();
            names.insert(name.trim_end_matches(".dcm").to_owned());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_association_leaves_nothing_partial_and_a_resend_completes() {
    let work = tempfile::tempdir().expect("tempdir");
    let files_dir = work.path().join("files");
    std::fs::create_dir_all(&files_dir).expect("dir");
    let files = write_cohort(&files_dir);
    let secret = work.path().join("secret");
    std::fs::write(&secret, format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()))
        .expect("secret");
    let ingest = Ingest {
        database: unique_database("tfesi_cstore_crash"),
        objects: work.path().join("objects"),
        secret,
        dicom: format!("127.0.0.1:{}", free_port()).parse().expect("address"),
    };

    let mut process = ingest.start();
    let serving = wait_for_health(process.address, "", ServingStatus::Serving, Duration::from_secs(60)).await;
    assert_eq!(serving, Some(ServingStatus::Serving), "ingest did not start:\n{}", process.log());
    let pool = PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", ingest.database))
        .await
        .expect("database");

    // Kill the receiver once a quarter of the instances are stored, while storescu is sending.
    let started = Instant::now();
    let mut sender = storescu(ingest.dicom, &files_dir).await;
    let quarter = i64::try_from(files.len() / 4).expect("count");
    loop {
        let stored = count(&pool, "SELECT count(*) FROM ingest.instances").await;
        if stored >= quarter {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {stored} stored after 2 minutes:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill").args(["-KILL", &process.pid().to_string()]).status();
    assert!(killed.is_ok_and(|status| status.success()), "kill -KILL");
    let stored_at_kill = count(&pool, "SELECT count(*) FROM ingest.instances").await;
    let first_try =
        tokio::time::timeout(Duration::from_secs(60), sender.wait()).await.expect("storescu ends");
    assert!(!first_try.expect("status").success(), "storescu must notice the receiver died");
    assert!(process.wait_exit(Duration::from_secs(10)).is_none(), "killed by a signal");

    // Restart: partial files of the dead process are swept; every row has its object.
    let process = ingest.start();
    let serving = wait_for_health(process.address, "", ServingStatus::Serving, Duration::from_secs(60)).await;
    assert_eq!(serving, Some(ServingStatus::Serving), "ingest did not restart:\n{}", process.log());
    let partials: Vec<_> = std::fs::read_dir(ingest.objects.join("tmp")).expect("tmp").collect();
    assert!(partials.is_empty(), "partial files survived the restart: {partials:?}");
    let referenced: Vec<String> = sqlx::query_scalar("SELECT object_sha256 FROM ingest.instances")
        .fetch_all(&pool)
        .await
        .expect("rows");
    let on_disk = object_files(&ingest.objects);
    let missing: Vec<&String> = referenced.iter().filter(|sha| !on_disk.contains(*sha)).collect();
    assert!(missing.is_empty(), "rows without their object after the crash: {missing:?}");

    // Send everything again: accepted (duplicates are success), each instance stored once.
    let resend = storescu(ingest.dicom, &files_dir).await.wait_with_output().await.expect("storescu");
    assert!(
        resend.status.success(),
        "the resend failed:\n{}{}\n{}",
        String::from_utf8_lossy(&resend.stdout),
        String::from_utf8_lossy(&resend.stderr),
        process.log()
    );
    let instances = count(&pool, "SELECT count(*) FROM ingest.instances").await;
    let quarantined = count(&pool, "SELECT count(*) FROM ingest.quarantine").await;
    let distinct_objects = count(&pool, "SELECT count(DISTINCT object_sha256) FROM ingest.instances").await;
    assert_eq!(
        usize::try_from(instances + quarantined).expect("count"),
        files.len(),
        "every instance stored or quarantined exactly once ({instances} stored, {quarantined} quarantined)"
    );
    assert_eq!(distinct_objects, instances, "one object per instance");
    let referenced: HashSet<String> = sqlx::query_scalar("SELECT object_sha256 FROM ingest.instances")
        .fetch_all(&pool)
        .await
        .expect("rows")
        .into_iter()
        .collect();
    let orphans: Vec<String> = object_files(&ingest.objects).difference(&referenced).cloned().collect();
    assert!(orphans.is_empty(), "object files no row refers to: {orphans:?}");
    println!(
        "c-store crash: {} instances, {stored_at_kill} stored when the receiver was killed, \
         {instances} stored + {quarantined} quarantined after the resend, 0 duplicates, 0 orphans ({:.1} s)",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    drop(process);
    drop_database(&ingest.database).await;
}
