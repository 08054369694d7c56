//! The outbox relay against real Postgres and Redis: publication, re-publication after Redis lost the stream, and confirmation.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tfesi_ingest::ParseLimits;
use tfesi_ingest::catalogue::complete_study;
use tfesi_ingest::ingest::{Ingestor, InstanceOutcome};
use tfesi_ingest::outbox::{RelayConfig, publish_due, read_confirmations};
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::store::ObjectStore;

async fn redis() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    ConnectionManager::new(client).await.unwrap()
}

async fn stream_len(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_job_is_published_again_after_redis_lost_it_until_confirmed(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = Ingestor::new(pool.clone(), ObjectStore::open(dir.path()).unwrap(), ParseLimits::default())
        .await
        .unwrap();
    let study = tfesi_synth::generate_patient(9, 0, &Default::default()).unwrap();
    let mut study_id = None;
    for file in study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal) {
        if let InstanceOutcome::Stored { study_id: id, .. } =
            ingest.ingest(Bytes::from(file.bytes.clone())).await.unwrap()
        {
            study_id = Some(id);
        }
    }
    let (_, job) = complete_study(&pool, study_id.unwrap(), &SelectionRules::default()).await.unwrap();
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
