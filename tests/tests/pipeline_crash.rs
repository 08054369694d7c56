//! Crashes in the middle of the pipeline (RELIABILITY.md, "Pipeline crash" and "Redis loss"):
//! a cohort of synthetic studies is in flight (episodes registered and linked, images uploaded,
//! every study completed at once) while the preprocess worker and the inference service are
//! SIGKILLed and restarted several times, or while Redis is flushed and then restarted empty.
//! Pass: every study ends with exactly one prediction per model version serving (the champion
//! `tfesi-test:1` and the shadow `tfesi-test:2`), no job is left unconfirmed, pending or
//! dead-lettered, and nothing is recorded twice.
//!
//! Each test runs its own stack against its own `redis-server` (never the machine's shared one),
//! with the outbox re-publishing after 3 s and dead consumers' jobs reclaimed after 3 s idle.
//!
//! The cohort size is `TFESI_CRASH_STUDIES` (default [`DEFAULT_STUDIES`]). Faults are triggered by
//! progress (a share of the jobs succeeded), so each one hits a pipeline with work outstanding
//! whatever the cohort size or the machine's speed. Below about 20 studies the seven kills land
//! on the same few jobs, and a job in hand at five of them is dead-lettered as a suspected
//! poison job (`worker.max_attempts` = 5), as designed.
//!
//! The studies (T2 and T1 sagittal series only) are generated once and cached under
//! `target/tmp/pipeline-crash-cohort-seed4242-v1` (50 studies: 1,604 instances, 408 MB).
//! Measured on the 2-core development machine, shared with other builds: generating 50 studies
//! takes 85 to 110 s the first time; with the cache, each test takes 30 to 50 s (submission 19
//! to 35 s, every job finished 8 to 16 s after the first completion); both tests together from
//! a cold cache take 2 min 25 s under nextest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use sqlx::{PgPool, Row as _};
use tfesi_e2e::cohort::{episode_details, upload_messages};
use tfesi_e2e::redis_server::RedisServer;
use tfesi_e2e::stack::{Stack, StackOptions};
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::preprocess::v1 as preprocess;
use tfesi_proto::preprocess::v1::preprocess_client::PreprocessClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tfesi_synth::protocol::SeriesKind;

/// Studies in flight unless `TFESI_CRASH_STUDIES` says otherwise.
const DEFAULT_STUDIES: usize = 50;
/// Seed of the synthetic cohort (patients 0..n of it).
const SEED: u64 = 4242;
/// Bound of the wait for every job to finish after the last fault.
const DRAIN_WITHIN: Duration = Duration::from_secs(300);
/// Bound of the wait for a progress threshold before a fault.
const PROGRESS_WITHIN: Duration = Duration::from_secs(180);
/// The models serving during the run: (name, version, role).
const SERVING: [(&str, &str, &str); 2] = [("tfesi-test", "1", "champion"), ("tfesi-test", "2", "shadow")];

/// Unconfirmed jobs re-published after 3 s, a dead consumer's jobs reclaimed after 3 s idle;
/// everything else as shipped (`worker.max_attempts` 5, backoff from 0.5 s).
fn settings() -> [(&'static str, &'static str, &'static str); 2] {
    [("ingest", "RELAY__REPUBLISH_AFTER_S", "3"), ("preprocess", "WORKER__CLAIM_IDLE_MS", "3000")]
}

fn study_count() -> usize {
    match std::env::var("TFESI_CRASH_STUDIES") {
        Ok(text) => {
            text.trim().parse().ok().filter(|count| *count >= 1).unwrap_or_else(|| {
                panic!("TFESI_CRASH_STUDIES must be a positive whole number, got `{text}`")
            })
        }
        Err(_) => DEFAULT_STUDIES,
    }
}

/// A study of the cohort: uploaded, its episode registered and linked.
struct Submitted {
    study_id: String,
}

/// Starts a private Redis and a stack on it, with the shadow `tfesi-test:2` registered.
async fn start() -> (RedisServer, Stack) {
    let redis = RedisServer::start();
    let url = redis.url();
    let settings = settings();
    let stack =
        Stack::start_with(StackOptions { settings: &settings, redis_url: Some(&url), default_model: None })
            .await;
    register_shadow(&stack).await;
    (redis, stack)
}

/// Registers the inference fixture `tfesi-test:2` and makes it the shadow, so every job
/// records two predictions.
async fn register_shadow(stack: &Stack) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../services/inference/tests/fixtures/tfesi-test/2");
    let onnx = std::fs::read(dir.join("model.onnx")).expect("fixture model.onnx of tfesi-test:2");
    let card_json =
        std::fs::read_to_string(dir.join("model.json")).expect("fixture model.json of tfesi-test:2");
    let card: serde_json::Value = serde_json::from_str(&card_json).expect("card JSON");
    let sha256 = card["model_sha256"].as_str().expect("model_sha256 in the card").to_owned();
    let header = inference::RegisterModelHeader {
        model: Some(common::ModelRef { name: "tfesi-test".to_owned(), version: "2".to_owned() }),
        card_json,
        sha256,
        size_bytes: onnx.len() as u64,
        set_as_shadow: true,
    };
    let mut messages = vec![inference::RegisterModelRequest {
        part: Some(inference::register_model_request::Part::Header(header)),
    }];
    messages.extend(onnx.chunks(64 * 1024).map(|chunk| inference::RegisterModelRequest {
        part: Some(inference::register_model_request::Part::Chunk(chunk.to_vec())),
    }));
    let mut client = InferenceClient::new(stack.channel(stack.inference.address).await);
    let registered =
        client.register_model(tokio_stream::iter(messages)).await.expect("register tfesi-test:2");
    let registered = registered.into_inner();
    assert!(registered.self_test.is_some_and(|report| report.passed), "tfesi-test:2 passes its self-test");
    assert_serving(stack).await;
}

/// The champion and shadow are the ones the assertions expect (also after a restart).
async fn assert_serving(stack: &Stack) {
    let mut client = InferenceClient::new(stack.channel(stack.inference.address).await);
    let models = client
        .list_models(inference::ListModelsRequest::default())
        .await
        .expect("inference lists its models")
        .into_inner();
    let reference =
        |model: Option<common::ModelRef>| model.map(|model| format!("{}:{}", model.name, model.version));
    assert_eq!(
        (reference(models.champion), reference(models.shadow)),
        (Some("tfesi-test:1".to_owned()), Some("tfesi-test:2".to_owned())),
        "champion and shadow serving"
    );
}

/// The series of each synthetic study that are uploaded: the T2 sagittal series the pipeline
/// must select and a T1 sagittal distractor (the localizer, STIR and axial series only make
/// the upload longer; selection among them is tested elsewhere).
const UPLOADED_SERIES: [SeriesKind; 2] = [SeriesKind::T2Sagittal, SeriesKind::T1Sagittal];
/// The file of a cached patient holding its MRN (PatientID), to detect a stale cache.
const MRN_FILE: &str = "mrn.txt";

/// The DICOM files of patients `0..count` of the cohort, generated once and kept under the
/// target directory (a lock file makes a second test process wait for the first one's
/// generation instead of repeating it; a patient whose cached MRN differs from what the
/// generator gives now is generated again). Returns the files per patient and the time spent
/// generating in this process.
fn cohort_files(count: usize) -> (Vec<Vec<Vec<u8>>>, Duration) {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pipeline-crash-cohort-seed{SEED}-v1"));
    std::fs::create_dir_all(&root).expect("cohort cache directory");
    let lock = std::fs::File::create(root.join(".lock")).expect("cohort cache lock file");
    lock.lock().expect("lock the cohort cache");
    let started = Instant::now();
    let mrn = |index: usize| {
        let index = u32::try_from(index).expect("patient index");
        tfesi_synth::patient_row(SEED, index, &tfesi_synth::PatientOptions::default()).patient_id
    };
    let missing: Vec<usize> = (0..count)
        .filter(|index| {
            let cached = std::fs::read_to_string(root.join(format!("{index:04}")).join(MRN_FILE));
            cached.ok().as_deref() != Some(mrn(*index).as_str())
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let position = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&index) = missing.get(position) else { return };
                    let patient = tfesi_synth::generate_patient(
                        SEED,
                        u32::try_from(index).expect("patient index"),
                        &tfesi_synth::PatientOptions::default(),
                    )
                    .expect("synthetic patient");
                    let partial = root.join(format!("{index:04}.partial"));
                    let _ = std::fs::remove_dir_all(&partial);
                    std::fs::create_dir_all(&partial).expect("patient cache directory");
                    for file in patient.files.iter().filter(|file| UPLOADED_SERIES.contains(&file.kind)) {
                        let name = format!("{:03}-{:04}.dcm", file.series_number, file.instance_number);
                        std::fs::write(partial.join(name), &file.bytes).expect("cache a DICOM file");
                    }
                    std::fs::write(partial.join(MRN_FILE), &patient.row.patient_id).expect("cache the MRN");
                    let done = root.join(format!("{index:04}"));
                    let _ = std::fs::remove_dir_all(&done);
                    std::fs::rename(&partial, done).expect("publish a cached patient");
                }
            });
        }
    });
    let generation = started.elapsed();
    let files = (0..count)
        .map(|index| {
            let dir = root.join(format!("{index:04}"));
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .expect("cached patient")
                .map(|entry| entry.expect("cached file").path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "dcm"))
                .collect();
            paths.sort();
            paths.iter().map(|path| std::fs::read(path).expect("read a cached file")).collect()
        })
        .collect();
    drop(lock);
    (files, generation)
}

/// Submits the cohort as an app would, three patients at a time: registers each patient's
/// episode (surrogate id from the MRN), uploads the study and links it. Nothing is completed
/// yet. Prints the cohort's size and how long generation and the calls took.
async fn submit_cohort(stack: &Stack, count: usize) -> Vec<Submitted> {
    let started = Instant::now();
    let (cohort, generation) =
        tokio::task::spawn_blocking(move || cohort_files(count)).await.expect("cohort generation");
    let instances: usize = cohort.iter().map(Vec::len).sum();
    let bytes: usize = cohort.iter().flatten().map(Vec::len).sum();
    let calls_started = Instant::now();
    let ingest_client = IngestClient::new(stack.channel(stack.ingest.address).await);
    let registry_client = RegistryClient::new(stack.channel(stack.registry.address).await);
    let mut submitted: Vec<(usize, Submitted)> = futures::stream::iter(cohort.into_iter().enumerate())
        .map(|(index, files)| {
            let (mut ingest_client, mut registry_client) = (ingest_client.clone(), registry_client.clone());
            async move {
                let row = tfesi_synth::patient_row(
                    SEED,
                    u32::try_from(index).expect("patient index"),
                    &tfesi_synth::PatientOptions::default(),
                );
                let lookup = ingest_client
                    .lookup_ids(ingest::LookupIdsRequest {
                        key: Some(ingest::lookup_ids_request::Key::Mrn(row.patient_id.clone())),
                        mrn_issuer: String::new(),
                        create_patient_if_missing: true,
                        identity: None,
                    })
                    .await
                    .expect("surrogate patient id")
                    .into_inner();
                let episode = registry_client
                    .create_episode(registry::CreateEpisodeRequest {
                        idempotency_key: format!("crash-{}", lookup.patient_id),
                        details: Some(episode_details(&row, &lookup.patient_id)),
                    })
                    .await
                    .expect("episode")
                    .into_inner()
                    .episode
                    .expect("episode in the response");
                let upload = ingest_client
                    .upload(tokio_stream::iter(upload_messages(&files, 256 * 1024)))
                    .await
                    .expect("upload")
                    .into_inner();
                assert_eq!(
                    upload.stored_count as usize,
                    files.len(),
                    "every instance stored: {:?}",
                    upload.results
                );
                let study_id = upload.results.first().expect("upload results").study_id.clone();
                assert_eq!(
                    upload.results[0].patient_id, lookup.patient_id,
                    "images land on the episode's patient"
                );
                assert!(
                    upload.results.iter().all(|result| result.study_id == study_id),
                    "one study per patient"
                );
                registry_client
                    .link_study(registry::LinkStudyRequest {
                        episode_id: episode.episode_id.clone(),
                        study_id: study_id.clone(),
                    })
                    .await
                    .expect("link the study to its episode");
                (index, Submitted { study_id })
            }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    submitted.sort_by_key(|(index, _)| *index);
    println!(
        "cohort: {count} studies, {instances} instances (T2 and T1 sagittal), {:.1} MB; generation {generation:.1?} \
         (0 when cached), lookup + episode + upload + link {:.1?}, {:.1?} in all",
        bytes as f64 / 1e6,
        calls_started.elapsed(),
        started.elapsed()
    );
    submitted.into_iter().map(|(_, study)| study).collect()
}

/// Completes every study, four calls at a time; returns the ids of the studies that got a job.
async fn complete_all(stack: &Stack, cohort: &[Submitted]) -> Vec<String> {
    let ingest_client = IngestClient::new(stack.channel(stack.ingest.address).await);
    futures::stream::iter(cohort)
        .map(|study| {
            let mut ingest_client = ingest_client.clone();
            async move {
                let completed = ingest_client
                    .complete_study(ingest::CompleteStudyRequest { study_id: study.study_id.clone() })
                    .await
                    .expect("complete the study")
                    .into_inner();
                completed.job_created.then(|| study.study_id.clone())
            }
        })
        .buffer_unordered(4)
        .filter_map(|study| async move { study })
        .collect()
        .await
}

async fn database(stack: &Stack) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&format!("postgres://postgres@127.0.0.1:5432/{}", stack.database))
        .await
        .expect("connect to the stack's database")
}

/// Jobs whose prediction is stored and confirmed (outbox confirmed and worker ledger succeeded).
async fn finished_jobs(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM ingest.outbox o JOIN preprocess.jobs j USING (job_id)
         WHERE o.confirmed_at IS NOT NULL AND j.state = 'succeeded'",
    )
    .fetch_one(pool)
    .await
    .expect("count finished jobs")
}

/// Jobs the worker ledger shows in hand (in progress or waiting for a retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_finishes_its_jobs_in_hand_and_acknowledges_nothing_else() {
    let count = study_count();
    let (_redis, mut stack) = start().await;
    let pool = database(&stack).await;
    let cohort = submit_cohort(&stack, count).await;
    let with_job = complete_all(&stack, &cohort).await;
    let jobs = with_job.len() as i64;
    assert!(jobs > 0, "no study of the cohort got a job");
    let run_started = Instant::now();

    // SIGTERM once a third of the jobs is done: the worker holds some and more wait in Redis.
    let outstanding = wait_for_progress(&stack, &pool, jobs / 3, jobs).await;
    let in_hand = jobs_in_hand(&pool).await;
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM preprocess.jobs WHERE state = 'succeeded'")
            .fetch_one(&pool)
            .await
            .expect("count succeeded jobs")
    };
    let finished_before = succeeded().await;
    let (pid, code) = stack.terminate("preprocess", Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "preprocess (pid {pid}) did not exit cleanly on SIGTERM; logs:\n{}",
        stack.logs()
    );
    let finished_at_exit = succeeded().await;
    let left_in_progress: i64 =
        sqlx::query_scalar("SELECT count(*) FROM preprocess.jobs WHERE state = 'in_progress'")
            .fetch_one(&pool)
            .await
            .expect("count jobs in progress");
    // Nothing new is claimed after the signal: what finished during the drain is at most what
    // the worker may hold at once (`worker.concurrency`, 4 by default); a retrying job waiting
    // out its backoff is released, not finished.
    assert!(
        finished_at_exit - finished_before <= WORKER_CONCURRENCY,
        "{} jobs finished after SIGTERM, more than the worker may hold",
        finished_at_exit - finished_before
    );
    // A job it released is not acknowledged: the restarted worker (or a reclaim) finishes it,
    // and every study still ends with exactly one prediction per model.
    stack.restart("preprocess").await;
    let drain_time = wait_for_drain(&stack, &pool, jobs, run_started).await;
    let figures = assert_every_study_predicted_once(&stack, &pool, &with_job).await;
    println!(
        "sigterm: {jobs} jobs; SIGTERM to preprocess pid {pid} with {outstanding} outstanding, {in_hand} in hand; \
         {} finished during the drain, {left_in_progress} left marked in progress; exit code 0; every job finished \
         {drain_time:.1?} after the run started; jobs by attempts taken {:?}; {} predictions, 0 dead letters",
        finished_at_exit - finished_before,
        figures.attempts,
        jobs * SERVING.len() as i64,
    );
    pool.close().await;
    stack.finish().await;
}

/// The worker's default `worker.concurrency`: the most jobs it holds at once.
const WORKER_CONCURRENCY: i64 = 4;

async fn jobs_in_hand(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM preprocess.jobs WHERE state IN ('in_progress', 'retrying')")
        .fetch_one(pool)
        .await
        .expect("count jobs in hand")
}

/// Waits until at least `threshold` jobs are finished; returns the outstanding count (jobs not
/// finished) seen then.
async fn wait_for_progress(stack: &Stack, pool: &PgPool, threshold: i64, jobs: i64) -> i64 {
    let started = Instant::now();
    loop {
        let finished = finished_jobs(pool).await;
        fail_on_dead_letters(stack, pool).await;
        if finished >= threshold {
            return jobs - finished;
        }
        assert!(
            started.elapsed() < PROGRESS_WITHIN,
            "only {finished} of {jobs} jobs finished within {PROGRESS_WITHIN:?} (waiting for {threshold}); logs:\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every job is finished and nothing is pending in the stream; returns the time
/// it took from `since`.
async fn wait_for_drain(stack: &Stack, pool: &PgPool, jobs: i64, since: Instant) -> Duration {
    let started = Instant::now();
    let mut preprocess_client = PreprocessClient::new(stack.channel(stack.preprocess.address).await);
    loop {
        let finished = finished_jobs(pool).await;
        fail_on_dead_letters(stack, pool).await;
        if finished == jobs {
            let status = preprocess_client
                .get_pipeline_status(preprocess::GetPipelineStatusRequest::default())
                .await
                .map(tonic::Response::into_inner);
            if let Ok(status) = status
                && status.pending == 0
                && status.in_flight == 0
            {
                return since.elapsed();
            }
        }
        assert!(
            started.elapsed() < DRAIN_WITHIN,
            "{finished} of {jobs} jobs finished within {DRAIN_WITHIN:?} of the last fault; ledger: {:?}; logs:\n{}",
            ledger(pool).await,
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fails the test at once when a job was dead-lettered (it would never finish), with the
/// ledger's reason and the worker's log lines of that job (current and killed processes).
async fn fail_on_dead_letters(stack: &Stack, pool: &PgPool) {
    let dead: Vec<(String, i32, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT job_id::text, attempts, reason_code, last_error FROM preprocess.jobs WHERE state = 'dead_letter'",
    )
    .fetch_all(pool)
    .await
    .expect("dead letters");
    let Some((job_id, ..)) = dead.first() else { return };
    panic!(
        "{} job(s) dead-lettered (job, attempts, reason, last error): {dead:?}\nlog lines of job {job_id}:\n{}",
        dead.len(),
        job_log(stack, job_id)
    );
}

/// The log lines of every service process (killed ones included) that name `job_id`, under
/// their process headers.
fn job_log(stack: &Stack, job_id: &str) -> String {
    let logs = stack.logs();
    let lines: Vec<&str> =
        logs.lines().filter(|line| line.starts_with("=====") || line.contains(job_id)).collect();
    lines.join("\n")
}

/// The worker ledger by state, for messages.
async fn ledger(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query("SELECT state, count(*) AS n FROM preprocess.jobs GROUP BY state")
        .fetch_all(pool)
        .await
        .expect("ledger by state")
        .iter()
        .map(|row| (row.get::<String, _>("state"), row.get::<i64, _>("n")))
        .collect()
}

/// Figures printed at the end of a run.
struct Figures {
    /// Jobs by the number of attempts they took.
    attempts: BTreeMap<i32, i64>,
    publications: i64,
}

/// The pass criteria, checked in Postgres and through the worker's status.
async fn assert_every_study_predicted_once(stack: &Stack, pool: &PgPool, with_job: &[String]) -> Figures {
    // One prediction per serving model version per study, nothing else, nothing twice.
    let rows = sqlx::query(
        "SELECT study_id::text AS study_id, model_name, model_version, model_role, count(*) AS n,
                count(DISTINCT job_id) AS jobs
         FROM registry.predictions GROUP BY study_id, model_name, model_version, model_role",
    )
    .fetch_all(pool)
    .await
    .expect("predictions by study and model");
    let mut by_study: BTreeMap<String, Vec<(String, String, String, i64)>> = BTreeMap::new();
    for row in &rows {
        by_study.entry(row.get("study_id")).or_default().push((
            row.get("model_name"),
            row.get("model_version"),
            row.get("model_role"),
            row.get("n"),
        ));
        assert_eq!(
            row.get::<i64, _>("jobs"),
            1,
            "one job per study and model: {:?}",
            row.get::<String, _>("study_id")
        );
    }
    let expected: Vec<(String, String, String, i64)> = SERVING
        .iter()
        .map(|(name, version, role)| ((*name).to_owned(), (*version).to_owned(), (*role).to_owned(), 1))
        .collect();
    let mut wrong = Vec::new();
    for study_id in with_job {
        let mut got = by_study.remove(study_id).unwrap_or_default();
        got.sort();
        if got != expected {
            wrong.push(format!("{study_id}: {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} studies lack exactly one prediction per serving model ({expected:?}):\n{}\nledger: {:?}",
        wrong.len(),
        with_job.len(),
        wrong.join("\n"),
        ledger(pool).await
    );
    assert!(by_study.is_empty(), "predictions of studies that had no job: {by_study:?}");

    // The outbox: every job confirmed and reported succeeded.
    let outbox = sqlx::query(
        "SELECT count(*) AS jobs, count(*) FILTER (WHERE confirmed_at IS NULL) AS unconfirmed,
                count(*) FILTER (WHERE state <> 'succeeded') AS not_succeeded,
                COALESCE(sum(publish_count), 0)::bigint AS publications
         FROM ingest.outbox",
    )
    .fetch_one(pool)
    .await
    .expect("outbox figures");
    assert_eq!(outbox.get::<i64, _>("jobs"), with_job.len() as i64, "one outbox job per completed study");
    assert_eq!(outbox.get::<i64, _>("unconfirmed"), 0, "every outbox job confirmed");
    let not_succeeded: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT job_id::text, state, attempts FROM ingest.outbox WHERE state <> 'succeeded' ORDER BY job_id",
    )
    .fetch_all(pool)
    .await
    .expect("outbox states");
    if let Some((job_id, ..)) = not_succeeded.first() {
        panic!(
            "ingest's view of every job is succeeded, but not of {not_succeeded:?} (job, state, attempts); \
             log lines of job {job_id}:\n{}",
            job_log(stack, job_id)
        );
    }

    // The worker's ledger: every job succeeded, none dead-lettered.
    let states = ledger(pool).await;
    assert_eq!(
        states,
        BTreeMap::from([("succeeded".to_owned(), with_job.len() as i64)]),
        "every job succeeded in the worker's ledger (no dead letter, none in hand)"
    );
    let attempts: Vec<(i32, i64)> =
        sqlx::query_as("SELECT attempts, count(*) FROM preprocess.jobs GROUP BY attempts ORDER BY attempts")
            .fetch_all(pool)
            .await
            .expect("jobs by attempts");

    // The worker agrees: nothing queued, pending or dead.
    let mut preprocess_client = PreprocessClient::new(stack.channel(stack.preprocess.address).await);
    let status = preprocess_client
        .get_pipeline_status(preprocess::GetPipelineStatusRequest::default())
        .await
        .expect("pipeline status")
        .into_inner();
    assert_eq!(
        (status.queue_depth, status.pending, status.in_flight, status.dead_letter_count),
        (0, 0, 0, 0),
        "queue, pending, in flight and dead letters all empty: {status:?}"
    );
    Figures { attempts: attempts.into_iter().collect(), publications: outbox.get("publications") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_in_flight_survive_worker_and_inference_kills_with_one_prediction_per_model() {
    let count = study_count();
    let (_redis, mut stack) = start().await;
    let pool = database(&stack).await;

    let submit_started = Instant::now();
    let cohort = submit_cohort(&stack, count).await;
    let submit_time = submit_started.elapsed();
    // The worker is killed first, so every study is completed (and its job published) while
    // no worker runs: all of them are in flight when it comes back.
    let run_started = Instant::now();
    let pid = stack.kill("preprocess");
    let with_job = complete_all(&stack, &cohort).await;
    let jobs = with_job.len() as i64;
    assert!(jobs > 0, "no study of the cohort got a job");
    tokio::time::sleep(Duration::from_millis(600)).await;
    stack.restart("preprocess").await;
    println!(
        "kill 0: preprocess pid {pid} before the studies completed; {jobs} jobs published meanwhile, worker back at {:.1?}",
        run_started.elapsed()
    );

    // Six kills, alternating worker and inference, each once a further seventh of the jobs is
    // finished: every kill hits a pipeline with work outstanding.
    let schedule = ["preprocess", "inference", "preprocess", "inference", "preprocess", "inference"];
    let mut kills = Vec::new();
    for (index, service) in schedule.iter().enumerate() {
        let threshold = jobs * (index as i64 + 1) / (schedule.len() as i64 + 1);
        let outstanding = wait_for_progress(&stack, &pool, threshold, jobs).await;
        let in_hand = jobs_in_hand(&pool).await;
        let pid = stack.kill(service);
        let killed_at = run_started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let restart_started = Instant::now();
        stack.restart(service).await;
        let restart_time = restart_started.elapsed();
        if *service == "inference" {
            assert_serving(&stack).await;
        }
        println!(
            "kill {}: {service} pid {pid} at {killed_at:.1?}, {outstanding} of {jobs} jobs outstanding, \
             {in_hand} in the worker's hands; SERVING again {restart_time:.1?} after the restart",
            index + 1
        );
        kills.push((*service, outstanding));
    }
    // With a small cohort the last threshold may be reached together with the last job; the
    // first kill of each service always hits work (its threshold is at most a third of the jobs).
    for service in ["preprocess", "inference"] {
        assert!(
            kills.iter().any(|(killed, outstanding)| *killed == service && *outstanding > 0),
            "a kill of {service} hit outstanding work: {kills:?}"
        );
    }

    let drain_time = wait_for_drain(&stack, &pool, jobs, run_started).await;
    let figures = assert_every_study_predicted_once(&stack, &pool, &with_job).await;
    println!(
        "pipeline crash: {count} studies submitted in {submit_time:.1?}, {jobs} jobs, {} kills \
         (preprocess 4, inference 3); every job finished {drain_time:.1?} after the first completion; \
         jobs by attempts taken {:?}, {} outbox publications; {} predictions, 0 dead letters",
        schedule.len() + 1,
        figures.attempts,
        figures.publications,
        jobs * SERVING.len() as i64,
    );
    pool.close().await;
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_in_flight_survive_a_redis_flush_and_a_redis_restart_through_the_outbox() {
    let count = study_count();
    let (mut redis, stack) = start().await;
    let pool = database(&stack).await;

    let submit_started = Instant::now();
    let cohort = submit_cohort(&stack, count).await;
    let submit_time = submit_started.elapsed();
    let run_started = Instant::now();
    let with_job = complete_all(&stack, &cohort).await;
    let jobs = with_job.len() as i64;
    assert!(jobs > 0, "no study of the cohort got a job");

    // FLUSHALL once a third of the jobs is finished, a restart (empty: nothing is saved) once
    // two thirds are.
    let outstanding = wait_for_progress(&stack, &pool, jobs / 3, jobs).await;
    let in_hand = jobs_in_hand(&pool).await;
    redis.flushall();
    println!(
        "FLUSHALL at {:.1?}: {outstanding} of {jobs} jobs outstanding, {in_hand} in the worker's hands",
        run_started.elapsed()
    );
    assert!(outstanding > 0, "the flush hit outstanding work");
    let outstanding = wait_for_progress(&stack, &pool, jobs * 2 / 3, jobs).await;
    let in_hand = jobs_in_hand(&pool).await;
    let old_pid = redis.pid();
    redis.restart();
    println!(
        "redis restart (SIGKILL pid {old_pid:?}, empty again) at {:.1?}: {outstanding} of {jobs} jobs \
         outstanding, {in_hand} in the worker's hands",
        run_started.elapsed()
    );
    assert!(outstanding > 0, "the restart hit outstanding work");

    let drain_time = wait_for_drain(&stack, &pool, jobs, run_started).await;
    let figures = assert_every_study_predicted_once(&stack, &pool, &with_job).await;
    println!(
        "redis loss: {count} studies submitted in {submit_time:.1?}, {jobs} jobs, 1 FLUSHALL and 1 restart; \
         every job finished {drain_time:.1?} after the first completion; jobs by attempts taken {:?}, \
         {} outbox publications; {} predictions, 0 dead letters",
        figures.attempts,
        figures.publications,
        jobs * SERVING.len() as i64,
    );
    pool.close().await;
    stack.finish().await;
}

/// How long inference stays down in the outage test: longer than the worker's retry window
/// with the default settings (attempts 5, backoff 0.5 s doubling: about 5.6 to 7.5 s), shorter
/// than a typical rolling restart of a model server.
const INFERENCE_OUTAGE: Duration = Duration::from_secs(15);

/// Inference down for [`INFERENCE_OUTAGE`] while studies are in flight: the promise is the
/// same, every study ends with its predictions once inference is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_in_flight_survive_an_inference_outage_longer_than_the_retry_window() {
    let count = study_count();
    let (_redis, mut stack) = start().await;
    let pool = database(&stack).await;
    let cohort = submit_cohort(&stack, count).await;
    let run_started = Instant::now();
    let with_job = complete_all(&stack, &cohort).await;
    let jobs = with_job.len() as i64;
    assert!(jobs > 0, "no study of the cohort got a job");
    let outstanding = wait_for_progress(&stack, &pool, jobs / 4, jobs).await;
    let pid = stack.kill("inference");
    println!(
        "inference pid {pid} killed at {:.1?} with {outstanding} of {jobs} jobs outstanding; down for {INFERENCE_OUTAGE:?}",
        run_started.elapsed()
    );
    tokio::time::sleep(INFERENCE_OUTAGE).await;
    stack.restart("inference").await;
    assert_serving(&stack).await;
    let drain_time = wait_for_drain(&stack, &pool, jobs, run_started).await;
    let figures = assert_every_study_predicted_once(&stack, &pool, &with_job).await;
    println!(
        "inference outage: {jobs} jobs finished {drain_time:.1?} after the first completion; jobs by attempts taken {:?}",
        figures.attempts
    );
    pool.close().await;
    stack.finish().await;
}
