//! The pipeline worker: consumes the job stream through a consumer group and drives each job to
//! a stored prediction (objects -> tensor -> Inference.Predict -> Registry.RecordPrediction ->
//! Ingest.ReportJobStatus -> XACK and a confirmation on `<stream>:done`).
//!
//! Postgres (`preprocess.jobs`) decides: a delivery of a finished job is only confirmed again, a
//! dead letter is only acknowledged, and the prediction request is stored before it is sent so
//! a replay after a crash sends identical content (the registry is idempotent on job_id). An
//! entry is acknowledged only after success or dead-lettering; entries of crashed consumers are
//! reclaimed with XAUTOCLAIM, and entries in hand are kept fresh so nobody else reclaims them.
//!
//! This file holds the consumer loop and a job's attempts, retries and outcomes; `predict`
//! (worker/predict.rs) builds the RecordPrediction request of one attempt.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use sqlx::PgPool;
use tfesi_platform::jobs::PipelineJob;
use tfesi_platform::objects::ObjectStore;
use tfesi_platform::{RedisConfig, Shutdown};
use tfesi_proto::ingest::v1::ProcessingState;
use tfesi_proto::registry::v1 as registry;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::cache::TensorCache;
use crate::config::WorkerConfig;
use crate::decode::DecodeLimits;
use crate::failure::{self, Class, Failure};
use crate::store::{self, Admission, Stage};
use crate::stream::{Delivery, JobStream};
use crate::upstream::Upstream;

mod predict;

use predict::predict;

/// Counters shared with the gRPC API and the health check.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Jobs in hand in this process.
    pub in_flight: AtomicU64,
    /// Jobs finished (succeeded) since start.
    pub completed: AtomicU64,
    /// Jobs dead-lettered since start.
    pub dead_lettered: AtomicU64,
    /// Consecutive failures of the stream loop (reads, claims); 0 when healthy.
    pub loop_errors: AtomicU32,
    last_loop_error: Mutex<String>,
}

impl WorkerStats {
    fn loop_failed(&self, error: &dyn std::fmt::Display) {
        self.loop_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_loop_error.lock() {
            *last = error.to_string();
        }
    }

    fn loop_ok(&self) {
        self.loop_errors.store(0, Ordering::Relaxed);
    }

    /// Health: failing while the stream loop keeps failing.
    pub fn health(&self) -> Result<(), String> {
        let errors = self.loop_errors.load(Ordering::Relaxed);
        if errors < 3 {
            return Ok(());
        }
        let last = self.last_loop_error.lock().map(|last| last.clone()).unwrap_or_default();
        Err(format!("pipeline worker: {errors} consecutive stream errors, last: {last}"))
    }
}

/// Everything a job needs.
pub struct Pipeline {
    pub pool: PgPool,
    pub stream: JobStream,
    pub upstream: Upstream,
    pub cache: Option<TensorCache>,
    pub objects: ObjectStore,
    pub config: WorkerConfig,
    pub limits: DecodeLimits,
    pub stats: Arc<WorkerStats>,
}

/// How handling a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Finished (succeeded or dead-lettered) and acknowledged.
    Finished,
    /// Stopped by shutdown; left unacknowledged for another consumer.
    Abandoned,
}

/// Runs the worker until `shutdown`: then claims nothing new, gives jobs in hand
/// `shutdown_grace_ms` to finish, and abandons (does not acknowledge) the rest.
pub async fn run(pipeline: Arc<Pipeline>, redis: RedisConfig, shutdown: Shutdown) {
    let config = pipeline.config.clone();
    let block = Duration::from_millis(config.block_ms);
    let stop = shutdown.clone();
    while let Err(error) = pipeline.stream.ensure_group().await {
        pipeline.stats.loop_failed(&error);
        tracing::warn!(%error, "cannot create the consumer group; retrying");
        if sleep_or_stop(Duration::from_secs(1), &stop).await {
            return;
        }
    }
    tracing::info!(stream = %pipeline.stream.key(), group = %config.group, consumer = %pipeline.stream.consumer(),
        concurrency = config.concurrency, "pipeline worker started");
    let mut reader = None;
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let in_hand: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let claim_every = (config.claim_idle() / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut claim_cursor = "0-0".to_owned();
    let mut next_claim = tokio::time::Instant::now();
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = stop.clone().wait() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let mut deliveries = Vec::new();
        if tokio::time::Instant::now() >= next_claim {
            match pipeline.stream.autoclaim(config.claim_idle(), &claim_cursor, 1).await {
                Ok((cursor, claimed)) => {
                    if cursor == "0-0" && claimed.is_empty() {
                        next_claim = tokio::time::Instant::now() + claim_every;
                    }
                    for delivery in &claimed {
                        tracing::info!(entry = %delivery.entry_id, job_id = %delivery.job_id, "reclaimed an idle pending job");
                    }
                    claim_cursor = cursor;
                    deliveries = claimed;
                }
                Err(error) => {
                    pipeline.stats.loop_failed(&error);
                    tracing::warn!(%error, "reclaiming idle jobs failed");
                    next_claim = tokio::time::Instant::now() + claim_every;
                }
            }
        }
        if deliveries.is_empty() {
            if reader.is_none() {
                match tfesi_platform::redis::dedicated(&redis, block).await {
                    Ok(connection) => reader = Some(connection),
                    Err(error) => {
                        pipeline.stats.loop_failed(&error);
                        tracing::warn!(%error, "cannot open the stream connection; retrying");
                        if sleep_or_stop(Duration::from_millis(500), &stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some(connection) = reader.as_mut() else { continue };
            // Wake up for a reclaim pass no later than it is due.
            let wait = block
                .min(next_claim.saturating_duration_since(tokio::time::Instant::now()))
                .max(Duration::from_millis(10));
            let read = tokio::select! {
                biased;
                () = stop.clone().wait() => break,
                read = pipeline.stream.read_new(connection, 1, wait) => read,
            };
            match read {
                Ok(read) => {
                    pipeline.stats.loop_ok();
                    deliveries = read;
                }
                Err(error) => {
                    pipeline.stats.loop_failed(&error);
                    tracing::warn!(%error, "reading the job stream failed");
                    reader = None;
                    if sleep_or_stop(Duration::from_millis(500), &stop).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(delivery) = deliveries.into_iter().next() else { continue };
        let pipeline = Arc::clone(&pipeline);
        let in_hand = Arc::clone(&in_hand);
        let job_shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            handle_delivery(&pipeline, delivery, &in_hand, job_shutdown).await;
        });
    }
    drain(tasks, Duration::from_millis(config.shutdown_grace_ms)).await;
    tracing::info!("pipeline worker stopped");
}

async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    let finished = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            ?grace,
            "jobs still in hand after the shutdown grace; left unacknowledged"
        );
        tasks.shutdown().await;
    }
}

/// Sleeps; true when shutdown came first.
async fn sleep_or_stop(duration: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = shutdown.clone().wait() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// Removes a job from the in-hand set when its handling ends, however it ends.
struct InHand<'a> {
    set: &'a Mutex<HashSet<String>>,
    job_id: String,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.job_id);
        }
    }
}

async fn handle_delivery(
    pipeline: &Pipeline,
    delivery: Delivery,
    in_hand: &Mutex<HashSet<String>>,
    shutdown: Shutdown,
) {
    let Ok(job_uuid) = Uuid::parse_str(&delivery.job_id) else {
        tracing::error!(entry = %delivery.entry_id, "stream entry without a valid job_id; acknowledged and dropped");
        ack(pipeline, &delivery).await;
        return;
    };
    let newly_in_hand = in_hand.lock().map(|mut set| set.insert(delivery.job_id.clone())).unwrap_or(false);
    if !newly_in_hand {
        // Another delivery of the same job is being handled here (a re-publication).
        tracing::info!(job_id = %delivery.job_id, entry = %delivery.entry_id, "duplicate delivery of a job in hand; acknowledged");
        ack(pipeline, &delivery).await;
        return;
    }
    let _in_hand = InHand { set: in_hand, job_id: delivery.job_id.clone() };
    pipeline.stats.in_flight.fetch_add(1, Ordering::Relaxed);
    let heartbeat = spawn_heartbeat(pipeline, &delivery);
    let job: Option<PipelineJob> = serde_json::from_str(&delivery.payload).ok();
    let span = tracing::info_span!("pipeline_job", job_id = %delivery.job_id,
        study_id = job.as_ref().map_or("", |job| job.study_id.as_str()), entry = %delivery.entry_id,
        trace_id = tracing::field::Empty);
    if let Some(traceparent) = job.as_ref().and_then(|job| job.traceparent.as_deref()) {
        tfesi_platform::telemetry::set_parent_from_traceparent(&span, traceparent);
        // The trace id on every log line of the job, as the RPC spans have it (W3C
        // traceparent: version-traceid-spanid-flags).
        if let Some(trace_id) = traceparent.split('-').nth(1) {
            span.record("trace_id", trace_id);
        }
    }
    let handled = match job {
        Some(job) if job.job_id == delivery.job_id => {
            process(pipeline, &delivery, job_uuid, &job, &shutdown).instrument(span).await
        }
        _ => malformed(pipeline, &delivery, job_uuid).instrument(span).await,
    };
    heartbeat.abort();
    pipeline.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    if handled == Handled::Abandoned {
        tracing::info!(job_id = %delivery.job_id, "job left unacknowledged for another attempt");
    }
}

fn spawn_heartbeat(pipeline: &Pipeline, delivery: &Delivery) -> tokio::task::JoinHandle<()> {
    let stream = pipeline.stream.clone();
    let entry_id = delivery.entry_id.clone();
    let every = (pipeline.config.claim_idle() / 3).max(Duration::from_millis(20));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = stream.heartbeat(&entry_id).await {
                tracing::debug!(%error, entry = %entry_id, "heartbeat failed");
            }
        }
    })
}

async fn ack(pipeline: &Pipeline, delivery: &Delivery) {
    for attempt in 0..3u32 {
        match pipeline.stream.ack(&delivery.entry_id).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, entry = %delivery.entry_id, attempt, "acknowledgement failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
}

/// A payload that is not a job: parked as a dead letter so an operator sees it.
async fn malformed(pipeline: &Pipeline, delivery: &Delivery, job_id: Uuid) -> Handled {
    tracing::error!(job_id = %job_id, "job payload is not a pipeline job; dead-lettered");
    let payload = serde_json::from_str(&delivery.payload)
        .unwrap_or_else(|_| serde_json::Value::String(delivery.payload.clone()));
    let parked = async {
        store::admit(&pipeline.pool, job_id, "", "", &payload).await?;
        store::dead_letter(
            &pipeline.pool,
            job_id,
            Stage::Prepare,
            "invalid_job",
            "the job payload is not a pipeline job",
        )
        .await
    }
    .await;
    if let Err(error) = parked {
        tracing::warn!(%error, "cannot record the malformed job; left unacknowledged");
        return Handled::Abandoned;
    }
    pipeline.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    ack(pipeline, delivery).await;
    Handled::Finished
}

async fn report(pipeline: &Pipeline, job_id: &str, state: ProcessingState, attempts: u32, last_error: &str) {
    if let Err(status) = pipeline.upstream.report_job_status(job_id, state, attempts, last_error).await {
        tracing::warn!(code = ?status.code(), message = %status.message(), ?state, "ingest.ReportJobStatus failed");
    }
}

/// Confirms a finished job to ingest (report and done stream), then acknowledges.
async fn confirm_and_ack(pipeline: &Pipeline, delivery: &Delivery, attempts: u32) {
    report(pipeline, &delivery.job_id, ProcessingState::Succeeded, attempts, "").await;
    if let Err(error) = pipeline.stream.confirm_done(&delivery.job_id).await {
        tracing::warn!(%error, "confirmation on the done stream failed");
    }
    ack(pipeline, delivery).await;
}

async fn process(
    pipeline: &Pipeline,
    delivery: &Delivery,
    job_id: Uuid,
    job: &PipelineJob,
    shutdown: &Shutdown,
) -> Handled {
    let config = &pipeline.config;
    let payload = serde_json::to_value(job).unwrap_or(serde_json::Value::Null);
    let mut bookkeeping_failures = 0u32;
    loop {
        let admission = match store::admit(&pipeline.pool, job_id, &job.study_id, &job.series_id, &payload)
            .await
        {
            Ok(admission) => admission,
            Err(error) => {
                bookkeeping_failures += 1;
                tracing::warn!(%error, "cannot record the attempt in postgres; retrying");
                let delay = failure::backoff(bookkeeping_failures, base(config), max(config), rand::random());
                if sleep_or_stop(delay, shutdown).await {
                    return Handled::Abandoned;
                }
                continue;
            }
        };
        let (attempt, stored_prediction) = match admission {
            Admission::Succeeded => {
                tracing::info!("job already succeeded; confirmed again");
                confirm_and_ack(pipeline, delivery, 0).await;
                return Handled::Finished;
            }
            Admission::DeadLettered => {
                tracing::info!("job is a dead letter; delivery acknowledged");
                ack(pipeline, delivery).await;
                return Handled::Finished;
            }
            Admission::Run { attempt, prediction } => (attempt, prediction),
        };
        if attempt > config.max_attempts {
            let failure = Failure::permanent(
                Stage::Prepare,
                "attempts_exhausted",
                format!("{} attempts started without finishing (worker crashes?)", attempt - 1),
            );
            return give_up(pipeline, delivery, job_id, &failure).await;
        }
        tracing::info!(attempt, "pipeline attempt");
        report(pipeline, &job.job_id, ProcessingState::InProgress, attempt, "").await;
        let outcome = match attempt_through_outages(
            pipeline,
            job_id,
            job,
            attempt,
            stored_prediction,
            shutdown,
        )
        .await
        {
            Some(outcome) => outcome,
            None => return Handled::Abandoned,
        };
        match outcome {
            Ok(()) => {
                if let Err(error) = store::succeed(&pipeline.pool, job_id).await {
                    // The prediction is stored; the next delivery replays it and succeeds.
                    tracing::warn!(%error, "cannot mark the job succeeded; left unacknowledged");
                    return Handled::Abandoned;
                }
                pipeline.stats.completed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(attempt, "job succeeded");
                confirm_and_ack(pipeline, delivery, attempt).await;
                return Handled::Finished;
            }
            Err(failure) if failure.class == Class::Permanent || attempt >= config.max_attempts => {
                return give_up(pipeline, delivery, job_id, &failure).await;
            }
            Err(failure) => {
                tracing::warn!(attempt, stage = failure.stage.as_str(), reason = failure.reason_code,
                    message = %failure.message, "transient failure; retrying with backoff");
                if let Err(error) = store::record_transient(
                    &pipeline.pool,
                    job_id,
                    failure.stage,
                    failure.reason_code,
                    &failure.message,
                )
                .await
                {
                    tracing::warn!(%error, "cannot record the failure in postgres");
                }
                report(pipeline, &job.job_id, ProcessingState::InProgress, attempt, &failure.message).await;
                let delay = failure::backoff(attempt, base(config), max(config), rand::random());
                if shutdown.is_requested() || sleep_or_stop(delay, shutdown).await {
                    if let Err(error) = store::release(&pipeline.pool, job_id).await {
                        tracing::debug!(%error, "cannot release the job");
                    }
                    return Handled::Abandoned;
                }
            }
        }
    }
}

fn base(config: &WorkerConfig) -> Duration {
    Duration::from_millis(config.backoff_base_ms)
}

fn max(config: &WorkerConfig) -> Duration {
    Duration::from_millis(config.backoff_max_ms)
}

async fn give_up(pipeline: &Pipeline, delivery: &Delivery, job_id: Uuid, failure: &Failure) -> Handled {
    tracing::error!(stage = failure.stage.as_str(), reason = failure.reason_code, message = %failure.message,
        "job dead-lettered");
    let attempts = match store::dead_letter(
        &pipeline.pool,
        job_id,
        failure.stage,
        failure.reason_code,
        &failure.message,
    )
    .await
    {
        Ok(attempts) => attempts,
        Err(error) => {
            tracing::warn!(%error, "cannot record the dead letter; left unacknowledged");
            return Handled::Abandoned;
        }
    };
    pipeline.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    let reason = format!("{}: {}", failure.reason_code, failure.message);
    report(pipeline, &delivery.job_id, ProcessingState::DeadLetter, attempts, &reason).await;
    ack(pipeline, delivery).await;
    Handled::Finished
}

/// One attempt: build (or reuse) the RecordPrediction request and send it.
/// Runs one attempt; while it fails because a dependency is down (see [`Failure::is_outage`]),
/// runs it again after a backoff without spending an attempt, for up to
/// `worker.outage_budget_ms`. `None`: shutdown came while waiting (the job was released).
async fn attempt_through_outages(
    pipeline: &Pipeline,
    job_id: Uuid,
    job: &PipelineJob,
    attempt: u32,
    stored_prediction: Option<Vec<u8>>,
    shutdown: &Shutdown,
) -> Option<Result<(), Failure>> {
    let config = &pipeline.config;
    let budget = Duration::from_millis(config.outage_budget_ms);
    let started = std::time::Instant::now();
    let mut stored_prediction = stored_prediction;
    let mut waits = 0_u32;
    loop {
        match attempt_once(pipeline, job_id, job, stored_prediction.take()).await {
            Err(failure) if failure.is_outage() && started.elapsed() < budget => {
                waits += 1;
                tracing::warn!(attempt, waits, reason = failure.reason_code, message = %failure.message,
                    "a dependency is down; waiting without spending an attempt");
                report(pipeline, &job.job_id, ProcessingState::InProgress, attempt, &failure.message).await;
                let delay = failure::backoff(waits, base(config), max(config), rand::random());
                if shutdown.is_requested() || sleep_or_stop(delay, shutdown).await {
                    if let Err(error) = store::release(&pipeline.pool, job_id).await {
                        tracing::debug!(%error, "cannot release the job");
                    }
                    return None;
                }
                // An earlier try may have stored its prediction before the outage: replay it.
                stored_prediction = store::stored_prediction(&pipeline.pool, job_id).await.ok().flatten();
            }
            outcome => return Some(outcome),
        }
    }
}

async fn attempt_once(
    pipeline: &Pipeline,
    job_id: Uuid,
    job: &PipelineJob,
    stored_prediction: Option<Vec<u8>>,
) -> Result<(), Failure> {
    let encoded = match stored_prediction {
        Some(encoded) => {
            tracing::info!("replaying the stored prediction of an earlier attempt");
            encoded
        }
        None => {
            let request = predict(pipeline, job).await?;
            store::keep_prediction(&pipeline.pool, job_id, &request.encode_to_vec())
                .await
                .map_err(|error| Failure::infrastructure(Stage::Record, "storing the prediction", &error))?
        }
    };
    let request = registry::RecordPredictionRequest::decode(encoded.as_slice()).map_err(|error| {
        Failure::permanent(Stage::Record, "internal_error", format!("stored prediction unreadable: {error}"))
    })?;
    let recorded =
        pipeline.upstream.record_prediction(request).await.map_err(|status| match status.code() {
            tonic::Code::FailedPrecondition => Failure::permanent(
                Stage::Record,
                "prediction_conflict",
                format!("registry holds different predictions for this job: {}", status.message()),
            ),
            _ => Failure::from_status(Stage::Record, "registry.RecordPrediction", &status),
        })?;
    tracing::info!(
        predictions = recorded.prediction_ids.len(),
        already_recorded = recorded.already_recorded,
        episodes = recorded.episode_ids.len(),
        "predictions recorded"
    );
    Ok(())
}
