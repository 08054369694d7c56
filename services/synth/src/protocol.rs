//! Scanner vendors' conventions and the series of one lumbar spine MR study: what each series
//! is called, how it makes contrast (TE/TR/TI), and where its images lie (geometry).

use rand::Rng;

use crate::anatomy::{Anatomy, SpinePoint};
use crate::tissue::Contrast;

/// Scanner vendor; decides descriptions, models, private tags and value scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Siemens style (`t2_tse_sag_384`).
    Siemens,
    /// GE style (`Sag T2 FSE`).
    Ge,
    /// Philips style (`T2W_TSE SAG`), with rescale slope.
    Philips,
    /// Canon style (`T2 SAG`).
    Canon,
}

impl Vendor {
    /// Manufacturer (0008,0070).
    pub fn manufacturer(self) -> &'static str {
        match self {
            Self::Siemens => "SIEMENS",
            Self::Ge => "GE MEDICAL SYSTEMS",
            Self::Philips => "Philips Medical Systems",
            Self::Canon => "CANON_MEC",
        }
    }

    /// Models and their field strengths, T.
    pub fn models(self) -> &'static [(&'static str, f64)] {
        match self {
            Self::Siemens => &[("MAGNETOM Aera", 1.5), ("MAGNETOM Skyra", 3.0), ("MAGNETOM Vida", 3.0)],
            Self::Ge => &[("SIGNA Artist", 1.5), ("DISCOVERY MR750w", 3.0), ("Optima MR450w", 1.5)],
            Self::Philips => &[("Ingenia", 1.5), ("Achieva dStream", 1.5), ("Ingenia Elition X", 3.0)],
            Self::Canon => &[("Vantage Orian", 1.5), ("Vantage Galan 3T", 3.0)],
        }
    }

    /// The value written in the cohort table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Siemens => "siemens",
            Self::Ge => "ge",
            Self::Philips => "philips",
            Self::Canon => "canon",
        }
    }

    fn description(self, kind: SeriesKind, matrix: u32) -> String {
        let text = match (self, kind) {
            (Self::Siemens, SeriesKind::T2Sagittal) => return format!("t2_tse_sag_{matrix}"),
            (Self::Siemens, SeriesKind::T1Sagittal) => "t1_tse_sag",
            (Self::Siemens, SeriesKind::StirSagittal) => "t2_tirm_sag",
            (Self::Siemens, SeriesKind::T2Axial) => "t2_tse_tra",
            (Self::Siemens, SeriesKind::Localizer) => "localizer",
            (Self::Ge, SeriesKind::T2Sagittal) => "Sag T2 FSE",
            (Self::Ge, SeriesKind::T1Sagittal) => "Sag T1 FSE",
            (Self::Ge, SeriesKind::StirSagittal) => "Sag STIR",
            (Self::Ge, SeriesKind::T2Axial) => "Ax T2 FSE",
            (Self::Ge, SeriesKind::Localizer) => "3-Plane Loc",
            (Self::Philips, SeriesKind::T2Sagittal) => "T2W_TSE SAG",
            (Self::Philips, SeriesKind::T1Sagittal) => "T1W_TSE SAG",
            (Self::Philips, SeriesKind::StirSagittal) => "STIR SAG",
            (Self::Philips, SeriesKind::T2Axial) => "T2W_TSE TRA",
            (Self::Philips, SeriesKind::Localizer) => "SURVEY",
            (Self::Canon, SeriesKind::T2Sagittal) => "T2 SAG",
            (Self::Canon, SeriesKind::T1Sagittal) => "T1 SAG",
            (Self::Canon, SeriesKind::StirSagittal) => "STIR SAG",
            (Self::Canon, SeriesKind::T2Axial) => "T2 AX",
            (Self::Canon, SeriesKind::Localizer) => "LOCATOR",
        };
        text.to_string()
    }
}

/// The role of a series in the study (ground truth, never written to the files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// Three-plane gradient echo localizer.
    Localizer,
    /// The T2-weighted sagittal series the platform must select.
    T2Sagittal,
    /// T1-weighted sagittal distractor.
    T1Sagittal,
    /// STIR sagittal distractor (fat suppressed, not a T2 series).
    StirSagittal,
    /// T2-weighted axial stack through the lower discs.
    T2Axial,
}

/// How the files of a series are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferSyntaxKind {
    /// 1.2.840.10008.1.2.1
    ExplicitLittle,
    /// 1.2.840.10008.1.2
    ImplicitLittle,
    /// 1.2.840.10008.1.2.1.99
    DeflatedExplicitLittle,
    /// 1.2.840.10008.1.2.5
    RleLossless,
}

impl TransferSyntaxKind {
    /// Every transfer syntax the generator writes.
    pub const ALL: [Self; 4] =
        [Self::ExplicitLittle, Self::ImplicitLittle, Self::DeflatedExplicitLittle, Self::RleLossless];

    /// The transfer syntax UID.
    pub fn uid(self) -> &'static str {
        match self {
            Self::ExplicitLittle => "1.2.840.10008.1.2.1",
            Self::ImplicitLittle => "1.2.840.10008.1.2",
            Self::DeflatedExplicitLittle => "1.2.840.10008.1.2.1.99",
            Self::RleLossless => "1.2.840.10008.1.2.5",
        }
    }
}

/// One image plane: DICOM ImagePositionPatient and ImageOrientationPatient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePlane {
    /// Centre of the first transmitted pixel, mm (LPS).
    pub position: [f64; 3],
    /// Direction of increasing column index (along a row).
    pub row: [f64; 3],
    /// Direction of increasing row index (down a column).
    pub col: [f64; 3],
}

/// Everything about one series except its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPlan {
    /// Role (not written to the files).
    pub kind: SeriesKind,
    /// SeriesNumber.
    pub number: u32,
    /// SeriesDescription and ProtocolName.
    pub description: String,
    /// Contrast mechanism and timing.
    pub contrast: Contrast,
    /// RepetitionTime, ms.
    pub tr: f64,
    /// EchoTime, ms.
    pub te: f64,
    /// InversionTime, ms.
    pub ti: Option<f64>,
    /// FlipAngle, degrees.
    pub flip_deg: f64,
    /// EchoTrainLength.
    pub echo_train: u32,
    /// Rows and Columns (square).
    pub matrix: u32,
    /// PixelSpacing, mm (square).
    pub pixel_mm: f64,
    /// SliceThickness, mm.
    pub thickness: f64,
    /// SpacingBetweenSlices, mm (centre to centre), for stacks.
    pub spacing: Option<f64>,
    /// One plane per instance, in instance order.
    pub planes: Vec<ImagePlane>,
    /// How its files are encoded.
    pub transfer_syntax: TransferSyntaxKind,
    /// ScanningSequence, SequenceVariant, ScanOptions, SequenceName.
    pub sequence: [&'static str; 4],
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalise(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

fn add_scaled(a: [f64; 3], b: [f64; 3], k: f64) -> [f64; 3] {
    [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]]
}

/// Orthonormal (row, col) for a slice normal and an approximate row direction, with
/// `row x col = normal`.
pub fn frame(normal: [f64; 3], approx_row: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    let n = normalise(normal);
    let row = normalise(add_scaled(approx_row, n, -dot(approx_row, n)));
    let col = cross(n, row);
    (row, col)
}

/// Unit normal `row x col` of a plane.
pub fn plane_normal(plane: &ImagePlane) -> [f64; 3] {
    normalise(cross(plane.row, plane.col))
}

fn stack(
    centre: [f64; 3],
    normal: [f64; 3],
    approx_row: [f64; 3],
    count: u32,
    spacing: f64,
    fov: f64,
    matrix: u32,
) -> Vec<ImagePlane> {
    let (row, col) = frame(normal, approx_row);
    let n = cross(row, col);
    let pixel = fov / f64::from(matrix);
    let half = (f64::from(matrix) - 1.0) / 2.0 * pixel;
    (0..count)
        .map(|k| {
            let offset = (f64::from(k) - (f64::from(count) - 1.0) / 2.0) * spacing;
            let slice_centre = add_scaled(centre, n, offset);
            let corner = add_scaled(add_scaled(slice_centre, row, -half), col, -half);
            ImagePlane { position: corner, row, col }
        })
        .collect()
}

fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

fn rotate_small(v: [f64; 3], yaw: f64, roll: f64, pitch: f64) -> [f64; 3] {
    // Rotations about z (yaw), y (roll) and x (pitch), radians.
    let (sz, cz) = yaw.sin_cos();
    let (sy, cy) = roll.sin_cos();
    let (sx, cx) = pitch.sin_cos();
    let a = [cz * v[0] - sz * v[1], sz * v[0] + cz * v[1], v[2]];
    let b = [cy * a[0] + sy * a[2], a[1], -sy * a[0] + cy * a[2]];
    [b[0], cx * b[1] - sx * b[2], sx * b[1] + cx * b[2]]
}

/// Plans the series of one study. `ts_offset` rotates the transfer syntaxes across series so
/// that every syntax appears in any handful of studies.
pub fn plan_study(
    vendor: Vendor,
    anatomy: &Anatomy,
    rng: &mut impl Rng,
    ts_offset: usize,
    with_stir: bool,
) -> Vec<SeriesPlan> {
    let mut plans = Vec::new();
    let mut next_ts = {
        let mut counter = ts_offset;
        move || {
            let ts = TransferSyntaxKind::ALL[counter % TransferSyntaxKind::ALL.len()];
            counter += 1;
            ts
        }
    };
    let sequences: [[&'static str; 4]; 4] = [
        ["GR", "SP\\SS", "", "*fl2d1"],
        ["SE", "SK\\SP\\OSP", "FAST_GEMS\\SAT_GEMS", "*tse2d1_"],
        ["IR\\SE", "SK\\SP\\MP", "IR", "*tir2d1_"],
        ["SE", "SK\\SP", "PFP", "*tse2d1_"],
    ];
    // Localizer: sagittal, coronal and axial single slices through the lumbar spine.
    let loc_fov = round_to(rng.random_range(400.0..460.0), 10.0);
    let loc_matrix = 256;
    let centre = anatomy.to_patient(SpinePoint { s: anatomy.disc_s(2), u: 0.0, x: 0.0 });
    let mut loc_planes = Vec::new();
    for (normal, approx_row) in [
        ([-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ([0.0, 1.0, 0.0], [1.0, 0.0, 0.0]),
        ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0]),
    ] {
        loc_planes.extend(stack(centre, normal, approx_row, 1, 10.0, loc_fov, loc_matrix));
    }
    let (loc_tr, loc_te, loc_flip) = (
        round_to(rng.random_range(5.0..10.0), 0.1),
        round_to(rng.random_range(2.0..5.0), 0.01),
        rng.random_range(20.0_f64..40.0).round(),
    );
    plans.push(SeriesPlan {
        kind: SeriesKind::Localizer,
        number: 1,
        description: vendor.description(SeriesKind::Localizer, loc_matrix),
        contrast: Contrast::GradientEcho { tr: loc_tr, te: loc_te, flip_deg: loc_flip },
        tr: loc_tr,
        te: loc_te,
        ti: None,
        flip_deg: loc_flip,
        echo_train: 1,
        matrix: loc_matrix,
        pixel_mm: loc_fov / f64::from(loc_matrix),
        thickness: 10.0,
        spacing: None,
        planes: loc_planes,
        transfer_syntax: next_ts(),
        sequence: sequences[0],
    });
    // Sagittal stack shared by T2, T1 and STIR: a few degrees of obliquity.
    let fov = round_to(rng.random_range(280.0..320.0), 10.0);
    let matrix =
        *[256_u32, 320, 320, 320, 384, 384, 384, 448, 512].get(rng.random_range(0..9)).unwrap_or(&384);
    let thickness = [3.0, 3.5, 4.0, 4.0, 4.5][rng.random_range(0..5)];
    let gap = round_to(thickness * rng.random_range(0.08..0.3), 0.1);
    let spacing = thickness + gap;
    let min_count = (54.0 / spacing).ceil() as u32 + 1;
    let count = rng.random_range(11..=20_u32).max(min_count).min(20);
    let (yaw, roll, pitch) = (
        rng.random_range(-4.0_f64..4.0).to_radians(),
        rng.random_range(-3.0_f64..3.0).to_radians(),
        rng.random_range(-6.0_f64..6.0).to_radians(),
    );
    let sag_normal = rotate_small([-1.0, 0.0, 0.0], yaw, roll, pitch);
    let sag_row = rotate_small([0.0, 1.0, 0.0], yaw, roll, pitch);
    let sag_centre = add_scaled(
        anatomy.to_patient(SpinePoint {
            s: anatomy.disc_s(2) - 15.0,
            u: rng.random_range(10.0..30.0),
            x: 0.0,
        }),
        [1.0, 0.0, 0.0],
        rng.random_range(-2.0..2.0),
    );
    let sag_planes = stack(sag_centre, sag_normal, sag_row, count, spacing, fov, matrix);
    let t2_tr = round_to(rng.random_range(2500.0..5000.0), 10.0);
    let t2_te = round_to(rng.random_range(80.0..130.0), 1.0);
    let t2_etl = rng.random_range(15..=25);
    let se = sequences[if vendor == Vendor::Ge { 1 } else { 3 }];
    let mut t2_seq = se;
    if vendor == Vendor::Siemens {
        t2_seq[3] = "*tse2d1_21";
    }
    let sag = |kind, number, contrast, tr, te, ti, echo_train, ts, sequence| SeriesPlan {
        kind,
        number,
        description: vendor.description(kind, matrix),
        contrast,
        tr,
        te,
        ti,
        flip_deg: 90.0,
        echo_train,
        matrix,
        pixel_mm: fov / f64::from(matrix),
        thickness,
        spacing: Some(spacing),
        planes: sag_planes.clone(),
        transfer_syntax: ts,
        sequence,
    };
    let t1_tr = round_to(rng.random_range(400.0..800.0), 10.0);
    let t1_te = round_to(rng.random_range(8.0..20.0), 0.1);
    let t1_etl = rng.random_range(3..=5);
    let mut t1_seq = se;
    if vendor == Vendor::Siemens {
        t1_seq[3] = "*tse2d1_3";
    }
    // Order varies a little between sites: T1 first or T2 first.
    let t1_first = rng.random::<f64>() < 0.5;
    let (t2_number, t1_number) = if t1_first { (3, 2) } else { (2, 3) };
    let t2 = sag(
        SeriesKind::T2Sagittal,
        t2_number,
        Contrast::SpinEcho { tr: t2_tr, te: t2_te },
        t2_tr,
        t2_te,
        None,
        t2_etl,
        next_ts(),
        t2_seq,
    );
    let t1 = sag(
        SeriesKind::T1Sagittal,
        t1_number,
        Contrast::SpinEcho { tr: t1_tr, te: t1_te },
        t1_tr,
        t1_te,
        None,
        t1_etl,
        next_ts(),
        t1_seq,
    );
    if t1_first {
        plans.push(t1);
        plans.push(t2);
    } else {
        plans.push(t2);
        plans.push(t1);
    }
    let mut number = 4;
    if with_stir {
        let tr = round_to(rng.random_range(3000.0..5000.0), 10.0);
        let te = round_to(rng.random_range(30.0..70.0), 1.0);
        let ti = round_to(rng.random_range(150.0..180.0), 1.0);
        let mut stir_seq = sequences[2];
        if vendor == Vendor::Siemens {
            stir_seq[3] = "*tir2d1_13";
        }
        plans.push(sag(
            SeriesKind::StirSagittal,
            number,
            Contrast::InversionRecovery { tr, te, ti },
            tr,
            te,
            Some(ti),
            13,
            next_ts(),
            stir_seq,
        ));
        number += 1;
    }
    // Axial T2 through L3-L4 .. L5-S1, angled along the L4-L5 disc.
    let ax_fov = round_to(rng.random_range(180.0..220.0), 10.0);
    let ax_matrix = if rng.random::<f64>() < 0.6 { 256 } else { 320 };
    let ax_thickness = 4.0;
    let ax_spacing = ax_thickness + round_to(rng.random_range(0.4..1.2), 0.1);
    let top = anatomy.disc_s(2) + 6.0;
    let bottom = anatomy.disc_s(4) - 6.0;
    let ax_count = (((top - bottom) / ax_spacing).ceil() as u32 + 1).clamp(10, 24);
    let ax_normal = rotate_small(
        anatomy.spine_tangent(anatomy.disc_s(3)),
        0.0,
        0.0,
        rng.random_range(-3.0_f64..3.0).to_radians(),
    );
    let ax_centre = anatomy.to_patient(SpinePoint { s: (top + bottom) / 2.0, u: 12.0, x: 0.0 });
    let ax_tr = round_to(rng.random_range(3000.0..6000.0), 10.0);
    let ax_te = round_to(rng.random_range(85.0..120.0), 1.0);
    plans.push(SeriesPlan {
        kind: SeriesKind::T2Axial,
        number,
        description: vendor.description(SeriesKind::T2Axial, ax_matrix),
        contrast: Contrast::SpinEcho { tr: ax_tr, te: ax_te },
        tr: ax_tr,
        te: ax_te,
        ti: None,
        flip_deg: 90.0,
        echo_train: rng.random_range(12..=20),
        matrix: ax_matrix,
        pixel_mm: ax_fov / f64::from(ax_matrix),
        thickness: ax_thickness,
        spacing: Some(ax_spacing),
        planes: stack(ax_centre, ax_normal, [1.0, 0.0, 0.0], ax_count, ax_spacing, ax_fov, ax_matrix),
        transfer_syntax: next_ts(),
        sequence: t2_seq,
    });
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_orthonormal_and_right_handed() {
        let normal = rotate_small([-1.0, 0.0, 0.0], 0.05, -0.03, 0.08);
        let (row, col) = frame(normal, [0.0, 1.0, 0.0]);
        assert!(dot(row, col).abs() < 1e-12);
        assert!((dot(row, row) - 1.0).abs() < 1e-12);
        let n = cross(row, col);
        assert!((dot(n, normalise(normal)) - 1.0).abs() < 1e-12);
    }
}
