//! One instance end to end: parse and validate, find the vault patient, de-identify, store content-addressed, record in the catalogue.

use std::sync::Arc;

use bytes::Bytes;
use sqlx::PgPool;
use uuid::Uuid;

use crate::catalogue::{self, DeidUids, Recorded, VaultPatient};
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
    /// Wakes the outbox relay when a completion writes a job.
    pub relay_wake: crate::outbox::RelayWake,
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

/// How an instance reached ingest; recorded per study (`ingest.studies.received_via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `tfesi.ingest.v1.Ingest/Upload`.
    Grpc,
    /// DICOM C-STORE.
    Dicom,
}

impl Source {
    /// The value stored in `ingest.studies.received_via`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Dicom => "dicom",
        }
    }
}

/// Where an instance that was not rejected was filed (surrogate ids and de-identified UIDs only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    /// Surrogate patient id.
    pub patient_id: Uuid,
    /// Surrogate study id.
    pub study_id: Uuid,
    /// Surrogate series id.
    pub series_id: Uuid,
    /// De-identified SOP Instance UID.
    pub sop_instance_uid: String,
    /// sha256 of the stored de-identified object; `None` for quarantine (metadata only).
    pub stored_sha256: Option<String>,
}

/// The outcome of one instance with where it was filed (`None` when rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// What happened.
    pub outcome: InstanceOutcome,
    /// Where it was filed.
    pub filed: Option<Filed>,
}

impl Ingestor {
    /// Builds an ingestor, creating the vault UID key on first use.
    pub async fn new(pool: PgPool, store: ObjectStore, limits: ParseLimits) -> Result<Self, IngestError> {
        let uid_key = Arc::new(catalogue::uid_key(&pool).await?);
        Ok(Self { pool, store, uid_key, limits, relay_wake: crate::outbox::RelayWake::default() })
    }

    /// Ingests one instance received over gRPC; see [`Ingestor::ingest_via`].
    pub async fn ingest(&self, bytes: Bytes) -> Result<InstanceOutcome, IngestError> {
        self.ingest_via(bytes, Source::Grpc).await
    }

    /// Ingests one instance that arrived through `source`. Rejections are outcomes; only our
    /// own failures are errors. A new instance of a completed study reopens the study.
    pub async fn ingest_via(&self, bytes: Bytes, source: Source) -> Result<InstanceOutcome, IngestError> {
        Ok(self.ingest_filed(bytes, source).await?.outcome)
    }

    /// Like [`Ingestor::ingest_via`], also saying where the instance was filed.
    pub async fn ingest_filed(&self, bytes: Bytes, source: Source) -> Result<Ingested, IngestError> {
        let limits = self.limits;
        // Parsing and validation are CPU work on untrusted bytes: off the async runtime.
        let parsed = match tokio::task::spawn_blocking(move || parse_instance(bytes, &limits)).await? {
            Ok(parsed) => parsed,
            Err(rejection) => {
                return Ok(Ingested { outcome: InstanceOutcome::Rejected(rejection), filed: None });
            }
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
                source.as_str(),
            )
            .await?;
            return Ok(Ingested {
                outcome: InstanceOutcome::Quarantined {
                    study_id: recorded.study_id,
                    reasons: reasons.clone(),
                },
                filed: Some(filed(&patient, recorded, uids.sop_instance_uid)),
            });
        }
        let ctx = DeidContext {
            surrogate_patient_id: patient.patient_uuid,
            date_shift_days: patient.date_shift_days,
            uid_key: self.uid_key.as_ref().clone(),
        };
        let store = self.store.clone();
        let object = parsed.object;
        // De-identification rewrites the data set and the store fsyncs: both blocking.
        let (stored, clean_uid) = tokio::task::spawn_blocking(move || {
            let clean = deid::deidentify(object, &ctx)?;
            let stored = store.put(&clean.bytes)?;
            Ok::<_, IngestError>((stored, clean.sop_instance_uid))
        })
        .await??;
        debug_assert_eq!(clean_uid, uids.sop_instance_uid);
        let recorded = catalogue::record_instance(
            &self.pool,
            &patient,
            &parsed.identity,
            &uids,
            &stored,
            &parsed.image,
            source.as_str(),
        )
        .await?;
        let study_id = recorded.study_id;
        let sop_instance_uid = uids.sop_instance_uid.clone();
        let outcome = if recorded.new {
            InstanceOutcome::Stored { study_id, sop_instance_uid }
        } else {
            InstanceOutcome::Duplicate { study_id, sop_instance_uid }
        };
        Ok(Ingested { outcome, filed: Some(filed(&patient, recorded, uids.sop_instance_uid)) })
    }
}

fn filed(patient: &VaultPatient, recorded: Recorded, sop_instance_uid: String) -> Filed {
    Filed {
        patient_id: patient.patient_uuid,
        study_id: recorded.study_id,
        series_id: recorded.series_id,
        sop_instance_uid,
        stored_sha256: recorded.object_sha256,
    }
}
