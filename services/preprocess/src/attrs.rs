//! Header attributes the tensor depends on (rescale, plane geometry), read and validated per
//! frame, top level first for classic images and functional groups for Enhanced MR.

use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;

use crate::error::{Error, Result};

pub(crate) const ROWS: Tag = Tag(0x0028, 0x0010);
pub(crate) const COLUMNS: Tag = Tag(0x0028, 0x0011);
pub(crate) const NUMBER_OF_FRAMES: Tag = Tag(0x0028, 0x0008);
pub(crate) const SAMPLES_PER_PIXEL: Tag = Tag(0x0028, 0x0002);
pub(crate) const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
pub(crate) const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const RESCALE_INTERCEPT: Tag = Tag(0x0028, 0x1052);
const RESCALE_SLOPE: Tag = Tag(0x0028, 0x1053);
const IMAGE_POSITION: Tag = Tag(0x0020, 0x0032);
const IMAGE_ORIENTATION: Tag = Tag(0x0020, 0x0037);
const PIXEL_SPACING: Tag = Tag(0x0028, 0x0030);
const SLICE_THICKNESS: Tag = Tag(0x0018, 0x0050);
const SHARED_GROUPS: Tag = Tag(0x5200, 0x9229);
const PER_FRAME_GROUPS: Tag = Tag(0x5200, 0x9230);
const PIXEL_VALUE_TRANSFORMATION: Tag = Tag(0x0028, 0x9145);
const PLANE_POSITION: Tag = Tag(0x0020, 0x9113);
const PLANE_ORIENTATION: Tag = Tag(0x0020, 0x9116);
const PIXEL_MEASURES: Tag = Tag(0x0028, 0x9110);

/// Largest |slope| and |intercept| accepted; real MR and CT stay far inside.
const MAX_RESCALE_MAGNITUDE: f64 = 1.0e6;
const MIN_SLOPE_MAGNITUDE: f64 = 1.0e-6;

/// Modality rescale of one frame: `value = stored * slope + intercept`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    pub const IDENTITY: Self = Self { slope: 1.0, intercept: 0.0 };

    /// Rescale one stored value, a multiply then an add (no fused multiply-add), as pydicom does.
    #[inline]
    pub fn apply(&self, stored: i32) -> f64 {
        f64::from(stored) * self.slope + self.intercept
    }
}

/// Plane geometry of one frame, in the patient coordinate system (LPS, millimetres).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameGeometry {
    /// Image Position (Patient): centre of the first transmitted pixel.
    pub position: [f64; 3],
    /// Direction cosines of a row (the direction of increasing column index).
    pub row_direction: [f64; 3],
    /// Direction cosines of a column (the direction of increasing row index).
    pub column_direction: [f64; 3],
    /// Pixel Spacing: [between rows, between columns] in mm.
    pub pixel_spacing: [f64; 2],
    /// Slice Thickness in mm, where present.
    pub slice_thickness: Option<f64>,
}

/// Read a numeric attribute as f64 values; DS/IS strings, binary numbers, and DS bytes stored
/// under VR UN (dicom-rs does not re-parse UN) are all accepted.
fn read_numbers(object: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<Option<Vec<f64>>> {
    let Some(element) = object.element_opt(tag).map_err(|error| Error::attribute(name, error.to_string()))?
    else {
        return Ok(None);
    };
    let parsed = if element.vr() == VR::UN {
        let raw = element.to_bytes().map_err(|error| Error::attribute(name, error.to_string()))?;
        let text =
            std::str::from_utf8(&raw).map_err(|_| Error::attribute(name, "UN value is not ASCII text"))?;
        parse_decimal_strings(text, name)?
    } else {
        match element.to_multi_float64() {
            Ok(values) => values,
            Err(_) => {
                let text = element.to_str().map_err(|error| Error::attribute(name, error.to_string()))?;
                parse_decimal_strings(&text, name)?
            }
        }
    };
    if parsed.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = parsed.iter().find(|value| !value.is_finite()) {
        return Err(Error::attribute(name, format!("non-finite value {bad}")));
    }
    Ok(Some(parsed))
}

fn parse_decimal_strings(text: &str, name: &'static str) -> Result<Vec<f64>> {
    text.trim_end_matches('\0')
        .split('\\')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<f64>().map_err(|_| Error::attribute(name, format!("not a decimal number: {part:?}")))
        })
        .collect()
}

fn read_single(object: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<Option<f64>> {
    Ok(read_numbers(object, tag, name)?.and_then(|values| values.first().copied()))
}

fn read_fixed<const N: usize>(
    object: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
) -> Result<Option<[f64; N]>> {
    let Some(values) = read_numbers(object, tag, name)? else {
        return Ok(None);
    };
    let fixed: [f64; N] = values
        .get(..N)
        .and_then(|slice| slice.try_into().ok())
        .ok_or_else(|| Error::attribute(name, format!("expected {N} values, got {}", values.len())))?;
    Ok(Some(fixed))
}

/// Read a non-negative integer attribute (US/IS).
pub(crate) fn read_count(object: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<Option<u64>> {
    let Some(value) = read_single(object, tag, name)? else {
        return Ok(None);
    };
    if value < 0.0 || value.fract() != 0.0 || value > f64::from(u32::MAX) {
        return Err(Error::attribute(name, format!("not a count: {value}")));
    }
    // Checked above: a non-negative integer within u32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Some(value as u64))
}

fn validated_rescale(slope: Option<f64>, intercept: Option<f64>) -> Result<Rescale> {
    let slope = slope.unwrap_or(1.0);
    let intercept = intercept.unwrap_or(0.0);
    if !(MIN_SLOPE_MAGNITUDE..=MAX_RESCALE_MAGNITUDE).contains(&slope.abs()) {
        return Err(Error::attribute(
            "RescaleSlope",
            format!(
                "{slope} outside the sane range {MIN_SLOPE_MAGNITUDE}..={MAX_RESCALE_MAGNITUDE} in magnitude"
            ),
        ));
    }
    if intercept.abs() > MAX_RESCALE_MAGNITUDE {
        return Err(Error::attribute(
            "RescaleIntercept",
            format!("{intercept} outside the sane range of magnitude {MAX_RESCALE_MAGNITUDE}"),
        ));
    }
    Ok(Rescale { slope, intercept })
}

fn rescale_in(object: &InMemDicomObject) -> Result<Option<Rescale>> {
    let slope = read_single(object, RESCALE_SLOPE, "RescaleSlope")?;
    let intercept = read_single(object, RESCALE_INTERCEPT, "RescaleIntercept")?;
    if slope.is_none() && intercept.is_none() {
        return Ok(None);
    }
    validated_rescale(slope, intercept).map(Some)
}

fn first_item(object: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    object.element_opt(tag).ok().flatten().and_then(|element| element.items()).and_then(|items| items.first())
}

fn items(object: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    object.element_opt(tag).ok().flatten().and_then(|element| element.items()).unwrap_or(&[])
}

/// The functional group macro `macro_tag` for `frame`: per-frame first, then shared.
fn functional_group(object: &InMemDicomObject, frame: usize, macro_tag: Tag) -> Option<&InMemDicomObject> {
    items(object, PER_FRAME_GROUPS)
        .get(frame)
        .and_then(|group| first_item(group, macro_tag))
        .or_else(|| first_item(object, SHARED_GROUPS).and_then(|group| first_item(group, macro_tag)))
}

/// Rescale per frame: top level, else Pixel Value Transformation in the functional groups,
/// else identity. Every value is validated (finite, sane magnitude, non-zero slope).
pub fn frame_rescales(object: &InMemDicomObject, frames: usize) -> Result<Vec<Rescale>> {
    if let Some(top_level) = rescale_in(object)? {
        return Ok(vec![top_level; frames]);
    }
    (0..frames)
        .map(|frame| match functional_group(object, frame, PIXEL_VALUE_TRANSFORMATION) {
            Some(group) => rescale_in(group).map(|found| found.unwrap_or(Rescale::IDENTITY)),
            None => Ok(Rescale::IDENTITY),
        })
        .collect()
}

fn check_direction(direction: [f64; 3], name: &'static str) -> Result<[f64; 3]> {
    let norm = direction.iter().map(|c| c * c).sum::<f64>().sqrt();
    if (norm - 1.0).abs() > 1.0e-2 {
        return Err(Error::attribute(name, format!("direction cosines of norm {norm}")));
    }
    Ok(direction.map(|c| c / norm))
}

fn geometry_from(
    position_source: &InMemDicomObject,
    orientation_source: &InMemDicomObject,
    spacing_source: &InMemDicomObject,
) -> Result<FrameGeometry> {
    let position = read_fixed::<3>(position_source, IMAGE_POSITION, "ImagePositionPatient")?
        .ok_or_else(|| Error::attribute("ImagePositionPatient", "missing"))?;
    let orientation = read_fixed::<6>(orientation_source, IMAGE_ORIENTATION, "ImageOrientationPatient")?
        .ok_or_else(|| Error::attribute("ImageOrientationPatient", "missing"))?;
    let pixel_spacing = read_fixed::<2>(spacing_source, PIXEL_SPACING, "PixelSpacing")?
        .ok_or_else(|| Error::attribute("PixelSpacing", "missing"))?;
    if pixel_spacing.iter().any(|s| !(1.0e-3..=100.0).contains(s)) {
        return Err(Error::attribute("PixelSpacing", format!("{pixel_spacing:?} mm is not plausible")));
    }
    let row_direction =
        check_direction([orientation[0], orientation[1], orientation[2]], "ImageOrientationPatient")?;
    let column_direction =
        check_direction([orientation[3], orientation[4], orientation[5]], "ImageOrientationPatient")?;
    let dot: f64 = row_direction.iter().zip(&column_direction).map(|(a, b)| a * b).sum();
    if dot.abs() > 1.0e-2 {
        return Err(Error::attribute(
            "ImageOrientationPatient",
            format!("row and column directions are not orthogonal (cosine {dot})"),
        ));
    }
    let slice_thickness = read_single(spacing_source, SLICE_THICKNESS, "SliceThickness")?;
    Ok(FrameGeometry { position, row_direction, column_direction, pixel_spacing, slice_thickness })
}

/// Plane geometry per frame: top level for classic images, functional groups for Enhanced MR.
pub fn frame_geometries(object: &InMemDicomObject, frames: usize) -> Result<Vec<FrameGeometry>> {
    let enhanced = object.element_opt(PER_FRAME_GROUPS).ok().flatten().is_some()
        || object.element_opt(SHARED_GROUPS).ok().flatten().is_some();
    if !enhanced {
        let geometry = geometry_from(object, object, object)?;
        return Ok(vec![geometry; frames]);
    }
    (0..frames)
        .map(|frame| {
            let position = functional_group(object, frame, PLANE_POSITION).ok_or_else(|| {
                Error::attribute("PlanePositionSequence", format!("missing for frame {frame}"))
            })?;
            let orientation = functional_group(object, frame, PLANE_ORIENTATION).ok_or_else(|| {
                Error::attribute("PlaneOrientationSequence", format!("missing for frame {frame}"))
            })?;
            let measures = functional_group(object, frame, PIXEL_MEASURES).ok_or_else(|| {
                Error::attribute("PixelMeasuresSequence", format!("missing for frame {frame}"))
            })?;
            geometry_from(position, orientation, measures)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, dicom_value};

    fn with(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(elements)
    }

    #[test]
    fn enhanced_per_frame_rescale_overrides_shared() {
        let pvt = |slope: &str, intercept: &str| {
            with(vec![DataElement::new(
                PIXEL_VALUE_TRANSFORMATION,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![with(vec![
                    DataElement::new(RESCALE_SLOPE, VR::DS, dicom_value!(Str, slope)),
                    DataElement::new(RESCALE_INTERCEPT, VR::DS, dicom_value!(Str, intercept)),
                ])]),
            )])
        };
        let object = with(vec![
            DataElement::new(
                SHARED_GROUPS,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![pvt("2", "1")]),
            ),
            DataElement::new(
                PER_FRAME_GROUPS,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![with(vec![]), pvt("0.5", "-3")]),
            ),
        ]);
        let rescales = frame_rescales(&object, 2).ok();
        assert_eq!(
            rescales,
            Some(vec![Rescale { slope: 2.0, intercept: 1.0 }, Rescale { slope: 0.5, intercept: -3.0 }])
        );
    }

    #[test]
    fn non_finite_or_zero_slope_is_refused() {
        for slope in ["NaN", "inf", "0", "1e9"] {
            let object = with(vec![DataElement::new(RESCALE_SLOPE, VR::DS, dicom_value!(Str, slope))]);
            assert!(frame_rescales(&object, 1).is_err(), "slope {slope} accepted");
        }
    }

    #[test]
    fn rescale_stored_as_un_bytes_is_parsed() {
        let object = with(vec![
            DataElement::new(RESCALE_SLOPE, VR::UN, PrimitiveValue::from(b"2.5 ".to_vec())),
            DataElement::new(RESCALE_INTERCEPT, VR::UN, PrimitiveValue::from(b"-10".to_vec())),
        ]);
        assert_eq!(frame_rescales(&object, 1).ok(), Some(vec![Rescale { slope: 2.5, intercept: -10.0 }]));
    }
}
