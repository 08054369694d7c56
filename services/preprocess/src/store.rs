//! The job ledger in Postgres (schema `preprocess`): attempt counts, states, dead letters and
//! the prediction request of each job. The truth about a job; Redis only carries deliveries.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Pipeline stage at which a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Prepare,
    Predict,
    Record,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Predict => "predict",
            Self::Record => "record",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "prepare" => Some(Self::Prepare),
            "predict" => Some(Self::Predict),
            "record" => Some(Self::Record),
            _ => None,
        }
    }
}

/// What the ledger says about a delivered job before an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Finished before: confirm again, do not run.
    Succeeded,
    /// Parked as a dead letter: acknowledge the delivery, do not run.
    DeadLettered,
    /// Run attempt number `attempt` (1-based); `prediction` is the RecordPrediction request
    /// an earlier attempt already built, to be replayed as is.
    Run { attempt: u32, prediction: Option<Vec<u8>> },
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub job_id: Uuid,
    pub study_id: String,
    pub series_id: String,
    pub stage: Option<Stage>,
    pub reason_code: String,
    pub message: String,
    pub attempts: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub dead_lettered_at: DateTime<Utc>,
}

/// Counts for GetPipelineStatus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    pub dead_letters: u64,
    pub in_progress: u64,
}

fn attempts_of(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// Registers the delivery of a job and starts an attempt, in one transaction (the row lock
/// serialises concurrent deliveries of the same job).
/// The encoded RecordPrediction request an attempt stored for replay, if any.
pub async fn stored_prediction(pool: &PgPool, job_id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let stored: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT prediction FROM preprocess.jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(pool)
            .await?;
    Ok(stored.flatten())
}

pub async fn admit(
    pool: &PgPool,
    job_id: Uuid,
    study_id: &str,
    series_id: &str,
    payload: &serde_json::Value,
) -> Result<Admission, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO preprocess.jobs (job_id, study_id, series_id, payload) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job_id)
    .bind(study_id)
    .bind(series_id)
    .bind(payload)
    .execute(&mut *tx)
    .await?;
    let row =
        sqlx::query("SELECT state, attempts, prediction FROM preprocess.jobs WHERE job_id = $1 FOR UPDATE")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
    let state: String = row.try_get("state")?;
    let admission = match state.as_str() {
        "succeeded" => Admission::Succeeded,
        "dead_letter" => Admission::DeadLettered,
        _ => {
            let attempts: i32 = sqlx::query_scalar(
                "UPDATE preprocess.jobs SET attempts = attempts + 1, state = 'in_progress', updated_at = now()
                 WHERE job_id = $1 RETURNING attempts",
            )
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
            Admission::Run { attempt: attempts_of(attempts), prediction: row.try_get("prediction")? }
        }
    };
    tx.commit().await?;
    Ok(admission)
}

/// Stores the RecordPrediction request of a job unless one is stored already; returns the
/// stored one (the first writer wins, so every replay sends identical content).
pub async fn keep_prediction(pool: &PgPool, job_id: Uuid, request: &[u8]) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE preprocess.jobs SET prediction = COALESCE(prediction, $2), updated_at = now()
         WHERE job_id = $1 RETURNING prediction",
    )
    .bind(job_id)
    .bind(request)
    .fetch_one(pool)
    .await
}

/// Records a failed attempt that will be retried.
pub async fn record_transient(
    pool: &PgPool,
    job_id: Uuid,
    stage: Stage,
    reason_code: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE preprocess.jobs SET state = 'retrying', stage = $2, reason_code = $3, last_error = $4,
             first_failed_at = COALESCE(first_failed_at, now()), updated_at = now()
         WHERE job_id = $1 AND state NOT IN ('succeeded', 'dead_letter')",
    )
    .bind(job_id)
    .bind(stage.as_str())
    .bind(reason_code)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// Parks a job as a dead letter; returns its attempt count.
pub async fn dead_letter(
    pool: &PgPool,
    job_id: Uuid,
    stage: Stage,
    reason_code: &str,
    message: &str,
) -> Result<u32, sqlx::Error> {
    let attempts: Option<i32> = sqlx::query_scalar(
        "UPDATE preprocess.jobs SET state = 'dead_letter', stage = $2, reason_code = $3, last_error = $4,
             first_failed_at = COALESCE(first_failed_at, now()), dead_lettered_at = now(), updated_at = now()
         WHERE job_id = $1 AND state <> 'succeeded' RETURNING attempts",
    )
    .bind(job_id)
    .bind(stage.as_str())
    .bind(reason_code)
    .bind(message)
    .fetch_optional(pool)
    .await?;
    Ok(attempts.map(attempts_of).unwrap_or(0))
}

/// Marks a job finished (its prediction is in the registry).
pub async fn succeed(pool: &PgPool, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE preprocess.jobs SET state = 'succeeded', succeeded_at = COALESCE(succeeded_at, now()),
             dead_lettered_at = NULL, updated_at = now()
         WHERE job_id = $1",
    )
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts an attempt that was interrupted (shutdown) back to `retrying` so the ledger does not
/// show it in progress.
pub async fn release(pool: &PgPool, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE preprocess.jobs SET state = 'retrying', updated_at = now() WHERE job_id = $1 AND state = 'in_progress'",
    )
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Dead letters, most recently dead-lettered first, after the keyset position `after`.
pub async fn list_dead_letters(
    pool: &PgPool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeadLetterRow>, sqlx::Error> {
    let (after_time, after_id) = after.map_or((None, None), |(time, id)| (Some(time), Some(id)));
    let rows = sqlx::query(
        "SELECT job_id, study_id, series_id, stage, reason_code, last_error, attempts, first_failed_at, dead_lettered_at
         FROM preprocess.jobs
         WHERE state = 'dead_letter' AND dead_lettered_at IS NOT NULL
           AND ($1::timestamptz IS NULL OR (dead_lettered_at, job_id) < ($1, $2::uuid))
         ORDER BY dead_lettered_at DESC, job_id DESC
         LIMIT $3",
    )
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stage: Option<String> = row.try_get("stage")?;
            Ok(DeadLetterRow {
                job_id: row.try_get("job_id")?,
                study_id: row.try_get("study_id")?,
                series_id: row.try_get("series_id")?,
                stage: stage.as_deref().and_then(Stage::parse),
                reason_code: row.try_get::<Option<String>, _>("reason_code")?.unwrap_or_default(),
                message: row.try_get::<Option<String>, _>("last_error")?.unwrap_or_default(),
                attempts: attempts_of(row.try_get("attempts")?),
                first_failed_at: row.try_get("first_failed_at")?,
                dead_lettered_at: row.try_get("dead_lettered_at")?,
            })
        })
        .collect()
}

/// Number of dead letters and of attempts in progress.
pub async fn counts(pool: &PgPool) -> Result<LedgerCounts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE state = 'dead_letter') AS dead, count(*) FILTER (WHERE state = 'in_progress') AS busy
         FROM preprocess.jobs",
    )
    .fetch_one(pool)
    .await?;
    let dead: i64 = row.try_get("dead")?;
    let busy: i64 = row.try_get("busy")?;
    Ok(LedgerCounts {
        dead_letters: u64::try_from(dead).unwrap_or(0),
        in_progress: u64::try_from(busy).unwrap_or(0),
    })
}

/// Outcome of an operator's retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    NotFound,
    AlreadySucceeded,
    /// Not a dead letter (queued again already, or being processed): nothing done.
    NotDeadLettered,
    /// Moved back to the queue; the payload to publish.
    Requeued {
        payload: String,
    },
}

/// Moves a dead letter back to `queued` with its attempts reset, calling `publish` with the
/// payload inside the transaction: the state changes only if the job reached the stream.
pub async fn retry_dead_letter<F, Fut, E>(
    pool: &PgPool,
    job_id: Uuid,
    publish: F,
) -> Result<Retry, RetryError<E>>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT state, payload::text AS payload FROM preprocess.jobs WHERE job_id = $1 FOR UPDATE",
    )
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Retry::NotFound);
    };
    let state: String = row.try_get("state")?;
    match state.as_str() {
        "succeeded" => return Ok(Retry::AlreadySucceeded),
        "dead_letter" => {}
        _ => return Ok(Retry::NotDeadLettered),
    }
    let payload: String = row.try_get("payload")?;
    sqlx::query(
        "UPDATE preprocess.jobs SET state = 'queued', attempts = 0, dead_lettered_at = NULL, first_failed_at = NULL,
             updated_at = now()
         WHERE job_id = $1",
    )
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    publish(payload.clone()).await.map_err(RetryError::Publish)?;
    tx.commit().await?;
    Ok(Retry::Requeued { payload })
}

/// Why a retry failed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("publishing the job failed")]
    Publish(E),
}
