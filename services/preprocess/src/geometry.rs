//! Slice geometry of a series: order frames along the slice normal, and find missing,
//! duplicated or unevenly spaced slices, oblique or non-sagittal stacks.

use serde::{Deserialize, Serialize};

use crate::attrs::FrameGeometry;
use crate::error::{Error, Result};

/// Two slices closer than this along the normal (mm) are duplicates.
const DUPLICATE_TOLERANCE_MM: f64 = 0.01;
/// A gap more than this multiple of the median spacing means slices are missing.
const MISSING_GAP_FACTOR: f64 = 1.5;
/// A gap differing from the median by more than this fraction is uneven spacing.
const UNEVEN_FRACTION: f64 = 0.1;
/// Orientations of two slices agree when their direction cosines differ by less than this.
const ORIENTATION_TOLERANCE: f64 = 1.0e-3;
/// Largest angle between the slice normal and the patient left-right axis (degrees).
pub const MAX_OBLIQUITY_DEG: f64 = 30.0;

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// A problem with the stack that does not stop preprocessing but is reported with the tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GeometryWarning {
    /// A gap between neighbours differs from the median spacing by more than 10%.
    UnevenSpacing { after_position_mm: f64, gap_mm: f64, median_mm: f64 },
}

/// One frame of the series placed on the slice axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlacedSlice {
    /// Index into the caller's list of frames.
    pub source_index: usize,
    /// Position along the canonical slice axis (mm, increasing toward patient left).
    pub position_mm: f64,
}

/// The ordered stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesGeometry {
    /// Slices ordered from patient right to patient left (+x in LPS), whatever the normal's sign.
    pub slices: Vec<PlacedSlice>,
    /// Unit slice axis, pointing toward patient left.
    pub axis: [f64; 3],
    /// Median distance between neighbouring slices (mm); 0 for one slice.
    pub spacing_mm: f64,
    /// Angle between the slice normal and the patient left-right axis (degrees).
    pub obliquity_deg: f64,
    pub warnings: Vec<GeometryWarning>,
}

fn same_direction(a: [f64; 3], b: [f64; 3]) -> bool {
    a.iter().zip(&b).all(|(x, y)| (x - y).abs() < ORIENTATION_TOLERANCE)
}

fn median(sorted_or_not: &[f64]) -> f64 {
    let mut values = sorted_or_not.to_vec();
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[middle - 1] + values[middle]) / 2.0 } else { values[middle] }
}

/// Order `frames` (one per slice, any order) along the slice normal and check the stack.
///
/// Errors: no frames, differing orientation or pixel spacing, a non-sagittal plane (normal
/// more than [`MAX_OBLIQUITY_DEG`] from left-right), duplicated or missing slices.
pub fn order_slices(frames: &[FrameGeometry]) -> Result<SeriesGeometry> {
    let first = frames.first().ok_or_else(|| Error::Geometry("series has no slices".into()))?;
    for (index, frame) in frames.iter().enumerate() {
        if !same_direction(frame.row_direction, first.row_direction)
            || !same_direction(frame.column_direction, first.column_direction)
        {
            return Err(Error::Geometry(format!("slice {index} has a different orientation")));
        }
        if frame.pixel_spacing.iter().zip(&first.pixel_spacing).any(|(a, b)| (a - b).abs() > 1.0e-4) {
            return Err(Error::Geometry(format!("slice {index} has a different pixel spacing")));
        }
    }
    let normal = cross(first.row_direction, first.column_direction);
    let left_right_cosine = normal[0];
    let obliquity_deg = left_right_cosine.abs().clamp(0.0, 1.0).acos().to_degrees();
    if obliquity_deg > MAX_OBLIQUITY_DEG {
        return Err(Error::Geometry(format!(
            "not a sagittal stack: the slice normal is {obliquity_deg:.1} degrees from left-right (limit {MAX_OBLIQUITY_DEG})"
        )));
    }
    // Both normal directions occur (row x column may point left or right): fix the axis to
    // point toward patient left so that the channel order does not depend on it.
    let axis = if left_right_cosine < 0.0 { normal.map(|c| -c) } else { normal };
    let mut slices: Vec<PlacedSlice> = frames
        .iter()
        .enumerate()
        .map(|(source_index, frame)| PlacedSlice { source_index, position_mm: dot(frame.position, axis) })
        .collect();
    slices.sort_by(|a, b| a.position_mm.total_cmp(&b.position_mm));
    let gaps: Vec<f64> = slices.windows(2).map(|pair| pair[1].position_mm - pair[0].position_mm).collect();
    if let Some(duplicate) =
        slices.windows(2).find(|pair| pair[1].position_mm - pair[0].position_mm < DUPLICATE_TOLERANCE_MM)
    {
        return Err(Error::Geometry(format!(
            "duplicated slice: two slices at {:.2} mm along the slice axis",
            duplicate[0].position_mm
        )));
    }
    let spacing_mm = if gaps.is_empty() { 0.0 } else { median(&gaps) };
    let mut warnings = Vec::new();
    for (pair, gap) in slices.windows(2).zip(&gaps) {
        if *gap > MISSING_GAP_FACTOR * spacing_mm {
            let missing = (gap / spacing_mm).round() - 1.0;
            return Err(Error::Geometry(format!(
                "missing slice: a gap of {gap:.2} mm after {:.2} mm where the spacing is {spacing_mm:.2} mm (about {missing} slice(s) missing)",
                pair[0].position_mm
            )));
        }
        if (gap - spacing_mm).abs() > UNEVEN_FRACTION * spacing_mm {
            warnings.push(GeometryWarning::UnevenSpacing {
                after_position_mm: pair[0].position_mm,
                gap_mm: *gap,
                median_mm: spacing_mm,
            });
        }
    }
    Ok(SeriesGeometry { slices, axis, spacing_mm, obliquity_deg, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(x: f64, row: [f64; 3], column: [f64; 3]) -> FrameGeometry {
        FrameGeometry {
            position: [x, -100.0, 150.0],
            row_direction: row,
            column_direction: column,
            pixel_spacing: [0.8, 0.8],
            slice_thickness: Some(4.0),
        }
    }

    const ROW: [f64; 3] = [0.0, 1.0, 0.0];
    const COLUMN: [f64; 3] = [0.0, 0.0, -1.0];

    fn order_of(xs: &[f64], row: [f64; 3], column: [f64; 3]) -> Result<Vec<usize>> {
        let frames: Vec<_> = xs.iter().map(|x| frame(*x, row, column)).collect();
        Ok(order_slices(&frames)?.slices.iter().map(|s| s.source_index).collect())
    }

    #[test]
    fn shuffled_slices_are_ordered_right_to_left_for_both_normal_directions() {
        let xs = [8.0, -4.0, 0.0, 4.0, -8.0];
        assert_eq!(order_of(&xs, ROW, COLUMN).ok(), Some(vec![4, 1, 2, 3, 0]));
        // swapping the column direction flips the normal; the order must not change
        assert_eq!(order_of(&xs, ROW, [0.0, 0.0, 1.0]).ok(), Some(vec![4, 1, 2, 3, 0]));
    }

    #[test]
    fn duplicated_and_missing_slices_are_errors_that_say_so() {
        let duplicate = order_of(&[0.0, 4.0, 4.0, 8.0], ROW, COLUMN).unwrap_err().to_string();
        assert!(duplicate.contains("duplicated"), "{duplicate}");
        let missing = order_of(&[0.0, 4.0, 8.0, 16.0, 20.0], ROW, COLUMN).unwrap_err().to_string();
        assert!(missing.contains("missing") && missing.contains("1 slice"), "{missing}");
    }

    #[test]
    fn uneven_spacing_is_a_warning() {
        let frames: Vec<_> = [0.0, 4.0, 8.0, 12.6, 16.6].iter().map(|x| frame(*x, ROW, COLUMN)).collect();
        let geometry = order_slices(&frames).unwrap();
        assert_eq!(geometry.warnings.len(), 1);
        assert!(
            matches!(geometry.warnings[0], GeometryWarning::UnevenSpacing { gap_mm, .. } if (gap_mm - 4.6).abs() < 1e-9)
        );
    }

    #[test]
    fn small_obliquity_is_accepted_and_axial_is_refused() {
        let angle = 10f64.to_radians();
        let row = [angle.sin(), angle.cos(), 0.0];
        let frames: Vec<_> = (0..5)
            .map(|i| {
                let offset = f64::from(i) * 4.0;
                let mut f = frame(0.0, row, COLUMN);
                f.position = [offset * angle.cos(), -100.0 - offset * angle.sin(), 150.0];
                f
            })
            .collect();
        let geometry = order_slices(&frames).unwrap();
        assert!((geometry.obliquity_deg - 10.0).abs() < 1e-6);
        assert!((geometry.spacing_mm - 4.0).abs() < 1e-9);
        assert!(order_of(&[0.0, 4.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]).is_err());
    }
}
