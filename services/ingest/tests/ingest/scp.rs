//! The DICOM C-STORE receiver against dcmtk's real clients (`echoscu`, `storescu`) and a raw
//! dicom-ul client: association control, storage statuses, duplicates, refusals, parallel
//! associations, and completion after the quiet period.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::Pdu;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use sqlx::PgPool;
use tfesi_ingest::ParseLimits;
use tfesi_ingest::config::DicomConfig;
use tfesi_ingest::ingest::Ingestor;
use tfesi_ingest::scp::{self, Activity, ENHANCED_MR_IMAGE_STORAGE, MR_IMAGE_STORAGE, TRANSFER_SYNTAXES};
use tfesi_ingest::selection::SelectionRules;
use tfesi_ingest::store::ObjectStore;
use tfesi_platform::{Shutdown, ShutdownTrigger};
use tokio::process::Command;

use crate::corpus::corpus_file;

const QUIET: Duration = Duration::from_secs(1);
/// Bound of every external client run and of every wait.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A running receiver and completer on 127.0.0.1 port 0.
struct Scp {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    receiver: tokio::task::JoinHandle<anyhow::Result<()>>,
    completer: tokio::task::JoinHandle<()>,
    _store: tempfile::TempDir,
}

impl Scp {
    async fn start(pool: PgPool, tweak: impl FnOnce(&mut DicomConfig)) -> Self {
        let store = tempfile::tempdir().unwrap();
        let ingestor =
            Ingestor::new(pool.clone(), ObjectStore::open(store.path()).unwrap(), ParseLimits::default())
                .await
                .unwrap();
        let mut config = DicomConfig { quiet_period_s: QUIET.as_secs_f64(), ..DicomConfig::default() };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let activity = Activity::default();
        let completer = tokio::spawn(scp::run_completer(
            pool,
            activity.clone(),
            config.quiet_period(),
            SelectionRules::default(),
            tfesi_ingest::outbox::RelayWake::default(),
            shutdown.clone().wait(),
        ));
        let receiver =
            tokio::spawn(scp::serve(listener, ingestor, config, activity, Duration::from_secs(5), shutdown));
        Self { addr, trigger, receiver, completer, _store: store }
    }

    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.receiver).await.unwrap().unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.completer).await.unwrap().unwrap();
    }
}

/// Output of a dcmtk client run.
struct Run {
    success: bool,
    output: String,
}

async fn dcmtk(program: &str, args: &[String]) -> Run {
    let child = Command::new(program)
        .args(args)
        // Debian's dcmtk otherwise waits ~40 ms per message on delayed ACKs
        .env("TCP_NODELAY", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program} (installed by scripts/setup.sh): {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Run { success: output.status.success(), output: text }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

async fn echoscu(addr: SocketAddr, calling: &str, called: &str) -> Run {
    dcmtk(
        "echoscu",
        &strings(&["-aet", calling, "-aec", called, &addr.ip().to_string(), &addr.port().to_string()]),
    )
    .await
}

/// A storescu association profile: one presentation context per (SOP class, transfer syntax) so
/// that compressed files go as they are, plus Secondary Capture (which the receiver refuses).
fn storescu_profile(dir: &Path) -> PathBuf {
    let mut text = String::from("[[TransferSyntaxes]]\n");
    for (i, ts) in TRANSFER_SYNTAXES.iter().enumerate() {
        text.push_str(&format!("[TS{i}]\nTransferSyntax1 = {ts}\n"));
    }
    text.push_str("[[PresentationContexts]]\n[Contexts]\n");
    let mut n = 0;
    let sc = "1.2.840.10008.5.1.4.1.1.7";
    for class in [MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE, sc] {
        for i in 0..TRANSFER_SYNTAXES.len() {
            n += 1;
            text.push_str(&format!("PresentationContext{n} = {class}\\TS{i}\n"));
        }
    }
    text.push_str("[[Profiles]]\n[TFESI]\nPresentationContexts = Contexts\n");
    let path = dir.join("storescu.cfg");
    std::fs::write(&path, text).unwrap();
    path
}

async fn storescu(addr: SocketAddr, calling: &str, profile: &Path, files: &[&Path]) -> Run {
    let mut args = strings(&["-d", "-nh", "-aet", calling, "-aec", "TFESI", "-xf"]);
    args.push(profile.display().to_string());
    args.push("TFESI".to_owned());
    args.extend(strings(&["+sd", "+r"]));
    args.push(addr.ip().to_string());
    args.push(addr.port().to_string());
    args.extend(files.iter().map(|f| f.display().to_string()));
    dcmtk("storescu", &args).await
}

/// Writes a synthetic patient's study under `dir`; returns its files' count and T2 count.
fn synthetic_study(dir: &Path, seed: u64, index: u32) -> (usize, usize) {
    let options = tfesi_synth::PatientOptions { phi_canaries: true, ..Default::default() };
    let study = tfesi_synth::generate_patient(seed, index, &options).unwrap();
    tfesi_synth::write_study(dir, &study).unwrap();
    let t2 = study.files.iter().filter(|f| f.kind == tfesi_synth::protocol::SeriesKind::T2Sagittal).count();
    (study.files.len(), t2)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

/// Waits (bounded) until `sql` counts `expected`; returns what it counted last.
async fn wait_for_count(pool: &PgPool, sql: &str, expected: i64, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = count(pool, sql).await;
        if n == expected || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn echoscu_is_answered_and_a_wrong_called_ae_title_is_rejected(pool: PgPool) {
    let scp = Scp::start(pool, |_| {}).await;
    let ok = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
    assert!(ok.success, "{}", ok.output);
    let wrong = echoscu(scp.addr, "ECHOSCU", "NOT-TFESI").await;
    assert!(!wrong.success, "{}", wrong.output);
    assert!(wrong.output.contains("Called AE Title Not Recognized"), "{}", wrong.output);
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_listed_calling_ae_titles_may_associate(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |c| c.allowed_calling_ae_titles = vec!["MODALITY1".to_owned()]).await;
    let refused = echoscu(scp.addr, "INTRUDER", "TFESI").await;
    assert!(!refused.success, "{}", refused.output);
    assert!(refused.output.contains("Calling AE Title Not Recognized"), "{}", refused.output);
    let dir = tempfile::tempdir().unwrap();
    let profile = storescu_profile(dir.path());
    let mr = corpus_path("valid/MR_small.dcm");
    let store = storescu(scp.addr, "INTRUDER", &profile, &[&mr]).await;
    assert!(!store.success, "{}", store.output);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 0);
    let allowed = echoscu(scp.addr, "MODALITY1", "TFESI").await;
    assert!(allowed.success, "{}", allowed.output);
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn peers_outside_the_allowed_addresses_are_rejected(pool: PgPool) {
    let scp = Scp::start(pool, |c| c.allowed_peers = vec!["10.255.255.1".parse().unwrap()]).await;
    let refused = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
    assert!(!refused.success, "{}", refused.output);
    assert!(refused.output.contains("Association Rejected"), "{}", refused.output);
    scp.stop().await;
}

fn corpus_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus").join(relative)
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_study_sent_by_storescu_is_stored_then_completed_after_the_quiet_period(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = storescu_profile(dir.path());
    let studies = dir.path().join("studies");
    let (files, t2) = synthetic_study(&studies, 11, 1);
    let run = storescu(scp.addr, "MODALITY1", &profile, &[&studies]).await;
    assert!(run.success, "{}", run.output);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, files as i64);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM ingest.studies WHERE 'dicom' = ANY(received_via)").await,
        1
    );

    let completed =
        wait_for_count(&pool, "SELECT count(*) FROM ingest.studies WHERE status = 'selected'", 1, QUIET * 20)
            .await;
    assert_eq!(completed, 1, "the study was not completed after the quiet period");
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.outbox").await, 1);
    let job: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM ingest.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(job["objects"].as_array().unwrap().len(), t2, "the job carries the T2 sagittal series");
    let selected: String =
        sqlx::query_scalar("SELECT selected_series FROM ingest.studies").fetch_one(&pool).await.unwrap();
    assert_eq!(job["series_uid"].as_str(), Some(selected.as_str()));

    // the same files again: success (duplicates), nothing new
    let again = storescu(scp.addr, "MODALITY1", &profile, &[&studies]).await;
    assert!(again.success, "{}", again.output);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, files as i64);
    tokio::time::sleep(QUIET * 3).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.outbox").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.studies").await, 1);
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn refused_instances_get_a_failure_status_and_the_association_goes_on(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = storescu_profile(dir.path());
    // an MR instance without pixel data: refused by validation, with an Error Comment
    let broken = dir.path().join("mr_without_pixels.dcm");
    std::fs::copy(corpus_path("valid/MR_small.dcm"), &broken).unwrap();
    let modified =
        dcmtk("dcmodify", &strings(&["-nb", "-ea", "(7fe0,0010)", &broken.display().to_string()])).await;
    assert!(modified.success, "{}", modified.output);
    let sc = corpus_path("valid/SC_rgb_jpeg_dcmtk.dcm");
    let mr = corpus_path("valid/emri_small.dcm");
    let run = storescu(scp.addr, "MODALITY1", &profile, &[&sc, &broken, &mr]).await;
    // with --no-halt storescu goes on after a failure (and exits 0): its log shows each outcome.
    assert!(run.success, "{}", run.output);
    // The Secondary Capture instance had no accepted presentation context (not MR) ...
    assert!(run.output.contains("No presentation context"), "{}", run.output);
    // ... the broken MR instance got a 0xC0xx failure status with the reason ...
    assert!(run.output.to_lowercase().contains("0xc00c"), "{}", run.output);
    assert!(run.output.contains("pixel_data"), "{}", run.output);
    // ... and the good instance after them was stored in the same association.
    assert_eq!(run.output.matches("Association Accepted").count(), 1, "{}", run.output);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.quarantine").await, 0);
    // the receiver still serves
    let ok = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
    assert!(ok.success, "{}", ok.output);
    scp.stop().await;
}

/// The data set bytes of a Part 10 stream, its transfer syntax and SOP Instance UID.
fn data_set_of(part10: &[u8]) -> (Vec<u8>, String, String) {
    assert_eq!(&part10[128..132], b"DICM");
    // (0002,0000) UL, explicit VR little endian: tag 4, VR 2, length 2, value 4
    let group_length = u32::from_le_bytes(part10[140..144].try_into().unwrap()) as usize;
    let start = 144 + group_length;
    let object = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(part10)
        .unwrap();
    let meta = object.meta();
    (
        part10[start..].to_vec(),
        meta.transfer_syntax().trim_end_matches('\0').to_owned(),
        meta.media_storage_sop_instance_uid().trim_end_matches('\0').to_owned(),
    )
}

fn store_command(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    let pad = |s: &str| {
        let mut s = s.to_owned();
        if s.len() % 2 == 1 {
            s.push('\0');
        }
        PrimitiveValue::from(s)
    };
    let command = InMemDicomObject::command_from_element_iter([
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, pad(sop_class)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0001_u16)),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, pad(sop_instance)),
    ]);
    let mut bytes = Vec::new();
    command.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
    bytes
}

/// Sends one C-STORE (command and data set in one P-DATA each) and returns (status, comment).
async fn c_store<S>(
    association: &mut dicom_ul::association::AsyncClientAssociation<S>,
    context: u8,
    message_id: u16,
    sop_class: &str,
    sop_instance: &str,
    data_set: Vec<u8>,
) -> (u16, Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let command = store_command(message_id, sop_class, sop_instance);
    association
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        })
        .await
        .unwrap();
    let max = association.acceptor_max_pdu_length() as usize - 64;
    let chunks: Vec<&[u8]> = data_set.chunks(max).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        association
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: context,
                    value_type: PDataValueType::Data,
                    is_last: i + 1 == chunks.len(),
                    data: chunk.to_vec(),
                }],
            })
            .await
            .unwrap();
    }
    let response = tokio::time::timeout(CLIENT_TIMEOUT, association.receive()).await.unwrap().unwrap();
    let Pdu::PData { data } = response else { panic!("unexpected response {response:?}") };
    let object =
        InMemDicomObject::read_dataset_with_ts(&data[0].data[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
    assert_eq!(object.get(tags::COMMAND_FIELD).unwrap().to_int::<u16>().unwrap(), 0x8001);
    assert_eq!(object.get(tags::MESSAGE_ID_BEING_RESPONDED_TO).unwrap().to_int::<u16>().unwrap(), message_id);
    let status = object.get(tags::STATUS).unwrap().to_int::<u16>().unwrap();
    let comment = object.get(tags::ERROR_COMMENT).map(|e| e.to_str().unwrap().trim().to_owned());
    (status, comment)
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_non_mr_data_set_sent_as_mr_is_refused_as_not_matching_its_sop_class(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |_| {}).await;
    let (sc_data, sc_ts, _) = data_set_of(&corpus_file("valid/SC_rgb_jpeg_dcmtk.dcm"));
    let (mr_data, mr_ts, mr_instance) = data_set_of(&corpus_file("valid/emri_small.dcm"));
    let (derived_data, derived_ts, derived_instance) = data_set_of(&corpus_file("valid/MR_small.dcm"));
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title("RAWSCU")
        .called_ae_title("TFESI")
        .with_presentation_context(MR_IMAGE_STORAGE, vec![sc_ts.as_str()])
        .with_presentation_context(ENHANCED_MR_IMAGE_STORAGE, vec![mr_ts.as_str()])
        .with_presentation_context(MR_IMAGE_STORAGE, vec![derived_ts.as_str()])
        .establish_async(scp.addr)
        .await
        .unwrap();
    let contexts: Vec<_> = association.presentation_contexts().to_vec();
    assert!(
        contexts.iter().all(|pc| pc.reason == PresentationContextResultReason::Acceptance),
        "{contexts:?}"
    );
    let (sc_context, mr_context, derived_context) = (contexts[0].id, contexts[1].id, contexts[2].id);

    // a Secondary Capture data set under an MR command
    let (status, comment) =
        c_store(&mut association, sc_context, 1, MR_IMAGE_STORAGE, "1.2.3.4.5.6.7", sc_data).await;
    assert_eq!(status, 0xA900, "{comment:?}");
    assert!(comment.unwrap().contains("1.2.840.10008.5.1.4.1.1.7"));

    // the association goes on: an MR instance on the same association is stored
    let (status, comment) =
        c_store(&mut association, mr_context, 2, ENHANCED_MR_IMAGE_STORAGE, &mr_instance, mr_data.clone())
            .await;
    assert_eq!(status, 0x0000, "{comment:?}");
    // and again: a duplicate is success
    let (status, comment) =
        c_store(&mut association, mr_context, 3, ENHANCED_MR_IMAGE_STORAGE, &mr_instance, mr_data.clone())
            .await;
    assert_eq!(status, 0x0000, "{comment:?}");
    // a command whose SOP instance differs from the data set's is refused
    let (status, _) =
        c_store(&mut association, mr_context, 4, ENHANCED_MR_IMAGE_STORAGE, "1.2.3.999", mr_data).await;
    assert_eq!(status, 0xC010);
    // a derived image is quarantined: warning with the reason
    let (status, comment) =
        c_store(&mut association, derived_context, 5, MR_IMAGE_STORAGE, &derived_instance, derived_data)
            .await;
    assert_eq!(status, 0xB000);
    assert_eq!(comment.as_deref(), Some("quarantined: derived_or_secondary"));
    association.release().await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.quarantine").await, 1);
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn several_storescu_associations_in_parallel_are_all_stored(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = storescu_profile(dir.path());
    let mut total = 0;
    let mut roots = Vec::new();
    for index in 0..3_u32 {
        let root = dir.path().join(format!("patient{index}"));
        total += synthetic_study(&root, 23, index).0;
        roots.push(root);
    }
    let (first, second, third) = ([roots[0].as_path()], [roots[1].as_path()], [roots[2].as_path()]);
    let (a, b, c) = tokio::join!(
        storescu(scp.addr, "MODALITY1", &profile, &first),
        storescu(scp.addr, "MODALITY2", &profile, &second),
        storescu(scp.addr, "MODALITY3", &profile, &third),
    );
    for run in [&a, &b, &c] {
        assert!(run.success, "{}", run.output);
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, total as i64);
    let completed = wait_for_count(
        &pool,
        "SELECT count(*) FROM ingest.studies WHERE status <> 'receiving'",
        3,
        QUIET * 20,
    )
    .await;
    assert_eq!(completed, 3);
    scp.stop().await;
}

/// An open C-ECHO association that holds the receiver's only slot (`max_associations = 1`).
async fn hold_the_only_slot(
    addr: SocketAddr,
) -> dicom_ul::association::AsyncClientAssociation<tokio::net::TcpStream> {
    ClientAssociationOptions::new()
        .calling_ae_title("HOLDER")
        .called_ae_title("TFESI")
        .with_abstract_syntax("1.2.840.10008.1.1")
        .establish_async(addr)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn associations_beyond_the_limit_are_rejected_as_transient(pool: PgPool) {
    let scp = Scp::start(pool, |c| c.max_associations = 1).await;
    let held = hold_the_only_slot(scp.addr).await;
    let refused = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
    assert!(!refused.success, "{}", refused.output);
    assert!(refused.output.contains("Local Limit Exceeded"), "{}", refused.output);
    held.release().await.unwrap();
    // the slot is free again once the association ended
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ok = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
        if ok.success {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", ok.output);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_connection_over_the_limit_declaring_a_huge_pdu_is_dropped_at_its_header(pool: PgPool) {
    use tokio::io::AsyncWriteExt as _;
    let scp = Scp::start(pool, |c| c.max_associations = 1).await;
    let held = hold_the_only_slot(scp.addr).await;
    // An A-ASSOCIATE-RQ header declaring 1 GiB, then as much as the receiver will take.
    let mut stream = tokio::net::TcpStream::connect(scp.addr).await.unwrap();
    let header = [0x01, 0x00, 0x40, 0x00, 0x00, 0x00];
    stream.write_all(&header).await.unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    let limit = 256 * 1024 * 1024;
    let mut sent = 0_usize;
    let started = tokio::time::Instant::now();
    let refused = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => break true,
            // The receiver stopped reading without closing: it is not buffering either.
            Err(_) => break true,
        }
        if sent >= limit || started.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(
        refused,
        "the receiver took {sent} bytes of a PDU declared at 1 GiB, over its maximum PDU length"
    );
    // What the kernel buffers on loopback is a few MB; the receiver read almost nothing of it.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes were accepted before the connection ended");
    held.release().await.unwrap();
    scp.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn shutdown_stops_accepting_and_lets_the_open_association_finish(pool: PgPool) {
    let scp = Scp::start(pool.clone(), |_| {}).await;
    let (mr_data, mr_ts, mr_instance) = data_set_of(&corpus_file("valid/emri_small.dcm"));
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title("RAWSCU")
        .called_ae_title("TFESI")
        .with_presentation_context(ENHANCED_MR_IMAGE_STORAGE, vec![mr_ts.as_str()])
        .establish_async(scp.addr)
        .await
        .unwrap();
    let context = association.presentation_contexts()[0].id;
    scp.trigger.trigger();
    // new associations are refused once the receiver stopped accepting
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let refused = echoscu(scp.addr, "ECHOSCU", "TFESI").await;
        if !refused.success {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the open association is still served
    let (status, comment) =
        c_store(&mut association, context, 1, ENHANCED_MR_IMAGE_STORAGE, &mr_instance, mr_data).await;
    assert_eq!(status, 0x0000, "{comment:?}");
    association.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), scp.receiver).await.unwrap().unwrap().unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM ingest.instances").await, 1);
}
