//! Completion of DICOM studies after their quiet period (see the parent module's "Completion").

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::catalogue::{self, CompleteError};
use crate::selection::SelectionRules;

use super::Activity;

/// Completes studies that went quiet: every `tick` until `shutdown`, see [`complete_quiet_studies`].
pub async fn run_completer(
    pool: PgPool,
    activity: Activity,
    quiet_period: Duration,
    rules: SelectionRules,
    relay_wake: crate::outbox::RelayWake,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let tick = (quiet_period / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(tick) => {}
        }
        match complete_quiet_studies(&pool, &activity, quiet_period, &rules).await {
            Ok(completed) if !completed.is_empty() => {
                relay_wake.job_written();
                tracing::info!(count = completed.len(), "completed quiet DICOM studies");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "completing quiet DICOM studies failed"),
        }
    }
}

/// Completes every study that is `receiving`, received DICOM instances, got its last instance
/// more than `quiet_period` ago and has no open association that sent to it. Returns the
/// completed study ids.
pub async fn complete_quiet_studies(
    pool: &PgPool,
    activity: &Activity,
    quiet_period: Duration,
    rules: &SelectionRules,
) -> Result<Vec<Uuid>, CompleteError> {
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT study_id FROM ingest.studies
         WHERE status = 'receiving' AND 'dicom' = ANY(received_via)
           AND last_instance_at < now() - make_interval(secs => $1)
         ORDER BY last_instance_at LIMIT 100",
    )
    .bind(quiet_period.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut completed = Vec::new();
    for study_id in candidates {
        if activity.is_open(study_id) {
            continue;
        }
        let (selection, job) = catalogue::complete_study(pool, study_id, rules).await?;
        tracing::info!(
            %study_id,
            selected = selection.selected.as_deref().unwrap_or("none"),
            job = job.is_some(),
            "DICOM study completed after its quiet period"
        );
        completed.push(study_id);
    }
    Ok(completed)
}
