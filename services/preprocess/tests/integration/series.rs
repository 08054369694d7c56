//! Synthetic sagittal lumbar phantom series written as DICOM in memory (until tfesi-synth lands).
//! The anatomy is defined in patient space (LPS, mm), so any orientation renders the same body.

use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// How to render one series.
#[derive(Debug, Clone)]
pub struct SeriesParams {
    pub slices: usize,
    pub slice_spacing_mm: f64,
    pub rows: usize,
    pub columns: usize,
    pub pixel_spacing_mm: f64,
    /// Direction of increasing column index, and of increasing row index (before obliquity).
    pub row_direction: [f64; 3],
    pub column_direction: [f64; 3],
    /// Rotation of the whole stack about the patient z axis (degrees).
    pub obliquity_deg: f64,
    pub rescale: Option<(f64, f64)>,
    /// Left-right offset of the slab centre (mm).
    pub slab_offset_mm: f64,
}

impl Default for SeriesParams {
    fn default() -> Self {
        Self {
            slices: 15,
            slice_spacing_mm: 4.0,
            rows: 320,
            columns: 320,
            pixel_spacing_mm: 0.9375,
            row_direction: [0.0, 1.0, 0.0],
            column_direction: [0.0, 0.0, -1.0],
            obliquity_deg: 0.0,
            rescale: None,
            slab_offset_mm: 1.5,
        }
    }
}

fn rotate_z(v: [f64; 3], degrees: f64) -> [f64; 3] {
    let (sin, cos) = degrees.to_radians().sin_cos();
    [cos * v[0] - sin * v[1], sin * v[0] + cos * v[1], v[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// Phantom intensity (stored units) at a point: body, vertebrae and discs, bright CSF canal
/// posterior to them, posterior elements, and bright subcutaneous fat.
pub fn phantom(p: [f64; 3]) -> f64 {
    let [x, y, z] = p;
    let noise = ((x * 12.9898 + y * 78.233 + z * 37.719).sin() * 43758.5453).fract() * 30.0;
    let inside_body = (-70.0..=95.0).contains(&y) && x.abs() < 160.0;
    if !inside_body {
        return 20.0 + noise.abs();
    }
    let level = (z + 400.0).rem_euclid(38.0);
    let value = if (-35.0..0.0).contains(&y) && x.abs() < 25.0 {
        if level < 9.0 { 1100.0 - 20.0 * x.abs() } else { 520.0 }
    } else if (2.0..17.0).contains(&y) && x.abs() < 12.0 {
        1900.0 - 30.0 * x.abs()
    } else if (17.0..45.0).contains(&y) {
        300.0
    } else if (78.0..95.0).contains(&y) {
        1250.0
    } else {
        640.0
    };
    value + noise
}

/// The series as Part 10 files, in a scrambled order with scrambled instance numbers.
pub fn render_series(params: &SeriesParams) -> Vec<Vec<u8>> {
    let row_direction = rotate_z(params.row_direction, params.obliquity_deg);
    let column_direction = rotate_z(params.column_direction, params.obliquity_deg);
    let normal = cross(row_direction, column_direction);
    // slabs are placed along patient left whatever the sign of the normal
    let axis = if normal[0] < 0.0 { normal.map(|c| -c) } else { normal };
    let centre_of_plane = [0.0, 10.0, -20.0];
    let spacing = params.pixel_spacing_mm;
    let mut files = Vec::new();
    for k in 0..params.slices {
        let offset =
            params.slab_offset_mm + (k as f64 - (params.slices as f64 - 1.0) / 2.0) * params.slice_spacing_mm;
        let centre: [f64; 3] = std::array::from_fn(|a| centre_of_plane[a] + offset * axis[a]);
        let position: [f64; 3] = std::array::from_fn(|a| {
            centre[a]
                - row_direction[a] * spacing * (params.columns as f64 - 1.0) / 2.0
                - column_direction[a] * spacing * (params.rows as f64 - 1.0) / 2.0
        });
        let mut pixels = Vec::with_capacity(params.rows * params.columns);
        for r in 0..params.rows {
            for c in 0..params.columns {
                let p: [f64; 3] = std::array::from_fn(|a| {
                    position[a]
                        + row_direction[a] * spacing * c as f64
                        + column_direction[a] * spacing * r as f64
                });
                let real = phantom(p);
                let stored = match params.rescale {
                    Some((slope, intercept)) => (real - intercept) / slope,
                    None => real,
                };
                pixels.push(stored.round().clamp(0.0, 4095.0) as u16);
            }
        }
        files.push(write_instance(params, k, position, row_direction, column_direction, pixels));
    }
    // file order and instance numbers must not matter: interleave them
    let (even, odd): (Vec<_>, Vec<_>) = files.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    odd.into_iter().rev().chain(even).map(|(_, file)| file).collect()
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v:.6}")).collect())
}

fn write_instance(
    params: &SeriesParams,
    k: usize,
    position: [f64; 3],
    row_direction: [f64; 3],
    column_direction: [f64; 3],
    pixels: Vec<u16>,
) -> Vec<u8> {
    let sop_instance = format!("2.25.4242{k}");
    let mut elements = vec![
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, dicom_value!(Str, "1.2.840.10008.5.1.4.1.1.4")),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop_instance.as_str())),
        DataElement::new(tags::MODALITY, VR::CS, dicom_value!(Str, "MR")),
        DataElement::new(tags::SERIES_DESCRIPTION, VR::LO, dicom_value!(Str, "SYNTHETIC T2 SAG")),
        DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(format!("{}", (k * 7) % 31 + 1)),
        ),
        DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&position)),
        DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds(&[
                row_direction[0],
                row_direction[1],
                row_direction[2],
                column_direction[0],
                column_direction[1],
                column_direction[2],
            ]),
        ),
        DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            ds(&[params.pixel_spacing_mm, params.pixel_spacing_mm]),
        ),
        DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[params.slice_spacing_mm])),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, dicom_value!(Str, "MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(params.rows as u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(params.columns as u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ];
    if let Some((slope, intercept)) = params.rescale {
        elements.push(DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[slope])));
        elements.push(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[intercept])));
    }
    let file = InMemDicomObject::from_element_iter(elements)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}
