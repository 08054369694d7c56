//! A small DICOM storage SCU (dicom-ul): one association per study, one presentation context
//! per (SOP class, transfer syntax) the study's files use, so every file goes as it is, and a
//! C-STORE per instance whose response status is checked.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTable;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::Pdu;
use dicom_ul::association::AsyncClientAssociation;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use indicatif::ProgressBar;

/// Bound of connecting, associating, and of each response.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(30);
/// Our calling AE title.
pub const CALLING_AE: &str = "TFESIDEMO";

/// One Part 10 file split into what a C-STORE carries.
struct Instance<'a> {
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    data_set: &'a [u8],
}

fn trim_uid(uid: &str) -> String {
    uid.trim_end_matches(['\0', ' ']).to_owned()
}

/// Splits a Part 10 file: the file meta group says the SOP class, instance and transfer
/// syntax; the data set follows it.
fn instance(part10: &[u8]) -> anyhow::Result<Instance<'_>> {
    let after_preamble = part10.get(128..).context("shorter than a DICOM preamble")?;
    let meta = FileMetaTable::from_reader(after_preamble).context("no readable DICOM file meta group")?;
    // "DICM", then (0002,0000) UL explicit VR: tag 4, VR 2, length 2, value 4.
    let start = 128 + 4 + 12 + meta.information_group_length as usize;
    Ok(Instance {
        sop_class: trim_uid(&meta.media_storage_sop_class_uid),
        sop_instance: trim_uid(&meta.media_storage_sop_instance_uid),
        transfer_syntax: trim_uid(&meta.transfer_syntax),
        data_set: part10.get(start..).context("file meta group longer than the file")?,
    })
}

fn store_command(message_id: u16, sop_class: &str, sop_instance: &str) -> anyhow::Result<Vec<u8>> {
    let pad = |uid: &str| {
        let mut uid = uid.to_owned();
        if uid.len() % 2 == 1 {
            uid.push('\0');
        }
        PrimitiveValue::from(uid)
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
    command
        .write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .context("encoding the C-STORE command")?;
    Ok(bytes)
}

/// Sends one C-STORE (command, then the data set in P-DATA fragments) and returns the
/// response's status and error comment.
async fn c_store(
    association: &mut AsyncClientAssociation<tokio::net::TcpStream>,
    context: u8,
    message_id: u16,
    instance: &Instance<'_>,
) -> anyhow::Result<(u16, Option<String>)> {
    let command = store_command(message_id, &instance.sop_class, &instance.sop_instance)?;
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
        .context("sending the C-STORE command")?;
    let max_pdu = match association.acceptor_max_pdu_length() {
        0 => 16_384,
        length => length as usize,
    };
    let fragment = max_pdu.saturating_sub(64).max(1024);
    let chunks: Vec<&[u8]> = instance.data_set.chunks(fragment).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        association
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: context,
                    value_type: PDataValueType::Data,
                    is_last: index + 1 == chunks.len(),
                    data: chunk.to_vec(),
                }],
            })
            .await
            .context("sending the data set")?;
    }
    let response = tokio::time::timeout(NETWORK_TIMEOUT, association.receive())
        .await
        .context("no C-STORE response in time")?
        .context("receiving the C-STORE response")?;
    let Pdu::PData { data } = response else {
        anyhow::bail!("the receiver answered a C-STORE with {response:?}");
    };
    let first = data.first().context("an empty P-DATA response")?;
    let object = InMemDicomObject::read_dataset_with_ts(&first.data[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .context("decoding the C-STORE response")?;
    let field = |tag| -> anyhow::Result<u16> {
        Ok(object.get(tag).context("a response without a required element")?.to_int::<u16>()?)
    };
    anyhow::ensure!(field(tags::COMMAND_FIELD)? == 0x8001, "the response is not a C-STORE-RSP");
    anyhow::ensure!(
        field(tags::MESSAGE_ID_BEING_RESPONDED_TO)? == message_id,
        "the response answers another message"
    );
    let status = field(tags::STATUS)?;
    let comment = object
        .get(tags::ERROR_COMMENT)
        .and_then(|element| element.to_str().ok())
        .map(|comment| comment.trim().to_owned());
    Ok((status, comment))
}

/// Stores every file of one study on one association to `address` (host:port) calling
/// `called_ae`. Every instance must answer success (0000) or warning (B000, B007, B006);
/// returns how many got a warning.
pub async fn store_study(
    address: &str,
    called_ae: &str,
    files: &[&[u8]],
    progress: &ProgressBar,
) -> anyhow::Result<usize> {
    let instances = files.iter().map(|file| instance(file)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut contexts: BTreeMap<(String, String), u8> = BTreeMap::new();
    for instance in &instances {
        let next = contexts.len();
        contexts.entry((instance.sop_class.clone(), instance.transfer_syntax.clone())).or_insert(
            u8::try_from(2 * next + 1).context("more than 128 presentation contexts in one study")?,
        );
    }
    let mut proposals: Vec<(&(String, String), &u8)> = contexts.iter().collect();
    proposals.sort_by_key(|(_, id)| **id);
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(CALLING_AE)
        .called_ae_title(called_ae)
        .connection_timeout(NETWORK_TIMEOUT)
        .read_timeout(NETWORK_TIMEOUT);
    for ((sop_class, transfer_syntax), _) in &proposals {
        options = options.with_presentation_context(sop_class.as_str(), vec![transfer_syntax.as_str()]);
    }
    let mut association = tokio::time::timeout(NETWORK_TIMEOUT, options.establish_async(address))
        .await
        .map_err(|_| anyhow::anyhow!("no association with {address} within {NETWORK_TIMEOUT:?}"))?
        .with_context(|| {
            format!(
                "cannot associate with the DICOM receiver at {address} (called AE title {called_ae}): \
                 is ingest's C-STORE receiver listening there? (--dicom)"
            )
        })?;
    let accepted: BTreeMap<u8, PresentationContextResultReason> =
        association.presentation_contexts().iter().map(|pc| (pc.id, pc.reason.clone())).collect();
    let mut warnings = 0;
    let mut result = Ok(());
    for (index, instance) in instances.iter().enumerate() {
        let key = (instance.sop_class.clone(), instance.transfer_syntax.clone());
        let Some(&context) = contexts.get(&key) else { continue };
        if accepted.get(&context) != Some(&PresentationContextResultReason::Acceptance) {
            result = Err(anyhow::anyhow!(
                "the receiver did not accept SOP class {} in transfer syntax {} ({:?})",
                key.0,
                key.1,
                accepted.get(&context)
            ));
            break;
        }
        let message_id = u16::try_from(index % usize::from(u16::MAX)).unwrap_or(1) + 1;
        match c_store(&mut association, context, message_id, instance).await {
            Ok((0x0000, _)) => {}
            Ok((0xB000 | 0xB006 | 0xB007, _)) => warnings += 1,
            Ok((status, comment)) => {
                result = Err(anyhow::anyhow!(
                    "C-STORE of instance {} failed with status {status:04X}{}",
                    instance.sop_instance,
                    comment.map(|comment| format!(": {comment}")).unwrap_or_default()
                ));
                break;
            }
            Err(error) => {
                result = Err(error.context(format!("C-STORE of instance {}", instance.sop_instance)));
                break;
            }
        }
        progress.inc(1);
    }
    match result {
        Ok(()) => {
            association.release().await.context("releasing the association")?;
            Ok(warnings)
        }
        Err(error) => {
            let _ = association.abort().await;
            Err(error)
        }
    }
}
