//! The Ingest gRPC API served in-process on an ephemeral port, called with the generated client against real Postgres (and Redis for the relay).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tfesi_ingest::ParseLimits;
use tfesi_ingest::config::UploadConfig;
use tfesi_ingest::grpc::IngestApi;
use tfesi_ingest::ingest::Ingestor;
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::store::ObjectStore;
use tfesi_proto::common::v1::{Date, PageRequest, Sex};
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::ingest::v1::ingest_server::IngestServer;
use tfesi_proto::ingest::v1::lookup_ids_request::Key;
use tfesi_proto::ingest::v1::upload_request::Part;
use tonic::Code;
use tonic::transport::Channel;

use crate::corpus::{corpus_dir, corpus_file};

/// Patient lookup (LookupIds, ResolvePatient) and its audit records.
mod lookup;

struct App {
    client: IngestClient<Channel>,
    store: ObjectStore,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_app(pool: PgPool, limits: UploadConfig) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let parse_limits =
        ParseLimits { max_instance_bytes: limits.max_instance_bytes as usize, ..ParseLimits::default() };
    let ingestor = Ingestor::new(pool.clone(), store.clone(), parse_limits).await.unwrap();
    let api = IngestApi::new(ingestor, SelectionRules::default(), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IngestServer::new(api).max_decoding_message_size(8 * 1024 * 1024))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stop.await;
            }),
    );
    let client = IngestClient::connect(format!("http://{address}")).await.unwrap();
    App { client, store, _dir: dir, _shutdown: shutdown }
}

async fn app(pool: PgPool) -> App {
    spawn_app(pool, UploadConfig::default()).await
}

fn begin(client_ref: &str, size: usize) -> pb::UploadRequest {
    pb::UploadRequest {
        part: Some(Part::Begin(pb::InstanceBegin {
            client_ref: client_ref.into(),
            declared_size_bytes: size as u64,
            sha256: None,
        })),
    }
}

fn chunk(bytes: &[u8]) -> pb::UploadRequest {
    pb::UploadRequest { part: Some(Part::Chunk(bytes.to_vec())) }
}

fn end() -> pb::UploadRequest {
    pb::UploadRequest { part: Some(Part::End(pb::InstanceEnd {})) }
}

/// One instance as messages: begin (with its sha256), chunks of `chunk_size`, end.
fn instance(client_ref: &str, bytes: &[u8], chunk_size: usize) -> Vec<pb::UploadRequest> {
    let mut messages = vec![pb::UploadRequest {
        part: Some(Part::Begin(pb::InstanceBegin {
            client_ref: client_ref.into(),
            declared_size_bytes: bytes.len() as u64,
            sha256: Some(hex::encode(Sha256::digest(bytes))),
        })),
    }];
    messages.extend(bytes.chunks(chunk_size.max(1)).map(chunk));
    messages.push(end());
    messages
}

async fn upload(app: &App, messages: Vec<pb::UploadRequest>) -> Result<pb::UploadResponse, tonic::Status> {
    let mut client = app.client.clone();
    client.upload(tokio_stream::iter(messages)).await.map(tonic::Response::into_inner)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn patient(seed: u64, index: u32) -> tfesi_synth::generate::PatientStudy {
    let options = tfesi_synth::PatientOptions { phi_canaries: true, ..Default::default() };
    tfesi_synth::generate_patient(seed, index, &options).unwrap()
}

/// Uploads every file of a synthetic study in streams of `per_stream` instances, 64 KiB chunks.
async fn upload_study(
    app: &App,
    files: &[&tfesi_synth::generate::DicomFile],
    per_stream: usize,
) -> Vec<pb::InstanceResult> {
    let mut results = Vec::new();
    for (stream_index, group) in files.chunks(per_stream).enumerate() {
        let messages = group
            .iter()
            .enumerate()
            .flat_map(|(i, file)| instance(&format!("s{stream_index}-i{i}"), &file.bytes, 64 * 1024))
            .collect();
        let response = upload(app, messages).await.unwrap();
        assert_eq!(response.results.len(), group.len());
        results.extend(response.results);
    }
    results
}

fn study_id_of(results: &[pb::InstanceResult]) -> String {
    let ids: BTreeSet<&str> = results.iter().map(|r| r.study_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one study: {ids:?}");
    ids.into_iter().next().unwrap().to_owned()
}

async fn complete(app: &App, study_id: &str) -> pb::CompleteStudyResponse {
    let mut client = app.client.clone();
    client.complete_study(pb::CompleteStudyRequest { study_id: study_id.into() }).await.unwrap().into_inner()
}

async fn get_study(app: &App, study_id: &str) -> pb::Study {
    let mut client = app.client.clone();
    client
        .get_study(pb::GetStudyRequest { study_id: study_id.into() })
        .await
        .unwrap()
        .into_inner()
        .study
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_chunked_synthetic_study_is_stored_then_duplicate_and_completes_with_its_t2_sagittal(pool: PgPool) {
    let app = app(pool.clone()).await;
    let study = patient(21, 0);
    let files: Vec<_> = study.files.iter().collect();
    let results = upload_study(&app, &files, 7).await;
    for result in &results {
        assert_eq!(result.outcome(), pb::InstanceOutcome::Stored, "{result:?}");
        assert!(result.message.is_empty());
        assert_eq!(result.stored_sha256.len(), 64);
        assert!(!result.series_id.is_empty() && !result.patient_id.is_empty());
        assert!(!result.sop_instance_uid.contains("PHIC-"));
    }
    let study_id = study_id_of(&results);

    // a client retrying a whole stream gets DUPLICATE with the same stored objects
    let again = upload_study(&app, &files[..7], 7).await;
    for (first, second) in results.iter().zip(&again) {
        assert_eq!(second.outcome(), pb::InstanceOutcome::Duplicate, "{second:?}");
        assert_eq!(second.stored_sha256, first.stored_sha256);
        assert_eq!(second.series_id, first.series_id);
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, files.len() as i64);

    let receiving = get_study(&app, &study_id).await;
    assert_eq!(receiving.state(), pb::StudyState::Receiving);
    assert_eq!(receiving.source(), pb::StudySource::Grpc);
    assert_eq!(receiving.selection_outcome(), pb::SelectionOutcome::Pending);
    assert_eq!(receiving.processing.as_ref().unwrap().state(), pb::ProcessingState::NotStarted);
    assert_eq!(receiving.instance_count as usize, files.len());
    assert!(receiving.series.iter().all(|s| s.decision() == pb::SeriesDecision::Unspecified));

    let completed = complete(&app, &study_id).await;
    assert!(completed.job_created);
    let done = completed.study.unwrap();
    assert_eq!(done.state(), pb::StudyState::Complete);
    assert_eq!(done.selection_outcome(), pb::SelectionOutcome::Selected);
    assert_eq!(done.processing.as_ref().unwrap().state(), pb::ProcessingState::Queued);
    let selected: Vec<_> =
        done.series.iter().filter(|s| s.decision() == pb::SeriesDecision::Selected).collect();
    assert_eq!(selected.len(), 1);
    let selected = selected[0];
    assert_eq!(selected.series_id, done.selected_series_id);
    assert_eq!(selected.plane(), pb::Plane::Sagittal);
    assert_eq!(selected.weighting(), pb::Weighting::T2);
    assert!(selected.reasons.iter().any(|r| r.code() == pb::SelectionReason::BestCandidate));
    let t2_files: Vec<_> =
        study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).collect();
    assert_eq!(selected.instance_count as usize, t2_files.len());
    for series in done.series.iter().filter(|s| s.decision() == pb::SeriesDecision::Rejected) {
        assert!(!series.reasons.is_empty(), "a rejected series says why: {series:?}");
        assert!(
            series
                .reasons
                .iter()
                .all(|r| r.code() != pb::SelectionReason::Unspecified && !r.message.is_empty())
        );
    }
    assert!(
        done.series
            .iter()
            .flat_map(|s| &s.reasons)
            .any(|r| r.code() == pb::SelectionReason::Stir || r.code() == pb::SelectionReason::NotSagittal),
        "the distractors are told apart"
    );

    // completing again without new instances is idempotent: no new job
    let again = complete(&app, &study_id).await;
    assert!(!again.job_created);
    assert_eq!(again.study.unwrap().selected_series_id, done.selected_series_id);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.outbox").await, 1);

    // GetSeries: the objects preprocess will read are in the store under their sha256
    let mut client = app.client.clone();
    let series = client
        .get_series(pb::GetSeriesRequest { series_id: done.selected_series_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(series.study_id, study_id);
    assert_eq!(series.objects.len(), t2_files.len());
    let uids: Vec<_> = series.objects.iter().map(|o| o.sop_instance_uid.clone()).collect();
    let mut sorted = uids.clone();
    sorted.sort();
    assert_eq!(uids, sorted, "SOP Instance UID order");
    for object in &series.objects {
        let bytes = app.store.get(&object.sha256).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), object.sha256);
        assert_eq!(bytes.len() as u64, object.size_bytes);
    }
    let job: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM ingest.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(job["series_id"], serde_json::Value::String(done.selected_series_id.clone()));
    let audited =
        count(&pool, "SELECT count(*) FROM audit.log WHERE action = 'get_series' AND outcome = 'found'")
            .await;
    assert_eq!(audited, 1);

    assert_no_canary_outside_the_vault(&pool).await;
}

/// No `PHIC-` canary in any table of the ingest schema except the vault ones.
async fn assert_no_canary_outside_the_vault(pool: &PgPool) {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'ingest' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'vault%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    for table in tables {
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ingest.{table} t WHERE t::text LIKE '%PHIC-%'"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(hits, 0, "canary in ingest.{table}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_invalid_corpus_file_is_rejected_with_a_reason_and_later_instances_are_still_stored(
    pool: PgPool,
) {
    let app = app(pool.clone()).await;
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 21);
    let mut messages = Vec::new();
    for name in &names {
        messages.extend(instance(name, &corpus_file(&format!("invalid/{name}")), 32 * 1024));
    }
    messages.extend(instance("valid-sc", &corpus_file("valid/SC_rgb_jpeg_dcmtk.dcm"), 32 * 1024));
    messages.extend(instance("valid-mr", &corpus_file("valid/emri_small.dcm"), 32 * 1024));
    let response = upload(&app, messages).await.unwrap();
    assert_eq!(response.results.len(), names.len() + 2);
    for (name, result) in names.iter().zip(&response.results) {
        assert_eq!(&result.client_ref, name);
        assert_eq!(result.outcome(), pb::InstanceOutcome::Rejected, "{name}: {result:?}");
        assert_ne!(result.reason(), pb::InstanceReason::Unspecified, "{name}");
        assert!(!result.message.is_empty(), "{name}");
        assert!(result.study_id.is_empty() && result.stored_sha256.is_empty(), "{name}");
    }
    let by_ref = |r: &str| response.results.iter().find(|x| x.client_ref == r).unwrap().clone();
    assert_eq!(by_ref("empty.dcm").reason(), pb::InstanceReason::NotDicom);
    assert_eq!(by_ref("garbage_with_DICM_magic.dcm").reason(), pb::InstanceReason::NoFileMeta);
    assert_eq!(by_ref("MR_small_nested_sequence_2000_deep.dcm").reason(), pb::InstanceReason::Malformed);
    let sc = by_ref("valid-sc");
    assert_eq!(sc.outcome(), pb::InstanceOutcome::Quarantined);
    assert_eq!(sc.reason(), pb::InstanceReason::SecondaryCapture);
    assert_eq!(by_ref("valid-mr").outcome(), pb::InstanceOutcome::Stored);
    assert_eq!(response.rejected_count as usize, names.len());
    assert_eq!((response.stored_count, response.quarantined_count, response.duplicate_count), (1, 1, 0));
    let total: usize = names.iter().map(|n| corpus_file(&format!("invalid/{n}")).len()).sum::<usize>()
        + corpus_file("valid/SC_rgb_jpeg_dcmtk.dcm").len()
        + corpus_file("valid/emri_small.dcm").len();
    assert_eq!(response.bytes_received as usize, total);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_broken_message_order_is_invalid_argument_and_earlier_instances_stay_stored(pool: PgPool) {
    let app = app(pool.clone()).await;
    let valid = corpus_file("valid/emri_small.dcm");
    let cases: Vec<(&str, Vec<pb::UploadRequest>, &str)> = vec![
        ("chunk without begin", vec![chunk(b"abc")], "without InstanceBegin"),
        ("end without begin", vec![end()], "InstanceEnd arrived without InstanceBegin"),
        (
            "begin inside an instance",
            vec![begin("a", 10), chunk(b"x"), begin("b", 10)],
            "inside the open instance 'a'",
        ),
        ("empty client_ref", vec![begin("", 10)], "client_ref"),
        ("stream ends inside an instance", vec![begin("a", 10), chunk(b"x")], "ended inside instance 'a'"),
        ("message without a part", vec![pb::UploadRequest { part: None }], "no part"),
    ];
    for (case, tail, expected) in cases {
        let mut messages = instance("first", &valid, 4096);
        messages.extend(tail);
        let status = upload(&app, messages).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(status.message().contains(expected), "{case}: {}", status.message());
    }
    // the instance finished before each error was stored durably (once, then duplicates)
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn per_stream_limits_are_resource_exhausted_and_earlier_instances_stay_stored(pool: PgPool) {
    let study = patient(22, 0);
    let files: Vec<_> = study.files.iter().take(3).collect();
    let few = UploadConfig { max_instances_per_stream: 2, ..UploadConfig::default() };
    let app = spawn_app(pool.clone(), few).await;
    let messages =
        files.iter().enumerate().flat_map(|(i, f)| instance(&format!("i{i}"), &f.bytes, 16 * 1024)).collect();
    let status = upload(&app, messages).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("upload.max_instances_per_stream"), "{}", status.message());
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 2);

    let other = patient(22, 1);
    let first = other.files[0].bytes.len() as u64;
    let small_stream = UploadConfig { max_bytes_per_stream: first + 100, ..UploadConfig::default() };
    let app = spawn_app(pool.clone(), small_stream).await;
    let messages = other
        .files
        .iter()
        .take(2)
        .enumerate()
        .flat_map(|(i, f)| instance(&format!("b{i}"), &f.bytes, 16 * 1024))
        .collect();
    let status = upload(&app, messages).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("upload.max_bytes_per_stream"), "{}", status.message());
    assert_eq!(
        count(&pool, "SELECT count(*) FROM ingest.instances").await,
        3,
        "the first instance of the stream is kept"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_instance_over_the_limit_or_with_a_wrong_size_or_checksum_is_rejected_not_a_stream_error(
    pool: PgPool,
) {
    let small = corpus_file("valid/emri_small.dcm");
    // never parsed: over the cap before anything is looked at
    let big = [small.as_ref(), &[0u8; 1000][..]].concat();
    let limits = UploadConfig { max_instance_bytes: small.len() as u64, ..UploadConfig::default() };
    let app = spawn_app(pool.clone(), limits).await;
    let mut messages = vec![begin("declared-too-large", big.len())];
    messages.extend(big.chunks(8192).map(chunk));
    messages.push(end());
    // declares a small size, then sends more than the cap: rejected without buffering the rest
    messages.push(begin("sent-too-large", 100));
    messages.extend(big.chunks(8192).map(chunk));
    messages.push(end());
    messages.push(begin("size-mismatch", small.len() - 1));
    messages.push(chunk(&small));
    messages.push(end());
    messages.push(pb::UploadRequest {
        part: Some(Part::Begin(pb::InstanceBegin {
            client_ref: "checksum".into(),
            declared_size_bytes: small.len() as u64,
            sha256: Some("0".repeat(64)),
        })),
    });
    messages.push(chunk(&small));
    messages.push(end());
    messages.extend(instance("fits", &small, 1000));
    let response = upload(&app, messages).await.unwrap();
    let reasons: Vec<_> =
        response.results.iter().map(|r| (r.client_ref.as_str(), r.outcome(), r.reason())).collect();
    assert_eq!(
        reasons,
        vec![
            ("declared-too-large", pb::InstanceOutcome::Rejected, pb::InstanceReason::TooLarge),
            ("sent-too-large", pb::InstanceOutcome::Rejected, pb::InstanceReason::TooLarge),
            ("size-mismatch", pb::InstanceOutcome::Rejected, pb::InstanceReason::SizeMismatch),
            ("checksum", pb::InstanceOutcome::Rejected, pb::InstanceReason::ChecksumMismatch),
            ("fits", pb::InstanceOutcome::Stored, pb::InstanceReason::Unspecified),
        ]
    );
    assert!(
        response.results[0].message.contains("over the per-instance limit"),
        "{}",
        response.results[0].message
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_and_malformed_ids_are_not_found_and_invalid_argument_with_the_id_named(pool: PgPool) {
    let app = app(pool).await;
    let mut client = app.client.clone();
    let status =
        client.complete_study(pb::CompleteStudyRequest { study_id: "xyz".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "study_id 'xyz' is not a UUID");
    let unknown = uuid::Uuid::new_v4().to_string();
    let status =
        client.complete_study(pb::CompleteStudyRequest { study_id: unknown.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&unknown));
    let status = client.get_study(pb::GetStudyRequest { study_id: unknown.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client.get_series(pb::GetSeriesRequest { series_id: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("series_id"));
    let status = client.get_series(pb::GetSeriesRequest { series_id: unknown.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let report = pb::ReportJobStatusRequest {
        job_id: unknown.clone(),
        state: pb::ProcessingState::InProgress as i32,
        ..Default::default()
    };
    assert_eq!(client.report_job_status(report).await.unwrap_err().code(), Code::NotFound);
}

#[sqlx::test(migrations = "../../migrations")]
async fn job_reports_move_the_processing_status_forward_and_control_the_relay(pool: PgPool) {
    let app = app(pool.clone()).await;
    let study = patient(23, 0);
    let t2: Vec<_> =
        study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).collect();
    let study_id = study_id_of(&upload_study(&app, &t2, 50).await);
    let completed = complete(&app, &study_id).await;
    assert!(completed.job_created);
    let job_id = completed.study.unwrap().processing.unwrap().job_id;
    let client = app.client.clone();
    let report = |state: pb::ProcessingState, attempts: u32, error: &str| {
        let request = pb::ReportJobStatusRequest {
            job_id: job_id.clone(),
            state: state as i32,
            attempts,
            last_error: error.into(),
        };
        let mut client = client.clone();
        async move { client.report_job_status(request).await.map(|r| r.into_inner().status.unwrap()) }
    };
    let confirmed = |pool: PgPool, job_id: String| async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT confirmed_at IS NOT NULL FROM ingest.outbox WHERE job_id = $1::uuid",
        )
        .bind(job_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };

    let status = report(pb::ProcessingState::Unspecified, 1, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let progress = report(pb::ProcessingState::InProgress, 2, "decoder busy").await.unwrap();
    assert_eq!((progress.state(), progress.attempts), (pb::ProcessingState::InProgress, 2));
    let stale = report(pb::ProcessingState::InProgress, 1, "").await.unwrap();
    assert_eq!(stale.attempts, 2, "an older report changes nothing");
    let dead = report(pb::ProcessingState::DeadLetter, 3, "tensor spec mismatch").await.unwrap();
    assert_eq!(dead.state(), pb::ProcessingState::DeadLetter);
    assert!(confirmed(pool.clone(), job_id.clone()).await, "a dead letter is not re-published");
    let shown = get_study(&app, &study_id).await.processing.unwrap();
    assert_eq!(
        (shown.state(), shown.last_error.as_str()),
        (pb::ProcessingState::DeadLetter, "tensor spec mismatch")
    );

    // an operator retry: queued again, so the relay publishes it again
    let stream_key = format!("test:ingest-api:{}", uuid::Uuid::new_v4());
    let relay = tfesi_ingest::outbox::RelayConfig { stream_key: stream_key.clone(), ..Default::default() };
    let redis_client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut redis = redis::aio::ConnectionManager::new(redis_client).await.unwrap();
    assert_eq!(
        tfesi_ingest::outbox::publish_due(&pool, &mut redis, &relay).await.unwrap(),
        0,
        "dead letters stay put"
    );
    let queued = report(pb::ProcessingState::Queued, 0, "").await.unwrap();
    assert_eq!(queued.state(), pb::ProcessingState::Queued);
    assert!(!confirmed(pool.clone(), job_id.clone()).await);
    assert_eq!(
        tfesi_ingest::outbox::publish_due(&pool, &mut redis, &relay).await.unwrap(),
        1,
        "published again"
    );
    assert_eq!(
        tfesi_ingest::outbox::publish_due(&pool, &mut redis, &relay).await.unwrap(),
        0,
        "not due again yet"
    );
    let _: i64 = redis::cmd("DEL").arg(&stream_key).query_async(&mut redis).await.unwrap();

    report(pb::ProcessingState::InProgress, 2, "").await.unwrap();
    // A worker that finished, died before saying so, and confirms on a later delivery reports
    // 0 attempts: SUCCEEDED is still taken, and the attempts already counted are kept.
    let done = report(pb::ProcessingState::Succeeded, 0, "").await.unwrap();
    assert_eq!((done.state(), done.attempts), (pb::ProcessingState::Succeeded, 2));
    assert!(confirmed(pool.clone(), job_id.clone()).await);
    let late = report(pb::ProcessingState::InProgress, 9, "").await.unwrap();
    assert_eq!(late.state(), pb::ProcessingState::Succeeded, "never back from SUCCEEDED");
    let again = report(pb::ProcessingState::Succeeded, 1, "").await.unwrap();
    assert_eq!(again.updated_at, done.updated_at, "idempotent");
    let study = get_study(&app, &study_id).await;
    assert!(study.prediction_available);
    assert_eq!(study.processing.unwrap().state(), pb::ProcessingState::Succeeded);
}

#[sqlx::test(migrations = "../../migrations")]
async fn studies_and_quarantine_list_newest_first_in_pages_with_tokens_bound_to_their_filters(pool: PgPool) {
    let app = app(pool.clone()).await;
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir().join("valid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        // one stream per file, so received times are distinct and ordered
        upload(&app, instance(name, &corpus_file(&format!("valid/{name}")), 16 * 1024)).await.unwrap();
    }
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT study_id::text FROM ingest.studies ORDER BY created_at DESC, study_id DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(expected.len() >= 3, "{expected:?}");

    let mut client = app.client.clone();
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_studies(pb::ListStudiesRequest {
                page: Some(PageRequest { page_size: 2, page_token: token.clone() }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.studies.len() <= 2);
        assert!(page.studies.iter().all(|s| s.series.is_empty() && s.series_count >= 1));
        listed.extend(page.studies.iter().map(|s| s.study_id.clone()));
        pages += 1;
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
        // a token is bound to its filters
        let other = pb::ListStudiesRequest {
            page: Some(PageRequest { page_size: 2, page_token: token.clone() }),
            state: pb::StudyState::Complete as i32,
            ..Default::default()
        };
        assert_eq!(client.list_studies(other).await.unwrap_err().code(), Code::InvalidArgument);
    }
    assert_eq!(listed, expected);
    assert_eq!(pages, expected.len().div_ceil(2));
    let garbage = pb::ListStudiesRequest {
        page: Some(PageRequest { page_size: 2, page_token: "not-a-token".into() }),
        ..Default::default()
    };
    assert_eq!(client.list_studies(garbage).await.unwrap_err().code(), Code::InvalidArgument);

    // filters: completing one study moves it from RECEIVING to COMPLETE
    complete(&app, &expected[0]).await;
    let complete_only = client
        .list_studies(pb::ListStudiesRequest { state: pb::StudyState::Complete as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        complete_only.studies.iter().map(|s| s.study_id.clone()).collect::<Vec<_>>(),
        vec![expected[0].clone()]
    );
    let receiving = client
        .list_studies(pb::ListStudiesRequest {
            state: pb::StudyState::Receiving as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receiving.studies.len(), expected.len() - 1);
    let not_started = client
        .list_studies(pb::ListStudiesRequest {
            processing_state: pb::ProcessingState::NotStarted as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!not_started.studies.is_empty());

    // quarantine
    let quarantined: Vec<String> = sqlx::query_scalar(
        "SELECT sop_instance_uid FROM ingest.quarantine ORDER BY created_at DESC, sop_instance_uid DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!quarantined.is_empty());
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_quarantine(pb::ListQuarantineRequest {
                page: Some(PageRequest { page_size: 1, page_token: token.clone() }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for item in &page.instances {
            assert_ne!(item.reason(), pb::InstanceReason::Unspecified);
            assert!(!item.message.is_empty() && !item.study_id.is_empty() && !item.series_id.is_empty());
        }
        seen.extend(page.instances.iter().map(|i| i.sop_instance_uid.clone()));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, quarantined);
    let sc_only = client
        .list_quarantine(pb::ListQuarantineRequest {
            reason: pb::InstanceReason::SecondaryCapture as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(sc_only.instances.iter().all(|i| i.reason() == pb::InstanceReason::SecondaryCapture));
    assert!(!sc_only.instances.is_empty());
    let bad_filter =
        pb::ListQuarantineRequest { reason: pb::InstanceReason::NotDicom as i32, ..Default::default() };
    assert_eq!(client.list_quarantine(bad_filter).await.unwrap_err().code(), Code::InvalidArgument);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_new_instance_reopens_a_completed_study_and_completing_again_writes_a_new_job(pool: PgPool) {
    let app = app(pool.clone()).await;
    let study = patient(25, 0);
    let t2: Vec<_> =
        study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).collect();
    let (last, first) = t2.split_last().unwrap();
    let study_id = study_id_of(&upload_study(&app, first, 50).await);
    let before = complete(&app, &study_id).await;
    assert!(before.job_created);

    upload_study(&app, &[*last], 1).await;
    let reopened = get_study(&app, &study_id).await;
    assert_eq!(reopened.state(), pb::StudyState::Receiving);
    let after = complete(&app, &study_id).await;
    assert!(after.job_created, "the selected series gained an instance");
    let after_study = after.study.unwrap();
    assert_ne!(after_study.processing.unwrap().job_id, before.study.unwrap().processing.unwrap().job_id);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.outbox").await, 2);
    let selected = after_study.series.iter().find(|s| s.series_id == after_study.selected_series_id).unwrap();
    assert_eq!(selected.instance_count as usize, t2.len());

    // a duplicate does not reopen
    upload_study(&app, &[*last], 1).await;
    assert_eq!(get_study(&app, &study_id).await.state(), pb::StudyState::Complete);
}

#[sqlx::test(migrations = "../../migrations")]
async fn instances_from_dicom_and_grpc_make_a_mixed_study(pool: PgPool) {
    let app = app(pool.clone()).await;
    let study = patient(26, 0);
    let results = upload_study(&app, &[&study.files[0]], 1).await;
    let study_id = study_id_of(&results);
    assert_eq!(get_study(&app, &study_id).await.source(), pb::StudySource::Grpc);
    let ingestor = Ingestor::new(pool.clone(), app.store.clone(), ParseLimits::default()).await.unwrap();
    let outcome = ingestor
        .ingest_via(bytes::Bytes::from(study.files[1].bytes.clone()), tfesi_ingest::ingest::Source::Dicom)
        .await
        .unwrap();
    assert!(matches!(outcome, tfesi_ingest::ingest::InstanceOutcome::Stored { .. }), "{outcome:?}");
    assert_eq!(get_study(&app, &study_id).await.source(), pb::StudySource::Mixed);
    let via: Vec<String> =
        sqlx::query_scalar("SELECT received_via FROM ingest.studies").fetch_one(&pool).await.unwrap();
    assert_eq!(via, vec!["grpc".to_owned(), "dicom".to_owned()]);
}
