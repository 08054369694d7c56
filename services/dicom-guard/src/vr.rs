//! Value representations as they affect how a parser walks the stream.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Whether an explicit-VR element with this VR code has the long (2 reserved bytes, then a
/// 4-byte length) form.
///
/// Only the standard short-form VRs have a 2-byte length (PS3.5 7.1.2). Any other code,
/// including one the standard does not define, is long: dicom-rs reads an unknown code as UN,
/// which is long. Reading an unknown code as short would let a scanner skip a length that
/// dicom-rs then allocates (fuzzing finding 1).
pub fn has_long_length(code: [u8; 2]) -> bool {
    !matches!(
        &code,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// The VR dicom-rs gives an element of an implicit-VR data set: OW for Pixel Data and Overlay
/// Data, otherwise the standard dictionary's (an ambiguous one resolved as dicom-core's
/// `VirtualVr::relaxed`: US for US-or-SS, OW for OB-or-OW), UN for a tag it does not know.
/// A scanner that wants to agree with dicom-parser must use this, not its own guess.
pub fn implicit_vr(tag: Tag) -> VR {
    if tag == Tag(0x7FE0, 0x0010) || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return VR::OW;
    }
    StandardDataDictionary.by_tag(tag).map_or(VR::UN, |entry| entry.vr().relaxed())
}

/// The VR dicom-rs reads for an explicit VR code: UN for a code the standard does not define.
pub fn explicit_vr(code: [u8; 2]) -> VR {
    VR::from_binary(code).unwrap_or(VR::UN)
}

/// The size in bytes of one value of a fixed-width binary VR, or `None` for the others
/// (strings, OB, UN, SQ).
pub fn value_width(vr: VR) -> Option<u32> {
    match vr {
        VR::SS | VR::US | VR::OW => Some(2),
        VR::AT | VR::FL | VR::OF | VR::SL | VR::UL | VR::OL => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

/// Refuses a defined value length that is not a whole number of values of its VR.
///
/// dicom-parser reads `length / width` values and leaves the rest in the stream, so every
/// element after it is read out of place (fuzzing finding 5: an AT of 6 bytes made the next
/// "header" declare 1.4 GB). The error reads "VR AT holds 4-byte values but the element
/// declares 6 bytes, not a multiple of 4".
pub fn check_value_length(vr: VR, length: u32) -> Result<(), String> {
    match value_width(vr) {
        Some(width) if !length.is_multiple_of(width) => Err(format!(
            "VR {vr:?} holds {width}-byte values but the element declares {length} bytes, not a multiple of {width}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms_follow_ps3_5() {
        assert!(!has_long_length(*b"US"));
        assert!(!has_long_length(*b"AT"));
        for code in [b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OV", b"SV", b"UV", b"QX", b" H"] {
            assert!(has_long_length(*code), "{}", String::from_utf8_lossy(code));
        }
    }

    #[test]
    fn lengths_of_fixed_width_values_must_be_whole_multiples() {
        assert!(check_value_length(VR::AT, 8).is_ok());
        let message = check_value_length(VR::AT, 6).expect_err("6 is not a multiple of 4");
        assert!(message.contains("VR AT holds 4-byte values") && message.contains("6 bytes"), "{message}");
        assert!(check_value_length(VR::FD, 12).is_err());
        assert!(check_value_length(VR::US, 3).is_err());
        assert!(check_value_length(VR::OW, 0).is_ok());
        // Strings and bytes have no width: any length passes here.
        assert!(check_value_length(VR::DS, 7).is_ok());
        assert!(check_value_length(VR::OB, 7).is_ok());
        assert!(check_value_length(explicit_vr(*b"ZZ"), 7).is_ok());
    }

    #[test]
    fn implicit_vrs_resolve_as_dicom_rs_resolves_them() {
        assert_eq!(implicit_vr(Tag(0x7FE0, 0x0010)), VR::OW);
        assert_eq!(implicit_vr(Tag(0x6002, 0x3000)), VR::OW);
        assert_eq!(implicit_vr(Tag(0x0028, 0x0010)), VR::US);
        assert_eq!(implicit_vr(Tag(0x0028, 0x2112)), VR::DS);
        assert_eq!(implicit_vr(Tag(0x0008, 0x1140)), VR::SQ);
        // Smallest Image Pixel Value is US or SS: dicom-rs reads it as US.
        assert_eq!(implicit_vr(Tag(0x0028, 0x0106)), VR::US);
        assert_eq!(implicit_vr(Tag(0x0009, 0x1001)), VR::UN);
    }
}
