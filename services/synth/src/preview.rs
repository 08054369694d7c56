//! The preview montage: mid-sagittal and parasagittal T2 (and T1) slices of a patient with a
//! lateral disc herniation and of one without, labelled, as a PNG.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};
use crate::font::draw_text;
use crate::generate::{PatientOptions, PatientStudy, generate_patient, patient_row};
use crate::latent::{DISC_LEVELS, HerniationSide};
use crate::protocol::SeriesKind;

const TILE: usize = 360;
const LABEL: usize = 22;

/// Picks a patient with a large left or right herniation and one without any herniation.
fn pick_patients(seed: u64, options: &PatientOptions) -> (u32, u32) {
    let mut pathological = None;
    let mut healthy = None;
    for index in 0..2000 {
        let row = patient_row(seed, index, options);
        let findings = row.latents.levels;
        let main = findings[row.clinical.level];
        if pathological.is_none()
            && main.herniation_mm >= 6.0
            && main.herniation_side != HerniationSide::Central
        {
            pathological = Some(index);
        }
        if healthy.is_none()
            && findings.iter().all(|f| f.herniation_mm == 0.0 && f.stenosis_grade == 0 && f.pfirrmann <= 3)
        {
            healthy = Some(index);
        }
        if pathological.is_some() && healthy.is_some() {
            break;
        }
    }
    (pathological.unwrap_or(0), healthy.unwrap_or(1))
}

fn window(pixels: &[u16]) -> (f64, f64) {
    let mut sorted: Vec<u16> = pixels.to_vec();
    sorted.sort_unstable();
    let hi = f64::from(sorted[(sorted.len() as f64 * 0.995) as usize % sorted.len().max(1)]).max(1.0);
    (0.0, hi)
}

fn tile(study: &PatientStudy, kind: SeriesKind, lateral_mm: f64) -> Option<(Vec<u8>, String)> {
    let plan = study.series.iter().find(|s| s.kind == kind)?;
    let count = plan.planes.len();
    let mid = count / 2;
    let spacing = plan.spacing.unwrap_or(plan.thickness);
    let steps = (lateral_mm / spacing).round() as i64;
    // Moving along -normal goes to the patient's left for the sagittal normal (-x).
    let normal = crate::protocol::plane_normal(&plan.planes[0]);
    let direction = if normal[0] < 0.0 { -1 } else { 1 };
    let index = (mid as i64 - direction * steps).clamp(0, count as i64 - 1) as usize;
    let file = study
        .files
        .iter()
        .find(|f| f.series_number == plan.number && f.instance_number as usize == index + 1)?;
    let n = plan.matrix as usize;
    let (lo, hi) = window(&file.pixels);
    let mut out = vec![0_u8; TILE * TILE];
    for (y, row) in out.chunks_mut(TILE).enumerate() {
        for (x, value) in row.iter_mut().enumerate() {
            let sx = (x * n / TILE).min(n - 1);
            let sy = (y * n / TILE).min(n - 1);
            let v = (f64::from(file.pixels[sy * n + sx]) - lo) / (hi - lo);
            *value = (v.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    let plane = plan.planes[index];
    let half = (n as f64 - 1.0) / 2.0 * plan.pixel_mm;
    let x = plane.position[0] + half * (plane.row[0] + plane.col[0]);
    let side = if lateral_mm > 0.0 {
        "L"
    } else if lateral_mm < 0.0 {
        "R"
    } else {
        "MID"
    };
    let weighting = if kind == SeriesKind::T1Sagittal { "T1" } else { "T2" };
    Some((out, format!("{weighting} {side} X={x:+.0}MM IM{}", index + 1)))
}

/// Generates the two preview patients and writes the montage to `path`.
pub fn write_preview(seed: u64, options: &PatientOptions, path: &Path) -> Result<()> {
    let (sick, healthy) = pick_patients(seed, options);
    let sick_study = generate_patient(seed, sick, options)?;
    let healthy_study = generate_patient(seed, healthy, options)?;
    let main = sick_study.row.latents.levels[sick_study.row.clinical.level];
    let rows: Vec<(&PatientStudy, SeriesKind, String)> = vec![
        (
            &sick_study,
            SeriesKind::T2Sagittal,
            format!(
                "#{} HERNIATION {} {} {:.0}MM",
                sick,
                DISC_LEVELS[sick_study.row.clinical.level],
                main.herniation_side.as_str(),
                main.herniation_mm
            ),
        ),
        (&healthy_study, SeriesKind::T2Sagittal, format!("#{healthy} NO HERNIATION")),
        (&sick_study, SeriesKind::T1Sagittal, format!("#{sick} SAME ANATOMY T1")),
    ];
    let columns = [-22.0, 0.0, 22.0];
    let width = TILE * columns.len();
    let height = (TILE + LABEL) * rows.len();
    let mut image = vec![0_u8; width * height];
    for (r, (study, kind, caption)) in rows.iter().enumerate() {
        for (c, &lateral) in columns.iter().enumerate() {
            let Some((pixels, label)) = tile(study, *kind, lateral) else { continue };
            let top = r * (TILE + LABEL) + LABEL;
            for (y, line) in pixels.chunks(TILE).enumerate() {
                let start = (top + y) * width + c * TILE;
                image[start..start + TILE].copy_from_slice(line);
            }
            let text = if c == 0 { format!("{caption}  {label}") } else { label };
            draw_text(&mut image, width, c * TILE + 4, r * (TILE + LABEL) + 7, &text, 1, 255);
        }
    }
    draw_text(&mut image, width, width - 6 * 17, height - 12, "SYNTHETIC DATA", 1, 200);
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| Error::Png(e.to_string()))?;
    writer.write_image_data(&image).map_err(|e| Error::Png(e.to_string()))?;
    writer.finish().map_err(|e| Error::Png(e.to_string()))
}
