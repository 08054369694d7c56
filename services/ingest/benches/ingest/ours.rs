//! Our side of the ingest bench: the release `tfesi-ingest` binary on a fresh database and an
//! empty object store, its gRPC `Upload` client, and what it stored.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row as _};
use tfesi_auth::{AuthConfig, Role, TokenSource};
use tfesi_e2e::process::ServiceProcess;
use tfesi_e2e::{free_port, wait_for_health};
use tfesi_platform::client::Outgoing;
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Scratch, Study};

/// How long ingest may take to answer after start (it applies its migrations first).
const START_WITHIN: Duration = Duration::from_secs(60);
/// Per upload stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(300);
/// The called AE title of our receiver.
pub const AE_TITLE: &str = "TFESI";

type Client = IngestClient<InterceptedService<Channel, Outgoing>>;

/// One running `tfesi-ingest` with its own database, object store and Redis key prefix.
pub struct Ours {
    pub process: ServiceProcess,
    pub dicom: SocketAddr,
    pool: PgPool,
    token: String,
    redis_url: String,
    redis_prefix: String,
}

impl Ours {
    /// Starts the release binary on a fresh database named `name` and an empty store under
    /// the scratch directory; waits until it serves.
    pub async fn start(scratch: &Scratch, name: &str, redis_url: &str) -> Self {
        let database_url = scratch.create_database(name).await;
        let dir = scratch.dir.join(name);
        std::fs::create_dir_all(&dir).expect("the run's directory");
        let secret = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let secret_file = dir.join("hs256.secret");
        std::fs::write(&secret_file, &secret).expect("write the secret");
        let token = tfesi_auth::mint_hs256(
            secret.as_bytes(),
            &AuthConfig::default(),
            "bench-upload",
            &[Role::App],
            3600,
        )
        .expect("mint a token");
        let dicom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("DICOM address");
        let env: Vec<(String, String)> = [
            ("DATABASE__URL", database_url.clone()),
            ("AUTH__HS256_SECRET_FILE", secret_file.display().to_string()),
            ("STORAGE__ROOT", dir.join("objects").display().to_string()),
            ("REDIS__URL", redis_url.to_owned()),
            ("REDIS__KEY_PREFIX", name.to_owned()),
            ("DICOM__LISTEN", dicom.to_string()),
            ("DICOM__AE_TITLE", AE_TITLE.to_owned()),
            // No study completes during a run (Orthanc does no series selection either).
            ("DICOM__QUIET_PERIOD_S", "86400".to_owned()),
            ("TELEMETRY__LOG_FILTER", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("TFESI_INGEST__{key}"), value))
        .collect();
        // The release binary beside this bench (target/release), killed by its PID when dropped.
        let process = ServiceProcess::start("tfesi-ingest", "ingest", &env);
        let serving = wait_for_health(process.address, "", ServingStatus::Serving, START_WITHIN).await;
        assert_eq!(
            serving,
            Some(ServingStatus::Serving),
            "tfesi-ingest did not start; its log:\n{}",
            process.log()
        );
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&database_url)
            .await
            .expect("connect to the run's database");
        Self { process, dicom, pool, token, redis_url: redis_url.to_owned(), redis_prefix: name.to_owned() }
    }

    fn client(&self) -> Client {
        let channel = Endpoint::from_shared(format!("http://{}", self.process.address))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .timeout(STREAM_TIMEOUT)
            .connect_lazy();
        IngestClient::new(InterceptedService::new(
            channel,
            Outgoing::new(TokenSource::fixed(self.token.clone())),
        ))
    }

    /// Uploads every study, one `Upload` stream per study, with `clients` concurrent callers,
    /// each on its own HTTP/2 connection; returns the instances the server reported STORED.
    /// Panics when an instance was not stored.
    pub async fn upload(&self, studies: &[&Study], clients: usize, chunk_bytes: usize) -> usize {
        let streams: Arc<Vec<Vec<(String, bytes::Bytes)>>> = Arc::new(
            studies
                .iter()
                .map(|study| {
                    study
                        .files
                        .iter()
                        .enumerate()
                        .map(|(index, (_, bytes))| (format!("file-{index:04}"), bytes.clone()))
                        .collect()
                })
                .collect(),
        );
        let mut callers: Vec<Client> = (0..clients.max(1)).map(|_| self.client()).collect();
        // Connect every caller before the clock of the caller's run starts.
        for caller in &mut callers {
            let _ =
                caller.get_study(pb::GetStudyRequest { study_id: uuid::Uuid::new_v4().to_string() }).await;
        }
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for mut caller in callers {
            let streams = Arc::clone(&streams);
            let next = Arc::clone(&next);
            tasks.push(tokio::spawn(async move {
                let mut stored = 0;
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(files) = streams.get(index) else {
                        return stored;
                    };
                    let response = upload_stream(&mut caller, files.clone(), chunk_bytes).await;
                    let not_stored: Vec<_> = response
                        .results
                        .iter()
                        .filter(|result| result.outcome != pb::InstanceOutcome::Stored as i32)
                        .collect();
                    assert!(not_stored.is_empty(), "instances not stored: {not_stored:?}");
                    stored += response.stored_count as usize;
                }
            }));
        }
        let mut stored = 0;
        for task in tasks {
            stored += task.await.expect("an upload task");
        }
        stored
    }

    /// Instances in the catalogue (stored and quarantined), counted in its database.
    pub async fn count_stored(&self) -> i64 {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM ingest.instances) + (SELECT count(*) FROM ingest.quarantine) AS n",
        )
        .fetch_one(&self.pool)
        .await
        .expect("count the stored instances");
        row.get::<i64, _>("n")
    }

    /// Objects in the store's directory (files named `<sha256>.dcm`).
    pub fn count_objects(root: &Path) -> usize {
        let Ok(prefixes) = std::fs::read_dir(root) else { return 0 };
        prefixes
            .flatten()
            .filter(|entry| entry.file_name() != "tmp")
            .filter_map(|entry| std::fs::read_dir(entry.path()).ok())
            .map(|objects| {
                objects
                    .flatten()
                    .filter(|object| object.file_name().to_string_lossy().ends_with(".dcm"))
                    .count()
            })
            .sum()
    }

    /// Panics with its log when the process has exited.
    pub fn assert_running(&mut self) {
        assert!(
            !self.process.has_exited(),
            "tfesi-ingest exited during the bench; its log:\n{}",
            self.process.log()
        );
    }

    /// Stops the process (by its PID, when dropped) and removes the run's Redis keys.
    pub async fn stop(self) {
        self.pool.close().await;
        drop(self.process);
        remove_redis_keys(&self.redis_url, &self.redis_prefix).await;
    }
}

/// One `Upload` stream carrying `files`: begin, chunks, end per instance, produced while the
/// server consumes them.
async fn upload_stream(
    client: &mut Client,
    files: Vec<(String, bytes::Bytes)>,
    chunk_bytes: usize,
) -> pb::UploadResponse {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    let producer = tokio::spawn(async move {
        let part = |part| pb::UploadRequest { part: Some(part) };
        for (client_ref, bytes) in files {
            let begin =
                pb::InstanceBegin { client_ref, declared_size_bytes: bytes.len() as u64, sha256: None };
            if sender.send(part(pb::upload_request::Part::Begin(begin))).await.is_err() {
                return;
            }
            for chunk in bytes.chunks(chunk_bytes.max(1)) {
                if sender.send(part(pb::upload_request::Part::Chunk(chunk.to_vec()))).await.is_err() {
                    return;
                }
            }
            if sender.send(part(pb::upload_request::Part::End(pb::InstanceEnd {}))).await.is_err() {
                return;
            }
        }
    });
    let response = client.upload(ReceiverStream::new(receiver)).await.expect("Ingest.Upload").into_inner();
    producer.await.expect("the upload producer");
    response
}

/// Deletes the keys under `prefix` (the relay's stream, if it wrote one); bounded, best effort.
async fn remove_redis_keys(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else { return };
    let Ok(Ok(mut conn)) =
        tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await
    else {
        return;
    };
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap_or_default();
    for key in keys.iter().take(1000) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
    }
}
