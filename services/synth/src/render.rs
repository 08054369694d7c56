//! Rendering: tissue maps with partial volume across the slice, MR contrast, coil bias field,
//! point spread and Rician noise, quantised to 12-bit stored values.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::anatomy::Anatomy;
use crate::exact::round;
use crate::noise::noise_plane;
use crate::protocol::{ImagePlane, plane_normal};
use crate::tissue::{Contrast, TISSUE_COUNT};

/// Samples across the slice thickness per pixel (partial volume).
pub const SLICE_SAMPLES: usize = 3;

/// The tissues under every pixel of one image, shared by series with the same geometry.
#[derive(Debug, Clone)]
pub struct TissueMap {
    /// Rows and columns.
    pub matrix: usize,
    /// `SLICE_SAMPLES` tissue discriminants per pixel, row-major.
    pub tissues: Vec<u8>,
    /// Multiplicative tissue texture per pixel (around 1).
    pub texture: Vec<f32>,
    /// Coil sensitivity and bias per pixel (around 1).
    pub gain: Vec<f32>,
}

/// Classifies every pixel of a plane, sampling `SLICE_SAMPLES` points across the slice
/// thickness with a small in-plane jitter (anti-aliasing).
///
/// Adaptive: the middle sample is classified at every pixel and the front and back samples on
/// a grid of every second pixel; a pixel whose 3 x 3 middle neighbourhood and surrounding grid
/// samples all agree is uniform (all samples that tissue), and only the others, near a tissue
/// boundary, get their own front and back samples.
pub fn tissue_map(
    anatomy: &Anatomy,
    plane: &ImagePlane,
    matrix: usize,
    pixel_mm: f64,
    thickness: f64,
) -> TissueMap {
    let normal = plane_normal(plane);
    let n = matrix;
    let point = |r: f64, c: f64, offset: f64| -> [f64; 3] {
        let (fr, fc) = (r * pixel_mm, c * pixel_mm);
        [
            plane.position[0] + fc * plane.row[0] + fr * plane.col[0] + offset * normal[0],
            plane.position[1] + fc * plane.row[1] + fr * plane.col[1] + offset * normal[1],
            plane.position[2] + fc * plane.row[2] + fr * plane.col[2] + offset * normal[2],
        ]
    };
    let jitter = [(-0.25, 0.2), (0.0, -0.25), (0.25, 0.1)];
    let offset = |k: usize| thickness * ((k as f64 + 0.5) / SLICE_SAMPLES as f64 - 0.5);
    let sample = |r: usize, c: usize, k: usize| {
        let (jr, jc) = jitter[k];
        anatomy.tissue(point(r as f64 + jr, c as f64 + jc, offset(k))) as u8
    };
    let middle: Vec<u8> = (0..n * n).map(|i| sample(i / n, i % n, 1)).collect();
    let g = n / 2 + 1;
    let grid = |k: usize| -> Vec<u8> {
        (0..g * g)
            .map(|i| anatomy.tissue(point((2 * (i / g)) as f64, (2 * (i % g)) as f64, offset(k))) as u8)
            .collect()
    };
    let (front, back) = (grid(0), grid(SLICE_SAMPLES - 1));
    let mut tissues = Vec::with_capacity(n * n * SLICE_SAMPLES);
    for r in 0..n {
        for c in 0..n {
            let t = middle[r * n + c];
            let rows = r.saturating_sub(1)..=(r + 1).min(n - 1);
            let mut uniform = rows.into_iter().all(|rr| {
                middle[rr * n + c.saturating_sub(1)..=rr * n + (c + 1).min(n - 1)].iter().all(|&v| v == t)
            });
            if uniform {
                'grid: for gr in r / 2..=r.div_ceil(2) {
                    for gc in c / 2..=c.div_ceil(2) {
                        if front[gr * g + gc] != t || back[gr * g + gc] != t {
                            uniform = false;
                            break 'grid;
                        }
                    }
                }
            }
            if uniform {
                tissues.extend_from_slice(&[t; SLICE_SAMPLES]);
            } else {
                tissues.push(sample(r, c, 0));
                tissues.push(t);
                tissues.push(sample(r, c, 2));
            }
        }
    }
    // Texture: two octaves of per-image value noise (about 2.5 and 1.1 mm grain).
    let seed = anatomy.texture_seed();
    let key = {
        let centre = point(n as f64 / 2.0, n as f64 / 2.0, 0.0);
        (centre[0] * 7.0 + centre[1] * 3.0 + centre[2] * 5.0).round() as i32
    };
    let coarse = noise_plane(seed, key, n, 2.5 / pixel_mm);
    let fine = noise_plane(seed ^ 0x77, key, n, 1.1 / pixel_mm);
    let texture = coarse.iter().zip(&fine).map(|(&a, &b)| 1.0 + 0.08 * a + 0.05 * b).collect();
    let table_y = anatomy.table_y();
    let mut gain = Vec::with_capacity(n * n);
    for r in 0..n {
        for c in 0..n {
            let centre = point(r as f64, c as f64, 0.0);
            // Posterior spine coil: brighter towards the back; gentle smooth field on top.
            let depth = (table_y - centre[1]).max(0.0);
            let coil = 0.45 + 0.75 * (-depth / 120.0).exp();
            let smooth = 1.0 + 0.08 * (centre[2] / 200.0) - 0.1 * (centre[2] / 200.0).powi(2);
            gain.push((coil * smooth) as f32);
        }
    }
    TissueMap { matrix, tissues, texture, gain }
}

/// How a series turns signal into stored values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantisation {
    /// Stored value of the brightest tissue signal.
    pub full_scale: f64,
    /// Noise standard deviation as a fraction of the brightest tissue signal.
    pub noise_fraction: f64,
}

/// Renders stored 12-bit values of one image from a tissue map.
pub fn render(map: &TissueMap, contrast: &Contrast, quant: Quantisation, rng: &mut impl Rng) -> Vec<u16> {
    let table = contrast.lookup_table();
    let brightest = table
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != crate::tissue::Tissue::Vessel as usize)
        .map(|(_, &v)| v)
        .fold(1e-6, f64::max);
    let scale = quant.full_scale / brightest;
    let n = map.matrix;
    let mut signal = vec![0.0_f64; n * n];
    for (i, value) in signal.iter_mut().enumerate() {
        let samples = &map.tissues[i * SLICE_SAMPLES..(i + 1) * SLICE_SAMPLES];
        let mean: f64 = samples.iter().map(|&t| table[usize::from(t).min(TISSUE_COUNT - 1)]).sum::<f64>()
            / SLICE_SAMPLES as f64;
        *value = mean * f64::from(map.texture[i]) * f64::from(map.gain[i]) * scale;
    }
    let blurred = blur(&signal, n);
    let sigma = quant.noise_fraction * quant.full_scale;
    blurred
        .iter()
        .map(|&v| {
            let re: f64 = v + sigma * rng.sample::<f64, _>(StandardNormal);
            let im: f64 = sigma * rng.sample::<f64, _>(StandardNormal);
            round((re * re + im * im).sqrt()).clamp(0.0, 4095.0) as u16
        })
        .collect()
}

/// Separable 3-tap point spread (k-space apodisation), edges clamped.
fn blur(image: &[f64], n: usize) -> Vec<f64> {
    const K: [f64; 3] = [0.2, 0.6, 0.2];
    let mut tmp = vec![0.0; image.len()];
    for r in 0..n {
        for c in 0..n {
            let left = image[r * n + c.saturating_sub(1)];
            let right = image[r * n + (c + 1).min(n - 1)];
            tmp[r * n + c] = K[0] * left + K[1] * image[r * n + c] + K[2] * right;
        }
    }
    let mut out = vec![0.0; image.len()];
    for r in 0..n {
        for c in 0..n {
            let up = tmp[r.saturating_sub(1) * n + c];
            let down = tmp[(r + 1).min(n - 1) * n + c];
            out[r * n + c] = K[0] * up + K[1] * tmp[r * n + c] + K[2] * down;
        }
    }
    out
}
