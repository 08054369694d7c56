//! The DICOM C-STORE receiver (SCP, on `dicom-ul`) and the completion of DICOM studies after a
//! quiet period.
//!
//! # Associations
//!
//! The receiver accepts MR Image Storage and Enhanced MR Image Storage in every transfer syntax the
//! platform decodes ([`TRANSFER_SYNTAXES`], the list of services/preprocess/src/decode.rs), and
//! Verification (C-ECHO). An association is rejected (A-ASSOCIATE-RJ, permanent) when it calls
//! another AE title than `dicom.ae_title` (called AE title not recognized), comes from a calling
//! AE title outside `dicom.allowed_calling_ae_titles` when that list is set (calling AE title not
//! recognized), or from a peer address outside `dicom.allowed_peers` when that list is set (no
//! reason given). Beyond `dicom.max_associations` open associations a new one is rejected as
//! transient (local limit exceeded). Each association runs on its own task.
//!
//! # C-STORE statuses
//!
//! Every received instance is written as a DICOM Part 10 stream (file meta with the negotiated
//! transfer syntax and the SOP class and instance of the command, then the data set bytes as
//! received) and handed to [`Ingestor::ingest_via`] with [`Source::Dicom`]. The response is sent
//! only after the ingestor returned, so a success means the instance is stored (fsynced) and
//! recorded.
//!
//! | outcome | status | Error Comment (0000,0902) |
//! |---|---|---|
//! | stored, or a duplicate of a stored instance | `0x0000` success | none |
//! | quarantined (kept out of the pipeline, visible to operators) | `0xB000` warning | `quarantined: <reasons>` |
//! | our storage or database failed | `0xA700` refused: out of resources | the failing part, retry later |
//! | data set SOP class differs from the command's, or the data set is not MR | `0xA900` | the SOP classes |
//! | command SOP class differs from the presentation context's | `0x0122` | the SOP classes |
//! | rejected by validation | `0xC001`..`0xC00E` (one per [`RejectCode`], see [`rejection_status`]) | `<code>: <message>` |
//! | data set SOP Instance UID differs from the command's | `0xC010` | `SOP instance UID mismatch` |
//! | the file meta could not be built from the command | `0xC011` | the reason |
//! | processing panicked (caught) | `0xC0FE` | `internal error` |
//!
//! A quarantined instance is answered with a warning rather than success so that the sending
//! system's log shows that the instance is not used, while senders (which treat warnings as
//! stored) do not resend it. No instance ends the association or the service: only protocol
//! violations (an undecodable command, data on a context that was not accepted) abort it.
//!
//! # Completion
//!
//! [`run_completer`] completes ([`crate::catalogue::complete_study`]) studies still `receiving`
//! that received DICOM instances (`received_via` holds `dicom`), whose last instance is older than
//! `dicom.quiet_period_s`, and to which no open association of this process sent instances
//! ([`Activity`]). With several ingest replicas behind one address, an association open on another
//! replica is not seen: the quiet period alone protects such a study.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTableBuilder, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::Pdu;
use dicom_ul::association::AsyncServerAssociation;
use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason, AssociationRJSource,
    PDataValue, PDataValueType, PresentationContextResultReason, UserIdentity,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::config::DicomConfig;
use crate::ingest::{IngestError, Ingestor, InstanceOutcome, Source};
use crate::rejection::{RejectCode, Rejection};

mod completer;
mod dimse;

pub use completer::{complete_quiet_studies, run_completer};
use dimse::{C_CANCEL_RQ, C_ECHO_RQ, C_STORE_RQ, Command, decode_command, response, trim_uid};

/// MR Image Storage.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Enhanced MR Image Storage.
pub const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";
/// Verification (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Transfer syntaxes accepted for storage: those the platform decodes
/// (services/preprocess/src/decode.rs), in our order of no preference (the proposer's order wins).
pub const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",      // Implicit VR Little Endian
    "1.2.840.10008.1.2.1",    // Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99", // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",    // Explicit VR Big Endian
    "1.2.840.10008.1.2.5",    // RLE Lossless
    "1.2.840.10008.1.2.4.50", // JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51", // JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.57", // JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.70", // JPEG Lossless, First-Order Prediction
    "1.2.840.10008.1.2.4.80", // JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 (Lossless Only)
    "1.2.840.10008.1.2.4.91", // JPEG 2000
];

/// Implementation Class UID written in the file meta of received instances.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.137298562712403911365230418046953826517";
/// Implementation Version Name (at most 16 characters).
const IMPLEMENTATION_VERSION_NAME: &str = "TFESI_INGEST";

/// A connection must complete association negotiation within this time.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// An association that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Sending a PDU must finish within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest command set accepted (commands are a few hundred bytes).
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// DIMSE status codes used by the receiver.
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0x0000;
    /// Warning: the instance was taken but quarantined (kept out of the pipeline).
    pub const QUARANTINED: u16 = 0xB000;
    /// Refused: out of resources (our storage or database failed; retry later).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: u16 = 0xA900;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Unrecognized operation.
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    /// Cannot understand: the data set's SOP Instance UID is not the command's.
    pub const SOP_INSTANCE_MISMATCH: u16 = 0xC010;
    /// Cannot understand: no file meta could be built from the command.
    pub const BAD_COMMAND_UIDS: u16 = 0xC011;
    /// Cannot understand: processing the instance panicked (caught).
    pub const INTERNAL_ERROR: u16 = 0xC0FE;
}

/// The C-STORE status of an instance refused by validation: `0xA900` for a non-MR data set,
/// otherwise one `0xC0xx` code per [`RejectCode`].
pub fn rejection_status(code: RejectCode) -> u16 {
    match code {
        RejectCode::UnsupportedSopClass => status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
        RejectCode::TooLarge => 0xC001,
        RejectCode::NotDicom => 0xC002,
        RejectCode::BadFileMeta => 0xC003,
        RejectCode::Truncated => 0xC004,
        RejectCode::LengthBeyondEnd => 0xC005,
        RejectCode::TooDeep => 0xC006,
        RejectCode::TooManyElements => 0xC007,
        RejectCode::Malformed => 0xC008,
        RejectCode::UnsupportedTransferSyntax => 0xC009,
        RejectCode::MissingAttribute => 0xC00A,
        RejectCode::InvalidAttribute => 0xC00B,
        RejectCode::PixelData => 0xC00C,
        RejectCode::PixelDecode => 0xC00D,
        RejectCode::DecoderPanic => 0xC00E,
    }
}

/// The studies that open associations of this process sent instances to.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Activity {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, usize>> {
        // The map stays consistent even if a holder panicked: every update is a single step.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether an open association sent instances to `study_id`.
    pub fn is_open(&self, study_id: Uuid) -> bool {
        self.lock().contains_key(&study_id)
    }

    fn tracker(&self) -> StudyTracker {
        StudyTracker { activity: self.clone(), studies: HashSet::new() }
    }
}

/// The studies one association sent to; released when the association ends, however it ends.
struct StudyTracker {
    activity: Activity,
    studies: HashSet<Uuid>,
}

impl StudyTracker {
    fn add(&mut self, study_id: Uuid) {
        if self.studies.insert(study_id) {
            *self.activity.lock().entry(study_id).or_insert(0) += 1;
        }
    }
}

impl Drop for StudyTracker {
    fn drop(&mut self) {
        let mut open = self.activity.lock();
        for study_id in &self.studies {
            if let Some(count) = open.get_mut(study_id) {
                *count -= 1;
                if *count == 0 {
                    open.remove(study_id);
                }
            }
        }
    }
}

/// Who may associate.
#[derive(Debug, Clone)]
struct Access {
    allowed_calling: Vec<String>,
    peer_allowed: bool,
}

impl AccessControl for Access {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.allowed_calling.is_empty()
            && !self.allowed_calling.iter().any(|allowed| allowed.trim() == calling_ae_title.trim())
        {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if !self.peer_allowed {
            return Err(AssociationRJServiceUserReason::NoReasonGiven);
        }
        Ok(())
    }
}

struct Shared {
    ingestor: Ingestor,
    config: DicomConfig,
    activity: Activity,
}

/// Serves C-STORE and C-ECHO on `listener` until `shutdown`; then stops accepting, lets open
/// associations finish for up to `drain`, and closes the rest.
pub async fn serve(
    listener: TcpListener,
    ingestor: Ingestor,
    config: DicomConfig,
    activity: Activity,
    drain: Duration,
    shutdown: tfesi_platform::Shutdown,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    if config.allowed_calling_ae_titles.is_empty() {
        tracing::warn!(
            %address,
            "dicom.allowed_calling_ae_titles is empty: any calling AE title may store instances (development only)"
        );
    }
    tracing::info!(%address, ae_title = %config.ae_title, "DICOM receiver listening");
    let permits = Arc::new(Semaphore::new(config.max_associations));
    let shared = Arc::new(Shared { ingestor, config, activity });
    let mut associations = JoinSet::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let permit = Arc::clone(&permits).try_acquire_owned().ok();
                    associations.spawn(connection(Arc::clone(&shared), stream, peer, permit));
                }
                Err(error) => {
                    // e.g. out of file descriptors: wait a little rather than spin
                    tracing::warn!(%error, "DICOM accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = associations.join_next(), if !associations.is_empty() => log_join(joined),
        }
    }
    drop(listener);
    let open = associations.len();
    if open > 0 {
        tracing::info!(open, ?drain, "DICOM receiver stopping: letting open associations finish");
    }
    let drained = tokio::time::timeout(drain, async {
        while let Some(joined) = associations.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = associations.len(),
            "DICOM associations still open after the drain timeout: closed"
        );
        associations.shutdown().await;
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "a DICOM association task panicked");
    }
}

/// Rejects a connection beyond `max_associations`: A-ASSOCIATE-RJ transient, local limit exceeded.
/// The request is read in strict mode: a PDU declaring more than `max_pdu_length` ends the
/// connection at its header. Read leniently, dicom-ul waits for the whole declared length and
/// buffers whatever the peer sends until then, so a peer could fill memory for ESTABLISH_TIMEOUT
/// on every connection over the limit.
async fn reject_busy(mut stream: TcpStream, max_pdu_length: u32) {
    let mut buffer = bytes::BytesMut::new();
    let request = tokio::time::timeout(
        ESTABLISH_TIMEOUT,
        dicom_ul::association::read_pdu_from_wire_async(&mut stream, &mut buffer, max_pdu_length, true),
    )
    .await;
    if !matches!(request, Ok(Ok(Pdu::AssociationRQ(_)))) {
        return;
    }
    let rejection = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::write_pdu(&mut out, &rejection).is_ok() {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await;
        let _ = stream.shutdown().await;
    }
}

fn peer_allowed(allowed: &[IpAddr], peer: IpAddr) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.to_canonical() == peer.to_canonical())
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
) {
    // One response per instance: do not wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let Some(_permit) = permit else {
        tracing::warn!(%peer, max = shared.config.max_associations, "DICOM association rejected: too many open");
        reject_busy(stream, shared.config.max_pdu_length).await;
        return;
    };
    let config = &shared.config;
    let access = Access {
        allowed_calling: config.allowed_calling_ae_titles.clone(),
        peer_allowed: peer_allowed(&config.allowed_peers, peer.ip()),
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(access)
        .ae_title(config.ae_title.clone())
        .max_pdu_length(config.max_pdu_length)
        .read_timeout(IDLE_TIMEOUT)
        .write_timeout(WRITE_TIMEOUT)
        .with_abstract_syntax(MR_IMAGE_STORAGE)
        .with_abstract_syntax(ENHANCED_MR_IMAGE_STORAGE)
        .with_abstract_syntax(VERIFICATION);
    for ts in TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*ts);
    }
    let association = match tokio::time::timeout(ESTABLISH_TIMEOUT, options.establish_async(stream)).await {
        Ok(Ok(association)) => association,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "DICOM association not established");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "DICOM association not requested in time");
            return;
        }
    };
    let mut session = Session::new(&shared, association, peer);
    tracing::info!(%peer, calling = %session.calling, contexts = session.contexts.len(), "DICOM association established");
    let end = session.run().await;
    tracing::info!(%peer, calling = %session.calling, stored = session.stored, failed = session.failed, end, "DICOM association ended");
}

/// The reply to one stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReply {
    /// DIMSE status.
    pub status: u16,
    /// Error Comment, if any.
    pub comment: Option<String>,
    /// The study the instance was filed in (not for rejections).
    pub study_id: Option<Uuid>,
}

impl StoreReply {
    fn failure(status: u16, comment: impl Into<String>) -> Self {
        Self { status, comment: Some(comment.into()), study_id: None }
    }
}

/// Writes `data_set` (encoded in `transfer_syntax`) as a DICOM Part 10 stream.
fn part10(
    sop_class: &str,
    sop_instance: &str,
    transfer_syntax: &str,
    calling: &str,
    data_set: &[u8],
) -> Result<Vec<u8>, String> {
    let mut meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(transfer_syntax)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    if !calling.is_empty() {
        meta = meta.source_application_entity_title(calling);
    }
    let meta = meta.build().map_err(|error| format!("file meta: {error}"))?;
    let mut out = Vec::with_capacity(data_set.len() + 512);
    out.extend_from_slice(&[0_u8; 128]);
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).map_err(|error| format!("file meta: {error}"))?;
    out.extend_from_slice(data_set);
    Ok(out)
}

/// The SOP Class and Instance UIDs a Part 10 stream's data set declares, when its header parses
/// (bounded: the pre-scan first, then only the elements before (0008,0019), on a thread with the
/// parser's stack and with panics caught). `None` leaves the verdict to the ingestor.
fn declared_uids(bytes: Bytes, limits: crate::ParseLimits) -> Option<(Option<String>, Option<String>)> {
    let worker = std::thread::Builder::new()
        .name("dicom-scp-header".into())
        .stack_size(limits.stack_bytes)
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                crate::prescan::prescan(&bytes, &limits.scan).ok()?;
                let object = OpenFileOptions::new()
                    .read_preamble(ReadPreamble::Never)
                    .read_until(Tag(0x0008, 0x0019))
                    .from_reader(bytes.get(128..)?)
                    .ok()?;
                let text = |tag: Tag| object.get(tag).and_then(|e| e.to_str().ok()).map(|s| trim_uid(&s));
                Some((text(tags::SOP_CLASS_UID), text(tags::SOP_INSTANCE_UID)))
            }))
            .ok()
            .flatten()
        });
    worker.ok()?.join().ok().flatten()
}

/// Stores one received instance: Part 10, consistency with the command, then the ingestor.
/// Never panics; every failure is a status.
pub async fn store_instance(
    ingestor: &Ingestor,
    sop_class: &str,
    sop_instance: &str,
    transfer_syntax: &str,
    calling: &str,
    data_set: &[u8],
) -> StoreReply {
    let bytes = match part10(sop_class, sop_instance, transfer_syntax, calling, data_set) {
        Ok(bytes) => Bytes::from(bytes),
        Err(reason) => return StoreReply::failure(status::BAD_COMMAND_UIDS, reason),
    };
    let limits = ingestor.limits;
    let header = {
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || declared_uids(bytes, limits)).await.ok().flatten()
    };
    if let Some((declared_class, declared_instance)) = header {
        if let Some(declared) = declared_class.filter(|c| c != sop_class) {
            return StoreReply::failure(
                status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                format!("data set SOP class {declared} is not {sop_class}"),
            );
        }
        if declared_instance.is_some_and(|i| i != sop_instance) {
            return StoreReply::failure(
                status::SOP_INSTANCE_MISMATCH,
                "data set SOP instance UID differs from the command's",
            );
        }
    }
    let worker = ingestor.clone();
    // Its own task: a panic becomes a JoinError, and a dropped association cannot cancel a
    // store half way.
    let ingested = tokio::spawn(async move { worker.ingest_via(bytes, Source::Dicom).await }).await;
    match ingested {
        Ok(Ok(outcome)) => reply_for(outcome),
        Ok(Err(error)) => {
            tracing::error!(%error, "DICOM instance not stored: our failure");
            StoreReply::failure(status::OUT_OF_RESOURCES, out_of_resources_comment(&error))
        }
        Err(error) => {
            tracing::error!(%error, "DICOM instance processing panicked");
            StoreReply::failure(status::INTERNAL_ERROR, "internal error processing the instance")
        }
    }
}

fn out_of_resources_comment(error: &IngestError) -> &'static str {
    match error {
        IngestError::Db(_) => "database unavailable; retry later",
        IngestError::Store(_) => "object store unavailable; retry later",
        _ => "storage unavailable; retry later",
    }
}

fn reply_for(outcome: InstanceOutcome) -> StoreReply {
    match outcome {
        InstanceOutcome::Stored { study_id, .. } | InstanceOutcome::Duplicate { study_id, .. } => {
            StoreReply { status: status::SUCCESS, comment: None, study_id: Some(study_id) }
        }
        InstanceOutcome::Quarantined { study_id, reasons } => {
            let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
            StoreReply {
                status: status::QUARANTINED,
                comment: Some(format!("quarantined: {}", names.join(","))),
                study_id: Some(study_id),
            }
        }
        InstanceOutcome::Rejected(Rejection { code, message }) => {
            StoreReply::failure(rejection_status(code), format!("{}: {message}", code.as_str()))
        }
    }
}

/// The data set of a C-STORE being received.
struct Incoming {
    command: Command,
    context: u8,
    data: Vec<u8>,
    /// More bytes arrived than the instance cap: they are dropped, the instance is refused.
    overflow: usize,
}

struct Session<'a> {
    shared: &'a Shared,
    association: AsyncServerAssociation<TcpStream>,
    peer: SocketAddr,
    calling: String,
    /// Accepted presentation contexts: id -> (abstract syntax, transfer syntax).
    contexts: HashMap<u8, (String, String)>,
    studies: StudyTracker,
    stored: u64,
    failed: u64,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, association: AsyncServerAssociation<TcpStream>, peer: SocketAddr) -> Self {
        let contexts = association
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| (pc.id, (trim_uid(&pc.abstract_syntax), trim_uid(&pc.transfer_syntax))))
            .collect();
        let calling = dicom_ul::association::Association::peer_ae_title(&association).trim().to_owned();
        Self {
            shared,
            association,
            peer,
            calling,
            contexts,
            studies: shared.activity.tracker(),
            stored: 0,
            failed: 0,
        }
    }

    /// Serves the association until it is released or aborted; returns how it ended.
    async fn run(&mut self) -> &'static str {
        let mut command_bytes: Vec<u8> = Vec::new();
        let mut command_context: Option<u8> = None;
        let mut incoming: Option<Incoming> = None;
        loop {
            let pdu = match self.association.receive().await {
                Ok(pdu) => pdu,
                Err(error) => {
                    tracing::info!(peer = %self.peer, %error, "DICOM association connection ended");
                    return "connection ended";
                }
            };
            match pdu {
                Pdu::PData { data } => {
                    for value in data {
                        if let Err(reason) = self
                            .on_pdata(value, &mut command_bytes, &mut command_context, &mut incoming)
                            .await
                        {
                            tracing::warn!(peer = %self.peer, reason, "DICOM protocol error: aborting the association");
                            self.abort().await;
                            return "aborted (protocol error)";
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = self.association.send(&Pdu::ReleaseRP).await;
                    let _ = self.association.inner_stream().shutdown().await;
                    return "released";
                }
                Pdu::AbortRQ { .. } => return "aborted by the peer",
                other => {
                    tracing::warn!(peer = %self.peer, pdu = %other.short_description(), "unexpected PDU: aborting the association");
                    self.abort().await;
                    return "aborted (unexpected PDU)";
                }
            }
        }
    }

    async fn abort(&mut self) {
        let abort = Pdu::AbortRQ {
            source: AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::UnexpectedPdu),
        };
        let _ = self.association.send(&abort).await;
        let _ = self.association.inner_stream().shutdown().await;
    }

    async fn on_pdata(
        &mut self,
        value: PDataValue,
        command_bytes: &mut Vec<u8>,
        command_context: &mut Option<u8>,
        incoming: &mut Option<Incoming>,
    ) -> Result<(), &'static str> {
        let context = value.presentation_context_id;
        if !self.contexts.contains_key(&context) {
            return Err("P-DATA on a presentation context that was not accepted");
        }
        match value.value_type {
            PDataValueType::Command => {
                if incoming.is_some() {
                    return Err("command fragment while a data set was expected");
                }
                if command_context.is_some_and(|c| c != context) {
                    return Err("command fragments on different presentation contexts");
                }
                *command_context = Some(context);
                if command_bytes.len() + value.data.len() > MAX_COMMAND_BYTES {
                    return Err("command set too large");
                }
                command_bytes.extend_from_slice(&value.data);
                if !value.is_last {
                    return Ok(());
                }
                let command = decode_command(command_bytes).ok_or("undecodable command set")?;
                command_bytes.clear();
                *command_context = None;
                if command.has_data {
                    *incoming = Some(Incoming { command, context, data: Vec::new(), overflow: 0 });
                    Ok(())
                } else {
                    self.on_message(command, context, None).await
                }
            }
            PDataValueType::Data => {
                let Some(current) = incoming.as_mut() else {
                    return Err("data set fragment without a command");
                };
                if current.context != context {
                    return Err("data set fragment on another presentation context");
                }
                let cap = self.shared.ingestor.limits.max_instance_bytes;
                if current.overflow > 0 || current.data.len() + value.data.len() > cap {
                    current.overflow += value.data.len();
                    current.data = Vec::new();
                } else if current.data.is_empty() && value.is_last {
                    current.data = value.data;
                } else {
                    current.data.extend_from_slice(&value.data);
                }
                if !value.is_last {
                    return Ok(());
                }
                let Some(done) = incoming.take() else {
                    return Err("data set fragment without a command");
                };
                if done.overflow > 0 {
                    let reply = StoreReply::failure(
                        rejection_status(RejectCode::TooLarge),
                        format!("too_large: instance exceeds {cap} bytes"),
                    );
                    return self.respond(&done.command, context, &reply).await;
                }
                self.on_message(done.command, context, Some(done.data)).await
            }
        }
    }

    async fn on_message(
        &mut self,
        command: Command,
        context: u8,
        data: Option<Vec<u8>>,
    ) -> Result<(), &'static str> {
        let (abstract_syntax, transfer_syntax) = self.contexts.get(&context).cloned().unwrap_or_default();
        match command.field {
            C_ECHO_RQ => {
                self.respond(
                    &command,
                    context,
                    &StoreReply { status: status::SUCCESS, comment: None, study_id: None },
                )
                .await
            }
            C_STORE_RQ => {
                let reply = match data {
                    None => StoreReply::failure(
                        rejection_status(RejectCode::Truncated),
                        "C-STORE without a data set",
                    ),
                    Some(_) if abstract_syntax == VERIFICATION || command.sop_class != abstract_syntax => {
                        StoreReply::failure(
                            status::SOP_CLASS_NOT_SUPPORTED,
                            format!("SOP class {} on a {abstract_syntax} context", command.sop_class),
                        )
                    }
                    Some(data) => {
                        store_instance(
                            &self.shared.ingestor,
                            &command.sop_class,
                            &command.sop_instance,
                            &transfer_syntax,
                            &self.calling,
                            &data,
                        )
                        .await
                    }
                };
                if let Some(study_id) = reply.study_id {
                    self.studies.add(study_id);
                }
                if reply.status == status::SUCCESS || reply.status == status::QUARANTINED {
                    self.stored += 1;
                } else {
                    self.failed += 1;
                    tracing::warn!(
                        peer = %self.peer,
                        status = format!("{:#06X}", reply.status),
                        comment = reply.comment.as_deref().unwrap_or(""),
                        "DICOM instance refused"
                    );
                }
                self.respond(&command, context, &reply).await
            }
            // A cancel has no response; a store is answered once it finished.
            C_CANCEL_RQ => Ok(()),
            _ => {
                let reply =
                    StoreReply::failure(status::UNRECOGNIZED_OPERATION, "only C-STORE and C-ECHO are served");
                self.respond(&command, context, &reply).await
            }
        }
    }

    async fn respond(
        &mut self,
        command: &Command,
        context: u8,
        reply: &StoreReply,
    ) -> Result<(), &'static str> {
        let object = response(command, reply.status, reply.comment.as_deref());
        let mut bytes = Vec::new();
        object
            .write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|_| "cannot encode the response")?;
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: bytes,
            }],
        };
        self.association.send(&pdu).await.map_err(|_| "cannot send the response")
    }
}
