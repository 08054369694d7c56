//! Predictions of pipeline jobs, keyed by study and recorded once per job id.

use chrono::SubsecRound;
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{PredictionRow, prediction_columns};
use super::{EventKind, Store, append_event};
use crate::domain::records::{ModelOutput, Prediction, PredictionJob};
use crate::error::{Error, Result};

/// What RecordPrediction answers.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedJob {
    /// Stored predictions, in request order.
    pub predictions: Vec<Prediction>,
    /// Episodes linked to the study now.
    pub episode_ids: Vec<Uuid>,
    /// The job had been recorded before (a replay).
    pub already_recorded: bool,
}

impl Store {
    /// Stores a job's predictions. The same job id with the same content returns the stored
    /// predictions (a retried worker); with different content it is refused. Series references
    /// count as content only when both sides report them (see [`SeriesRefs::agrees_with`]): a
    /// replay keeps what was stored first.
    ///
    /// [`SeriesRefs::agrees_with`]: crate::domain::records::SeriesRefs::agrees_with
    pub async fn record_prediction(&self, job: PredictionJob) -> Result<RecordedJob> {
        // Postgres keeps microseconds: truncate first so a retry compares equal to what is stored.
        let outputs = job
            .outputs
            .into_iter()
            .map(|output| ModelOutput { predicted_at: output.predicted_at.trunc_subsecs(6), ..output })
            .collect();
        let job = PredictionJob { outputs, ..job }.validate()?;
        let mut tx = self.pool.begin().await?;
        let mut stored = Vec::with_capacity(job.outputs.len());
        let mut replay = false;
        for output in &job.outputs {
            match insert_prediction(&mut tx, &job, output).await? {
                Some(prediction) => stored.push(prediction),
                None => {
                    replay = true;
                    break;
                }
            }
        }
        if replay
            || !stored.is_empty() && existing_job(&mut tx, &job.job_id).await?.len() != job.outputs.len()
        {
            // The job id was recorded before (or concurrently): the content must match exactly.
            let existing = existing_job(&mut tx, &job.job_id).await?;
            let same = existing.len() == job.outputs.len()
                && job.outputs.iter().all(|output| {
                    existing.iter().any(|prediction| {
                        prediction.output.same_content(output)
                            && prediction.study_id == job.study_id
                            && prediction.series_id == job.series_id
                            && prediction.series.agrees_with(&job.series)
                    })
                });
            if !same {
                return Err(Error::PredictionConflict { job_id: job.job_id });
            }
            let ordered = job
                .outputs
                .iter()
                .filter_map(|output| {
                    existing.iter().find(|p| p.output.model_role == output.model_role).cloned()
                })
                .collect();
            let episode_ids = linked_episodes(&mut tx, job.study_id).await?;
            tx.rollback().await?;
            return Ok(RecordedJob { predictions: ordered, episode_ids, already_recorded: true });
        }
        let episode_ids = linked_episodes(&mut tx, job.study_id).await?;
        for episode_id in &episode_ids {
            for prediction in &stored {
                let subject = prediction.prediction_id.to_string();
                append_event(&mut tx, *episode_id, EventKind::PredictionRecorded, &subject).await?;
            }
        }
        tx.commit().await?;
        Ok(RecordedJob { predictions: stored, episode_ids, already_recorded: false })
    }
}

/// Inserts one prediction; `None` when the job already has one for this role.
async fn insert_prediction(
    conn: &mut PgConnection,
    job: &PredictionJob,
    output: &ModelOutput,
) -> Result<Option<Prediction>> {
    let clinical = serde_json::to_value(&output.clinical)?;
    let row = sqlx::query_as::<_, PredictionRow>(concat!(
        "INSERT INTO registry.predictions AS p (prediction_id, job_id, model_role, study_id, series_id,
             series_content_sha256, instance_sha256, tensor_sha256, clinical, model_name, model_version,
             preprocessing_spec_version, probability, threshold, execution_provider, predicted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (job_id, model_role) DO NOTHING
         RETURNING ",
        prediction_columns!()
    ))
    .bind(Uuid::new_v4())
    .bind(&job.job_id)
    .bind(output.model_role.as_str())
    .bind(job.study_id)
    .bind(job.series_id)
    .bind(&job.series.content_sha256)
    .bind(&job.series.instance_sha256)
    .bind(&output.tensor_sha256)
    .bind(clinical)
    .bind(&output.model_name)
    .bind(&output.model_version)
    .bind(&output.preprocessing_spec_version)
    .bind(output.probability)
    .bind(output.threshold)
    .bind(&output.execution_provider)
    .bind(output.predicted_at)
    .fetch_optional(conn)
    .await?;
    row.map(PredictionRow::into_record).transpose()
}

/// Every prediction stored under a job id.
async fn existing_job(conn: &mut PgConnection, job_id: &str) -> Result<Vec<Prediction>> {
    sqlx::query_as::<_, PredictionRow>(concat!(
        "SELECT ",
        prediction_columns!(),
        " FROM registry.predictions p WHERE p.job_id = $1"
    ))
    .bind(job_id)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(PredictionRow::into_record)
    .collect()
}

/// Episodes linked to a study.
async fn linked_episodes(conn: &mut PgConnection, study_id: Uuid) -> Result<Vec<Uuid>> {
    let ids = sqlx::query_scalar!(
        "SELECT episode_id FROM registry.episodes WHERE study_id = $1 ORDER BY episode_id",
        study_id
    )
    .fetch_all(conn)
    .await?;
    Ok(ids)
}
