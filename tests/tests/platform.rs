//! Foundation promises, checked on the real service binaries: health follows Postgres and
//! Redis (NOT_SERVING while unreachable, SERVING again without a restart), reflection lists the
//! service, a caller's trace id reaches the service's log, bad configuration fails at start with
//! a message naming the key, and SIGTERM exits cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tfesi_e2e::process::ServiceProcess;
use tfesi_e2e::proxy::FaultProxy;
use tfesi_e2e::{drop_database, unique_database, wait_for_health};
use tonic_health::pb::health_check_response::ServingStatus;

const POSTGRES: &str = "127.0.0.1:5432";
const REDIS: &str = "127.0.0.1:6379";
const START_WITHIN: Duration = Duration::from_secs(90);
const REACT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dependency {
    Postgres,
    Redis,
}

struct Service {
    binary: &'static str,
    name: &'static str,
    grpc_service: &'static str,
    dependencies: &'static [Dependency],
}

const INGEST: Service = Service {
    binary: "tfesi-ingest",
    name: "ingest",
    grpc_service: "tfesi.ingest.v1.Ingest",
    dependencies: &[Dependency::Postgres, Dependency::Redis],
};
const PREPROCESS: Service = Service {
    binary: "tfesi-preprocess",
    name: "preprocess",
    grpc_service: "tfesi.preprocess.v1.Preprocess",
    dependencies: &[Dependency::Postgres, Dependency::Redis],
};
const INFERENCE: Service = Service {
    binary: "tfesi-inference",
    name: "inference",
    grpc_service: "tfesi.inference.v1.Inference",
    dependencies: &[],
};
const REGISTRY: Service = Service {
    binary: "tfesi-registry",
    name: "registry",
    grpc_service: "tfesi.registry.v1.Registry",
    dependencies: &[Dependency::Postgres],
};

/// A service process whose Postgres and Redis connections pass through cuttable proxies.
struct Harness {
    process: ServiceProcess,
    postgres: FaultProxy,
    redis: FaultProxy,
    database: String,
    _models: Option<tempfile::TempDir>,
    _secret: tempfile::NamedTempFile,
}

/// A private copy of the repository's bundled model repository, the default model included
/// (inference writes its champion state there, which must not touch the checkout).
fn copy_of_bundled_models() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    tfesi_e2e::stack::copy_tree(&tfesi_e2e::stack::bundled_models(), copy.path());
    copy
}

impl Harness {
    async fn start(service: &Service, extra_env: &[(String, String)]) -> Self {
        let postgres = FaultProxy::start(POSTGRES.parse().unwrap()).await.unwrap();
        let redis = FaultProxy::start(REDIS.parse().unwrap()).await.unwrap();
        let database = unique_database(&format!("tfesi_e2e_{}", service.name));
        let prefix = format!("TFESI_{}__", service.name.to_ascii_uppercase());
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            secret.path(),
            format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()),
        )
        .unwrap();
        let mut env = vec![
            (format!("{prefix}TELEMETRY__LOG_FORMAT"), "json".to_owned()),
            (format!("{prefix}AUTH__HS256_SECRET_FILE"), secret.path().display().to_string()),
        ];
        if service.dependencies.contains(&Dependency::Postgres) {
            env.push((
                format!("{prefix}DATABASE__URL"),
                format!("postgres://postgres@{}/{database}", postgres.address()),
            ));
        }
        if service.dependencies.contains(&Dependency::Redis) {
            env.push((format!("{prefix}REDIS__URL"), format!("redis://{}/0", redis.address())));
            env.push((format!("{prefix}REDIS__KEY_PREFIX"), database.clone()));
        }
        let models = (service.name == "inference").then(copy_of_bundled_models);
        if let Some(models) = &models {
            env.push((format!("{prefix}REPOSITORY_DIR"), models.path().display().to_string()));
        }
        env.extend_from_slice(extra_env);
        let process = ServiceProcess::start(service.binary, service.name, &env);
        Self { process, postgres, redis, database, _models: models, _secret: secret }
    }

    fn proxy(&self, dependency: Dependency) -> &FaultProxy {
        match dependency {
            Dependency::Postgres => &self.postgres,
            Dependency::Redis => &self.redis,
        }
    }

    async fn expect_status(&self, service: &str, wanted: ServingStatus, within: Duration, context: &str) {
        let seen = wait_for_health(self.process.address, service, wanted, within).await;
        assert_eq!(seen, Some(wanted), "{context}; service log:\n{}", self.process.log());
    }

    async fn finish(mut self) {
        self.process.terminate();
        let code = self.process.wait_exit(Duration::from_secs(20));
        assert_eq!(code, Some(0), "clean exit on SIGTERM; log:\n{}", self.process.log());
        drop_database(&self.database).await;
    }
}

async fn health_follows_dependencies(service: &Service) {
    let harness = Harness::start(service, &[]).await;
    harness.expect_status("", ServingStatus::Serving, START_WITHIN, "SERVING after start").await;
    harness
        .expect_status(service.grpc_service, ServingStatus::Serving, REACT_WITHIN, "service SERVING")
        .await;
    for dependency in service.dependencies {
        harness.proxy(*dependency).cut();
        let context = format!("NOT_SERVING while {dependency:?} is unreachable");
        harness.expect_status(service.grpc_service, ServingStatus::NotServing, REACT_WITHIN, &context).await;
        harness.proxy(*dependency).restore();
        let context = format!("SERVING again after {dependency:?} returned");
        harness.expect_status(service.grpc_service, ServingStatus::Serving, REACT_WITHIN, &context).await;
    }
    harness.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_health_follows_postgres_and_redis() {
    health_follows_dependencies(&INGEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocess_health_follows_postgres_and_redis() {
    health_follows_dependencies(&PREPROCESS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_health_follows_postgres() {
    health_follows_dependencies(&REGISTRY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_reports_serving_with_its_model_loaded() {
    health_follows_dependencies(&INFERENCE).await;
}

/// The service names reflection lists on `address`.
async fn reflected_services(address: SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("one reflection response");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_tfesi_service_across_the_four_binaries() {
    let mut listed = Vec::new();
    for service in [&INGEST, &PREPROCESS, &INFERENCE, &REGISTRY] {
        let harness = Harness::start(service, &[]).await;
        harness.expect_status("", ServingStatus::Serving, START_WITHIN, "SERVING after start").await;
        let names = reflected_services(harness.process.address).await;
        assert!(
            names.iter().any(|name| name == service.grpc_service),
            "{} not in {names:?}",
            service.grpc_service
        );
        assert!(names.iter().any(|name| name == "grpc.health.v1.Health"), "health not in {names:?}");
        listed.extend(names);
        harness.finish().await;
    }
    for expected in tfesi_proto::SERVICE_NAMES {
        assert!(listed.iter().any(|name| name == expected), "{expected} not reflected by any binary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_sent_by_the_client_appears_in_the_service_log() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let harness = Harness::start(&REGISTRY, &[]).await;
    harness.expect_status("", ServingStatus::Serving, START_WITHIN, "SERVING after start").await;
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let traceparent = format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1);
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", harness.process.address)).unwrap();
    let mut client = HealthClient::new(endpoint.connect().await.unwrap());
    client.check(request).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !harness.process.log().contains(&trace_id) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        harness.process.log().contains(&trace_id),
        "trace id {trace_id} not in log:\n{}",
        harness.process.log()
    );
    harness.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_token_keys_refuses_to_start_and_names_the_keys() {
    let database = unique_database("tfesi_e2e_nokeys");
    let env =
        [("TFESI_REGISTRY__DATABASE__URL".to_owned(), format!("postgres://postgres@{POSTGRES}/{database}"))];
    let mut process = ServiceProcess::start("tfesi-registry", "registry", &env);
    let code = process.wait_exit(Duration::from_secs(60));
    let log = process.log();
    drop_database(&database).await;
    assert_eq!(code, Some(1), "refuses to serve without keys; log:\n{log}");
    assert!(log.contains("auth.hs256_secret_file") && log.contains("auth.mode"), "names the keys: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_configuration_key_stops_the_service_with_its_name() {
    let env = [("TFESI_REGISTRY__SERVER__LISTN".to_owned(), "127.0.0.1:1".to_owned())];
    let mut process = ServiceProcess::start("tfesi-registry", "registry", &env);
    let code = process.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(2), "exit code 2 for bad config; log:\n{}", process.log());
    let log = process.log();
    assert!(log.contains("listn"), "the message names the key: {log}");
    assert_eq!(log.trim().lines().count(), 1, "one line: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_stops_the_service_with_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let env = [("TFESI_INFERENCE__SERVER__LISTEN".to_owned(), address.clone())];
    let mut process = ServiceProcess::start("tfesi-inference", "inference", &env);
    let code = process.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "non-zero exit; log:\n{}", process.log());
    let log = process.log();
    let error_line = log.lines().find(|line| line.starts_with("tfesi-inference:")).unwrap_or_default();
    assert!(
        error_line.contains(&address) && error_line.contains("SERVER__LISTEN"),
        "names the address and key: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_is_a_one_line_error_naming_the_fix() {
    let dead_port = tfesi_e2e::free_port();
    let env = [
        ("TFESI_REGISTRY__DATABASE__URL".to_owned(), format!("postgres://postgres@127.0.0.1:{dead_port}/x")),
        ("TFESI_REGISTRY__DATABASE__STARTUP_WAIT_MS".to_owned(), "1000".to_owned()),
    ];
    let mut process = ServiceProcess::start("tfesi-registry", "registry", &env);
    let code = process.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "non-zero exit; log:\n{}", process.log());
    let log = process.log();
    let error_line = log.lines().find(|line| line.starts_with("tfesi-registry:")).unwrap_or_default();
    assert!(error_line.contains("unreachable") && error_line.contains("database.url"), "{log}");
}
