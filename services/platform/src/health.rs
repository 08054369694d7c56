//! Dependency health: periodic checks that drive `grpc.health.v1` statuses.
//!
//! A service registers one check per dependency it cannot work without (Postgres, Redis, a
//! loaded model). While any check fails, every service name of the server, and the server as a
//! whole (the empty name), reports NOT_SERVING; when all pass again it reports SERVING, without
//! a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::shutdown::Shutdown;

/// A health name that reports SERVING for as long as the process serves, whatever its
/// dependencies do: for liveness probes, which must not restart a pod because Postgres is down.
pub const LIVENESS: &str = "liveness";

/// A dependency check: resolves to `Err(reason)` while the dependency is unusable.
pub type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How often checks run and how long one may take.
#[derive(Clone, Copy, Debug)]
pub struct HealthTiming {
    /// Pause between rounds of checks.
    pub interval: Duration,
    /// A check slower than this counts as failed.
    pub check_timeout: Duration,
}

impl Default for HealthTiming {
    fn default() -> Self {
        Self { interval: Duration::from_millis(500), check_timeout: Duration::from_millis(1_500) }
    }
}

/// The checks of one server and the last result of each.
#[derive(Clone)]
pub struct Health {
    checks: Arc<Mutex<Vec<(String, CheckFn)>>>,
    failures: Arc<Mutex<BTreeMap<String, String>>>,
    timing: HealthTiming,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(HealthTiming::default())
    }
}

impl Health {
    /// No checks yet.
    pub fn new(timing: HealthTiming) -> Self {
        Self {
            checks: Arc::new(Mutex::new(Vec::new())),
            failures: Arc::new(Mutex::new(BTreeMap::new())),
            timing,
        }
    }

    /// Adds a named check (e.g. `postgres`, `redis`, `model`).
    pub fn add_check<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let boxed: CheckFn = Arc::new(move || Box::pin(check()));
        self.lock_checks().push((name.to_owned(), boxed));
    }

    /// The failing dependencies and why, as of the last round (empty when healthy).
    pub fn failures(&self) -> BTreeMap<String, String> {
        self.failures.lock().map(|failures| failures.clone()).unwrap_or_default()
    }

    /// Runs every check once and returns the failures.
    pub async fn check_now(&self) -> BTreeMap<String, String> {
        let checks: Vec<(String, CheckFn)> = self.lock_checks().clone();
        let mut failures = BTreeMap::new();
        for (name, check) in checks {
            match tokio::time::timeout(self.timing.check_timeout, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    failures.insert(name, reason);
                }
                Err(_) => {
                    failures.insert(name, format!("no answer within {:?}", self.timing.check_timeout));
                }
            }
        }
        if let Ok(mut last) = self.failures.lock() {
            last.clone_from(&failures);
        }
        failures
    }

    /// Keeps `reporter` up to date for `services` (and the whole server) until shutdown, then
    /// reports NOT_SERVING so load balancers stop sending new requests during the drain.
    pub(crate) async fn drive(self, reporter: HealthReporter, services: Vec<String>, shutdown: Shutdown) {
        reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        let mut previous: Option<bool> = None;
        loop {
            let failures = self.check_now().await;
            let healthy = failures.is_empty();
            if previous != Some(healthy) {
                if healthy {
                    tracing::info!("all dependencies reachable: SERVING");
                } else {
                    tracing::warn!(?failures, "dependency unavailable: NOT_SERVING");
                }
                let status = if healthy { ServingStatus::Serving } else { ServingStatus::NotServing };
                set_all(&reporter, &services, status).await;
                previous = Some(healthy);
            }
            tokio::select! {
                () = tokio::time::sleep(self.timing.interval) => {}
                () = shutdown.clone().wait() => break,
            }
        }
        set_all(&reporter, &services, ServingStatus::NotServing).await;
    }

    fn lock_checks(&self) -> std::sync::MutexGuard<'_, Vec<(String, CheckFn)>> {
        // A poisoned lock only means a panic elsewhere while pushing; the list is still valid.
        self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sets every named service, then the whole server (""): a client that sees "" SERVING finds
/// each named service SERVING too.
pub(crate) async fn set_all(reporter: &HealthReporter, services: &[String], status: ServingStatus) {
    for service in services {
        reporter.set_service_status(service, status).await;
    }
    reporter.set_service_status("", status).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn failures_name_the_dependency_and_clear_on_recovery() {
        let health = Health::new(HealthTiming {
            interval: Duration::from_millis(10),
            check_timeout: Duration::from_millis(50),
        });
        let up = Arc::new(AtomicBool::new(false));
        let probe = up.clone();
        health.add_check("postgres", move || {
            let is_up = probe.load(Ordering::SeqCst);
            async move { if is_up { Ok(()) } else { Err("connection refused".to_owned()) } }
        });
        health.add_check("slow", || async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        });
        let failures = health.check_now().await;
        assert_eq!(failures.get("postgres").map(String::as_str), Some("connection refused"));
        assert!(!failures.contains_key("slow"));
        up.store(true, Ordering::SeqCst);
        assert!(health.check_now().await.is_empty());
        assert!(health.failures().is_empty());
    }

    #[tokio::test]
    async fn a_hanging_check_counts_as_failed() {
        let health = Health::new(HealthTiming {
            interval: Duration::from_millis(10),
            check_timeout: Duration::from_millis(20),
        });
        health.add_check("redis", std::future::pending::<Result<(), String>>);
        let failures = health.check_now().await;
        assert!(failures.get("redis").is_some_and(|reason| reason.contains("no answer")));
    }
}
