//! The Postgres side of ingest: vault (identity, surrogate, date shift, UID key), catalogue of de-identified instances, quarantine, study completion with selection and the job outbox in one transaction.

use std::collections::BTreeMap;

use rand::Rng;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::instance::{Identity, ImageInfo};
use crate::rejection::QuarantineReason;
use crate::selection::{Selection, SelectionRules, SeriesInput, select};
use crate::store::StoredObject;

/// A patient's vault entry as de-identification needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultPatient {
    /// Surrogate patient id.
    pub patient_uuid: Uuid,
    /// Whole-day date shift of this patient.
    pub date_shift_days: i32,
}

/// Returns the per-deployment UID key, creating it on first use.
pub async fn uid_key(pool: &PgPool) -> Result<Vec<u8>, sqlx::Error> {
    let fresh: [u8; 32] = rand::rng().random();
    sqlx::query("INSERT INTO ingest.vault_secret (id, uid_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(fresh.as_slice())
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT uid_key FROM ingest.vault_secret WHERE id = 1").fetch_one(pool).await
}

/// Draws a non-zero whole-day shift into the past (1 to 10 years).
pub(crate) fn random_shift() -> i32 {
    -rand::rng().random_range(365..=3650)
}

/// The vault key of an identity: (issuer, MRN), or one patient per study when there is no MRN.
fn identity_key(identity: &Identity) -> (String, String) {
    match &identity.patient_id {
        Some(mrn) => (identity.issuer_of_patient_id.clone().unwrap_or_default(), mrn.clone()),
        None => ("no-patient-id".into(), identity.study_uid.clone()),
    }
}

/// Finds or creates the surrogate patient for an identity (random UUID, random shift).
///
/// Most instances belong to a patient already in the vault (every instance of a study after
/// its first), so the row is read first: a read commits nothing and waits for no WAL flush.
/// Only a new patient is inserted, race-safely (a concurrent first insert wins and both get its
/// row).
pub async fn vault_patient(pool: &PgPool, identity: &Identity) -> Result<VaultPatient, sqlx::Error> {
    let (issuer, mrn) = identity_key(identity);
    let known = sqlx::query(
        "SELECT patient_uuid, date_shift_days FROM ingest.vault_patients WHERE issuer = $1 AND mrn = $2",
    )
    .bind(&issuer)
    .bind(&mrn)
    .fetch_optional(pool)
    .await?;
    let row = match known {
        Some(row) => row,
        None => insert_vault_patient(pool, identity, &issuer, &mrn).await?,
    };
    Ok(VaultPatient {
        patient_uuid: row.try_get("patient_uuid")?,
        date_shift_days: row.try_get("date_shift_days")?,
    })
}

async fn insert_vault_patient(
    pool: &PgPool,
    identity: &Identity,
    issuer: &str,
    mrn: &str,
) -> Result<sqlx::postgres::PgRow, sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingest.vault_patients (patient_uuid, issuer, mrn, patient_name, birth_date, date_shift_days)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (issuer, mrn) DO UPDATE SET issuer = EXCLUDED.issuer
         RETURNING patient_uuid, date_shift_days",
    )
    .bind(Uuid::new_v4())
    .bind(issuer)
    .bind(mrn)
    .bind(identity.patient_name.as_deref())
    .bind(identity.birth_date.as_deref())
    .bind(random_shift())
    .fetch_one(pool)
    .await
}

/// The de-identified UIDs of an instance.
#[derive(Debug, Clone)]
pub struct DeidUids {
    /// Replaced Study Instance UID.
    pub study_uid: String,
    /// Replaced Series Instance UID.
    pub series_uid: String,
    /// Replaced SOP Instance UID.
    pub sop_instance_uid: String,
}

/// Where an instance was filed, and whether it was new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The study it belongs to.
    pub study_id: Uuid,
    /// The surrogate id of its series.
    pub series_id: Uuid,
    /// True the first time this instance was seen; false for a duplicate (nothing changed).
    pub new: bool,
    /// sha256 of the stored de-identified object (as first recorded); `None` for quarantine,
    /// which keeps metadata only.
    pub object_sha256: Option<String>,
}

/// The de-identified ids an instance was filed under by [`upsert_study`].
struct Filed {
    study_id: Uuid,
    series_id: Uuid,
    /// The study's status is `receiving`. The upsert locked the study row until the commit, so
    /// completion (`SELECT ... FOR UPDATE`) cannot change it before then.
    receiving: bool,
}

async fn upsert_study(
    tx: &mut sqlx::PgConnection,
    patient: &VaultPatient,
    identity: &Identity,
    uids: &DeidUids,
    source: &str,
) -> Result<Filed, sqlx::Error> {
    let new_study_id = Uuid::new_v4();
    let study = sqlx::query(
        "INSERT INTO ingest.studies (study_id, patient_uuid, study_uid, received_via)
         VALUES ($1, $2, $3, ARRAY[$4::text])
         ON CONFLICT (study_uid) DO UPDATE SET
             last_instance_at = now(),
             received_via = CASE WHEN $4::text = ANY(ingest.studies.received_via)
                                 THEN ingest.studies.received_via
                                 ELSE array_append(ingest.studies.received_via, $4::text) END
         RETURNING study_id, status",
    )
    .bind(new_study_id)
    .bind(patient.patient_uuid)
    .bind(&uids.study_uid)
    .bind(source)
    .fetch_one(&mut *tx)
    .await?;
    let study_id: Uuid = study.try_get("study_id")?;
    let status: String = study.try_get("status")?;
    // Every statement is a round trip: the vault row is written with the study row (same
    // transaction), so only the instance that created the study writes it.
    if study_id == new_study_id {
        sqlx::query(
            "INSERT INTO ingest.vault_studies (study_id, original_study_uid, accession_number)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(study_id)
        .bind(&identity.study_uid)
        .bind(identity.accession_number.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    let series_id: Uuid = sqlx::query_scalar(
        "INSERT INTO ingest.series (series_uid, study_id) VALUES ($1, $2)
         ON CONFLICT (series_uid) DO UPDATE SET series_uid = EXCLUDED.series_uid
         RETURNING series_id",
    )
    .bind(&uids.series_uid)
    .bind(study_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Filed { study_id, series_id, receiving: status == "receiving" })
}

/// A new instance after completion reopens its study: completing it again re-runs selection.
async fn reopen_study(tx: &mut sqlx::PgConnection, study_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ingest.studies SET status = 'receiving' WHERE study_id = $1 AND status <> 'receiving'",
    )
    .bind(study_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records a stored, accepted instance; the same instance twice is a duplicate, not an error.
pub async fn record_instance(
    pool: &PgPool,
    patient: &VaultPatient,
    identity: &Identity,
    uids: &DeidUids,
    object: &StoredObject,
    image: &ImageInfo,
    source: &str,
) -> Result<Recorded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let filed = upsert_study(&mut tx, patient, identity, uids, source).await?;
    let study_id = filed.study_id;
    let image_json = serde_json::to_value(image).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted = sqlx::query(
        "INSERT INTO ingest.instances (sop_instance_uid, series_uid, study_id, object_sha256, size_bytes, image)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sop_instance_uid) DO NOTHING",
    )
    .bind(&uids.sop_instance_uid)
    .bind(&uids.series_uid)
    .bind(study_id)
    .bind(&object.sha256)
    .bind(i64::try_from(object.size).unwrap_or(i64::MAX))
    .bind(image_json)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let new = inserted == 1;
    let object_sha256 = if new {
        if !filed.receiving {
            reopen_study(&mut tx, study_id).await?;
        }
        object.sha256.clone()
    } else {
        sqlx::query_scalar("SELECT object_sha256 FROM ingest.instances WHERE sop_instance_uid = $1")
            .bind(&uids.sop_instance_uid)
            .fetch_one(&mut *tx)
            .await?
    };
    tx.commit().await?;
    Ok(Recorded { study_id, series_id: filed.series_id, new, object_sha256: Some(object_sha256) })
}

/// Records a quarantined instance (metadata only: its pixels may carry identifying text).
pub async fn record_quarantine(
    pool: &PgPool,
    patient: &VaultPatient,
    identity: &Identity,
    uids: &DeidUids,
    image: &ImageInfo,
    reasons: &[QuarantineReason],
    source: &str,
) -> Result<Recorded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let filed = upsert_study(&mut tx, patient, identity, uids, source).await?;
    let study_id = filed.study_id;
    let reason_names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
    let inserted = sqlx::query(
        "INSERT INTO ingest.quarantine (sop_instance_uid, study_id, series_uid, reasons, sop_class_uid, modality)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sop_instance_uid) DO NOTHING",
    )
    .bind(&uids.sop_instance_uid)
    .bind(study_id)
    .bind(&uids.series_uid)
    .bind(&reason_names)
    .bind(&image.sop_class)
    .bind(image.modality.as_deref())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let new = inserted == 1;
    if new && !filed.receiving {
        reopen_study(&mut tx, study_id).await?;
    }
    tx.commit().await?;
    Ok(Recorded { study_id, series_id: filed.series_id, new, object_sha256: None })
}

/// The job a completed study puts in the outbox (surrogate ids and de-identified UIDs only).
pub type Job = tfesi_platform::jobs::PipelineJob;

/// Errors of study completion.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// No such study.
    #[error("study not found")]
    NotFound,
    /// Database failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Completes a study: decides every series, stores the decisions, and writes the job to the
/// outbox in the same transaction. Idempotent: a completed study returns its stored decisions
/// and its current job. A study reopened by new instances is decided again; a new job is
/// written only when the selected series or its content changed.
pub async fn complete_study(
    pool: &PgPool,
    study_id: Uuid,
    rules: &SelectionRules,
) -> Result<(Selection, Option<Job>), CompleteError> {
    let completion = complete_study_reporting(pool, study_id, rules).await?;
    Ok((completion.selection, completion.job))
}

/// The result of [`complete_study_reporting`].
#[derive(Debug, Clone)]
pub struct Completion {
    /// The decisions (stored ones when the study was already complete).
    pub selection: Selection,
    /// The study's current job, if any.
    pub job: Option<Job>,
    /// Whether this call wrote `job` to the outbox.
    pub job_created: bool,
}

/// [`complete_study`], also saying whether this call wrote a new job.
pub async fn complete_study_reporting(
    pool: &PgPool,
    study_id: Uuid,
    rules: &SelectionRules,
) -> Result<Completion, CompleteError> {
    let mut tx = pool.begin().await?;
    let study = sqlx::query("SELECT patient_uuid, status FROM ingest.studies WHERE study_id = $1 FOR UPDATE")
        .bind(study_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(CompleteError::NotFound)?;
    let patient_uuid: Uuid = study.try_get("patient_uuid")?;
    let status: String = study.try_get("status")?;
    if status != "receiving" {
        tx.rollback().await?;
        return Ok(Completion {
            selection: stored_selection(pool, study_id).await?,
            job: stored_job(pool, study_id).await?,
            job_created: false,
        });
    }
    let previous_job = stored_job(&mut *tx, study_id).await?;
    // A reopened study is decided again from scratch.
    sqlx::query("DELETE FROM ingest.selection_decisions WHERE study_id = $1")
        .bind(study_id)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT series_uid, object_sha256, image FROM ingest.instances WHERE study_id = $1 ORDER BY series_uid, sop_instance_uid",
    )
    .bind(study_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut series: BTreeMap<String, (SeriesInput, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let series_uid: String = row.try_get("series_uid")?;
        let sha: String = row.try_get("object_sha256")?;
        let image: ImageInfo =
            serde_json::from_value(row.try_get("image")?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let entry = series
            .entry(series_uid.clone())
            .or_insert_with(|| (SeriesInput { series_uid, instances: Vec::new() }, Vec::new()));
        entry.0.instances.push(image);
        entry.1.push(sha);
    }
    let inputs: Vec<SeriesInput> = series.values().map(|(input, _)| input.clone()).collect();
    let selection = select(&inputs, rules);
    for decision in &selection.decisions {
        sqlx::query(
            "INSERT INTO ingest.selection_decisions (study_id, series_uid, eligible, selected, plane, weighting, slices, score, reasons)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(study_id)
        .bind(&decision.series_uid)
        .bind(decision.eligible)
        .bind(decision.selected)
        .bind(serde_json::to_value(decision.plane).unwrap_or_default().as_str().unwrap_or("unknown").to_string())
        .bind(serde_json::to_value(decision.weighting).unwrap_or_default().as_str().unwrap_or("unknown").to_string())
        .bind(i32::try_from(decision.slices).unwrap_or(i32::MAX))
        .bind(decision.score)
        .bind(serde_json::to_value(&decision.reasons).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    }
    let new_job = match selection.selected.as_ref() {
        Some(series_uid) => {
            let series_id: Uuid =
                sqlx::query_scalar("SELECT series_id FROM ingest.series WHERE series_uid = $1")
                    .bind(series_uid)
                    .fetch_one(&mut *tx)
                    .await?;
            Some(Job {
                job_id: Uuid::new_v4().to_string(),
                study_id: study_id.to_string(),
                patient_uuid: patient_uuid.to_string(),
                series_id: series_id.to_string(),
                series_uid: series_uid.clone(),
                objects: series.get(series_uid).map(|(_, shas)| shas.clone()).unwrap_or_default(),
                traceparent: tfesi_platform::telemetry::current_traceparent(),
            })
        }
        None => None,
    };
    // The same series with the same content is the same work: keep the current job.
    let unchanged = |new: &Job| {
        previous_job
            .as_ref()
            .is_some_and(|old| old.series_uid == new.series_uid && old.objects == new.objects)
    };
    let (job, job_created) = match new_job {
        Some(new) if unchanged(&new) => (previous_job.clone(), false),
        Some(new) => (Some(new), true),
        None => (None, false),
    };
    let new_status = if job.is_some() { "selected" } else { "no_eligible_series" };
    sqlx::query("UPDATE ingest.studies SET status = $2, selected_series = $3, completed_at = now() WHERE study_id = $1")
        .bind(study_id)
        .bind(new_status)
        .bind(selection.selected.as_deref())
        .execute(&mut *tx)
        .await?;
    if let Some(job) = job.as_ref().filter(|_| job_created) {
        sqlx::query("INSERT INTO ingest.outbox (job_id, study_id, payload) VALUES ($1, $2, $3)")
            .bind(Uuid::parse_str(&job.job_id).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
            .bind(study_id)
            .bind(serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Completion { selection, job, job_created })
}

/// The study's current (newest) job.
async fn stored_job<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    study_id: Uuid,
) -> Result<Option<Job>, sqlx::Error> {
    let payload: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM ingest.outbox WHERE study_id = $1 ORDER BY created_at DESC, job_id LIMIT 1",
    )
    .bind(study_id)
    .fetch_optional(executor)
    .await?;
    payload.map(|p| serde_json::from_value(p).map_err(|e| sqlx::Error::Decode(Box::new(e)))).transpose()
}

/// The decisions stored for a completed study.
pub async fn stored_selection(pool: &PgPool, study_id: Uuid) -> Result<Selection, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT series_uid, eligible, selected, plane, weighting, slices, score, reasons
         FROM ingest.selection_decisions WHERE study_id = $1 ORDER BY series_uid",
    )
    .bind(study_id)
    .fetch_all(pool)
    .await?;
    let mut decisions = Vec::new();
    for row in rows {
        let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
        decisions.push(crate::selection::SeriesDecision {
            series_uid: row.try_get("series_uid")?,
            eligible: row.try_get("eligible")?,
            selected: row.try_get("selected")?,
            plane: serde_json::from_value(serde_json::Value::String(row.try_get("plane")?))
                .map_err(decode)?,
            weighting: serde_json::from_value(serde_json::Value::String(row.try_get("weighting")?))
                .map_err(decode)?,
            slices: usize::try_from(row.try_get::<i32, _>("slices")?).unwrap_or(0),
            score: row.try_get("score")?,
            reasons: serde_json::from_value(row.try_get("reasons")?).map_err(decode)?,
        });
    }
    let selected = decisions.iter().find(|d| d.selected).map(|d| d.series_uid.clone());
    Ok(Selection { selected, decisions })
}
