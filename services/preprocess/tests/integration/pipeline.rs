//! The pipeline worker against real Postgres, Redis, registry, inference and ingest: jobs end as
//! stored predictions exactly once through duplicates, dead consumers, Redis flushes, poison
//! series and operator retries.

use std::path::Path;
use std::time::Duration;

use sqlx::PgPool;
use tfesi_platform::jobs::PipelineJob;
use tfesi_platform::objects::ObjectStore;
use tfesi_proto::common::v1 as common;
use tfesi_proto::preprocess::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::stack::{Options, PrivateRedis, Stack, wait_for};

/// A job whose one instance has corrupt RLE pixel data (stored content-addressed, so its hash
/// is right: only decoding fails).
fn corrupt_pixel_job(objects: &Path) -> PipelineJob {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus");
    let bytes = std::fs::read(corpus.join("invalid/emri_small_RLE_corrupt.dcm")).unwrap();
    let stored = ObjectStore::open(objects).unwrap().put(&bytes).unwrap();
    PipelineJob {
        job_id: Uuid::new_v4().to_string(),
        study_id: Uuid::new_v4().to_string(),
        patient_uuid: Uuid::new_v4().to_string(),
        series_id: Uuid::new_v4().to_string(),
        series_uid: "2.25.1".to_owned(),
        objects: vec![stored.sha256],
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_synthetic_study_ends_with_one_prediction_per_model_in_the_registry(pool: PgPool) {
    let stack = Stack::start(pool, Options { shadow: true, ..Options::default() }).await;
    let job = stack.ingest_study(11).await;
    stack.link_episode(&job.study_id).await;
    assert_eq!(stack.publish().await, 1);

    let ledger = stack.wait_state(&job.job_id, "succeeded").await;
    assert_eq!(ledger.attempts, 1);
    let predictions = stack.predictions(&job.job_id).await;
    assert_eq!(
        predictions,
        vec![("2".to_owned(), "champion".to_owned()), ("1".to_owned(), "shadow".to_owned())]
    );
    let clinical: serde_json::Value = sqlx::query_scalar(
        "SELECT clinical FROM registry.predictions WHERE job_id = $1 AND model_role = 'champion'",
    )
    .bind(&job.job_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(clinical.to_string().matches("baseline_leg_nrs").count(), 1, "{clinical}");

    // acknowledged and confirmed to the relay
    wait_for("the entry to be acknowledged", || async { (stack.pending().await == 0).then_some(()) }).await;
    let mut redis = stack.redis.clone();
    let done: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(format!("{}:done", stack.stream_key()))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!done.is_empty(), "the job is confirmed on the done stream");
    let status = stack
        .preprocess_client()
        .await
        .get_pipeline_status(pb::GetPipelineStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.completed_since_start, 1);
    assert_eq!(status.dead_letter_count, 0);
    assert_eq!(status.pending, 0);
    assert!(status.consumer_count >= 1);
    stack.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_corrupt_pixel_series_is_dead_lettered_with_its_reason_and_other_jobs_complete(pool: PgPool) {
    let stack = Stack::start(pool, Options::default()).await;
    let corrupt = corrupt_pixel_job(stack.objects.path());
    stack.add_job(&corrupt).await;
    let good = stack.ingest_study(12).await;
    stack.link_episode(&good.study_id).await;
    stack.publish().await;

    let dead = stack.wait_state(&corrupt.job_id, "dead_letter").await;
    assert_eq!(dead.reason_code.as_deref(), Some("corrupt_pixel_data"));
    assert_eq!(dead.attempts, 1, "a permanent failure is not retried");
    stack.wait_state(&good.job_id, "succeeded").await;
    assert_eq!(stack.predictions(&good.job_id).await.len(), 1);
    assert!(stack.predictions(&corrupt.job_id).await.is_empty());

    let mut client = stack.preprocess_client().await;
    let listed =
        client.list_dead_letters(pb::ListDeadLettersRequest { page: None }).await.unwrap().into_inner();
    assert_eq!(listed.dead_letters.len(), 1);
    let letter = &listed.dead_letters[0];
    assert_eq!(letter.job_id, corrupt.job_id);
    assert_eq!(letter.stage, pb::PipelineStage::Prepare as i32);
    assert_eq!(letter.reason_code, "corrupt_pixel_data");
    assert!(letter.message.contains("1.2.840.10008.1.2.5"), "{}", letter.message);
    assert_eq!(letter.attempts, 1);
    assert!(letter.dead_lettered_at.is_some() && letter.first_failed_at.is_some());
    let bad_token = client
        .list_dead_letters(pb::ListDeadLettersRequest {
            page: Some(common::PageRequest { page_size: 10, page_token: "zz".to_owned() }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    wait_for("both entries acknowledged", || async { (stack.pending().await == 0).then_some(()) }).await;
    stack.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_job_published_twice_is_recorded_once(pool: PgPool) {
    let options = Options { start_preprocess: false, republish_after_s: 3600, ..Options::default() };
    let mut stack = Stack::start(pool, options).await;
    let job = stack.ingest_study(13).await;
    stack.link_episode(&job.study_id).await;
    assert_eq!(stack.publish().await, 1);
    stack.add_job(&job).await;
    stack.start_preprocess().await;

    stack.wait_state(&job.job_id, "succeeded").await;
    wait_for("both deliveries acknowledged", || async { (stack.pending().await == 0).then_some(()) }).await;
    // and a third delivery after success is only confirmed again, never run
    stack.add_job(&job).await;
    let mut client = stack.preprocess_client().await;
    wait_for("the late duplicate acknowledged", || {
        let mut client = client.clone();
        async move {
            let status = client.get_pipeline_status(pb::GetPipelineStatusRequest {}).await.ok()?.into_inner();
            (status.queue_depth == 0 && status.pending == 0).then_some(())
        }
    })
    .await;
    let _ = &mut client;
    assert_eq!(stack.predictions(&job.job_id).await, vec![("2".to_owned(), "champion".to_owned())]);
    assert_eq!(stack.ledger(&job.job_id).await.unwrap().attempts, 1, "the duplicate was never run");
    stack.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_pending_job_of_a_dead_consumer_is_reclaimed_and_finished_once(pool: PgPool) {
    let options = Options { start_preprocess: false, republish_after_s: 3600, ..Options::default() };
    let mut stack = Stack::start(pool, options).await;
    let job = stack.ingest_study(14).await;
    stack.link_episode(&job.study_id).await;
    stack.publish().await;
    // A consumer takes the job and dies without acknowledging it.
    let mut redis = stack.redis.clone();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stack.stream_key())
        .arg("preprocess")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .unwrap();
    let taken: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("preprocess")
        .arg("crashed-consumer")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(stack.stream_key())
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(taken.keys.iter().map(|key| key.ids.len()).sum::<usize>(), 1);
    assert_eq!(stack.pending().await, 1);

    let started = std::time::Instant::now();
    stack.start_preprocess().await;
    stack.wait_state(&job.job_id, "succeeded").await;
    wait_for("the reclaimed entry acknowledged", || async { (stack.pending().await == 0).then_some(()) })
        .await;
    assert!(started.elapsed() >= Duration::from_millis(900), "reclaimed only after claim_idle_ms");
    assert_eq!(stack.predictions(&job.job_id).await.len(), 1);
    assert_eq!(stack.ledger(&job.job_id).await.unwrap().attempts, 1);
    stack.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn redis_flushall_mid_run_then_republication_stores_every_prediction_once(pool: PgPool) {
    let redis = PrivateRedis::start().await;
    let stack = Stack::start(pool, Options { redis_url: redis.url.clone(), ..Options::default() }).await;
    let mut jobs = Vec::new();
    for seed in [21, 22] {
        let job = stack.ingest_study(seed).await;
        stack.link_episode(&job.study_id).await;
        jobs.push(job);
    }
    stack.publish().await;
    // Let the worker get going, then Redis loses everything: stream, group, cache, done stream.
    wait_for("the first job in progress", || async {
        let states = futures::future::join_all(jobs.iter().map(|job| stack.ledger(&job.job_id))).await;
        states.iter().any(Option::is_some).then_some(())
    })
    .await;
    let mut connection = stack.redis.clone();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut connection).await.unwrap();

    // Ingest's relay re-publishes unconfirmed jobs from Postgres (republish_after_s = 1).
    for job in &jobs {
        stack.wait_state(&job.job_id, "succeeded").await;
    }
    for job in &jobs {
        assert_eq!(stack.predictions(&job.job_id).await.len(), 1, "job {}", job.job_id);
    }
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registry.predictions").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(total, 2);
    stack.stop().await;
    drop(redis);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_study_without_episode_is_dead_lettered_and_retried_after_linking(pool: PgPool) {
    let stack = Stack::start(pool, Options::default()).await;
    let job = stack.ingest_study(15).await;
    stack.publish().await;

    let dead = stack.wait_state(&job.job_id, "dead_letter").await;
    assert_eq!(dead.reason_code.as_deref(), Some("no_linked_episode"));
    assert_eq!(dead.attempts, 3, "transient failures are retried up to max_attempts");
    assert!(stack.predictions(&job.job_id).await.is_empty());

    let mut client = stack.preprocess_client().await;
    let listed =
        client.list_dead_letters(pb::ListDeadLettersRequest { page: None }).await.unwrap().into_inner();
    assert_eq!(listed.dead_letters[0].stage, pb::PipelineStage::Predict as i32);
    assert!(listed.dead_letters[0].message.contains("LinkStudy"), "{}", listed.dead_letters[0].message);

    stack.link_episode(&job.study_id).await;
    let retried = client
        .retry_dead_letter(pb::RetryDeadLetterRequest { job_id: job.job_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(retried.requeued);
    let ledger = stack.wait_state(&job.job_id, "succeeded").await;
    assert_eq!(ledger.attempts, 1, "attempts were reset");
    assert_eq!(stack.predictions(&job.job_id).await.len(), 1);

    let again = client
        .retry_dead_letter(pb::RetryDeadLetterRequest { job_id: job.job_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let unknown = client
        .retry_dead_letter(pb::RetryDeadLetterRequest { job_id: Uuid::new_v4().to_string() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed =
        client.retry_dead_letter(pb::RetryDeadLetterRequest { job_id: "x".into() }).await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    stack.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn prepare_streams_the_tensor_of_a_stored_series(pool: PgPool) {
    let stack = Stack::start(pool, Options::default()).await;
    let job = stack.ingest_study(16).await;
    let mut client = stack.preprocess_client().await;

    let malformed = client
        .prepare(pb::PrepareRequest { series_id: "nope".into(), ..pb::PrepareRequest::default() })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let bad_spec = client
        .prepare(pb::PrepareRequest {
            series_id: job.series_id.clone(),
            spec_version: "tfesi-prep-v0".into(),
            max_chunk_bytes: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_spec.code(), Code::InvalidArgument);

    // Needs Ingest.GetSeries (services/ingest).
    let mut stream = client
        .prepare(pb::PrepareRequest {
            series_id: job.series_id.clone(),
            spec_version: String::new(),
            max_chunk_bytes: 65_536,
        })
        .await
        .expect("Prepare (needs Ingest.GetSeries)")
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(pb::prepare_response::Part::Header(header)) = first.part else { panic!("header first") };
    let info = header.tensor.unwrap();
    assert_eq!(info.shape, vec![11, 256, 256]);
    assert_eq!(header.study_id, job.study_id);
    let mut data = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        let Some(pb::prepare_response::Part::Chunk(chunk)) = message.part else {
            panic!("chunks after the header")
        };
        assert_eq!(chunk.offset as usize, data.len());
        assert!(chunk.data.len() <= 65_536);
        data.extend(chunk.data);
    }
    assert_eq!(data.len() as u64, info.size_bytes);
    use sha2::Digest as _;
    assert_eq!(hex::encode(sha2::Sha256::digest(&data)), info.sha256);

    let unknown = client
        .prepare(pb::PrepareRequest {
            series_id: Uuid::new_v4().to_string(),
            ..pb::PrepareRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    stack.stop().await;
}
