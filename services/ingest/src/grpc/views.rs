//! What the API reads and writes in Postgres beyond intake and completion: study and series views, listings, the identity vault, job status and the audit log. No tonic here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::instance::ImageInfo;
use crate::selection::SeriesDecision;

/// The state of a study's current pipeline job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Job id.
    pub job_id: Uuid,
    /// `queued`, `in_progress`, `succeeded` or `dead_letter`.
    pub state: String,
    /// Attempts reported so far.
    pub attempts: i32,
    /// Last error reported, if any.
    pub last_error: Option<String>,
    /// When the state last changed.
    pub state_at: DateTime<Utc>,
}

/// One study as the catalogue holds it (de-identified).
#[derive(Debug, Clone)]
pub struct StudyRow {
    /// Surrogate study id.
    pub study_id: Uuid,
    /// Surrogate patient id.
    pub patient_id: Uuid,
    /// De-identified Study Instance UID.
    pub study_uid: String,
    /// `receiving`, `selected`, `no_eligible_series` or `processed`.
    pub status: String,
    /// `grpc` and/or `dicom`.
    pub received_via: Vec<String>,
    /// First instance received.
    pub created_at: DateTime<Utc>,
    /// Last completion.
    pub completed_at: Option<DateTime<Utc>>,
    /// Stored plus quarantined instances.
    pub instance_count: i64,
    /// Series count.
    pub series_count: i64,
    /// Surrogate id of the selected series.
    pub selected_series_id: Option<Uuid>,
    /// The current job (none when no job or no eligible series).
    pub job: Option<JobRow>,
}

const STUDY_COLUMNS: &str =
    "s.study_id, s.patient_uuid, s.study_uid, s.status, s.received_via, s.created_at, s.completed_at,
    (SELECT count(*) FROM ingest.instances i WHERE i.study_id = s.study_id)
      + (SELECT count(*) FROM ingest.quarantine q WHERE q.study_id = s.study_id) AS instance_count,
    (SELECT count(*) FROM ingest.series r WHERE r.study_id = s.study_id) AS series_count,
    (SELECT r.series_id FROM ingest.series r WHERE r.series_uid = s.selected_series) AS selected_series_id,
    j.job_id, j.state, j.attempts, j.last_error, j.state_at";

const STUDY_FROM: &str = "FROM ingest.studies s
    LEFT JOIN LATERAL (
        SELECT o.job_id, o.state, o.attempts, o.last_error, o.state_at FROM ingest.outbox o
        WHERE o.study_id = s.study_id AND s.status <> 'no_eligible_series'
        ORDER BY o.created_at DESC, o.job_id LIMIT 1
    ) j ON true";

fn study_row(row: &sqlx::postgres::PgRow) -> Result<StudyRow, sqlx::Error> {
    let job_id: Option<Uuid> = row.try_get("job_id")?;
    let job = match job_id {
        Some(job_id) => Some(JobRow {
            job_id,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            state_at: row.try_get("state_at")?,
        }),
        None => None,
    };
    Ok(StudyRow {
        study_id: row.try_get("study_id")?,
        patient_id: row.try_get("patient_uuid")?,
        study_uid: row.try_get("study_uid")?,
        status: row.try_get("status")?,
        received_via: row.try_get("received_via")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        instance_count: row.try_get("instance_count")?,
        series_count: row.try_get("series_count")?,
        selected_series_id: row.try_get("selected_series_id")?,
        job,
    })
}

/// One study, or `None`.
pub async fn study(pool: &PgPool, study_id: Uuid) -> Result<Option<StudyRow>, sqlx::Error> {
    let sql = format!("SELECT {STUDY_COLUMNS} {STUDY_FROM} WHERE s.study_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(study_id).fetch_optional(pool).await?;
    row.as_ref().map(study_row).transpose()
}

/// Filters of [`list_studies`], already validated; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct StudyFilter {
    /// Only this patient.
    pub patient_id: Option<Uuid>,
    /// Only receiving (`Some(true)`) or complete (`Some(false)`) studies.
    pub receiving: Option<bool>,
    /// Only studies whose status is one of these.
    pub statuses: Option<Vec<String>>,
    /// Only this job state (`not_started` for none).
    pub processing_state: Option<String>,
    /// First received at or after.
    pub received_after: Option<DateTime<Utc>>,
    /// First received before.
    pub received_before: Option<DateTime<Utc>>,
}

/// A keyset position: the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After<K> {
    /// Its time.
    pub at: DateTime<Utc>,
    /// Its tie-breaker.
    pub key: K,
}

/// Studies newest first (received time, then study_id), at most `limit`, after `after`.
pub async fn list_studies(
    pool: &PgPool,
    filter: &StudyFilter,
    after: Option<&After<Uuid>>,
    limit: i64,
) -> Result<Vec<StudyRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {STUDY_COLUMNS} {STUDY_FROM}
         WHERE ($1::uuid IS NULL OR s.patient_uuid = $1)
           AND ($2::boolean IS NULL OR (s.status = 'receiving') = $2)
           AND ($3::text[] IS NULL OR s.status = ANY($3))
           AND ($4::text IS NULL OR coalesce(j.state, 'not_started') = $4)
           AND ($5::timestamptz IS NULL OR s.created_at >= $5)
           AND ($6::timestamptz IS NULL OR s.created_at < $6)
           AND ($7::timestamptz IS NULL OR (s.created_at, s.study_id) < ($7, $8::uuid))
         ORDER BY s.created_at DESC, s.study_id DESC
         LIMIT $9"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(filter.patient_id)
        .bind(filter.receiving)
        .bind(filter.statuses.as_deref())
        .bind(filter.processing_state.as_deref())
        .bind(filter.received_after)
        .bind(filter.received_before)
        .bind(after.map(|a| a.at))
        .bind(after.map(|a| a.key))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(study_row).collect()
}

/// One stored instance of a series.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    /// De-identified SOP Instance UID.
    pub sop_instance_uid: String,
    /// Stored object name.
    pub sha256: String,
    /// Stored object size.
    pub size_bytes: i64,
    /// Image facts.
    pub image: ImageInfo,
}

/// One series with its instances and its decision (when the study is complete).
#[derive(Debug, Clone)]
pub struct SeriesRow {
    /// Surrogate series id.
    pub series_id: Uuid,
    /// De-identified Series Instance UID.
    pub series_uid: String,
    /// The study.
    pub study_id: Uuid,
    /// Stored instances, in SOP Instance UID order.
    pub instances: Vec<InstanceRow>,
    /// Quarantined instances of the series.
    pub quarantined: i64,
    /// Modality of a quarantined instance, for a series that has only quarantined ones.
    pub quarantine_modality: Option<String>,
    /// The stored selection decision.
    pub decision: Option<SeriesDecision>,
}

async fn series_rows(pool: &PgPool, rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<SeriesRow>, sqlx::Error> {
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let series_uid: String = row.try_get("series_uid")?;
        let study_id: Uuid = row.try_get("study_id")?;
        let instance_rows = sqlx::query(
            "SELECT sop_instance_uid, object_sha256, size_bytes, image FROM ingest.instances
             WHERE series_uid = $1 ORDER BY sop_instance_uid",
        )
        .bind(&series_uid)
        .fetch_all(pool)
        .await?;
        let mut instances = Vec::with_capacity(instance_rows.len());
        for instance in instance_rows {
            instances.push(InstanceRow {
                sop_instance_uid: instance.try_get("sop_instance_uid")?,
                sha256: instance.try_get("object_sha256")?,
                size_bytes: instance.try_get("size_bytes")?,
                image: serde_json::from_value(instance.try_get("image")?).map_err(decode)?,
            });
        }
        let quarantine = sqlx::query(
            "SELECT count(*) AS n, min(modality) AS modality FROM ingest.quarantine WHERE series_uid = $1",
        )
        .bind(&series_uid)
        .fetch_one(pool)
        .await?;
        let decision = crate::catalogue::stored_selection(pool, study_id)
            .await?
            .decisions
            .into_iter()
            .find(|d| d.series_uid == series_uid);
        out.push(SeriesRow {
            series_id: row.try_get("series_id")?,
            series_uid,
            study_id,
            instances,
            quarantined: quarantine.try_get("n")?,
            quarantine_modality: quarantine.try_get("modality")?,
            decision,
        });
    }
    Ok(out)
}

/// The series of a study.
pub async fn study_series(pool: &PgPool, study_id: Uuid) -> Result<Vec<SeriesRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT series_id, series_uid, study_id FROM ingest.series WHERE study_id = $1")
        .bind(study_id)
        .fetch_all(pool)
        .await?;
    series_rows(pool, rows).await
}

/// One series, or `None`.
pub async fn series(pool: &PgPool, series_id: Uuid) -> Result<Option<SeriesRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT series_id, series_uid, study_id FROM ingest.series WHERE series_id = $1")
        .bind(series_id)
        .fetch_all(pool)
        .await?;
    Ok(series_rows(pool, rows).await?.into_iter().next())
}

/// One quarantined instance.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    /// Study.
    pub study_id: Uuid,
    /// Series.
    pub series_id: Uuid,
    /// De-identified SOP Instance UID.
    pub sop_instance_uid: String,
    /// Reasons as stored (`QuarantineReason::as_str`).
    pub reasons: Vec<String>,
    /// When it was received.
    pub created_at: DateTime<Utc>,
}

/// Quarantined instances newest first (time, then SOP Instance UID), at most `limit`.
pub async fn list_quarantine(
    pool: &PgPool,
    study_id: Option<Uuid>,
    reason: Option<&str>,
    after: Option<&After<String>>,
    limit: i64,
) -> Result<Vec<QuarantineRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT q.study_id, r.series_id, q.sop_instance_uid, q.reasons, q.created_at
         FROM ingest.quarantine q JOIN ingest.series r ON r.series_uid = q.series_uid
         WHERE ($1::uuid IS NULL OR q.study_id = $1)
           AND ($2::text IS NULL OR $2 = ANY(q.reasons))
           AND ($3::timestamptz IS NULL OR (q.created_at, q.sop_instance_uid) < ($3, $4::text))
         ORDER BY q.created_at DESC, q.sop_instance_uid DESC
         LIMIT $5",
    )
    .bind(study_id)
    .bind(reason)
    .bind(after.map(|a| a.at))
    .bind(after.map(|a| a.key.clone()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(QuarantineRow {
                study_id: row.try_get("study_id")?,
                series_id: row.try_get("series_id")?,
                sop_instance_uid: row.try_get("sop_instance_uid")?,
                reasons: row.try_get("reasons")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// An identity to keep in the vault for a patient created before the images.
#[derive(Debug, Clone, Default)]
pub struct NewIdentity {
    /// DICOM PN form, `family^given`.
    pub patient_name: Option<String>,
    /// DICOM DA form, `YYYYMMDD`.
    pub birth_date: Option<String>,
    /// `F`, `M` or `O`.
    pub sex: Option<String>,
    /// Phone as recorded.
    pub phone: Option<String>,
}

/// The surrogate patient of an MRN, creating it when asked; `(patient, created)`.
pub async fn patient_by_mrn(
    conn: &mut PgConnection,
    issuer: &str,
    mrn: &str,
    create: Option<&NewIdentity>,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    if let Some(identity) = create {
        let created: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO ingest.vault_patients (patient_uuid, issuer, mrn, patient_name, birth_date, sex, phone, date_shift_days)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (issuer, mrn) DO NOTHING RETURNING patient_uuid",
        )
        .bind(Uuid::new_v4())
        .bind(issuer)
        .bind(mrn)
        .bind(identity.patient_name.as_deref())
        .bind(identity.birth_date.as_deref())
        .bind(identity.sex.as_deref())
        .bind(identity.phone.as_deref())
        .bind(crate::catalogue::random_shift())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(patient) = created {
            return Ok(Some((patient, true)));
        }
    }
    let existing: Option<Uuid> =
        sqlx::query_scalar("SELECT patient_uuid FROM ingest.vault_patients WHERE issuer = $1 AND mrn = $2")
            .bind(issuer)
            .bind(mrn)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(existing.map(|patient| (patient, false)))
}

/// Every study of a patient, oldest first.
pub async fn patient_studies(conn: &mut PgConnection, patient_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT study_id FROM ingest.studies WHERE patient_uuid = $1 ORDER BY created_at, study_id",
    )
    .bind(patient_id)
    .fetch_all(&mut *conn)
    .await
}

/// Which vault column a study lookup uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyKey {
    /// `accession_number`.
    Accession,
    /// `original_study_uid`.
    OriginalStudyUid,
}

/// The patient and studies of an accession number or original Study Instance UID.
pub async fn studies_by_key(
    conn: &mut PgConnection,
    key: StudyKey,
    value: &str,
) -> Result<Option<(Uuid, Vec<Uuid>)>, sqlx::Error> {
    let column = match key {
        StudyKey::Accession => "v.accession_number",
        StudyKey::OriginalStudyUid => "v.original_study_uid",
    };
    let sql = format!(
        "SELECT s.study_id, s.patient_uuid FROM ingest.vault_studies v JOIN ingest.studies s USING (study_id)
         WHERE {column} = $1 ORDER BY s.created_at, s.study_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_all(&mut *conn).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let patient: Uuid = first.try_get("patient_uuid")?;
    let mut studies = Vec::with_capacity(rows.len());
    for row in &rows {
        // An accession number reused across patients would be a hospital error; keep to one patient.
        if row.try_get::<Uuid, _>("patient_uuid")? == patient {
            studies.push(row.try_get("study_id")?);
        }
    }
    Ok(Some((patient, studies)))
}

/// A vault identity (PHI).
#[derive(Debug, Clone)]
pub struct VaultIdentity {
    /// Issuer of the MRN (`no-patient-id` when the images carried none).
    pub issuer: String,
    /// MRN (the original Study Instance UID when the images carried none).
    pub mrn: String,
    /// DICOM PN.
    pub patient_name: Option<String>,
    /// DICOM DA.
    pub birth_date: Option<String>,
    /// `F`, `M`, `O`.
    pub sex: Option<String>,
    /// Phone.
    pub phone: Option<String>,
}

/// The identity behind a surrogate patient id.
pub async fn vault_identity(
    conn: &mut PgConnection,
    patient_id: Uuid,
) -> Result<Option<VaultIdentity>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT issuer, mrn, patient_name, birth_date, sex, phone FROM ingest.vault_patients WHERE patient_uuid = $1",
    )
    .bind(patient_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(VaultIdentity {
            issuer: row.try_get("issuer")?,
            mrn: row.try_get("mrn")?,
            patient_name: row.try_get("patient_name")?,
            birth_date: row.try_get("birth_date")?,
            sex: row.try_get("sex")?,
            phone: row.try_get("phone")?,
        })
    })
    .transpose()
}

/// An audit record of ingest (`service` = `ingest`); `target` names surrogate ids only.
pub type AuditEntry<'a> = tfesi_platform::audit::AuditRecord<'a>;

/// Appends an audit record to the platform's hash-chained log (`audit.log`), in the
/// transaction of `conn`.
pub async fn audit(conn: &mut PgConnection, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
    tfesi_platform::audit::append(conn, entry).await?;
    Ok(())
}

/// A job state report from the pipeline worker.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// `queued`, `in_progress`, `succeeded` or `dead_letter`.
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: i32,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// Applies a job report: never back from `succeeded`; a report with fewer attempts than the
/// recorded one is stale (except QUEUED after a dead letter: an operator retry starts over);
/// SUCCEEDED and DEAD_LETTER confirm the job so the relay stops re-publishing it; QUEUED clears
/// confirmation and publication so the relay publishes it again. `None` for an unknown job.
pub async fn report_job(
    pool: &PgPool,
    job_id: Uuid,
    report: &JobReport,
) -> Result<Option<JobRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query("SELECT state, attempts FROM ingest.outbox WHERE job_id = $1 FOR UPDATE")
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let state: String = current.try_get("state")?;
    let attempts: i32 = current.try_get("attempts")?;
    let operator_retry = report.state == "queued" && state == "dead_letter";
    // SUCCEEDED is final and always taken: a worker that finished a job, died before saying so,
    // and confirms it on a later delivery reports fewer attempts than were recorded.
    let succeeded = report.state == "succeeded";
    let stale = state == "succeeded" || (report.attempts < attempts && !operator_retry && !succeeded);
    if !stale {
        sqlx::query(
            "UPDATE ingest.outbox SET
                 state = $2,
                 attempts = CASE WHEN $2 = 'succeeded' THEN greatest(attempts, $3) ELSE $3 END,
                 last_error = $4,
                 state_at = CASE WHEN state = $2 THEN state_at ELSE now() END,
                 confirmed_at = CASE WHEN $2 IN ('succeeded', 'dead_letter') THEN coalesce(confirmed_at, now())
                                     WHEN $2 = 'queued' THEN NULL ELSE confirmed_at END,
                 published_at = CASE WHEN $2 = 'queued' THEN NULL ELSE published_at END
             WHERE job_id = $1",
        )
        .bind(job_id)
        .bind(report.state)
        .bind(report.attempts)
        .bind(report.last_error.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    let row = sqlx::query(
        "SELECT job_id, state, attempts, last_error, state_at FROM ingest.outbox WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(JobRow {
        job_id: row.try_get("job_id")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        state_at: row.try_get("state_at")?,
    }))
}
