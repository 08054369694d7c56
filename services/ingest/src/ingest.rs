//! One instance end to end: parse and validate, find the vault patient, de-identify, store content-addressed, record in the catalogue.

use std::sync::Arc;

use bytes::Bytes;
use sqlx::PgPool;
use uuid::Uuid;

use crate::catalogue::{self, DeidUids, Recorded};
use crate::deid::{self, DeidContext, DeidError, remap_uid};
use crate::parse::{ParseLimits, Verdict, parse_instance};
use crate::rejection::{QuarantineReason, Rejection};
use crate::store::ObjectStore;

/// Shared state of the intake path.
#[derive(Debug, Clone)]
pub struct Ingestor {
    /// Postgres pool.
    pub pool: PgPool,
    /// Object store of de-identified instances.
    pub store: ObjectStore,
    /// Per-deployment UID key from the vault.
    pub uid_key: Arc<Vec<u8>>,
    /// Parsing limits.
    pub limits: ParseLimits,
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOutcome {
    /// Stored and catalogued.
    Stored {
        /// Study id.
        study_id: Uuid,
        /// De-identified SOP Instance UID.
        sop_instance_uid: String,
    },
    /// Seen before: nothing changed.
    Duplicate {
        /// Study id.
        study_id: Uuid,
        /// De-identified SOP Instance UID.
        sop_instance_uid: String,
    },
    /// Kept out of the pipeline, visible to operators.
    Quarantined {
        /// Study id.
        study_id: Uuid,
        /// Why.
        reasons: Vec<QuarantineReason>,
    },
    /// Refused with a reason.
    Rejected(Rejection),
}

/// Failures that are ours, not the instance's.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Object store failure.
    #[error("object store: {0}")]
    Store(#[from] std::io::Error),
    /// De-identification failure.
    #[error(transparent)]
    Deid(#[from] DeidError),
    /// A blocking task was cancelled or panicked.
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Ingestor {
    /// Builds an ingestor, creating the vault UID key on first use.
    pub async fn new(pool: PgPool, store: ObjectStore, limits: ParseLimits) -> Result<Self, IngestError> {
        let uid_key = Arc::new(catalogue::uid_key(&pool).await?);
        Ok(Self { pool, store, uid_key, limits })
    }

    /// Ingests one instance. Rejections are outcomes; only our own failures are errors.
    pub async fn ingest(&self, bytes: Bytes) -> Result<InstanceOutcome, IngestError> {
        let limits = self.limits;
        let parsed = match tokio::task::spawn_blocking(move || parse_instance(bytes, &limits)).await? {
            Ok(parsed) => parsed,
            Err(rejection) => return Ok(InstanceOutcome::Rejected(rejection)),
        };
        let patient = catalogue::vault_patient(&self.pool, &parsed.identity).await?;
        let uids = DeidUids {
            study_uid: remap_uid(&self.uid_key, &parsed.identity.study_uid),
            series_uid: remap_uid(&self.uid_key, &parsed.identity.series_uid),
            sop_instance_uid: remap_uid(&self.uid_key, &parsed.identity.sop_instance_uid),
        };
        if let Verdict::Quarantine(reasons) = &parsed.verdict {
            let recorded = catalogue::record_quarantine(
                &self.pool,
                &patient,
                &parsed.identity,
                &uids,
                &parsed.image,
                reasons,
            )
            .await?;
            let study_id = match recorded {
                Recorded::Stored { study_id } | Recorded::Duplicate { study_id } => study_id,
            };
            return Ok(InstanceOutcome::Quarantined { study_id, reasons: reasons.clone() });
        }
        let ctx = DeidContext {
            surrogate_patient_id: patient.patient_uuid,
            date_shift_days: patient.date_shift_days,
            uid_key: self.uid_key.as_ref().clone(),
        };
        let store = self.store.clone();
        let object = parsed.object;
        let (stored, clean_uid) = tokio::task::spawn_blocking(move || {
            let clean = deid::deidentify(object, &ctx)?;
            let stored = store.put(&clean.bytes)?;
            Ok::<_, IngestError>((stored, clean.sop_instance_uid))
        })
        .await??;
        debug_assert_eq!(clean_uid, uids.sop_instance_uid);
        let recorded =
            catalogue::record_instance(&self.pool, &patient, &parsed.identity, &uids, &stored, &parsed.image)
                .await?;
        Ok(match recorded {
            Recorded::Stored { study_id } => {
                InstanceOutcome::Stored { study_id, sop_instance_uid: uids.sop_instance_uid }
            }
            Recorded::Duplicate { study_id } => {
                InstanceOutcome::Duplicate { study_id, sop_instance_uid: uids.sop_instance_uid }
            }
        })
    }
}
