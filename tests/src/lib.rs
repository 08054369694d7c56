//! Helpers for the end-to-end tests: start the real service binaries as child processes,
//! put a fault-injecting TCP proxy between them and Postgres or Redis, and talk gRPC to them.
//!
//! Every process a test starts is killed by its own PID when its guard drops; every loop here is
//! bounded in time.

pub mod bench;
pub mod cohort;
pub mod inference;
pub mod machine;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod redis_server;
pub mod stack;
pub mod study;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A free TCP port on 127.0.0.1 (bound and released; a tiny race is accepted in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

/// The `grpc.health.v1` status of `service` ("" for the whole server), or `None` when the
/// server does not answer.
pub async fn health_status(address: SocketAddr, service: &str) -> Option<ServingStatus> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_millis(1_000));
    let channel = endpoint.connect().await.ok()?;
    let response =
        HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Polls health until it equals `wanted` or `within` passes; returns the last status seen.
pub async fn wait_for_health(
    address: SocketAddr,
    service: &str,
    wanted: ServingStatus,
    within: Duration,
) -> Option<ServingStatus> {
    let started = Instant::now();
    loop {
        let status = health_status(address, service).await;
        if status == Some(wanted) || started.elapsed() >= within {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database name unique to this test run, for a service to create (it creates what it lacks).
pub fn unique_database(prefix: &str) -> String {
    format!("{prefix}_{}_{:08x}", std::process::id(), rand::random::<u32>())
}

/// Drops a database created for a test (best effort: the test's result does not depend on it).
pub async fn drop_database(name: &str) {
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
    else {
        return;
    };
    // The name comes from `unique_database` (letters, digits, underscores), never from input.
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return;
    }
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await;
}
