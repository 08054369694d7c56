//! Dynamic batching: a bounded queue per model and one worker thread per session that gathers
//! requests up to a row count or a delay, skips expired or abandoned ones, and runs the batch.
//!
//! Batching: the first request of a batch waits up to `max_delay_us` for others only while
//! requests have been arriving more often than that (a moving average of the gaps), so a lone
//! sequential caller, such as the pipeline worker with one study, never pays the delay.
//!
//! Admission: besides the queue's capacity in requests, a request is refused at once when the
//! rows already waiting would take longer than `max_queue_wait_ms` to run. The cost of a row is
//! measured on the batches the workers run (a moving average), so the limit follows the model
//! and the machine; under overload callers get RESOURCE_EXHAUSTED in microseconds and what is
//! admitted starts within about the limit, instead of everyone waiting in an ever longer queue.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::BatchConfig;
use crate::error::{Error, Result};
use crate::metrics::ModelMetrics;
use crate::session::{BatchInput, ModelSession};

/// What a caller gets back: its own rows' outputs and how they ran.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    /// One output per row of the caller's input.
    pub values: Vec<f32>,
    /// Rows in the batch these rows ran in (>= 1).
    pub batch_rows: usize,
    /// From enqueue to result.
    pub latency: Duration,
}

/// One caller's rows, waiting to run.
struct Job {
    input: BatchInput,
    deadline: Option<Instant>,
    enqueued_at: Instant,
    reply: oneshot::Sender<Result<JobOutput>>,
}

/// How long the batch buffers are kept without work before their memory is given back.
const SCRATCH_IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Buffers that batches of several requests are concatenated into, kept from one batch to the
/// next while requests keep coming: 8 rows of tfesi-test are 23 MB, and a fresh allocation per
/// batch paid its page faults every time (452 against 545 predictions/s in the serving bench, one
/// session, 8 callers). At most one per worker; freed after [`SCRATCH_IDLE_RELEASE`] idle.
#[derive(Debug, Default)]
struct BatchBuffers {
    kept: Mutex<Vec<Vec<f32>>>,
}

impl BatchBuffers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f32>>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes(capacity: usize) -> u64 {
        (capacity * std::mem::size_of::<f32>()) as u64
    }

    fn holding(&self) -> bool {
        !self.lock().is_empty()
    }

    /// A kept buffer, or a new empty one. The metric counts it while it is in use too.
    fn take(&self) -> Vec<f32> {
        self.lock().pop().unwrap_or_default()
    }

    /// Keeps `buffer`, which had `taken_capacity` when it was taken.
    fn give_back(&self, buffer: Vec<f32>, taken_capacity: usize, metrics: &ModelMetrics) {
        let (now, before) = (Self::bytes(buffer.capacity()), Self::bytes(taken_capacity));
        if now >= before {
            metrics.batch_buffer_bytes.fetch_add(now - before, Ordering::Relaxed);
        } else {
            metrics.batch_buffer_bytes.fetch_sub(before - now, Ordering::Relaxed);
        }
        if buffer.capacity() > 0 {
            self.lock().push(buffer);
        }
    }

    fn release(&self, metrics: &ModelMetrics) {
        let mut kept = self.lock();
        let freed: u64 = kept.iter().map(|buffer| Self::bytes(buffer.capacity())).sum();
        kept.clear();
        metrics.batch_buffer_bytes.fetch_sub(freed, Ordering::Relaxed);
    }
}

/// The queue shared by a model's workers; `carry` holds a request that did not fit the last batch.
struct Intake {
    receiver: Receiver<Job>,
    carry: Option<Job>,
}

/// Work waiting for a model, for admission and batching: rows queued, the measured cost of one
/// row, and how often requests arrive.
#[derive(Debug)]
struct Load {
    /// Rows accepted and not yet taken by a worker.
    queued_rows: AtomicUsize,
    /// Moving average of a row's run time in nanoseconds (0 until the first batch ran).
    row_cost_ns: AtomicU64,
    /// When the last request arrived, in nanoseconds since `epoch`.
    last_arrival_ns: AtomicU64,
    /// Moving average of the time between arrivals in nanoseconds (`u64::MAX` until known).
    arrival_gap_ns: AtomicU64,
    epoch: Instant,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            queued_rows: AtomicUsize::new(0),
            row_cost_ns: AtomicU64::new(0),
            last_arrival_ns: AtomicU64::new(0),
            arrival_gap_ns: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }
}

impl Load {
    /// Weight of the newest batch in the moving average, as 1/n.
    const SMOOTHING: u64 = 8;

    /// Folds `sample` into the moving average in `average`, which holds `unknown` until the
    /// first sample. Callers race here; a lost update only skips one sample of a statistic.
    fn fold(average: &AtomicU64, sample: u64, unknown: u64) {
        let old = average.load(Ordering::Relaxed);
        let new =
            if old == unknown { sample } else { old - old / Self::SMOOTHING + sample / Self::SMOOTHING };
        average.store(new, Ordering::Relaxed);
    }

    /// Folds a batch of `rows` that ran in `elapsed` into the average cost of a row.
    fn record(&self, rows: usize, elapsed: Duration) {
        let Ok(rows) = u64::try_from(rows.max(1)) else { return };
        let sample = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX) / rows;
        Self::fold(&self.row_cost_ns, sample.max(1), 0);
    }

    /// Notes an arrival, for the moving average of the time between arrivals.
    fn arrived(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_arrival_ns.swap(now, Ordering::Relaxed);
        if last == 0 {
            return;
        }
        Self::fold(&self.arrival_gap_ns, now.saturating_sub(last), u64::MAX);
    }

    /// Whether waiting `delay` for more requests is likely to gather any: requests have been
    /// arriving more often than once per `delay`. A lone sequential caller never waits.
    fn worth_waiting(&self, delay: Duration) -> bool {
        let gap = self.arrival_gap_ns.load(Ordering::Relaxed);
        u128::from(gap) <= delay.as_nanos()
    }

    /// How long the rows already queued would take on `workers` sessions: how long a request
    /// arriving now waits before it starts. Its own rows do not count, so a request to an idle
    /// model is never refused, however slow a row has become (a loaded machine).
    fn estimated_wait(&self, workers: usize) -> Duration {
        let rows = self.queued_rows.load(Ordering::Relaxed);
        let cost = u128::from(self.row_cost_ns.load(Ordering::Relaxed));
        let nanos = cost * rows as u128 / workers.max(1) as u128;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The sending side of a model's batching queue. Dropping it lets the workers finish what is
/// queued and exit, dropping their sessions.
#[derive(Debug)]
pub struct Batcher {
    sender: SyncSender<Job>,
    config: BatchConfig,
    label: String,
    metrics: Arc<ModelMetrics>,
    load: Arc<Load>,
    workers: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("rows", &self.input.rows).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts one worker thread per session.
    pub fn start(
        label: &str,
        sessions: Vec<ModelSession>,
        config: BatchConfig,
        metrics: Arc<ModelMetrics>,
    ) -> Result<Self> {
        let config = BatchConfig {
            max_batch_size: config.max_batch_size.max(1),
            queue_capacity: config.queue_capacity.max(1),
            ..config
        };
        let (sender, receiver) = sync_channel(config.queue_capacity);
        let intake = Arc::new(Mutex::new(Intake { receiver, carry: None }));
        let load = Arc::new(Load::default());
        let buffers = Arc::new(BatchBuffers::default());
        let workers = sessions.len();
        for (index, session) in sessions.into_iter().enumerate() {
            let intake = Arc::clone(&intake);
            let metrics = Arc::clone(&metrics);
            let load = Arc::clone(&load);
            let buffers = Arc::clone(&buffers);
            std::thread::Builder::new()
                .name(format!("infer-{index}-{label}"))
                .spawn(move || worker(session, &intake, config, &metrics, &load, &buffers))
                .map_err(|source| Error::Inference(format!("cannot start a worker thread: {source}")))?;
        }
        Ok(Self { sender, config, label: label.to_owned(), metrics, load, workers })
    }

    /// The batching settings in force.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// Queues `input` and waits for its outputs, at most until `deadline`.
    pub async fn infer(&self, input: BatchInput, deadline: Option<Instant>) -> Result<JobOutput> {
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            ModelMetrics::bump(&self.metrics.deadline_expired);
            return Err(Error::DeadlineExceeded);
        }
        let rows = input.rows;
        if let Some(limit) = self.config.max_queue_wait() {
            let wait = self.load.estimated_wait(self.workers);
            if wait > limit {
                ModelMetrics::bump(&self.metrics.queue_full);
                return Err(Error::Overloaded {
                    model: self.label.clone(),
                    queued_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    limit_ms: self.config.max_queue_wait_ms,
                });
            }
        }
        self.load.arrived();
        let (reply, response) = oneshot::channel();
        let job = Job { input, deadline, enqueued_at: Instant::now(), reply };
        self.metrics.queued.fetch_add(1, Ordering::Relaxed);
        self.load.queued_rows.fetch_add(rows, Ordering::Relaxed);
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                self.load.queued_rows.fetch_sub(rows, Ordering::Relaxed);
                ModelMetrics::bump(&self.metrics.queue_full);
                return Err(Error::QueueFull {
                    model: self.label.clone(),
                    capacity: self.config.queue_capacity,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                self.load.queued_rows.fetch_sub(rows, Ordering::Relaxed);
                return Err(Error::Unavailable(self.label.clone()));
            }
        }
        let answer = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), response).await {
                Ok(answer) => answer,
                Err(_elapsed) => {
                    ModelMetrics::bump(&self.metrics.deadline_expired);
                    return Err(Error::DeadlineExceeded);
                }
            },
            None => response.await,
        };
        answer.unwrap_or_else(|_| Err(Error::Unavailable(self.label.clone())))
    }
}

/// Why no job came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoJob {
    /// The wait ended first.
    TimedOut,
    /// The queue is closed and empty.
    Closed,
}

fn next_job(
    intake: &mut Intake,
    until: Option<Instant>,
    metrics: &ModelMetrics,
    load: &Load,
) -> std::result::Result<Job, NoJob> {
    if let Some(job) = intake.carry.take() {
        return Ok(job);
    }
    let received = match until {
        None => intake.receiver.recv().map_err(|_| NoJob::Closed),
        Some(until) => {
            let now = Instant::now();
            if now >= until {
                intake.receiver.try_recv().map_err(|error| match error {
                    TryRecvError::Empty => NoJob::TimedOut,
                    TryRecvError::Disconnected => NoJob::Closed,
                })
            } else {
                intake.receiver.recv_timeout(until - now).map_err(|error| match error {
                    RecvTimeoutError::Timeout => NoJob::TimedOut,
                    RecvTimeoutError::Disconnected => NoJob::Closed,
                })
            }
        }
    };
    if let Ok(job) = &received {
        metrics.queued.fetch_sub(1, Ordering::Relaxed);
        load.queued_rows.fetch_sub(job.input.rows, Ordering::Relaxed);
    }
    received
}

/// Waits for a first request (at most `idle` when given), then gathers more until the batch is
/// full or the delay is over.
fn gather(
    intake: &Mutex<Intake>,
    config: BatchConfig,
    metrics: &ModelMetrics,
    load: &Load,
    idle: Option<Duration>,
) -> std::result::Result<Vec<Job>, NoJob> {
    let mut intake = intake.lock().unwrap_or_else(PoisonError::into_inner);
    let first = next_job(&mut intake, idle.map(|wait| Instant::now() + wait), metrics, load)?;
    // Wait for company only when requests come often enough to bring some; otherwise take what
    // is queued now and run.
    let delay = if load.worth_waiting(config.max_delay()) { config.max_delay() } else { Duration::ZERO };
    let until = Instant::now() + delay;
    let mut rows = first.input.rows;
    let mut jobs = vec![first];
    while rows < config.max_batch_size {
        let Ok(job) = next_job(&mut intake, Some(until), metrics, load) else {
            break;
        };
        if rows + job.input.rows > config.max_batch_size {
            intake.carry = Some(job);
            break;
        }
        rows += job.input.rows;
        jobs.push(job);
    }
    Ok(jobs)
}

fn worker(
    mut session: ModelSession,
    intake: &Mutex<Intake>,
    config: BatchConfig,
    metrics: &ModelMetrics,
    load: &Load,
    buffers: &BatchBuffers,
) {
    loop {
        // The worker waiting for work (the others wait for the intake lock) frees the kept
        // buffers once none has come for SCRATCH_IDLE_RELEASE.
        let idle = buffers.holding().then_some(SCRATCH_IDLE_RELEASE);
        match gather(intake, config, metrics, load, idle) {
            Ok(jobs) => {
                let started = Instant::now();
                let mut scratch = buffers.take();
                let taken_capacity = scratch.capacity();
                if let Some(rows) = run_jobs(&mut session, jobs, metrics, &mut scratch) {
                    load.record(rows, started.elapsed());
                }
                buffers.give_back(scratch, taken_capacity, metrics);
            }
            Err(NoJob::TimedOut) => buffers.release(metrics),
            Err(NoJob::Closed) => break,
        }
    }
}

fn run_guarded(session: &mut ModelSession, input: &BatchInput) -> Result<Vec<f32>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| session.run(input)))
        .unwrap_or_else(|_| Err(Error::Inference("onnx runtime panicked".to_owned())))
}

fn reply(job: Job, result: Result<Vec<f32>>, batch_rows: usize, metrics: &ModelMetrics) {
    let latency = job.enqueued_at.elapsed();
    let result = result.map(|values| JobOutput { values, batch_rows, latency });
    let counter = if result.is_ok() { &metrics.requests_ok } else { &metrics.requests_failed };
    ModelMetrics::bump(counter);
    // A caller that gave up meanwhile simply does not receive it.
    let _ = job.reply.send(result);
}

/// Runs the live jobs as one batch (a lone job on its own buffer, several concatenated into
/// `scratch`); if the batch fails, each job is retried alone so that one bad request cannot fail
/// the others. Returns the rows run, `None` when nothing ran.
fn run_jobs(
    session: &mut ModelSession,
    jobs: Vec<Job>,
    metrics: &ModelMetrics,
    scratch: &mut Vec<f32>,
) -> Option<usize> {
    let now = Instant::now();
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.reply.is_closed() {
            ModelMetrics::bump(&metrics.cancelled);
        } else if job.deadline.is_some_and(|deadline| deadline <= now) {
            ModelMetrics::bump(&metrics.deadline_expired);
            let _ = job.reply.send(Err(Error::DeadlineExceeded));
        } else {
            live.push(job);
        }
    }
    let rows: usize = live.iter().map(|job| job.input.rows).sum();
    if live.is_empty() {
        return None;
    }
    ModelMetrics::bump(&metrics.batches);
    metrics.rows.fetch_add(rows as u64, Ordering::Relaxed);
    if live.len() == 1 {
        for job in live {
            let running = Instant::now();
            let result = run_guarded(session, &job.input);
            tracing::debug!(
                rows,
                requests = 1,
                concat_us = 0,
                run_us = running.elapsed().as_micros(),
                "batch ran"
            );
            reply(job, result, rows, metrics);
        }
        return Some(rows);
    }
    let assembling = Instant::now();
    let batch = concat(&live, rows, std::mem::take(scratch));
    let running = Instant::now();
    let result = run_guarded(session, &batch);
    tracing::debug!(
        rows,
        requests = live.len(),
        concat_us = (running - assembling).as_micros(),
        run_us = running.elapsed().as_micros(),
        "batch ran"
    );
    // Nothing else holds the batch now: take its buffer back for the next one.
    *scratch = Arc::try_unwrap(batch.image).unwrap_or_default();
    match result {
        Ok(outputs) => {
            let mut offset = 0;
            for job in live {
                let end = offset + job.input.rows;
                let own = outputs[offset..end].to_vec();
                offset = end;
                reply(job, Ok(own), rows, metrics);
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, requests = live.len(), "batch failed, running its requests one by one");
            for job in live {
                let own_rows = job.input.rows;
                let result = run_guarded(session, &job.input);
                reply(job, result, own_rows, metrics);
            }
        }
    }
    Some(rows)
}

/// The jobs' rows laid end to end in `image` (emptied first, its capacity kept).
fn concat(jobs: &[Job], rows: usize, mut image: Vec<f32>) -> BatchInput {
    let image_len: usize = jobs.iter().map(|job| job.input.image.len()).sum();
    image.clear();
    image.reserve(image_len);
    let with_clinical = jobs.first().is_some_and(|job| job.input.clinical.is_some());
    let mut clinical = with_clinical.then(Vec::new);
    for job in jobs {
        image.extend_from_slice(&job.input.image);
        if let (Some(all), Some(own)) = (clinical.as_mut(), job.input.clinical.as_ref()) {
            all.extend_from_slice(own);
        }
    }
    BatchInput { rows, image: Arc::new(image), clinical }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_counts_the_rows_ahead_only() {
        let load = Load::default();
        // A row measured at 50 ms (a model on a loaded machine) and nothing queued: a request
        // arriving now starts at once, whatever the admission limit.
        load.record(1, Duration::from_millis(50));
        assert_eq!(load.estimated_wait(1), Duration::ZERO);
        // Four rows ahead of it on two sessions: two rows' time.
        load.queued_rows.store(4, Ordering::Relaxed);
        assert_eq!(load.estimated_wait(2), Duration::from_millis(100));
    }
}
