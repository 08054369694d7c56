//! The outbox relay against real Postgres and Redis: publication, re-publication after Redis lost the stream, and confirmation.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tfesi_ingest::ParseLimits;
use tfesi_ingest::catalogue::complete_study;
use tfesi_ingest::ingest::{Ingestor, InstanceOutcome};
use tfesi_ingest::outbox::{RelayConfig, RelayWake, publish_due, read_confirmations, run_relay};
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::store::ObjectStore;

async fn redis() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    ConnectionManager::new(client).await.unwrap()
}

async fn stream_len(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

async fn ingestor(pool: &PgPool, dir: &tempfile::TempDir) -> Ingestor {
    Ingestor::new(pool.clone(), ObjectStore::open(dir.path()).unwrap(), ParseLimits::default()).await.unwrap()
}

/// Stores the T2 sagittal series of a synthetic patient; returns its study id.
async fn stored_t2_study(ingest: &Ingestor, seed: u64) -> uuid::Uuid {
    let study = tfesi_synth::generate_patient(seed, 0, &Default::default()).unwrap();
    let mut study_id = None;
    for file in study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal) {
        if let InstanceOutcome::Stored { study_id: id, .. } =
            ingest.ingest(Bytes::from(file.bytes.clone())).await.unwrap()
        {
            study_id = Some(id);
        }
    }
    study_id.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_job_is_published_again_after_redis_lost_it_until_confirmed(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(&pool, &dir).await;
    let study_id = stored_t2_study(&ingest, 9).await;
    let (_, job) = complete_study(&pool, study_id, &SelectionRules::default()).await.unwrap();
    let job = job.unwrap();

    let config = RelayConfig {
        stream_key: format!("test:ingest:{}", uuid::Uuid::new_v4()),
        republish_after: Duration::from_millis(200),
        ..RelayConfig::default()
    };
    let mut conn = redis().await;
    assert_eq!(publish_due(&pool, &mut conn, &config).await.unwrap(), 1);
    assert_eq!(publish_due(&pool, &mut conn, &config).await.unwrap(), 0, "not due again yet");
    assert_eq!(stream_len(&mut conn, &config.stream_key).await, 1);

    // Redis loses everything we wrote
    let _: i64 = redis::cmd("DEL").arg(&config.stream_key).query_async(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(publish_due(&pool, &mut conn, &config).await.unwrap(), 1, "re-published from Postgres");
    assert_eq!(stream_len(&mut conn, &config.stream_key).await, 1);

    // the pipeline confirms; the relay stops re-publishing
    let _: String = redis::cmd("XADD")
        .arg(config.done_key())
        .arg("*")
        .arg("job_id")
        .arg(job.job_id.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let cursor = read_confirmations(&pool, &mut conn, &config, "0-0").await.unwrap();
    assert_ne!(cursor, "0-0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(publish_due(&pool, &mut conn, &config).await.unwrap(), 0);
    let count: i32 =
        sqlx::query_scalar("SELECT publish_count FROM ingest.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 2);

    let _: i64 = redis::cmd("DEL")
        .arg(&config.stream_key)
        .arg(config.done_key())
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_written_job_wakes_the_relay_instead_of_waiting_for_its_poll(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(&pool, &dir).await;
    let study_id = stored_t2_study(&ingest, 10).await;
    let wake = RelayWake::default();
    let config = RelayConfig {
        stream_key: format!("test:ingest:{}", uuid::Uuid::new_v4()),
        // Far longer than the test waits: only the wake can publish the job in time.
        poll_interval: Duration::from_secs(600),
        wake: wake.clone(),
        ..RelayConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(run_relay(pool.clone(), redis().await, config.clone(), async {
        let _ = stopped.await;
    }));
    let mut conn = redis().await;
    // The relay's first round has passed (nothing to publish) once the stream's key could exist.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stream_len(&mut conn, &config.stream_key).await, 0);

    complete_study(&pool, study_id, &SelectionRules::default()).await.unwrap().1.unwrap();
    let written = std::time::Instant::now();
    wake.job_written();
    while stream_len(&mut conn, &config.stream_key).await == 0 {
        assert!(written.elapsed() < Duration::from_secs(5), "the woken relay did not publish the job");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("published {} ms after the wake", written.elapsed().as_millis());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), relay).await.unwrap().unwrap();
    let _: i64 = redis::cmd("DEL").arg(&config.stream_key).query_async(&mut conn).await.unwrap();
}
