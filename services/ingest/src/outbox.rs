//! The outbox relay: publishes jobs from `ingest.outbox` to a Redis stream and re-publishes the ones the pipeline has not confirmed.
//!
//! Confirmation: after the registry has recorded the prediction of a job, the pipeline worker
//! appends `job_id=<uuid>` to the stream `<stream_key>:done`. The relay reads that stream (from
//! its own cursor, no consumer group) and sets `confirmed_at`. Postgres stays the truth: if Redis
//! loses everything, unconfirmed jobs are published again after `republish_after`, and the
//! pipeline is idempotent on `job_id`, so a job published twice is processed once.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Stream the jobs go to (`tfesi:jobs` by default).
    pub stream_key: String,
    /// Unconfirmed jobs are published again after this long.
    pub republish_after: Duration,
    /// Most rows per round.
    pub batch: i64,
    /// Pause between rounds when idle.
    pub poll_interval: Duration,
    /// Ends the pause at once when this process writes a job (see [`RelayWake`]).
    pub wake: RelayWake,
}

/// Wakes this process's relay when a job has been written to the outbox, so the job is
/// published within a round trip to Postgres and Redis instead of after up to `poll_interval`
/// (500 ms: on average a quarter of a second added to every study's end-to-end latency). Jobs
/// written by another ingest process are still found by the poll.
#[derive(Debug, Clone, Default)]
pub struct RelayWake(Arc<tokio::sync::Notify>);

impl RelayWake {
    /// Called after the transaction that wrote a job has committed. A wake that arrives while
    /// the relay is in a round is kept, so that round is followed by another at once.
    pub fn job_written(&self) {
        self.0.notify_one();
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream_key: "tfesi:jobs".into(),
            republish_after: Duration::from_secs(300),
            batch: 100,
            poll_interval: Duration::from_millis(500),
            wake: RelayWake::default(),
        }
    }
}

impl RelayConfig {
    /// The stream the pipeline confirms finished jobs on.
    pub fn done_key(&self) -> String {
        format!("{}:done", self.stream_key)
    }
}

/// Relay failures (all retried by the loop).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Redis failure.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Publishes due jobs once; returns how many were published.
pub async fn publish_due(
    pool: &PgPool,
    redis: &mut ConnectionManager,
    config: &RelayConfig,
) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let republish_ms = i64::try_from(config.republish_after.as_millis()).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT job_id, payload::text AS payload FROM ingest.outbox
         WHERE confirmed_at IS NULL
           AND (published_at IS NULL OR published_at < now() - make_interval(secs => $1::double precision / 1000.0))
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(republish_ms)
    .bind(config.batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    for row in rows {
        let job_id: Uuid = row.try_get("job_id")?;
        let payload: String = row.try_get("payload")?;
        let _entry: String = redis::cmd("XADD")
            .arg(&config.stream_key)
            .arg("*")
            .arg("job_id")
            .arg(job_id.to_string())
            .arg("payload")
            .arg(payload)
            .query_async(redis)
            .await?;
        published.push(job_id);
    }
    sqlx::query(
        "UPDATE ingest.outbox SET published_at = now(), publish_count = publish_count + 1 WHERE job_id = ANY($1)",
    )
    .bind(&published)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(published.len())
}

/// Marks a job confirmed; true if it was pending.
pub async fn confirm_job(pool: &PgPool, job_id: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE ingest.outbox SET confirmed_at = now() WHERE job_id = $1 AND confirmed_at IS NULL",
    )
    .bind(job_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Reads confirmations after `cursor` from the done stream; returns the new cursor.
pub async fn read_confirmations(
    pool: &PgPool,
    redis: &mut ConnectionManager,
    config: &RelayConfig,
    cursor: &str,
) -> Result<String, RelayError> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(config.done_key())
        .arg(format!("({cursor}"))
        .arg("+")
        .arg("COUNT")
        .arg(config.batch)
        .query_async(redis)
        .await?;
    let mut last = cursor.to_string();
    for entry in reply.ids {
        if let Some(job_id) = entry.get::<String>("job_id").and_then(|text| Uuid::parse_str(&text).ok()) {
            confirm_job(pool, job_id).await?;
        }
        last = entry.id;
    }
    Ok(last)
}

/// Runs the relay until `shutdown` resolves; errors are logged and retried.
pub async fn run_relay(
    pool: PgPool,
    mut redis: ConnectionManager,
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut cursor = "0-0".to_string();
    loop {
        let round = async {
            cursor = read_confirmations(&pool, &mut redis, &config, &cursor).await?;
            publish_due(&pool, &mut redis, &config).await
        };
        match round.await {
            Ok(published) if published > 0 => tracing::info!(published, "outbox jobs published"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "outbox relay round failed"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(config.poll_interval) => {}
            () = config.wake.0.notified() => {}
        }
    }
}
