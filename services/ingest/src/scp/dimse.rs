//! DIMSE command sets of the receiver: decoding a request's command (C-STORE, C-ECHO, C-CANCEL)
//! and building the response with its status and Error Comment.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// A decoded DIMSE command set (the parts the receiver uses).
#[derive(Debug, Clone)]
pub(super) struct Command {
    pub(super) field: u16,
    pub(super) message_id: u16,
    pub(super) sop_class: String,
    pub(super) sop_instance: String,
    pub(super) has_data: bool,
}

pub(super) const C_STORE_RQ: u16 = 0x0001;
pub(super) const C_ECHO_RQ: u16 = 0x0030;
pub(super) const C_CANCEL_RQ: u16 = 0x0FFF;

pub(super) fn trim_uid(value: &str) -> String {
    value.trim_end_matches(['\0', ' ']).trim_start().to_owned()
}

/// Whether `bytes` can be a command set: flat, implicit VR little endian, group 0000 only
/// (PS3.7 6.3.1 and E.1), every element's declared length inside what was received. Checked
/// before dicom-object reads it, because dicom-object sizes its buffer from a declared length
/// before it finds the bytes missing (../shared/STACK.md; fuzz finding 5 was the same for data
/// sets): one 30-byte command declaring 4 GiB would cost the receiver 4 GiB.
fn command_fits(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_first_chunk::<8>() else {
            return false;
        };
        let group = u16::from_le_bytes([header[0], header[1]]);
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // Undefined length (0xFFFFFFFF) cannot fit either: command sets hold no sequences.
        match usize::try_from(declared) {
            Ok(length) if group == 0x0000 && length <= after.len() => rest = &after[length..],
            _ => return false,
        }
    }
    true
}

pub(super) fn decode_command(bytes: &[u8]) -> Option<Command> {
    if !command_fits(bytes) {
        return None;
    }
    let object = InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).ok()?;
    let u16_of = |tag: Tag| object.get(tag).and_then(|e| e.to_int::<u16>().ok());
    let str_of =
        |tag: Tag| object.get(tag).and_then(|e| e.to_str().ok()).map(|s| trim_uid(&s)).unwrap_or_default();
    Some(Command {
        field: u16_of(tags::COMMAND_FIELD)?,
        message_id: u16_of(tags::MESSAGE_ID).unwrap_or(0),
        sop_class: str_of(tags::AFFECTED_SOP_CLASS_UID),
        sop_instance: str_of(tags::AFFECTED_SOP_INSTANCE_UID),
        has_data: u16_of(tags::COMMAND_DATA_SET_TYPE)? != 0x0101,
    })
}

/// Pads a UID to even length with NUL, as PS3.5 requires.
pub(super) fn uid_value(uid: &str) -> PrimitiveValue {
    let mut value = uid.to_owned();
    if value.len() % 2 == 1 {
        value.push('\0');
    }
    PrimitiveValue::from(value)
}

/// An Error Comment (LO): at most 64 characters, no backslash, even length.
pub(super) fn comment_value(comment: &str) -> PrimitiveValue {
    let mut value: String = comment
        .chars()
        .map(|c| if c == '\\' || c.is_control() || !c.is_ascii() { ' ' } else { c })
        .take(64)
        .collect();
    if value.len() % 2 == 1 {
        value.push(' ');
    }
    PrimitiveValue::from(value)
}

/// A response to `command` with `status` (and an Error Comment when given).
pub(super) fn response(command: &Command, status: u16, comment: Option<&str>) -> InMemDicomObject {
    let mut elements = Vec::with_capacity(7);
    if !command.sop_class.is_empty() {
        elements.push(DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, uid_value(&command.sop_class)));
    }
    elements.push(DataElement::new(
        tags::COMMAND_FIELD,
        VR::US,
        PrimitiveValue::from(command.field | 0x8000),
    ));
    elements.push(DataElement::new(
        tags::MESSAGE_ID_BEING_RESPONDED_TO,
        VR::US,
        PrimitiveValue::from(command.message_id),
    ));
    elements.push(DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0x0101_u16)));
    elements.push(DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(status)));
    if !command.sop_instance.is_empty() {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            uid_value(&command.sop_instance),
        ));
    }
    if let Some(comment) = comment {
        elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, comment_value(comment)));
    }
    InMemDicomObject::command_from_element_iter(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Implicit VR little endian: tag group, tag element, 4-byte length, value.
    fn element(group: u16, element: u16, declared: u32, value: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&group.to_le_bytes());
        bytes.extend_from_slice(&element.to_le_bytes());
        bytes.extend_from_slice(&declared.to_le_bytes());
        bytes.extend_from_slice(value);
        bytes
    }

    fn echo_command() -> Vec<u8> {
        let mut bytes = element(0x0000, 0x0100, 2, &C_ECHO_RQ.to_le_bytes());
        bytes.extend(element(0x0000, 0x0110, 2, &7_u16.to_le_bytes()));
        bytes.extend(element(0x0000, 0x0800, 2, &0x0101_u16.to_le_bytes()));
        bytes
    }

    #[test]
    fn a_well_formed_command_set_decodes() {
        let command = decode_command(&echo_command()).expect("decodes");
        assert_eq!((command.field, command.message_id, command.has_data), (C_ECHO_RQ, 7, false));
    }

    #[test]
    fn a_command_element_declaring_more_bytes_than_were_sent_is_refused_before_decoding() {
        // 4 GiB declared in a 30-byte command: dicom-object would allocate the declared length
        // before finding the bytes missing.
        let mut bytes = echo_command();
        bytes.extend(element(0x0000, 0x0002, 0xFFFF_FFF0, b"1.2.840.10008.1.1"));
        assert!(decode_command(&bytes).is_none());
        let mut undefined = echo_command();
        undefined.extend(element(0x0000, 0x0002, 0xFFFF_FFFF, b""));
        assert!(decode_command(&undefined).is_none());
        let mut truncated = echo_command();
        truncated.extend_from_slice(&[0x00, 0x00, 0x02]);
        assert!(decode_command(&truncated).is_none());
    }
}
