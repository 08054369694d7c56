//! The `tfesi.ingest.v1.Ingest` gRPC service: thin handlers over intake, the catalogue, the vault and the outbox.

mod convert;
mod error;
mod upload;
pub mod views;

use std::sync::Arc;

use sqlx::PgPool;
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_server::Ingest;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::catalogue::{CompleteError, complete_study_reporting};
use crate::config::UploadConfig;
use crate::ingest::Ingestor;
use crate::selection::SelectionRules;
pub use error::ApiError;
use views::{AuditEntry, NewIdentity, StudyKey};

/// Who is calling, as the audit records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated subject.
    pub actor: String,
    /// Its role (app, nurse, admin, service, mlops).
    pub role: String,
}

/// The caller of a request, as the server's auth layer verified it: the token's subject and
/// the role that allowed the call. With `auth.mode = "disabled"` the caller is `anonymous`
/// with the role `unauthenticated`, which may not re-identify anyone.
fn caller<T>(request: &Request<T>) -> Caller {
    let verified = tfesi_auth::Caller::of(request);
    Caller { actor: verified.subject.clone(), role: verified.audit_role().to_owned() }
}

/// Roles that may re-identify a patient.
const RESOLVE_ROLES: [&str; 2] = ["nurse", "admin"];

/// The Ingest service and its state.
#[derive(Clone, Debug)]
pub struct IngestApi {
    ingestor: Ingestor,
    rules: SelectionRules,
    limits: Arc<UploadConfig>,
}

impl IngestApi {
    /// The API over `ingestor` (its pool and object store), selecting with `rules`.
    pub fn new(ingestor: Ingestor, rules: SelectionRules, limits: UploadConfig) -> Self {
        Self { ingestor, rules, limits: Arc::new(limits) }
    }

    fn pool(&self) -> &PgPool {
        &self.ingestor.pool
    }

    async fn study_message(&self, study_id: Uuid) -> Result<pb::Study, ApiError> {
        let row = views::study(self.pool(), study_id)
            .await?
            .ok_or_else(|| ApiError::not_found("study_id", study_id))?;
        let complete = row.status != "receiving";
        let mut series: Vec<pb::Series> = views::study_series(self.pool(), study_id)
            .await?
            .iter()
            .map(|s| convert::series(s, complete, &self.rules))
            .collect();
        convert::sort_series(&mut series);
        Ok(convert::study(&row, series))
    }

    async fn lookup(
        &self,
        who: &Caller,
        request: pb::LookupIdsRequest,
    ) -> Result<pb::LookupIdsResponse, ApiError> {
        use pb::lookup_ids_request::Key;
        let key_type = match &request.key {
            Some(Key::Mrn(_)) => "mrn",
            Some(Key::AccessionNumber(_)) => "accession_number",
            Some(Key::StudyInstanceUid(_)) => "study_instance_uid",
            None => "none",
        };
        let action = format!("lookup_ids:{key_type}");
        let checked = check_lookup(&request);
        let mut tx = self.pool().begin().await?;
        let found = match checked {
            Err(error) => Err(error),
            Ok(()) => lookup_in_vault(&mut tx, &request).await,
        };
        let (target, outcome) = match &found {
            Ok(response) if response.created => (format!("patient:{}", response.patient_id), "created"),
            Ok(response) => (format!("patient:{}", response.patient_id), "found"),
            Err(ApiError::NoMatch(_)) => ("none".to_owned(), "not_found"),
            Err(ApiError::InvalidArgument(_)) => ("none".to_owned(), "invalid_argument"),
            Err(_) => ("none".to_owned(), "error"),
        };
        let entry = AuditEntry {
            service: "ingest",
            actor: &who.actor,
            role: &who.role,
            action: &action,
            target: &target,
            outcome,
            purpose: None,
        };
        views::audit(&mut tx, &entry).await.map_err(ApiError::Audit)?;
        tx.commit().await.map_err(ApiError::Audit)?;
        found
    }
}

fn check_lookup(request: &pb::LookupIdsRequest) -> Result<(), ApiError> {
    use pb::lookup_ids_request::Key;
    let (field, value, max) = match &request.key {
        Some(Key::Mrn(mrn)) => ("mrn", mrn, 64),
        Some(Key::AccessionNumber(accession)) => ("accession_number", accession, 16),
        Some(Key::StudyInstanceUid(uid)) => ("study_instance_uid", uid, 64),
        None => return Err(ApiError::invalid("set one key: mrn, accession_number or study_instance_uid")),
    };
    let length = value.chars().count();
    if length == 0 || length > max {
        return Err(ApiError::invalid(format!("{field} is {length} characters: it must be 1 to {max}")));
    }
    if request.create_patient_if_missing && field != "mrn" {
        return Err(ApiError::invalid(format!(
            "create_patient_if_missing works with an mrn only, not with {field}: a patient is created from an MRN"
        )));
    }
    if let Some(birth_date) = request.identity.as_ref().and_then(|i| i.birth_date.as_ref()) {
        convert::date("identity.birth_date", birth_date)?;
    }
    Ok(())
}

async fn lookup_in_vault(
    conn: &mut sqlx::PgConnection,
    request: &pb::LookupIdsRequest,
) -> Result<pb::LookupIdsResponse, ApiError> {
    use pb::lookup_ids_request::Key;
    let (patient, created, study_ids) = match &request.key {
        Some(Key::Mrn(mrn)) => {
            let identity = request.create_patient_if_missing.then(|| new_identity(request.identity.as_ref()));
            let found = views::patient_by_mrn(conn, &request.mrn_issuer, mrn, identity.as_ref()).await?;
            let Some((patient, created)) = found else {
                return Err(ApiError::NoMatch(
                    "no patient has this mrn (and issuer); set create_patient_if_missing to create one"
                        .into(),
                ));
            };
            (patient, created, views::patient_studies(conn, patient).await?)
        }
        Some(Key::AccessionNumber(accession)) => {
            let (patient, studies) = views::studies_by_key(conn, StudyKey::Accession, accession)
                .await?
                .ok_or_else(|| ApiError::NoMatch("no study has this accession number".into()))?;
            (patient, false, studies)
        }
        Some(Key::StudyInstanceUid(uid)) => {
            let (patient, studies) = views::studies_by_key(conn, StudyKey::OriginalStudyUid, uid)
                .await?
                .ok_or_else(|| ApiError::NoMatch("no study has this study instance uid".into()))?;
            (patient, false, studies)
        }
        None => return Err(ApiError::invalid("set one key: mrn, accession_number or study_instance_uid")),
    };
    Ok(pb::LookupIdsResponse {
        patient_id: patient.to_string(),
        study_ids: study_ids.iter().map(ToString::to_string).collect(),
        created,
    })
}

fn new_identity(identity: Option<&pb::PatientIdentity>) -> NewIdentity {
    let Some(identity) = identity else {
        return NewIdentity::default();
    };
    let name = match (identity.family_name.as_str(), identity.given_name.as_str()) {
        ("", "") => None,
        (family, "") => Some(family.to_owned()),
        (family, given) => Some(format!("{family}^{given}")),
    };
    NewIdentity {
        patient_name: name,
        birth_date: identity.birth_date.as_ref().map(|d| format!("{:04}{:02}{:02}", d.year, d.month, d.day)),
        sex: convert::sex_code(identity.sex).map(str::to_owned),
        phone: identity.phone.clone().filter(|p| !p.is_empty()),
    }
}

fn identity_message(identity: &views::VaultIdentity) -> pb::PatientIdentity {
    // Images without a PatientID are filed per study; there is no MRN to give back.
    let (mrn, issuer) = if identity.issuer == "no-patient-id" {
        (String::new(), String::new())
    } else {
        (identity.mrn.clone(), identity.issuer.clone())
    };
    let mut parts = identity.patient_name.as_deref().unwrap_or_default().split('^');
    pb::PatientIdentity {
        mrn,
        mrn_issuer: issuer,
        family_name: parts.next().unwrap_or_default().to_owned(),
        given_name: parts.next().unwrap_or_default().to_owned(),
        birth_date: identity.birth_date.as_deref().and_then(convert::dicom_date),
        sex: convert::sex(identity.sex.as_deref()) as i32,
        phone: identity.phone.clone(),
    }
}

/// Re-identification without authorization checks (the handler checks the role and audits).
pub async fn resolve_identity(
    conn: &mut sqlx::PgConnection,
    patient_id: Uuid,
) -> Result<Option<pb::PatientIdentity>, sqlx::Error> {
    Ok(views::vault_identity(conn, patient_id).await?.as_ref().map(identity_message))
}

fn study_filter_text(request: &pb::ListStudiesRequest) -> String {
    let stamp = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| format!("{}.{}", t.seconds, t.nanos));
    format!(
        "studies|{}|{}|{}|{}|{:?}|{:?}",
        request.patient_id,
        request.state,
        request.selection_outcome,
        request.processing_state,
        stamp(&request.received_after),
        stamp(&request.received_before)
    )
}

#[tonic::async_trait]
impl Ingest for IngestApi {
    async fn upload(
        &self,
        request: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let mut stream = request.into_inner();
        let mut upload = upload::Upload::new(&self.ingestor, &self.limits);
        while let Some(message) = stream.message().await? {
            upload.message(message).await?;
        }
        Ok(Response::new(upload.finish()?))
    }

    async fn complete_study(
        &self,
        request: Request<pb::CompleteStudyRequest>,
    ) -> Result<Response<pb::CompleteStudyResponse>, Status> {
        let study_id = convert::uuid("study_id", &request.into_inner().study_id)?;
        let completion = match complete_study_reporting(self.pool(), study_id, &self.rules).await {
            Ok(completion) => completion,
            Err(CompleteError::NotFound) => return Err(ApiError::not_found("study_id", study_id).into()),
            Err(other) => return Err(ApiError::from(other).into()),
        };
        if completion.job_created {
            self.ingestor.relay_wake.job_written();
            tracing::info!(%study_id, job_id = completion.job.as_ref().map(|j| j.job_id.as_str()), "study completed; pipeline job written");
        }
        let study = self.study_message(study_id).await?;
        Ok(Response::new(pb::CompleteStudyResponse {
            study: Some(study),
            job_created: completion.job_created,
        }))
    }

    async fn get_study(
        &self,
        request: Request<pb::GetStudyRequest>,
    ) -> Result<Response<pb::GetStudyResponse>, Status> {
        let study_id = convert::uuid("study_id", &request.into_inner().study_id)?;
        Ok(Response::new(pb::GetStudyResponse { study: Some(self.study_message(study_id).await?) }))
    }

    async fn list_studies(
        &self,
        request: Request<pb::ListStudiesRequest>,
    ) -> Result<Response<pb::ListStudiesResponse>, Status> {
        let request = request.into_inner();
        let (size, token) = convert::page_size(request.page.as_ref())?;
        let filter_text = study_filter_text(&request);
        let filter = views::StudyFilter {
            patient_id: convert::optional_uuid("patient_id", &request.patient_id)?,
            receiving: convert::state_filter(request.state)?,
            statuses: convert::selection_filter(request.selection_outcome)?,
            processing_state: convert::processing_filter(request.processing_state)?.map(str::to_owned),
            received_after: request
                .received_after
                .as_ref()
                .map(|t| convert::from_timestamp("received_after", t))
                .transpose()?,
            received_before: request
                .received_before
                .as_ref()
                .map(|t| convert::from_timestamp("received_before", t))
                .transpose()?,
        };
        let after = match convert::decode_token(&token, &filter_text)? {
            Some(after) => {
                let key = Uuid::parse_str(&after.key).map_err(|_| {
                    ApiError::invalid(
                        "page.page_token is not a token this listing issued; start again without one",
                    )
                })?;
                Some(views::After { at: after.at, key })
            }
            None => None,
        };
        let mut rows = views::list_studies(self.pool(), &filter, after.as_ref(), size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match rows.last() {
            Some(last) if more => {
                convert::encode_token(last.created_at, &last.study_id.to_string(), &filter_text)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListStudiesResponse {
            studies: rows.iter().map(|row| convert::study(row, Vec::new())).collect(),
            page: Some(tfesi_proto::common::v1::PageResponse { next_page_token, total_size: None }),
        }))
    }

    async fn lookup_ids(
        &self,
        request: Request<pb::LookupIdsRequest>,
    ) -> Result<Response<pb::LookupIdsResponse>, Status> {
        let who = caller(&request);
        Ok(Response::new(self.lookup(&who, request.into_inner()).await?))
    }

    async fn resolve_patient(
        &self,
        request: Request<pb::ResolvePatientRequest>,
    ) -> Result<Response<pb::ResolvePatientResponse>, Status> {
        let who = caller(&request);
        let request = request.into_inner();
        let patient_id = convert::uuid("patient_id", &request.patient_id);
        let purpose_length = request.purpose.chars().count();
        let mut tx = self.pool().begin().await.map_err(ApiError::from)?;
        let result = async {
            let patient_id = patient_id?;
            if purpose_length == 0 || purpose_length > 200 {
                return Err(ApiError::invalid(format!(
                    "purpose is {purpose_length} characters: say why the identity is needed in 1 to 200 characters"
                )));
            }
            if !RESOLVE_ROLES.contains(&who.role.as_str()) {
                return Err(ApiError::PermissionDenied(format!(
                    "role '{}' may not re-identify patients: ResolvePatient is restricted to the nurse and admin roles",
                    who.role
                )));
            }
            let identity = resolve_identity(&mut tx, patient_id)
                .await?
                .ok_or_else(|| ApiError::not_found("patient_id", patient_id))?;
            Ok(pb::ResolvePatientResponse { patient_id: patient_id.to_string(), identity: Some(identity) })
        }
        .await;
        let target = match Uuid::parse_str(&request.patient_id) {
            Ok(id) => format!("patient:{id}"),
            Err(_) => "none".to_owned(),
        };
        let outcome = match &result {
            Ok(_) => "resolved",
            Err(ApiError::PermissionDenied(_)) => "permission_denied",
            Err(ApiError::NotFound { .. }) => "not_found",
            Err(ApiError::InvalidArgument(_)) => "invalid_argument",
            Err(_) => "error",
        };
        let purpose: String = request.purpose.chars().take(200).collect();
        let entry = AuditEntry {
            service: "ingest",
            actor: &who.actor,
            role: &who.role,
            action: "resolve_patient",
            target: &target,
            outcome,
            purpose: Some(&purpose),
        };
        views::audit(&mut tx, &entry).await.map_err(ApiError::Audit)?;
        tx.commit().await.map_err(ApiError::Audit)?;
        Ok(Response::new(result?))
    }

    async fn list_quarantine(
        &self,
        request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        let request = request.into_inner();
        let (size, token) = convert::page_size(request.page.as_ref())?;
        let study_id = convert::optional_uuid("study_id", &request.study_id)?;
        let reason = convert::quarantine_filter(request.reason)?;
        let filter_text = format!("quarantine|{}|{}", request.study_id, request.reason);
        let after = convert::decode_token(&token, &filter_text)?;
        let mut rows = views::list_quarantine(self.pool(), study_id, reason, after.as_ref(), size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match rows.last() {
            Some(last) if more => {
                convert::encode_token(last.created_at, &last.sop_instance_uid, &filter_text)
            }
            _ => String::new(),
        };
        let instances = rows
            .iter()
            .map(|row| {
                let reasons: Vec<_> =
                    row.reasons.iter().filter_map(|r| convert::stored_quarantine_reason(r)).collect();
                pb::QuarantinedInstance {
                    study_id: row.study_id.to_string(),
                    series_id: row.series_id.to_string(),
                    sop_instance_uid: row.sop_instance_uid.clone(),
                    reason: reasons
                        .first()
                        .map_or(pb::InstanceReason::Unspecified, |r| convert::quarantine_reason(*r))
                        as i32,
                    message: reasons
                        .iter()
                        .map(|r| r.message().to_lowercase())
                        .collect::<Vec<_>>()
                        .join("; "),
                    // Quarantine keeps metadata only: the pixels may carry identifying text.
                    stored_sha256: String::new(),
                    received_at: Some(convert::timestamp(row.created_at)),
                }
            })
            .collect();
        Ok(Response::new(pb::ListQuarantineResponse {
            instances,
            page: Some(tfesi_proto::common::v1::PageResponse { next_page_token, total_size: None }),
        }))
    }

    async fn get_series(
        &self,
        request: Request<pb::GetSeriesRequest>,
    ) -> Result<Response<pb::GetSeriesResponse>, Status> {
        let who = caller(&request);
        let series_id = convert::uuid("series_id", &request.into_inner().series_id)?;
        let found = async {
            let row = views::series(self.pool(), series_id)
                .await?
                .ok_or_else(|| ApiError::not_found("series_id", series_id))?;
            let study = views::study(self.pool(), row.study_id)
                .await?
                .ok_or_else(|| ApiError::not_found("study_id", row.study_id))?;
            Ok::<_, ApiError>((row, study))
        }
        .await;
        let outcome = match &found {
            Ok(_) => "found",
            Err(ApiError::NotFound { .. }) => "not_found",
            Err(_) => "error",
        };
        let target = format!("series:{series_id}");
        let entry = AuditEntry {
            service: "ingest",
            actor: &who.actor,
            role: &who.role,
            action: "get_series",
            target: &target,
            outcome,
            purpose: None,
        };
        let mut conn = self.pool().acquire().await.map_err(ApiError::Audit)?;
        views::audit(&mut conn, &entry).await.map_err(ApiError::Audit)?;
        let (row, study) = found?;
        let complete = study.status != "receiving";
        let objects = row
            .instances
            .iter()
            .map(|i| pb::SeriesObject {
                sop_instance_uid: i.sop_instance_uid.clone(),
                sha256: i.sha256.clone(),
                size_bytes: u64::try_from(i.size_bytes).unwrap_or(0),
            })
            .collect();
        Ok(Response::new(pb::GetSeriesResponse {
            study_id: study.study_id.to_string(),
            patient_id: study.patient_id.to_string(),
            series: Some(convert::series(&row, complete, &self.rules)),
            objects,
        }))
    }

    async fn report_job_status(
        &self,
        request: Request<pb::ReportJobStatusRequest>,
    ) -> Result<Response<pb::ReportJobStatusResponse>, Status> {
        let request = request.into_inner();
        let job_id = convert::uuid("job_id", &request.job_id)?;
        let state = convert::reported_state(request.state)?;
        let report = views::JobReport {
            state,
            attempts: i32::try_from(request.attempts).unwrap_or(i32::MAX),
            last_error: Some(request.last_error.chars().take(2000).collect::<String>())
                .filter(|e| !e.is_empty()),
        };
        let job = views::report_job(self.pool(), job_id, &report)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("job_id", job_id))?;
        tracing::info!(%job_id, state = %job.state, attempts = job.attempts, "job status reported");
        Ok(Response::new(pb::ReportJobStatusResponse { status: Some(convert::processing(Some(&job))) }))
    }
}
