//! Follow-ups recorded per second with durable commit: the real `tfesi-registry` binary over gRPC
//! on 127.0.0.1 beside pgbench running the equivalent insert (one follow-up-like row plus one
//! event row per transaction) on the same Postgres, in the same database, with the same number of
//! concurrent clients and the same number of transactions, in alternating rounds. A third system,
//! pgbench with the same script plus an audit-chain append under one advisory lock held to commit
//! (how `tfesi_platform::audit::append` chained before migration 0401), shows what serializing
//! every write costs, and why records are now chained after the commit; a fourth,
//! pgbench running the registry's whole RecordFollowUp transaction statement for statement, shows
//! what the transaction itself allows without gRPC, auth or Rust in the way.
//! Prints tables; writes bench/results/registry-followups.json.
//!
//! Run (release build; cargo builds the service binary too):
//!   cargo bench -p tfesi-registry --bench followups
//! Knobs: TFESI_BENCH_ROUNDS (3), TFESI_BENCH_FOLLOW_UPS (per system and round, 1000),
//! TFESI_BENCH_CLIENTS (8), TFESI_BENCH_MAX_SECONDS (no new round after this, 300),
//! TFESI_BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres, the server to use),
//! TFESI_BENCH_PGBENCH (default: the newest /usr/lib/postgresql/*/bin/pgbench),
//! TFESI_BENCH_RESULTS (output directory, default bench/results).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike as _, Days, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};
use tfesi_auth::{AuthConfig, Role, TokenSource};
use tfesi_e2e::bench::{Spread, env_or, machine, percentile, postgres_durability};
use tfesi_e2e::process::ServiceProcess;
use tfesi_e2e::wait_for_health;
use tfesi_platform::client::Outgoing;
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

type Client = RegistryClient<InterceptedService<Channel, Outgoing>>;

/// The target of issue 7: ours at least this share of pgbench's rate.
const TARGET_RATIO: f64 = 0.5;
/// How long the registry may take to answer after start (it applies its migrations first).
const START_WITHIN: Duration = Duration::from_secs(60);
/// Per request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

struct Settings {
    rounds: usize,
    follow_ups: usize,
    clients: usize,
    max_duration: Duration,
    admin_url: String,
}

impl Settings {
    fn from_env() -> Self {
        let clients = env_or("TFESI_BENCH_CLIENTS", 8).max(1);
        Self {
            rounds: env_or("TFESI_BENCH_ROUNDS", 3).max(1),
            // A multiple of the clients, so pgbench's `-t` gives the same total.
            follow_ups: env_or("TFESI_BENCH_FOLLOW_UPS", 1000).max(clients).div_ceil(clients) * clients,
            clients,
            max_duration: Duration::from_secs(env_or("TFESI_BENCH_MAX_SECONDS", 300) as u64),
            admin_url: std::env::var("TFESI_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        }
    }
}

/// The checkout's root (two levels above this crate).
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).expect("the crate sits at services/registry").to_path_buf()
}

/// pgbench: TFESI_BENCH_PGBENCH, else the newest PostgreSQL's under /usr/lib/postgresql, else PATH.
fn pgbench() -> PathBuf {
    if let Some(path) = std::env::var_os("TFESI_BENCH_PGBENCH") {
        return PathBuf::from(path);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let path = entry.path().join("bin/pgbench");
            path.exists().then_some((version, path))
        })
        .collect();
    found.sort();
    found.pop().map_or_else(|| PathBuf::from("pgbench"), |(_, path)| path)
}

/// The URL of `database` on the admin URL's server.
fn database_url(admin_url: &str, database: &str) -> String {
    let (server, _) = admin_url.rsplit_once('/').expect("the admin URL names a database");
    format!("{server}/{database}")
}

/// A fresh 256-bit HS256 secret, hex encoded.
fn random_secret() -> String {
    let mut bytes = [0_u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"), &mut bytes)
        .expect("random bytes");
    hex::encode(bytes)
}

/// The bench's database and scratch directory; both removed when dropped, also on panic.
struct Scratch {
    admin_url: String,
    database: String,
    dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Drop runs outside the runtime's tasks: a small runtime of its own.
        let admin_url = self.admin_url.clone();
        let database = self.database.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                conn.execute(sqlx::AssertSqlSafe(sql)).await.ok()
            })
        })
        .join();
        match dropped {
            Ok(Some(_)) => eprintln!("followups: dropped database {}", self.database),
            _ => eprintln!("followups: could not drop database {}; drop it by hand", self.database),
        }
    }
}

/// One system's run in one round.
#[derive(Debug, Clone)]
struct Run {
    /// Transactions (follow-ups) per second.
    rate: f64,
    /// Latency percentiles in microseconds (ours: each request; pgbench: its average only).
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    mean_us: f64,
}

fn proto_date(day: NaiveDate) -> common::Date {
    let number = |value: u32| i32::try_from(value).expect("month and day are small");
    common::Date { year: day.year(), month: number(day.month()), day: number(day.day()) }
}

fn client(address: SocketAddr, token: &str) -> Client {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .connect_lazy();
    RegistryClient::new(InterceptedService::new(channel, Outgoing::new(TokenSource::fixed(token.to_owned()))))
}

/// Panics with its log when the registry has exited.
fn assert_running(registry: &mut ServiceProcess) {
    assert!(!registry.has_exited(), "tfesi-registry exited during the bench; its log:\n{}", registry.log());
}

/// Creates `count` episodes with their injections on `injection_date`, with `clients` callers;
/// returns the episode ids.
async fn seed(
    address: SocketAddr,
    token: &str,
    clients: usize,
    count: usize,
    injection_date: NaiveDate,
    tag: &str,
) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = Arc::clone(&next);
        let mut client = client(address, token);
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut seeded = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= count {
                    return seeded;
                }
                let details = registry::EpisodeDetails {
                    patient_id: uuid::Uuid::new_v4().to_string(),
                    study_id: String::new(),
                    indication: common::Indication::HerniatedDisc as i32,
                    planned_levels: vec![common::SpinalLevel::L4L5 as i32],
                    planned_side: common::Side::Left as i32,
                    baseline_leg_nrs: 8,
                    baseline_back_nrs: Some(5),
                    symptom_duration_days: 60,
                    age_years: 55,
                    sex: common::Sex::Female as i32,
                    baseline_date: None,
                };
                let episode = client
                    .create_episode(registry::CreateEpisodeRequest {
                        idempotency_key: format!("bench-{tag}-episode-{index}"),
                        details: Some(details),
                    })
                    .await
                    .expect("CreateEpisode")
                    .into_inner()
                    .episode
                    .expect("an episode");
                let injection = registry::InjectionDetails {
                    injection_date: Some(proto_date(injection_date)),
                    levels: vec![common::SpinalLevel::L4L5 as i32],
                    side: common::Side::Left as i32,
                    approach: registry::Approach::Subpedicular as i32,
                    guidance: registry::Guidance::Fluoroscopy as i32,
                    contrast_used: true,
                    drug_code: "dexamethasone".to_owned(),
                    drug_text: "dexamethasone 10 mg".to_owned(),
                    dose_mg: 10.0,
                    local_anaesthetic: "lidocaine 1% 2 mL".to_owned(),
                };
                client
                    .record_injection(registry::RecordInjectionRequest {
                        idempotency_key: format!("bench-{tag}-injection-{index}"),
                        episode_id: episode.episode_id.clone(),
                        injection: Some(injection),
                    })
                    .await
                    .expect("RecordInjection");
                seeded.push(episode.episode_id);
            }
        }));
    }
    let mut episodes = Vec::with_capacity(count);
    for task in tasks {
        episodes.extend(task.await.expect("a seeding task"));
    }
    episodes
}

/// Records one follow-up per episode with `clients` concurrent callers, each on its own
/// connection; every request carries an idempotency key.
async fn record(
    address: SocketAddr,
    token: &str,
    clients: usize,
    episodes: Vec<String>,
    follow_up_date: NaiveDate,
    tag: &str,
) -> Run {
    let episodes = Arc::new(episodes);
    let next = Arc::new(AtomicUsize::new(0));
    let mut callers: Vec<Client> = (0..clients).map(|_| client(address, token)).collect();
    // Connect every caller before the clock starts.
    for caller in &mut callers {
        let _ = caller
            .get_episode(registry::GetEpisodeRequest { episode_id: uuid::Uuid::new_v4().to_string() })
            .await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut caller in callers {
        let episodes = Arc::clone(&episodes);
        let next = Arc::clone(&next);
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(episode_id) = episodes.get(index) else {
                    return latencies;
                };
                let methods = [
                    registry::FollowUpMethod::Clinic,
                    registry::FollowUpMethod::Phone,
                    registry::FollowUpMethod::Message,
                ];
                let small = |value: usize| i32::try_from(value).expect("small");
                let request = registry::RecordFollowUpRequest {
                    idempotency_key: format!("bench-{tag}-follow-up-{index}"),
                    episode_id: episode_id.clone(),
                    follow_up: Some(registry::FollowUpInput {
                        follow_up_date: Some(proto_date(follow_up_date)),
                        leg_nrs: small(index % 11),
                        back_nrs: Some(small((index * 7) % 11)),
                        pgic: Some(small(1 + index % 7)),
                        analgesic_change: registry::AnalgesicChange::Unspecified as i32,
                        repeat_injection: None,
                        surgery: None,
                        adverse_events: Vec::new(),
                        adverse_event_note: String::new(),
                        method: methods[index % 3] as i32,
                        entered_by: format!("bench-nurse-{:02}", index % 13),
                        out_of_window: false,
                    }),
                };
                let sent = Instant::now();
                caller.record_follow_up(request).await.expect("RecordFollowUp");
                latencies.push(sent.elapsed().as_secs_f64() * 1e6);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(episodes.len());
    for task in tasks {
        latencies.extend(task.await.expect("a recording task"));
    }
    let wall = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    Run {
        rate: latencies.len() as f64 / wall.as_secs_f64().max(1e-9),
        p50_us: Some(percentile(&latencies, 0.5)),
        p99_us: Some(percentile(&latencies, 0.99)),
        mean_us: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
    }
}

/// The scratch schema of the baseline: `registry.follow_ups` and `registry.events` with the same
/// columns, types, keys, checks and indexes (no foreign key to an episode, no triggers), and an
/// audit table shaped as `audit.log` for the chained variant.
const BASELINE_SCHEMA: &str = r"
CREATE SCHEMA bench_pgbench;
CREATE TABLE bench_pgbench.follow_ups (
    follow_up_id            uuid PRIMARY KEY,
    episode_id              uuid NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    is_current              boolean NOT NULL,
    amendment_reason        text CHECK (length(amendment_reason) BETWEEN 1 AND 2000),
    follow_up_date          date NOT NULL,
    days_since_injection    integer NOT NULL CHECK (days_since_injection >= 0),
    in_window               boolean NOT NULL,
    out_of_window_accepted  boolean NOT NULL,
    leg_nrs                 smallint NOT NULL CHECK (leg_nrs BETWEEN 0 AND 10),
    back_nrs                smallint CHECK (back_nrs BETWEEN 0 AND 10),
    pgic                    smallint CHECK (pgic BETWEEN 1 AND 7),
    analgesic_change        text CHECK (analgesic_change IN ('none', 'decreased', 'unchanged', 'increased', 'stopped')),
    repeat_injection        boolean,
    surgery                 boolean,
    adverse_events          text[] NOT NULL DEFAULT '{}',
    adverse_event_note      text NOT NULL DEFAULT '' CHECK (length(adverse_event_note) <= 2000),
    method                  text NOT NULL CHECK (method IN ('clinic', 'phone', 'message')),
    entered_by              text NOT NULL CHECK (length(entered_by) BETWEEN 1 AND 200),
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (episode_id, version),
    CONSTRAINT amendment_has_reason CHECK ((version = 1) = (amendment_reason IS NULL)),
    CONSTRAINT out_of_window_needs_flag CHECK (in_window OR out_of_window_accepted)
);
CREATE UNIQUE INDEX follow_ups_one_current_idx ON bench_pgbench.follow_ups (episode_id) WHERE is_current;
CREATE TABLE bench_pgbench.events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    episode_id  uuid NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_episode_idx ON bench_pgbench.events (episode_id, event_id);
CREATE TABLE bench_pgbench.idempotency_keys (
    idempotency_key text NOT NULL,
    method          text NOT NULL,
    request_hash    bytea NOT NULL,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (method, idempotency_key)
);
CREATE TABLE bench_pgbench.episodes (
    episode_id      uuid PRIMARY KEY,
    outcome_status  text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_pgbench.audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    target      text NOT NULL,
    prev_hash   bytea,
    hash        bytea
);
";

/// One durable transaction: a version-1 follow-up row and its event row.
const PGBENCH_PLAIN: &str = r"\set leg random(0, 10)
\set back random(0, 10)
\set pgic random(1, 7)
BEGIN;
INSERT INTO bench_pgbench.follow_ups (follow_up_id, episode_id, version, is_current, amendment_reason, follow_up_date, days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change, repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by) VALUES (gen_random_uuid(), gen_random_uuid(), 1, true, NULL, current_date - 1, 60, true, false, :leg, :back, :pgic, NULL, NULL, NULL, '{}', '', 'phone', 'bench-nurse-01') RETURNING follow_up_id AS fid, episode_id AS eid \gset
INSERT INTO bench_pgbench.events (episode_id, kind, subject) VALUES (':eid', 'follow_up_recorded', ':fid');
END;
";

/// The same, plus an audit record chained to the previous one under a transaction-scoped
/// advisory lock held to commit: how `tfesi_platform::audit::append` worked before migration
/// 0401 (kept to show what that design cost).
const PGBENCH_CHAINED: &str = r"\set leg random(0, 10)
\set back random(0, 10)
\set pgic random(1, 7)
BEGIN;
INSERT INTO bench_pgbench.follow_ups (follow_up_id, episode_id, version, is_current, amendment_reason, follow_up_date, days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change, repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by) VALUES (gen_random_uuid(), gen_random_uuid(), 1, true, NULL, current_date - 1, 60, true, false, :leg, :back, :pgic, NULL, NULL, NULL, '{}', '', 'phone', 'bench-nurse-01') RETURNING follow_up_id AS fid, episode_id AS eid \gset
INSERT INTO bench_pgbench.events (episode_id, kind, subject) VALUES (':eid', 'follow_up_recorded', ':fid');
SELECT pg_advisory_xact_lock(8387502902387766628);
INSERT INTO bench_pgbench.audit (action, target, prev_hash, hash) SELECT 'follow_up_recorded', 'episode:' || ':eid', prev, sha256(prev || convert_to(':fid', 'UTF8')) FROM (SELECT coalesce((SELECT hash FROM bench_pgbench.audit ORDER BY id DESC LIMIT 1), '\x00'::bytea) AS prev) AS last;
END;
";

/// The registry's RecordFollowUp, statement for statement, on the scratch tables: one
/// autocommit statement that decides and writes the key with its answer, the follow-up, the
/// episode's completion (an episode row inserted as completed stands in for the update that
/// checks, locks and completes it; an event row stands in for the status history row), both
/// events and an audit record per event (unchained: chaining happens after the commit). No
/// explicit transaction, as the registry. Not included: the injection the registry's statement
/// joins, and the label rules it returns.
const PGBENCH_SHAPED: &str = r"\set leg random(0, 10)
\set back random(0, 10)
\set pgic random(1, 7)
WITH completed AS (INSERT INTO bench_pgbench.episodes (episode_id, outcome_status) VALUES (gen_random_uuid(), 'completed') RETURNING episode_id, 60 AS days, true AS in_window), claim AS (INSERT INTO bench_pgbench.idempotency_keys (idempotency_key, method, request_hash, response) SELECT gen_random_uuid()::text, 'RecordFollowUp', sha256('request'), jsonb_build_object('episode_id', episode_id, 'recorded_at', now(), 'days_since_injection', days, 'in_window', in_window) FROM completed), follow_up AS (INSERT INTO bench_pgbench.follow_ups (follow_up_id, episode_id, version, is_current, amendment_reason, follow_up_date, days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change, repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by) SELECT gen_random_uuid(), episode_id, 1, true, NULL, current_date - 1, days, in_window, false, :leg, :back, :pgic, NULL, NULL, NULL, '{}', '', 'phone', 'bench-nurse-01' FROM completed RETURNING follow_up_id, episode_id, recorded_at), history AS (INSERT INTO bench_pgbench.events (episode_id, kind, subject) SELECT episode_id, 'status_history', 'completed' FROM completed RETURNING event_id), events AS (INSERT INTO bench_pgbench.events (episode_id, kind, subject) SELECT episode_id, kind, subject FROM (SELECT 1 AS position, f.episode_id, 'follow_up_recorded' AS kind, f.follow_up_id::text AS subject FROM follow_up f UNION ALL SELECT 2, c.episode_id, 'status_changed', h.event_id::text FROM history h CROSS JOIN completed c) AS written ORDER BY position RETURNING episode_id, kind), audited AS (INSERT INTO bench_pgbench.audit (action, target) SELECT kind, 'episode:' || episode_id FROM events) SELECT (SELECT recorded_at FROM follow_up);
";

/// Runs pgbench with `script` on `database`: `clients` clients, 2 threads, `per_client`
/// transactions each, no vacuum.
async fn run_pgbench(
    pgbench: &Path,
    database_url: &str,
    script: &Path,
    clients: usize,
    per_client: usize,
) -> Run {
    let output = tokio::process::Command::new(pgbench)
        .args(["-n", "-j", "2", "-c", &clients.to_string(), "-t", &per_client.to_string(), "-f"])
        .arg(script)
        .arg(database_url)
        .output()
        .await
        .unwrap_or_else(|error| panic!("run {}: {error}", pgbench.display()));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "pgbench failed:\n{text}");
    let number_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
    };
    let tps = text
        .lines()
        .find(|line| line.contains("without initial connection time"))
        .and_then(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!("no 'tps = ... (without initial connection time)' in pgbench's output:\n{text}")
        });
    let failed = number_after("number of failed transactions:").unwrap_or(0.0);
    assert!(failed == 0.0, "pgbench had failed transactions:\n{text}");
    let latency_ms = number_after("latency average =").unwrap_or(f64::NAN);
    Run { rate: tps, p50_us: None, p99_us: None, mean_us: latency_ms * 1000.0 }
}

const SYSTEMS: [&str; 4] =
    ["tfesi-registry", "pgbench", "pgbench + audit chain lock", "pgbench, registry-shaped transaction"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let settings = Settings::from_env();
    let started = Instant::now();
    let pgbench = pgbench();
    assert!(
        Command::new(&pgbench).arg("--version").output().is_ok_and(|output| output.status.success()),
        "pgbench not found at {} (it comes with the postgresql server package; or set TFESI_BENCH_PGBENCH)",
        pgbench.display()
    );

    let durability = postgres_durability(&settings.admin_url, "followups").await;
    let mut admin = PgConnection::connect(&settings.admin_url).await.expect("connect to Postgres");
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let database = format!("tfesi_bench_followups_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let dir = std::env::temp_dir().join(&database);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .await
        .expect("create the bench database");
    let scratch =
        Scratch { admin_url: settings.admin_url.clone(), database: database.clone(), dir: dir.clone() };
    let url = database_url(&settings.admin_url, &database);

    let secret = random_secret();
    std::fs::write(dir.join("hs256.secret"), &secret).expect("write the secret");
    let token = tfesi_auth::mint_hs256(
        secret.as_bytes(),
        &AuthConfig::default(),
        "bench-nurse",
        &[Role::Nurse, Role::App],
        3600,
    )
    .expect("mint a token");
    // The release binary beside this bench (target/release), killed by its PID when dropped.
    let secret_file = dir.join("hs256.secret").display().to_string();
    let env: Vec<(String, String)> = [
        ("TFESI_REGISTRY__DATABASE__URL", url.clone()),
        ("TFESI_REGISTRY__AUTH__HS256_SECRET_FILE", secret_file),
        ("TFESI_REGISTRY__TELEMETRY__LOG_FILTER", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let mut registry = ServiceProcess::start("tfesi-registry", "registry", &env);
    let serving = wait_for_health(registry.address, "", ServingStatus::Serving, START_WITHIN).await;
    assert_eq!(
        serving,
        Some(ServingStatus::Serving),
        "tfesi-registry did not start; its log:\n{}",
        registry.log()
    );
    println!("followups: tfesi-registry (pid {}) on {} ready", registry.pid(), registry.address);

    let pool =
        PgPoolOptions::new().max_connections(1).connect(&url).await.expect("connect to the bench database");
    pool.execute(BASELINE_SCHEMA).await.expect("create the baseline's scratch schema");
    let plain = dir.join("plain.sql");
    let chained = dir.join("chained.sql");
    let shaped = dir.join("shaped.sql");
    std::fs::write(&shaped, PGBENCH_SHAPED).expect("write pgbench script");
    std::fs::write(&plain, PGBENCH_PLAIN).expect("write pgbench script");
    std::fs::write(&chained, PGBENCH_CHAINED).expect("write pgbench script");

    // Injections 61 days ago, follow-ups yesterday: day 60, the due day of the default window.
    let today = Utc::now().date_naive();
    let injection_date = today.checked_sub_days(Days::new(61)).expect("injection date");
    let follow_up_date = today.checked_sub_days(Days::new(1)).expect("follow-up date");
    let clients = settings.clients;
    let count = settings.follow_ups;
    let per_client = count / clients;

    // Warm-up: a tenth of a round of each system (connections, caches, the first WAL segments).
    let warm = (count / 10).max(clients).div_ceil(clients) * clients;
    let episodes = seed(registry.address, &token, clients, warm, injection_date, "warm").await;
    let _ = record(registry.address, &token, clients, episodes, follow_up_date, "warm").await;
    let _ = run_pgbench(&pgbench, &url, &plain, clients, warm / clients).await;
    let _ = run_pgbench(&pgbench, &url, &chained, clients, warm / clients).await;
    let _ = run_pgbench(&pgbench, &url, &shaped, clients, warm / clients).await;

    let mut rounds: Vec<[Run; 4]> = Vec::new();
    for round in 0..settings.rounds {
        if round > 0 && started.elapsed() > settings.max_duration {
            println!("followups: stopping after {round} rounds (TFESI_BENCH_MAX_SECONDS)");
            break;
        }
        let tag = format!("r{round}");
        let seeding = Instant::now();
        let episodes = seed(registry.address, &token, clients, count, injection_date, &tag).await;
        let seeding = seeding.elapsed();
        let mut runs: [Option<Run>; 4] = [None, None, None, None];
        // The system that goes first rotates.
        for offset in 0..SYSTEMS.len() {
            let system = (round + offset) % SYSTEMS.len();
            let run = match system {
                0 => {
                    let episodes = episodes.clone();
                    let run = record(registry.address, &token, clients, episodes, follow_up_date, &tag).await;
                    assert_running(&mut registry);
                    run
                }
                1 => run_pgbench(&pgbench, &url, &plain, clients, per_client).await,
                2 => run_pgbench(&pgbench, &url, &chained, clients, per_client).await,
                _ => run_pgbench(&pgbench, &url, &shaped, clients, per_client).await,
            };
            runs[system] = Some(run);
        }
        let runs = runs.map(|run| run.expect("every system ran"));
        println!(
            "followups: round {} (seeded {count} episodes in {seeding:.1?}): ours {:.0}/s (p50 {:.0} µs, p99 {:.0} µs), \
             pgbench {:.0} tps, pgbench + audit chain lock {:.0} tps, pgbench registry-shaped {:.0} tps, \
             ours/pgbench {:.2}",
            round + 1,
            runs[0].rate,
            runs[0].p50_us.unwrap_or(f64::NAN),
            runs[0].p99_us.unwrap_or(f64::NAN),
            runs[1].rate,
            runs[2].rate,
            runs[3].rate,
            runs[0].rate / runs[1].rate,
        );
        rounds.push(runs);
    }

    // Check what the registry stored: one current follow-up per episode recorded, each audited.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM registry.follow_ups WHERE is_current")
        .fetch_one(&pool)
        .await
        .expect("count follow-ups");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'follow_up_recorded'")
            .fetch_one(&pool)
            .await
            .expect("count audit records");
    let expected = i64::try_from(warm + rounds.len() * count).expect("count");
    assert_eq!((stored, audited), (expected, expected), "follow-ups stored and audited by the registry");
    pool.close().await;
    drop(registry);

    report(&settings, &rounds, durability, stored);
    drop(scratch);
}

fn report(settings: &Settings, rounds: &[[Run; 4]], durability: serde_json::Map<String, Value>, stored: i64) {
    let column = |system: usize, pick: fn(&Run) -> f64| -> Vec<f64> {
        rounds.iter().map(|runs| pick(&runs[system])).collect()
    };
    let ratios: Vec<f64> = rounds.iter().map(|runs| runs[0].rate / runs[1].rate).collect();
    let chained_ratios: Vec<f64> = rounds.iter().map(|runs| runs[2].rate / runs[1].rate).collect();
    let ours_vs_chained: Vec<f64> = rounds.iter().map(|runs| runs[0].rate / runs[2].rate).collect();
    let ours_vs_shaped: Vec<f64> = rounds.iter().map(|runs| runs[0].rate / runs[3].rate).collect();
    let ratio = Spread::of(&ratios);
    let met = ratio.median >= TARGET_RATIO;

    println!();
    println!(
        "Follow-ups recorded, {} per system and round, {} concurrent clients, durable commit \
         (synchronous_commit = {}, fsync = {}); {} rounds",
        settings.follow_ups,
        settings.clients,
        durability["synchronous_commit"].as_str().unwrap_or("?"),
        durability["fsync"].as_str().unwrap_or("?"),
        rounds.len()
    );
    println!();
    println!(
        "| round | ours follow-ups/s | pgbench tps | ours / pgbench | pgbench + audit chain lock tps | \
         pgbench registry-shaped tps | ours p50 µs | ours p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (index, runs) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            index + 1,
            runs[0].rate,
            runs[1].rate,
            ratios[index],
            runs[2].rate,
            runs[3].rate,
            runs[0].p50_us.unwrap_or(f64::NAN),
            runs[0].p99_us.unwrap_or(f64::NAN),
        );
    }
    println!(
        "| median (min–max) | {} | {} | {} | {} | {} | {} | {} |",
        Spread::of(&column(0, |run| run.rate)).show(0),
        Spread::of(&column(1, |run| run.rate)).show(0),
        ratio.show(2),
        Spread::of(&column(2, |run| run.rate)).show(0),
        Spread::of(&column(3, |run| run.rate)).show(0),
        Spread::of(&column(0, |run| run.p50_us.unwrap_or(f64::NAN))).show(0),
        Spread::of(&column(0, |run| run.p99_us.unwrap_or(f64::NAN))).show(0),
    );
    println!();
    println!("| target | measured | target | met |");
    println!("|---|---|---|---|");
    println!(
        "| follow-ups/s, ours / pgbench | {} | >= {TARGET_RATIO} | {} |",
        ratio.show(2),
        if met { "yes" } else { "no" }
    );
    println!();
    println!(
        "pgbench + audit chain lock / pgbench: {}; ours / (pgbench + audit chain lock): {}; \
         ours / pgbench registry-shaped: {}; mean latency µs: ours {}, pgbench {}, pgbench + lock {}, \
         pgbench registry-shaped {}",
        Spread::of(&chained_ratios).show(2),
        Spread::of(&ours_vs_chained).show(2),
        Spread::of(&ours_vs_shaped).show(2),
        Spread::of(&column(0, |run| run.mean_us)).show(0),
        Spread::of(&column(1, |run| run.mean_us)).show(0),
        Spread::of(&column(2, |run| run.mean_us)).show(0),
        Spread::of(&column(3, |run| run.mean_us)).show(0),
    );

    let per_round: Vec<Value> = rounds
        .iter()
        .enumerate()
        .map(|(index, runs)| {
            json!({
                "round": index + 1,
                "ours_follow_ups_per_s": runs[0].rate,
                "ours_p50_us": runs[0].p50_us,
                "ours_p99_us": runs[0].p99_us,
                "ours_mean_us": runs[0].mean_us,
                "pgbench_tps": runs[1].rate,
                "pgbench_latency_average_us": runs[1].mean_us,
                "pgbench_audit_chain_lock_tps": runs[2].rate,
                "pgbench_audit_chain_lock_latency_average_us": runs[2].mean_us,
                "pgbench_registry_shaped_tps": runs[3].rate,
                "pgbench_registry_shaped_latency_average_us": runs[3].mean_us,
                "ratio_ours_over_pgbench": ratios[index],
            })
        })
        .collect();
    let results = json!({
        "benchmark": "registry-followups",
        "command": "cargo bench -p tfesi-registry --bench followups",
        "date": Utc::now().to_rfc3339(),
        "machine": machine(),
        "postgres": Value::Object(durability),
        "settings": {
            "rounds": rounds.len(),
            "follow_ups_per_system_and_round": settings.follow_ups,
            "clients": settings.clients,
            "pgbench_args": format!("-n -j 2 -c {} -t {}", settings.clients, settings.follow_ups / settings.clients),
        },
        "registry_follow_ups_stored_and_audited": stored,
        "rounds": per_round,
        "summary": {
            "ours_follow_ups_per_s": Spread::of(&column(0, |run| run.rate)).to_json(),
            "ours_p50_us": Spread::of(&column(0, |run| run.p50_us.unwrap_or(f64::NAN))).to_json(),
            "ours_p99_us": Spread::of(&column(0, |run| run.p99_us.unwrap_or(f64::NAN))).to_json(),
            "pgbench_tps": Spread::of(&column(1, |run| run.rate)).to_json(),
            "pgbench_audit_chain_lock_tps": Spread::of(&column(2, |run| run.rate)).to_json(),
            "ratio_ours_over_pgbench": ratio.to_json(),
            "ratio_pgbench_audit_chain_lock_over_pgbench": Spread::of(&chained_ratios).to_json(),
            "ratio_ours_over_pgbench_audit_chain_lock": Spread::of(&ours_vs_chained).to_json(),
            "pgbench_registry_shaped_tps": Spread::of(&column(3, |run| run.rate)).to_json(),
            "ratio_ours_over_pgbench_registry_shaped": Spread::of(&ours_vs_shaped).to_json(),
        },
        "targets": [{
            "name": "follow-ups/s, ours / pgbench",
            "measured": ratio.median,
            "target": format!(">= {TARGET_RATIO}"),
            "met": met,
        }],
    });
    let out_dir = std::env::var_os("TFESI_BENCH_RESULTS")
        .map_or_else(|| repo_root().join("bench/results"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).expect("results directory");
    let path = out_dir.join("registry-followups.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).expect("json") + "\n")
        .expect("write results");
    println!("followups: wrote {}", path.display());
}
