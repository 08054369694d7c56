//! Registry crash (RELIABILITY.md): follow-ups recorded with idempotency keys while the registry
//! is SIGKILLed five times and its Postgres is stopped once with `pg_ctl stop -m immediate`;
//! clients retry the same request with the same key.
//!
//! Pass: exactly one current follow-up row per episode, no episode with two version-1 rows, every
//! acknowledged write present with the content sent (and the follow-up id the client was told),
//! and an intact audit chain (`tfesi audit verify`), the audit records being written in the same
//! transactions as the follow-ups.
//!
//! The registry is the real binary, restarted on the same address after each kill; Postgres is a
//! private cluster of this test ([`PgCluster`]), never the machine's shared server. The chaos
//! steps are placed by progress (a share of the follow-ups acknowledged), so every kill lands while
//! follow-ups are in flight whatever the machine's speed. `TFESI_CRASH_FOLLOW_UPS` sets the number
//! of follow-ups (default 1,000). Run with `--no-capture` to see the figures.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use sqlx::Row as _;
use tfesi_auth::{AuthConfig, Role, TokenSource};
use tfesi_e2e::cohort::{fixed_episode_details, fixed_injection, proto_date};
use tfesi_e2e::postgres::PgCluster;
use tfesi_e2e::process::{ServiceProcess, binary};
use tfesi_platform::client::Outgoing;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

type Client = RegistryClient<InterceptedService<Channel, Outgoing>>;

/// Concurrent clients.
const CLIENTS: usize = 8;
/// Registry kills.
const KILLS: usize = 5;
/// Where the chaos steps fall, as the share of follow-ups acknowledged: five kills and, in the
/// middle, the Postgres crash.
const STEPS: [(f64, Step); 6] = [
    (0.08, Step::KillRegistry),
    (0.22, Step::KillRegistry),
    (0.38, Step::KillRegistry),
    (0.52, Step::CrashPostgres),
    (0.68, Step::KillRegistry),
    (0.84, Step::KillRegistry),
];
/// How long Postgres stays down.
const POSTGRES_DOWN: Duration = Duration::from_secs(3);
/// How long the registry may take to report SERVING (a debug build applies its migrations).
const REGISTRY_START_WITHIN: Duration = Duration::from_secs(60);
/// How long the registry may take to report SERVING again after Postgres is back (README: within
/// a second; generous here, the figure is printed).
const RECOVERY_WITHIN: Duration = Duration::from_secs(30);
/// The whole test, seeding and checks included.
const WHOLE_TEST_WITHIN: Duration = Duration::from_secs(240);
/// The recording phase (all clients, all retries).
const RECORDING_WITHIN: Duration = Duration::from_secs(150);
/// Per attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    KillRegistry,
    CrashPostgres,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_ups_survive_registry_kills_and_a_postgres_crash_without_loss_or_duplicates() {
    match tokio::time::timeout(WHOLE_TEST_WITHIN, run()).await {
        Ok(()) => {}
        Err(_) => panic!("the registry crash test did not finish within {WHOLE_TEST_WITHIN:?}"),
    }
}

async fn run() {
    let started = Instant::now();
    let count: usize = std::env::var("TFESI_CRASH_FOLLOW_UPS")
        .ok()
        .map(|text| text.parse().expect("TFESI_CRASH_FOLLOW_UPS is a number"))
        .unwrap_or(1_000);
    assert!(count >= 20, "TFESI_CRASH_FOLLOW_UPS must be at least 20 to place the chaos steps");

    let postgres = Arc::new(tokio::task::spawn_blocking(PgCluster::start_new).await.expect("initdb"));
    let database_url = postgres.url("tfesi_crash");
    let dir = tempfile::tempdir().expect("test directory");
    let secret_file = dir.path().join("hs256.secret");
    let secret = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    std::fs::write(&secret_file, &secret).expect("write the secret");
    let address: SocketAddr =
        format!("127.0.0.1:{}", tfesi_e2e::free_port()).parse().expect("registry address");
    let env = vec![
        ("TFESI_REGISTRY__DATABASE__URL".to_owned(), database_url.clone()),
        ("TFESI_REGISTRY__DATABASE__STARTUP_WAIT_MS".to_owned(), "30000".to_owned()),
        ("TFESI_REGISTRY__AUTH__HS256_SECRET_FILE".to_owned(), secret_file.display().to_string()),
        // Fixed, so that every restart listens where the clients already point (this replaces
        // the free port ServiceProcess picks).
        ("TFESI_REGISTRY__SERVER__LISTEN".to_owned(), address.to_string()),
    ];
    let mut registry = Registry { env, address, process: None, earlier_logs: String::new() };
    registry.start().await;
    let token = tfesi_auth::mint_hs256(
        secret.as_bytes(),
        &AuthConfig::default(),
        "crash-nurse",
        &[Role::Nurse, Role::App],
        3600,
    )
    .expect("mint a token");

    // Seeding, before the chaos: episodes with injections 61 days ago, so a follow-up dated
    // yesterday is on day 60, the due day of the default window (day 46 to 74).
    let today = Utc::now().date_naive();
    let injection_date = today.checked_sub_days(Days::new(61)).expect("injection date");
    let follow_up_date = today.checked_sub_days(Days::new(1)).expect("follow-up date");
    let seeding = Instant::now();
    let episodes = seed(address, &token, count, injection_date).await;
    let seeding = seeding.elapsed();
    println!("registry crash: seeded {count} episodes with injections in {seeding:.1?}");

    // Recording under chaos.
    let progress = Arc::new(Progress::default());
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let recording = Instant::now();
    let mut clients = Vec::new();
    let episodes = Arc::new(episodes);
    for _ in 0..CLIENTS {
        let episodes = Arc::clone(&episodes);
        let progress = Arc::clone(&progress);
        let outcomes = Arc::clone(&outcomes);
        let mut client = client(address, &token);
        clients.push(tokio::spawn(async move {
            loop {
                let index = progress.next.fetch_add(1, Ordering::SeqCst);
                if index >= episodes.len() {
                    return;
                }
                let request = follow_up_request(index, &episodes[index], follow_up_date);
                let outcome = record_with_retries(&mut client, request, &progress, recording).await;
                outcomes.lock().expect("outcomes").push((index, outcome));
            }
        }));
    }
    let chaos = {
        let progress = Arc::clone(&progress);
        let postgres = Arc::clone(&postgres);
        tokio::spawn(async move {
            let report = chaos(&mut registry, &postgres, &progress, count).await;
            (registry, report)
        })
    };
    let clients_done = async {
        for client in clients {
            client.await.expect("a client task");
        }
        progress.clients_done.store(true, Ordering::SeqCst);
    };
    let chaos_done = async {
        let report = chaos.await;
        // A failed chaos step stops the clients rather than letting them retry for minutes.
        progress.abort.store(report.is_err(), Ordering::SeqCst);
        report
    };
    let ((), chaos) = tokio::join!(clients_done, chaos_done);
    let (mut registry, chaos) = chaos.expect("the chaos task");
    let recording = recording.elapsed();

    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    let acknowledged: HashMap<usize, String> = outcomes
        .iter()
        .filter_map(|(index, outcome)| outcome.follow_up_id.clone().map(|id| (*index, id)))
        .collect();
    let retries: u32 = outcomes.iter().map(|(_, outcome)| outcome.attempts.saturating_sub(1)).sum();
    let codes = progress.codes.lock().expect("codes").clone();
    println!(
        "registry crash: {} of {count} follow-ups acknowledged in {recording:.1?}; {retries} retries; \
         {} registry kills (restarts took {:?}); postgres crashes {} (down {:?}, registry SERVING again \
         {:?} after postgres was back)",
        acknowledged.len(),
        chaos.kills,
        chaos.restarts,
        chaos.postgres_crashes,
        POSTGRES_DOWN,
        chaos.recovery,
    );
    for ((step, code), times) in &codes {
        let during = match step.checked_sub(1).and_then(|step| STEPS.get(step)) {
            Some((share, step)) => format!("after {step:?} at {:.0}%", share * 100.0),
            None => "before the first step".to_owned(),
        };
        println!("registry crash:   failed attempts {during}: {times} x {code}");
    }
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(index, outcome)| {
            outcome.error.as_ref().map(|error| format!("follow-up {index}: {error}"))
        })
        .collect();
    let logs = registry.logs();
    assert!(
        failures.is_empty(),
        "follow-ups not acknowledged: {failures:#?}\nregistry logs:\n{}",
        tail(&logs)
    );
    assert_eq!(chaos.kills, KILLS, "registry kills; chaos notes: {:?}", chaos.notes);
    assert_eq!(chaos.postgres_crashes, 1, "postgres crashes; chaos notes: {:?}", chaos.notes);
    assert!(chaos.notes.is_empty(), "chaos: {:?}\nregistry logs:\n{}", chaos.notes, tail(&logs));

    // After the chaos, every request sent again with its key gets the stored answer, and a new
    // key for an episode that has its follow-up is refused (ALREADY_EXISTS: amend instead).
    let replay = Instant::now();
    let mut replayer = client(address, &token);
    let mut replay_mismatches = Vec::new();
    for (index, episode_id) in episodes.iter().enumerate() {
        let answer = replayer
            .record_follow_up(follow_up_request(index, episode_id, follow_up_date))
            .await
            .map(|response| response.into_inner().follow_up.unwrap_or_default().follow_up_id);
        if answer.as_ref().ok() != acknowledged.get(&index) {
            replay_mismatches.push(format!("follow-up {index}: replay answered {answer:?}"));
        }
    }
    assert!(replay_mismatches.is_empty(), "replays after the crashes: {replay_mismatches:#?}");
    for (index, episode_id) in episodes.iter().enumerate().take(10) {
        let mut request = follow_up_request(index, episode_id, follow_up_date);
        request.idempotency_key = format!("crash-second-follow-up-{index}");
        let refused = replayer.record_follow_up(request).await.expect_err("a second follow-up");
        assert_eq!(refused.code(), Code::AlreadyExists, "{}", refused.message());
    }
    println!(
        "registry crash: {} replays answered as first acknowledged in {:.1?}",
        episodes.len(),
        replay.elapsed()
    );

    // The registry is done; what counts is what Postgres holds.
    registry.terminate();
    let retried: HashMap<usize, chrono::DateTime<Utc>> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.attempts > 1)
        .filter_map(|(index, outcome)| outcome.last_sent.map(|sent| (*index, sent)))
        .collect();
    check_database(&database_url, &episodes, &acknowledged, follow_up_date, &retried).await;
    let verify = tokio::process::Command::new(binary("tfesi"))
        .args(["audit", "verify", "--database-url", &database_url])
        .output()
        .await
        .expect("tfesi audit verify runs");
    let verified =
        format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && verified.contains("intact"), "audit chain: {verified}");
    println!("registry crash: audit chain: {}", verified.trim().replace('\n', "; "));
    println!("registry crash: total {:.1?}", started.elapsed());
    drop(dir);
}

/// The registry process, restarted on the same address and settings.
struct Registry {
    env: Vec<(String, String)>,
    address: SocketAddr,
    process: Option<ServiceProcess>,
    /// Logs of the processes killed so far.
    earlier_logs: String,
}

impl Registry {
    /// Starts the registry and waits for SERVING; a start that exits (e.g. the address still
    /// held) is retried a few times.
    async fn start(&mut self) -> Duration {
        let started = Instant::now();
        for _ in 0..5 {
            let mut process = ServiceProcess::start("tfesi-registry", "registry", &self.env);
            loop {
                if tfesi_e2e::health_status(self.address, "").await == Some(ServingStatus::Serving) {
                    self.process = Some(process);
                    return started.elapsed();
                }
                if process.has_exited() {
                    self.earlier_logs
                        .push_str(&format!("===== registry that exited at start\n{}", process.log()));
                    break;
                }
                assert!(
                    started.elapsed() < REGISTRY_START_WITHIN,
                    "the registry did not report SERVING within {REGISTRY_START_WITHIN:?}; its log:\n{}",
                    process.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the registry keeps exiting at start; logs:\n{}", tail(&self.earlier_logs));
    }

    /// SIGKILL, by the process's own PID.
    fn kill(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let status = std::process::Command::new("kill").arg("-KILL").arg(process.pid().to_string()).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -KILL {} failed", process.pid());
        let _ = process.wait_exit(Duration::from_secs(5));
        self.earlier_logs.push_str(&format!(
            "===== registry killed (pid {})\n{}",
            process.pid(),
            process.log()
        ));
    }

    fn terminate(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
            let _ = process.wait_exit(Duration::from_secs(15));
            self.earlier_logs.push_str(&format!("===== registry terminated\n{}", process.log()));
        }
    }

    fn logs(&self) -> String {
        let current = self.process.as_ref().map(ServiceProcess::log).unwrap_or_default();
        format!("{}===== registry (current)\n{current}", self.earlier_logs)
    }
}

#[derive(Default)]
struct Progress {
    /// Next follow-up index to take.
    next: AtomicUsize,
    /// Follow-ups acknowledged (OK).
    acknowledged: AtomicUsize,
    /// Set when every client has finished.
    clients_done: AtomicBool,
    /// Set when the chaos task failed: the clients stop.
    abort: AtomicBool,
    /// The chaos step last begun (0: none yet), to attribute failed attempts.
    step: AtomicUsize,
    /// Failed attempts by chaos step and status code.
    codes: Mutex<BTreeMap<(usize, String), usize>>,
}

impl Progress {
    fn failed(&self, code: String) {
        let step = self.step.load(Ordering::SeqCst);
        *self.codes.lock().expect("codes").entry((step, code)).or_default() += 1;
    }
}

#[derive(Debug, Default)]
struct ChaosReport {
    kills: usize,
    postgres_crashes: usize,
    restarts: Vec<Duration>,
    recovery: Option<Duration>,
    notes: Vec<String>,
}

/// Runs the chaos steps as the acknowledged count passes each threshold.
async fn chaos(
    registry: &mut Registry,
    postgres: &Arc<PgCluster>,
    progress: &Progress,
    count: usize,
) -> ChaosReport {
    let mut report = ChaosReport::default();
    let started = Instant::now();
    for (number, (share, step)) in STEPS.into_iter().enumerate() {
        // Truncation is intended: a threshold in follow-ups.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let threshold = (count as f64 * share) as usize;
        loop {
            if progress.acknowledged.load(Ordering::SeqCst) >= threshold {
                break;
            }
            if progress.clients_done.load(Ordering::SeqCst) || started.elapsed() > RECORDING_WITHIN {
                report.notes.push(format!("{step:?} at {threshold} acknowledged never ran"));
                return report;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        progress.step.store(number + 1, Ordering::SeqCst);
        match step {
            Step::KillRegistry => {
                registry.kill();
                report.kills += 1;
                report.restarts.push(registry.start().await);
            }
            Step::CrashPostgres => {
                let cluster = Arc::clone(postgres);
                tokio::task::spawn_blocking(move || cluster.stop_immediate()).await.expect("pg_ctl stop");
                report.postgres_crashes += 1;
                tokio::time::sleep(POSTGRES_DOWN).await;
                let cluster = Arc::clone(postgres);
                tokio::task::spawn_blocking(move || cluster.start()).await.expect("pg_ctl start");
                let back = Instant::now();
                let status =
                    tfesi_e2e::wait_for_health(registry.address, "", ServingStatus::Serving, RECOVERY_WITHIN)
                        .await;
                if status == Some(ServingStatus::Serving) {
                    report.recovery = Some(back.elapsed());
                } else {
                    report.notes.push(format!(
                        "the registry did not report SERVING within {RECOVERY_WITHIN:?} of postgres' restart: {status:?}"
                    ));
                }
            }
        }
    }
    report
}

#[derive(Debug, Default)]
struct Outcome {
    follow_up_id: Option<String>,
    attempts: u32,
    /// When the last attempt was sent (wall clock, to compare with the row's `recorded_at`).
    last_sent: Option<chrono::DateTime<Utc>>,
    error: Option<String>,
}

/// Sends the same request (same idempotency key) until it is answered OK, retrying what a crash
/// produces (UNAVAILABLE, connection errors, DEADLINE_EXCEEDED, INTERNAL) with a bounded backoff.
/// Any other answer is final: ALREADY_EXISTS in particular would mean the key was not honoured.
async fn record_with_retries(
    client: &mut Client,
    request: registry::RecordFollowUpRequest,
    progress: &Progress,
    started: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut backoff = Duration::from_millis(50);
    loop {
        outcome.attempts += 1;
        outcome.last_sent = Some(Utc::now());
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(ATTEMPT_TIMEOUT);
        match tokio::time::timeout(ATTEMPT_TIMEOUT + Duration::from_secs(2), client.record_follow_up(call))
            .await
        {
            Ok(Ok(response)) => {
                let follow_up = response.into_inner().follow_up.unwrap_or_default();
                outcome.follow_up_id = Some(follow_up.follow_up_id);
                progress.acknowledged.fetch_add(1, Ordering::SeqCst);
                return outcome;
            }
            Ok(Err(status)) => {
                progress.failed(format!("{:?}", status.code()));
                let retryable = matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Internal
                        | Code::Unknown
                        | Code::Cancelled
                );
                if !retryable {
                    outcome.error = Some(format!(
                        "{:?}: {} (attempt {})",
                        status.code(),
                        status.message(),
                        outcome.attempts
                    ));
                    return outcome;
                }
            }
            Err(_) => {
                progress.failed("client timeout".to_owned());
            }
        }
        if started.elapsed() > RECORDING_WITHIN
            || outcome.attempts >= 500
            || progress.abort.load(Ordering::SeqCst)
        {
            outcome.error = Some(format!("gave up after {} attempts", outcome.attempts));
            return outcome;
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % 50);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// A client whose channel connects lazily and reconnects by itself after the registry restarts.
fn client(address: SocketAddr, token: &str) -> Client {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(1))
        .timeout(ATTEMPT_TIMEOUT)
        .connect_lazy();
    RegistryClient::new(InterceptedService::new(channel, Outgoing::new(TokenSource::fixed(token.to_owned()))))
}

/// A random surrogate patient id (UUID text).
fn patient_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>() | 1);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Creates `count` episodes, each with its injection; returns their ids in order.
async fn seed(address: SocketAddr, token: &str, count: usize, injection_date: NaiveDate) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let seeded = Arc::new(Mutex::new(vec![String::new(); count]));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let next = Arc::clone(&next);
        let seeded = Arc::clone(&seeded);
        let mut client = client(address, token);
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= count {
                    return;
                }
                let episode = client
                    .create_episode(registry::CreateEpisodeRequest {
                        idempotency_key: format!("crash-episode-{index}"),
                        details: Some(fixed_episode_details(patient_id(), 55)),
                    })
                    .await
                    .expect("CreateEpisode")
                    .into_inner()
                    .episode
                    .expect("an episode");
                client
                    .record_injection(registry::RecordInjectionRequest {
                        idempotency_key: format!("crash-injection-{index}"),
                        episode_id: episode.episode_id.clone(),
                        injection: Some(fixed_injection(injection_date)),
                    })
                    .await
                    .expect("RecordInjection");
                seeded.lock().expect("seeded")[index] = episode.episode_id;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a seeding task");
    }
    std::mem::take(&mut *seeded.lock().expect("seeded"))
}

/// What follow-up `index` says: scores, method and nurse vary with the index, so that a row
/// stored for the wrong request would be seen.
struct Content {
    leg_nrs: i16,
    back_nrs: i16,
    pgic: i16,
    method: (registry::FollowUpMethod, &'static str),
    entered_by: String,
}

fn content(index: usize) -> Content {
    let small = |value: usize| i16::try_from(value).expect("small");
    let methods = [
        (registry::FollowUpMethod::Clinic, "clinic"),
        (registry::FollowUpMethod::Phone, "phone"),
        (registry::FollowUpMethod::Message, "message"),
    ];
    Content {
        leg_nrs: small(index % 11),
        back_nrs: small((index * 7) % 11),
        pgic: small(1 + index % 7),
        method: methods[index % 3],
        entered_by: format!("crash-nurse-{:02}", index % 13),
    }
}

fn follow_up_request(
    index: usize,
    episode_id: &str,
    follow_up_date: NaiveDate,
) -> registry::RecordFollowUpRequest {
    let content = content(index);
    registry::RecordFollowUpRequest {
        idempotency_key: format!("crash-follow-up-{index}"),
        episode_id: episode_id.to_owned(),
        follow_up: Some(registry::FollowUpInput {
            follow_up_date: Some(proto_date(follow_up_date)),
            leg_nrs: i32::from(content.leg_nrs),
            back_nrs: Some(i32::from(content.back_nrs)),
            pgic: Some(i32::from(content.pgic)),
            analgesic_change: registry::AnalgesicChange::Unspecified as i32,
            repeat_injection: None,
            surgery: None,
            adverse_events: Vec::new(),
            adverse_event_note: String::new(),
            method: content.method.0 as i32,
            entered_by: content.entered_by,
            out_of_window: false,
        }),
    }
}

/// The pass criteria, read from Postgres directly.
async fn check_database(
    url: &str,
    episodes: &[String],
    acknowledged: &HashMap<usize, String>,
    follow_up_date: NaiveDate,
    retried: &HashMap<usize, chrono::DateTime<Utc>>,
) {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.expect("connect");
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect(sql) }
    };
    let count = i64::try_from(episodes.len()).expect("count");
    let current = scalar("SELECT count(*) FROM registry.follow_ups WHERE is_current").await;
    let rows = scalar("SELECT count(*) FROM registry.follow_ups").await;
    let duplicated = scalar(
        "SELECT count(*) FROM (SELECT episode_id FROM registry.follow_ups WHERE version = 1
         GROUP BY episode_id HAVING count(*) > 1) AS twice",
    )
    .await;
    let two_current = scalar(
        "SELECT count(*) FROM (SELECT episode_id FROM registry.follow_ups WHERE is_current
         GROUP BY episode_id HAVING count(*) > 1) AS twice",
    )
    .await;
    let completed = scalar("SELECT count(*) FROM registry.episodes WHERE outcome_status = 'completed'").await;
    let keys = scalar(
        "SELECT count(*) FROM registry.idempotency_keys WHERE method = 'RecordFollowUp' AND response IS NOT NULL",
    )
    .await;
    let audited =
        scalar("SELECT count(DISTINCT target) FROM audit.log WHERE action = 'follow_up_recorded'").await;
    let audit_records = scalar("SELECT count(*) FROM audit.log WHERE action = 'follow_up_recorded'").await;
    println!(
        "registry crash: postgres holds {rows} follow-up rows ({current} current, {duplicated} episodes with two \
         version-1 rows), {completed} completed episodes, {keys} follow-up idempotency keys, {audit_records} \
         follow-up audit records"
    );
    assert_eq!(current, count, "current follow-up rows");
    assert_eq!(rows, count, "follow-up rows (no amendments were made)");
    assert_eq!(duplicated, 0, "episodes with two version-1 follow-ups");
    assert_eq!(two_current, 0, "episodes with two current follow-ups");
    assert_eq!(completed, count, "episodes completed by their follow-up");
    assert_eq!(keys, count, "answered follow-up idempotency keys");
    assert_eq!((audited, audit_records), (count, count), "one audit record per follow-up");

    let stored = sqlx::query(
        "SELECT episode_id::text AS episode_id, follow_up_id::text AS follow_up_id, version, is_current,
                follow_up_date::text AS follow_up_date, leg_nrs, back_nrs, pgic, method, entered_by,
                recorded_at
         FROM registry.follow_ups",
    )
    .fetch_all(&pool)
    .await
    .expect("read follow-ups");
    let by_episode: HashMap<String, &sqlx::postgres::PgRow> =
        stored.iter().map(|row| (row.get::<String, _>("episode_id"), row)).collect();
    let mut missing = Vec::new();
    for (index, follow_up_id) in acknowledged {
        let episode_id = &episodes[*index];
        let Some(row) = by_episode.get(episode_id) else {
            missing.push(format!(
                "follow-up {index} (episode {episode_id}, acknowledged as {follow_up_id}): no row"
            ));
            continue;
        };
        let expected = content(*index);
        let found = (
            row.get::<String, _>("follow_up_id"),
            row.get::<i32, _>("version"),
            row.get::<bool, _>("is_current"),
            row.get::<String, _>("follow_up_date"),
            row.get::<i16, _>("leg_nrs"),
            row.get::<Option<i16>, _>("back_nrs"),
            row.get::<Option<i16>, _>("pgic"),
            row.get::<String, _>("method"),
            row.get::<String, _>("entered_by"),
        );
        let wanted = (
            follow_up_id.clone(),
            1,
            true,
            follow_up_date.to_string(),
            expected.leg_nrs,
            Some(expected.back_nrs),
            Some(expected.pgic),
            expected.method.1.to_owned(),
            expected.entered_by,
        );
        if found != wanted {
            missing.push(format!("follow-up {index}: stored {found:?}, sent and acknowledged {wanted:?}"));
        }
    }
    assert!(missing.is_empty(), "acknowledged follow-ups not stored as acknowledged: {missing:#?}");
    // The case the keys exist for: a write committed, then the answer was lost to a crash, and
    // the retry got the stored answer (the row is older than the last attempt).
    let replayed = retried
        .iter()
        .filter(|(index, sent)| {
            by_episode
                .get(&episodes[**index])
                .is_some_and(|row| row.get::<chrono::DateTime<Utc>, _>("recorded_at") < **sent)
        })
        .count();
    println!(
        "registry crash: {} follow-ups needed retries; {replayed} of them had committed before the answer was \
         lost and were answered from the idempotency key",
        retried.len()
    );
    pool.close().await;
}

/// The last 20,000 characters of a log.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(20_000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
