//! The Postgres pool and the migrations of `migrations/` (one set that creates every schema).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;

/// Every migration of the repository, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Postgres could not be used at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Never reachable within `database.startup_wait_ms`.
    #[error(
        "postgres at {url} is unreachable after {waited:?} ({cause}); start it (on this machine: \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or run scripts/setup.sh) \
         or set database.url"
    )]
    Unreachable { url: String, waited: Duration, cause: String },
    /// The database does not exist and may not be created.
    #[error("database in {url} does not exist; create it or set database.create_if_missing = true ({cause})")]
    Missing { url: String, cause: String },
    /// A migration failed.
    #[error("applying migrations failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// The URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(scheme, rest)| rest.split_once('@').map(|(auth, host)| (scheme, auth, host)))
    {
        Some((scheme, auth, host)) => {
            let user = auth.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// Connects (waiting up to `startup_wait_ms` for Postgres), creates the database when
/// configured to, and applies the migrations when configured to.
///
/// The pool reconnects by itself afterwards: an outage makes queries fail (and health report
/// NOT_SERVING) until Postgres is back, without a restart.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let url = redacted_url(&config.url);
    let started = Instant::now();
    let wait = Duration::from_millis(config.startup_wait_ms);
    loop {
        let attempt = prepare_and_connect(config).await;
        match attempt {
            Ok(pool) => {
                if config.run_migrations {
                    MIGRATOR.run(&pool).await?;
                }
                tracing::info!(url = %url, "postgres connected");
                return Ok(pool);
            }
            Err(AttemptError::Missing(cause)) => return Err(DbError::Missing { url, cause }),
            Err(AttemptError::Unreachable(cause)) => {
                if started.elapsed() >= wait {
                    return Err(DbError::Unreachable { url, waited: started.elapsed(), cause });
                }
                tracing::warn!(url = %url, %cause, "waiting for postgres");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

enum AttemptError {
    Unreachable(String),
    Missing(String),
}

async fn prepare_and_connect(config: &DatabaseConfig) -> Result<PgPool, AttemptError> {
    if config.create_if_missing {
        let exists = sqlx::Postgres::database_exists(&config.url)
            .await
            .map_err(|error| AttemptError::Unreachable(error.to_string()))?;
        if !exists {
            // Another replica may create it at the same moment; a second failure is real.
            if let Err(error) = sqlx::Postgres::create_database(&config.url).await {
                let now_exists = sqlx::Postgres::database_exists(&config.url).await.unwrap_or(false);
                if !now_exists {
                    return Err(AttemptError::Missing(error.to_string()));
                }
            }
        }
    }
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect(&config.url)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
                AttemptError::Missing(error.to_string())
            }
            _ => AttemptError::Unreachable(error.to_string()),
        })
}

/// A health check that runs `SELECT 1`.
pub fn health_check(
    pool: PgPool,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|error| format!("postgres: {error}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_hides_the_password() {
        assert_eq!(redacted_url("postgres://app:secret@db:5432/tfesi"), "postgres://app@db:5432/tfesi");
        assert_eq!(redacted_url("postgres://db/tfesi"), "postgres://db/tfesi");
    }
}
