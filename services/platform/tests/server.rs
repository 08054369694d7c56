//! The platform's gRPC server through a real tonic client: health, drain on shutdown, request
//! timeouts. A tiny hand-written unary service (`/tfesi.test.Slow/Sleep`, a
//! `google.protobuf.Duration` in and out) stands in for a slow RPC of a real service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tfesi_platform::{GrpcServer, Health, ServerConfig, Shutdown};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

type Codec = tonic_prost::ProstCodec<prost_types::Duration, prost_types::Duration>;

/// Sleeps for the requested duration, then echoes it.
#[derive(Clone)]
struct Slow;

impl NamedService for Slow {
    const NAME: &'static str = "tfesi.test.Slow";
}

struct SleepHandler;

impl tonic::server::UnaryService<prost_types::Duration> for SleepHandler {
    type Response = prost_types::Duration;
    type Future = BoxFuture<'static, Result<tonic::Response<prost_types::Duration>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<prost_types::Duration>) -> Self::Future {
        Box::pin(async move {
            let asked = request.into_inner();
            let millis =
                u64::try_from(asked.seconds * 1_000 + i64::from(asked.nanos / 1_000_000)).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok(tonic::Response::new(asked))
        })
    }
}

impl tower::Service<http::Request<Body>> for Slow {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Codec::default());
            Ok(grpc.unary(SleepHandler, request).await)
        })
    }
}

async fn sleep_rpc(
    address: std::net::SocketAddr,
    millis: i64,
    timeout: Option<Duration>,
) -> Result<(), tonic::Status> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let channel = endpoint.connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let request = tonic::Request::new(prost_types::Duration {
        seconds: millis / 1_000,
        nanos: i32::try_from((millis % 1_000) * 1_000_000).unwrap(),
    });
    let path = http::uri::PathAndQuery::from_static("/tfesi.test.Slow/Sleep");
    client.unary::<_, prost_types::Duration, _>(request, path, Codec::default()).await.map(|_| ())
}

async fn start(
    config: ServerConfig,
    health: Health,
) -> (std::net::SocketAddr, tfesi_platform::ShutdownTrigger, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let server = GrpcServer::new(&config, health)
        .with_auth(&tfesi_platform::AuthConfig::disabled())
        .expect("disabled auth needs no keys")
        .add_service(Slow);
    let task = tokio::spawn(server.serve(listener, shutdown));
    (address, trigger, task)
}

async fn health_of(address: std::net::SocketAddr) -> Option<ServingStatus> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{address}")).ok()?.connect().await.ok()?;
    let mut client = HealthClient::new(channel);
    let response = client.check(HealthCheckRequest { service: Slow::NAME.to_owned() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

#[tokio::test]
async fn shutdown_lets_a_slow_request_in_flight_finish() {
    let (address, trigger, server) = start(ServerConfig::default(), Health::default()).await;
    let in_flight = tokio::spawn(sleep_rpc(address, 800, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stop_asked = Instant::now();
    trigger.trigger();
    let answer = in_flight.await.unwrap();
    assert!(answer.is_ok(), "the request in flight completes during the drain: {answer:?}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after the drain")
        .unwrap()
        .unwrap();
    assert!(stop_asked.elapsed() >= Duration::from_millis(500), "the server waited for the request");
}

#[tokio::test]
async fn health_is_serving_and_reports_not_serving_while_a_check_fails() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = failing.clone();
    let health = Health::new(tfesi_platform::health::HealthTiming {
        interval: Duration::from_millis(20),
        check_timeout: Duration::from_millis(200),
    });
    health.add_check("postgres", move || {
        let down = probe.load(std::sync::atomic::Ordering::SeqCst);
        async move { if down { Err("connection refused".to_owned()) } else { Ok(()) } }
    });
    let (address, trigger, server) = start(ServerConfig::default(), health).await;
    let poll = |wanted| async move {
        for _ in 0..100 {
            if health_of(address).await == Some(wanted) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(poll(ServingStatus::Serving).await);
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(poll(ServingStatus::NotServing).await);
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(poll(ServingStatus::Serving).await);
    trigger.trigger();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_server_request_timeout_cuts_a_request_that_runs_too_long() {
    let config = ServerConfig { request_timeout_ms: 100, ..ServerConfig::default() };
    let (address, trigger, server) = start(config, Health::default()).await;
    let started = Instant::now();
    let answer = sleep_rpc(address, 2_000, None).await;
    let status = answer.expect_err("the server stops the request");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    trigger.trigger();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_deadline_shorter_than_the_server_timeout_is_honoured() {
    let (address, trigger, server) = start(ServerConfig::default(), Health::default()).await;
    let started = Instant::now();
    let status = sleep_rpc(address, 2_000, Some(Duration::from_millis(150))).await.expect_err("deadline");
    assert!(matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{status:?}");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    trigger.trigger();
    server.await.unwrap().unwrap();
}
