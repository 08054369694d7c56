//! Tolerant readers for attribute values of untrusted instances (strings, numbers, functional groups).

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_object::InMemDicomObject;

/// The text of an element, trimmed of padding; `None` when absent or empty.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let element = obj.get(tag)?;
    let raw = match element.value() {
        Value::Primitive(primitive) => match primitive.to_str() {
            std::borrow::Cow::Borrowed(s) => s.to_string(),
            std::borrow::Cow::Owned(s) => s,
        },
        _ => return None,
    };
    let trimmed = raw.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The values of a multi-valued string element, each trimmed.
pub fn texts(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    text(obj, tag)
        .map(|joined| {
            joined
                .split('\\')
                .map(|part| part.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Outcome of reading a numeric attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Numbers {
    /// The attribute is absent or empty.
    Absent,
    /// Every value parsed as a number.
    Values(Vec<f64>),
    /// Some value is not a number (garbage, raw bytes of an UN element, ...).
    Invalid,
}

/// Reads decimal-string or binary numeric values of an element.
pub fn numbers(obj: &InMemDicomObject, tag: Tag) -> Numbers {
    let Some(element) = obj.get(tag) else {
        return Numbers::Absent;
    };
    let Value::Primitive(primitive) = element.value() else {
        return Numbers::Invalid;
    };
    if primitive.multiplicity() == 0 {
        return Numbers::Absent;
    }
    if let Ok(values) = primitive.to_multi_float64() {
        return Numbers::Values(values);
    }
    let joined = primitive.to_str();
    let mut values = Vec::new();
    for part in joined.split('\\') {
        let cleaned = part.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        match cleaned.parse::<f64>() {
            Ok(value) => values.push(value),
            Err(_) => return Numbers::Invalid,
        }
    }
    Numbers::Values(values)
}

/// The first numeric value, if it parses.
pub fn number(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    match numbers(obj, tag) {
        Numbers::Values(values) => values.first().copied(),
        Numbers::Absent | Numbers::Invalid => None,
    }
}

/// An unsigned integer attribute (US, IS, ...).
pub fn unsigned(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    let value = number(obj, tag)?;
    (value.is_finite() && value >= 0.0 && value <= f64::from(u32::MAX) && value.fract() == 0.0)
        .then_some(value as u32)
}

/// The items of a sequence element (empty when absent or not a sequence).
pub fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.get(tag).and_then(|element| element.value().items()).unwrap_or(&[])
}

/// (5200,9229) Shared Functional Groups Sequence.
pub const SHARED_FUNCTIONAL_GROUPS: Tag = Tag(0x5200, 0x9229);
/// (5200,9230) Per-frame Functional Groups Sequence.
pub const PER_FRAME_FUNCTIONAL_GROUPS: Tag = Tag(0x5200, 0x9230);

/// Finds the first item of functional group `group` holding `attribute`, looking in the shared
/// functional groups first, then in the first per-frame item.
pub fn functional_group(obj: &InMemDicomObject, group: Tag, attribute: Tag) -> Option<&InMemDicomObject> {
    let shared = items(obj, SHARED_FUNCTIONAL_GROUPS).iter();
    let first_frame = items(obj, PER_FRAME_FUNCTIONAL_GROUPS).iter().take(1);
    shared
        .chain(first_frame)
        .flat_map(|fg| items(fg, group).iter())
        .find(|item| item.get(attribute).is_some())
}

/// Reads `attribute` at the top level, or else from functional group `group`.
pub fn numbers_anywhere(obj: &InMemDicomObject, group: Tag, attribute: Tag) -> Numbers {
    match numbers(obj, attribute) {
        Numbers::Absent => functional_group(obj, group, attribute)
            .map(|item| numbers(item, attribute))
            .unwrap_or(Numbers::Absent),
        found => found,
    }
}
