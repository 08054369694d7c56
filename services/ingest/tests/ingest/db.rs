//! Storage and catalogue against a real Postgres: storing, duplicates, quarantine, completion with selection and the outbox, and no PHI outside the vault.

use bytes::Bytes;
use sqlx::PgPool;
use tfesi_ingest::catalogue::complete_study;
use tfesi_ingest::ingest::{Ingestor, InstanceOutcome};
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::store::ObjectStore;
use tfesi_ingest::{ParseLimits, RejectCode};

use crate::corpus::corpus_file;

async fn ingestor(pool: PgPool, dir: &tempfile::TempDir) -> Ingestor {
    let store = ObjectStore::open(dir.path()).unwrap();
    Ingestor::new(pool, store, ParseLimits::default()).await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_same_instance_twice_is_one_instance(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(pool.clone(), &dir).await;
    let first = ingest.ingest(corpus_file("valid/emri_small.dcm")).await.unwrap();
    let second = ingest.ingest(corpus_file("valid/emri_small.dcm")).await.unwrap();
    assert!(matches!(first, InstanceOutcome::Stored { .. }), "{first:?}");
    assert!(matches!(second, InstanceOutcome::Duplicate { .. }), "{second:?}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.instances").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_and_quarantined_instances_are_outcomes_not_errors(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(pool.clone(), &dir).await;
    let bad = ingest.ingest(corpus_file("invalid/huge_len_fffffff0.dcm")).await.unwrap();
    assert!(
        matches!(bad, InstanceOutcome::Rejected(ref r) if r.code == RejectCode::LengthBeyondEnd),
        "{bad:?}"
    );
    let sc = ingest.ingest(corpus_file("valid/SC_rgb_jpeg_dcmtk.dcm")).await.unwrap();
    assert!(matches!(sc, InstanceOutcome::Quarantined { .. }), "{sc:?}");
    let quarantined: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.quarantine").fetch_one(&pool).await.unwrap();
    assert_eq!(quarantined, 1);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.instances").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_synthetic_study_completes_with_its_t2_sagittal_selected_and_one_outbox_job(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(pool.clone(), &dir).await;
    let options = tfesi_synth::PatientOptions { phi_canaries: true, ..Default::default() };
    let study = tfesi_synth::generate_patient(5, 1, &options).unwrap();
    let mut study_id = None;
    for file in &study.files {
        match ingest.ingest(Bytes::from(file.bytes.clone())).await.unwrap() {
            InstanceOutcome::Stored { study_id: id, .. } => study_id = Some(id),
            other => panic!("{other:?}"),
        }
    }
    let study_id = study_id.unwrap();
    let (selection, job) = complete_study(&pool, study_id, &SelectionRules::default()).await.unwrap();
    let job = job.expect("a job for the selected series");
    assert_eq!(selection.selected.as_deref(), Some(job.series_uid.as_str()));
    let t2_count =
        study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).count();
    assert_eq!(job.objects.len(), t2_count);
    // completing again is idempotent: same decision, still one job
    let (again, job_again) = complete_study(&pool, study_id, &SelectionRules::default()).await.unwrap();
    assert_eq!(again.selected, selection.selected);
    assert_eq!(job_again.map(|j| j.job_id), Some(job.job_id));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 1);

    // no canary outside the vault: every non-vault table, and every stored object
    for table in ["studies", "series", "instances", "quarantine", "selection_decisions", "outbox"] {
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ingest.{table} t WHERE t::text LIKE '%PHIC-%'"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(hits, 0, "canary in ingest.{table}");
    }
    let vault_hits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.vault_patients t WHERE t::text LIKE '%PHIC-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(vault_hits > 0, "the vault holds the identity");
    let mut objects = 0;
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"PHIC-"), "canary in {}", entry.display());
        objects += 1;
    }
    assert_eq!(objects, study.files.len());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_study_without_a_t2_sagittal_records_no_eligible_series_and_no_job(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(pool.clone(), &dir).await;
    let study = tfesi_synth::generate_patient(5, 2, &Default::default()).unwrap();
    let mut study_id = None;
    for file in study.files.iter().filter(|f| f.kind != tfesi_synth::protocol::SeriesKind::T2Sagittal) {
        if let InstanceOutcome::Stored { study_id: id, .. } =
            ingest.ingest(Bytes::from(file.bytes.clone())).await.unwrap()
        {
            study_id = Some(id);
        }
    }
    let (selection, job) =
        complete_study(&pool, study_id.unwrap(), &SelectionRules::default()).await.unwrap();
    assert_eq!(selection.selected, None);
    assert!(job.is_none());
    assert!(selection.decisions.iter().all(|d| !d.reasons.is_empty()));
    let status: String =
        sqlx::query_scalar("SELECT status FROM ingest.studies").fetch_one(&pool).await.unwrap();
    assert_eq!(status, "no_eligible_series");
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A synthetic T2 sagittal instance changed by `edit`, with a fresh SOP Instance UID.
fn edited_instance(edit: impl FnOnce(&mut dicom_object::DefaultDicomObject)) -> Bytes {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let options = tfesi_synth::PatientOptions {
        transfer_syntax: Some(tfesi_synth::protocol::TransferSyntaxKind::ExplicitLittle),
        ..Default::default()
    };
    let study = tfesi_synth::generate_patient(17, 2, &options).unwrap();
    let file =
        study.files.iter().find(|file| file.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).unwrap();
    let mut object = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(file.bytes.as_slice())
        .unwrap();
    let uid = format!("2.25.{}", uuid::Uuid::new_v4().as_u128());
    object.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(uid.clone())));
    object.meta_mut().media_storage_sop_instance_uid = uid;
    edit(&mut object);
    let mut bytes = Vec::new();
    object.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}

#[sqlx::test(migrations = "../../migrations")]
async fn burned_in_annotation_and_derived_images_are_quarantined_never_stored(pool: PgPool) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use tfesi_ingest::rejection::QuarantineReason;
    let dir = tempfile::tempdir().unwrap();
    let ingest = ingestor(pool.clone(), &dir).await;
    let cases: [(&str, Bytes, QuarantineReason); 3] = [
        (
            "BurnedInAnnotation YES",
            edited_instance(|object| {
                object.put(DataElement::new(tags::BURNED_IN_ANNOTATION, VR::CS, PrimitiveValue::from("YES")));
            }),
            QuarantineReason::BurnedInAnnotation,
        ),
        (
            "BurnedInAnnotation other than NO",
            edited_instance(|object| {
                object.put(DataElement::new(
                    tags::BURNED_IN_ANNOTATION,
                    VR::CS,
                    PrimitiveValue::from("UNKNOWN"),
                ));
            }),
            QuarantineReason::BurnedInAnnotation,
        ),
        (
            "ImageType DERIVED\\SECONDARY",
            edited_instance(|object| {
                let value = PrimitiveValue::Strs(
                    ["DERIVED", "SECONDARY", "M"].map(String::from).into_iter().collect(),
                );
                object.put(DataElement::new(tags::IMAGE_TYPE, VR::CS, value));
            }),
            QuarantineReason::DerivedOrSecondary,
        ),
    ];
    for (what, bytes, expected) in cases {
        match ingest.ingest(bytes).await.unwrap() {
            InstanceOutcome::Quarantined { reasons, .. } => {
                assert!(reasons.contains(&expected), "{what}: {reasons:?}");
            }
            other => panic!("{what}: quarantined expected, got {other:?}"),
        }
    }
    // Secondary capture (a corpus file) is quarantined too (see the test above).
    let quarantined: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.quarantine").fetch_one(&pool).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest.instances").fetch_one(&pool).await.unwrap();
    assert_eq!((quarantined, stored), (3, 0), "all three quarantined, none stored for use");
}
