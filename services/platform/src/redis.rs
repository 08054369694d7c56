//! Redis connections: a shared multiplexed manager for short commands, and dedicated
//! connections for blocking reads (a blocking XREADGROUP on the shared one would stall all).

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};

use crate::config::RedisConfig;

/// Redis could not be used at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is malformed.
    #[error("invalid redis.url: {0}")]
    Url(String),
    /// Never reachable within `redis.startup_wait_ms`.
    #[error(
        "redis at {url} is unreachable after {waited:?} ({cause}); start it (on this machine: \
         `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`, \
         or run scripts/setup.sh) or set redis.url"
    )]
    Unreachable { url: String, waited: Duration, cause: String },
}

/// The shared connection manager, after waiting up to `startup_wait_ms` for Redis. It
/// reconnects by itself after an outage.
pub async fn connect(config: &RedisConfig) -> Result<ConnectionManager, RedisError> {
    let client =
        redis::Client::open(config.url.as_str()).map_err(|error| RedisError::Url(error.to_string()))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
        .set_connection_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
        .set_number_of_retries(2);
    let started = Instant::now();
    let wait = Duration::from_millis(config.startup_wait_ms);
    loop {
        match ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await {
            Ok(manager) => {
                tracing::info!(url = %config.url, "redis connected");
                return Ok(manager);
            }
            Err(error) => {
                if started.elapsed() >= wait {
                    return Err(RedisError::Unreachable {
                        url: config.url.clone(),
                        waited: started.elapsed(),
                        cause: error.to_string(),
                    });
                }
                tracing::warn!(url = %config.url, %error, "waiting for redis");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// A connection of its own for blocking commands, with a response timeout longer than the
/// longest block it will issue.
pub async fn dedicated(
    config: &RedisConfig,
    longest_block: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(config.url.as_str())?;
    let settings = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(longest_block + Duration::from_secs(2)))
        .set_connection_timeout(Some(Duration::from_millis(config.response_timeout_ms)));
    client.get_multiplexed_async_connection_with_config(&settings).await
}

/// A health check that sends PING.
pub fn health_check(
    manager: ConnectionManager,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let mut connection = manager.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|error| format!("redis: {error}"))
        })
    }
}
