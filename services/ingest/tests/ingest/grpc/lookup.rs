//! Patient lookup through the gRPC API: a patient created by a lookup, refusals, and the audit
//! record every lookup writes (a failed audit write fails the lookup).

use super::*;

#[sqlx::test(migrations = "../../migrations")]
async fn a_patient_created_by_lookup_receives_the_images_with_that_mrn_and_every_lookup_is_audited(
    pool: PgPool,
) {
    let app = app(pool.clone()).await;
    let study = patient(24, 0);
    let mrn = tfesi_synth::phi::canary(1, "MRN");
    let accession = tfesi_synth::phi::canary(1, "ACC");
    let mut client = app.client.clone();
    let identity = pb::PatientIdentity {
        family_name: "PHIC-FAMILY".into(),
        given_name: "Ann".into(),
        birth_date: Some(Date { year: 1961, month: 4, day: 30 }),
        sex: Sex::Female as i32,
        phone: Some("+44 20 7946 0000".into()),
        ..Default::default()
    };
    let create = pb::LookupIdsRequest {
        key: Some(Key::Mrn(mrn.clone())),
        create_patient_if_missing: true,
        identity: Some(identity.clone()),
        ..Default::default()
    };
    let created = client.lookup_ids(create.clone()).await.unwrap().into_inner();
    assert!(created.created);
    assert!(created.study_ids.is_empty());
    let again = client.lookup_ids(create).await.unwrap().into_inner();
    assert_eq!((again.patient_id.as_str(), again.created), (created.patient_id.as_str(), false));

    let files: Vec<_> = study.files.iter().take(4).collect();
    let results = upload_study(&app, &files, 4).await;
    assert!(
        results.iter().all(|r| r.patient_id == created.patient_id),
        "filed under the surrogate the app got"
    );
    let study_id = study_id_of(&results);

    let by_mrn = client
        .lookup_ids(pb::LookupIdsRequest { key: Some(Key::Mrn(mrn.clone())), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_mrn.study_ids, vec![study_id.clone()]);
    let by_accession = client
        .lookup_ids(pb::LookupIdsRequest { key: Some(Key::AccessionNumber(accession)), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (by_accession.patient_id.as_str(), by_accession.study_ids.clone()),
        (created.patient_id.as_str(), vec![study_id])
    );

    let missing = pb::LookupIdsRequest { key: Some(Key::Mrn("nobody".into())), ..Default::default() };
    assert_eq!(client.lookup_ids(missing).await.unwrap_err().code(), Code::NotFound);
    let create_by_accession = pb::LookupIdsRequest {
        key: Some(Key::AccessionNumber("A1".into())),
        create_patient_if_missing: true,
        ..Default::default()
    };
    let status = client.lookup_ids(create_by_accession).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("mrn only"), "{}", status.message());
    let empty = pb::LookupIdsRequest { key: Some(Key::Mrn(String::new())), ..Default::default() };
    assert_eq!(client.lookup_ids(empty).await.unwrap_err().code(), Code::InvalidArgument);

    let audit: Vec<(String, String, String, String, String)> =
        sqlx::query_as("SELECT actor, role, action, target, outcome FROM audit.log ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let outcomes: Vec<&str> = audit.iter().map(|a| a.4.as_str()).collect();
    assert_eq!(
        outcomes,
        vec!["created", "found", "found", "found", "not_found", "invalid_argument", "invalid_argument"]
    );
    assert!(audit.iter().all(|a| a.0 == "anonymous" && a.1 == "unauthenticated"));
    assert_eq!(audit[0].2, "lookup_ids:mrn");
    assert_eq!(audit[3].2, "lookup_ids:accession_number");
    assert_eq!(audit[0].3, format!("patient:{}", created.patient_id));

    // the vault keeps what the app gave; re-identification returns it (role checks in the handler)
    let mut conn = pool.acquire().await.unwrap();
    let patient_uuid = uuid::Uuid::parse_str(&created.patient_id).unwrap();
    let resolved = tfesi_ingest::grpc::resolve_identity(&mut conn, patient_uuid).await.unwrap().unwrap();
    assert_eq!(resolved.mrn, mrn);
    assert_eq!((resolved.family_name.as_str(), resolved.given_name.as_str()), ("PHIC-FAMILY", "Ann"));
    assert_eq!(resolved.birth_date, identity.birth_date);
    assert_eq!(resolved.sex(), Sex::Female);
    assert_eq!(resolved.phone, identity.phone);

    assert_no_canary_outside_the_vault(&pool).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn resolve_patient_is_refused_to_an_unauthenticated_caller_and_audited_with_its_purpose(pool: PgPool) {
    let app = app(pool.clone()).await;
    let mut client = app.client.clone();
    let created = client
        .lookup_ids(pb::LookupIdsRequest {
            key: Some(Key::Mrn("MRN-77".into())),
            create_patient_if_missing: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let request = pb::ResolvePatientRequest {
        patient_id: created.patient_id.clone(),
        purpose: "follow-up call".into(),
    };
    let status = client.resolve_patient(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("nurse and admin"), "{}", status.message());
    let malformed = pb::ResolvePatientRequest { patient_id: "p1".into(), purpose: "call".into() };
    assert_eq!(client.resolve_patient(malformed).await.unwrap_err().code(), Code::InvalidArgument);
    let no_purpose =
        pb::ResolvePatientRequest { patient_id: created.patient_id.clone(), purpose: String::new() };
    let status = client.resolve_patient(no_purpose).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("purpose"));

    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT action, target, outcome, purpose FROM audit.log WHERE action = 'resolve_patient' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        (
            "resolve_patient".into(),
            format!("patient:{}", created.patient_id),
            "permission_denied".into(),
            Some("follow-up call".into())
        )
    );
    assert_eq!((rows[1].1.as_str(), rows[1].2.as_str()), ("none", "invalid_argument"));
    assert_eq!(rows[2].2, "invalid_argument");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failed_audit_write_fails_the_lookup_and_creates_nothing(pool: PgPool) {
    sqlx::raw_sql(
        "CREATE FUNCTION ingest.test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'audit disk full'; END; $$;
         CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit.log
             FOR EACH ROW EXECUTE FUNCTION ingest.test_refuse_audit();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = app(pool.clone()).await;
    let mut client = app.client.clone();
    let request = pb::LookupIdsRequest {
        key: Some(Key::Mrn("MRN-1".into())),
        create_patient_if_missing: true,
        ..Default::default()
    };
    let status = client.lookup_ids(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().contains("audit.log"), "{}", status.message());
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.vault_patients").await, 0);
    let status = client
        .get_series(pb::GetSeriesRequest { series_id: uuid::Uuid::new_v4().to_string() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
}
