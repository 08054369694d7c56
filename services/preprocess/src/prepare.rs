//! A decoded series to the model tensor under a [`PrepSpec`]: order, select the central slices,
//! normalise, find the spine, anti-alias, resample and crop. See docs/preprocessing.md.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attrs::{FrameGeometry, Rescale};
use crate::decode::DecodedInstance;
use crate::error::{Error, Result};
use crate::geometry::{self, GeometryWarning, SeriesGeometry, dot};
use crate::resample::{self, AffineGrid};
use crate::spec::PrepSpec;

/// The model input for one series, `[S, H, W]` float32 in C order, with its provenance.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesTensor {
    /// Spec version the tensor was made with (also in `meta`).
    pub spec_version: &'static str,
    /// `[slices, height, width]`.
    pub shape: [usize; 3],
    #[serde(skip)]
    pub data: Vec<f32>,
    pub meta: TensorMeta,
}

/// What a reader of the tensor needs to know about how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMeta {
    /// Number of slices in the series and the index of the first one used (ordered right to left).
    pub series_slices: usize,
    pub first_slice: usize,
    /// Source ImageOrientationPatient of the central slice (row cosines, then column cosines).
    pub orientation: [f64; 6],
    /// Unit slice axis (toward patient left).
    pub slice_axis: [f64; 3],
    /// Source frame size [rows, columns].
    pub source_shape: [usize; 2],
    /// Positions of the used slices along the left-right slice axis (mm).
    pub slice_positions_mm: Vec<f64>,
    pub slice_spacing_mm: f64,
    pub obliquity_deg: f64,
    /// Source pixel spacing [between rows, between columns] (mm).
    pub source_pixel_spacing_mm: [f64; 2],
    /// Anti-aliasing sigma applied [rows, columns] in source pixels.
    pub antialias_sigma_px: [f64; 2],
    /// Crop centre in the central slice's source pixels [row, column] and in patient mm (LPS).
    pub centre_px: [f64; 2],
    pub centre_patient_mm: [f64; 3],
    /// Rescaled intensities mapped to 0 and 1.
    pub intensity_low: f64,
    pub intensity_high: f64,
    pub warnings: Vec<GeometryWarning>,
}

/// Content hash of a series: SHA-256 over the sorted SHA-256 digests of its instance files.
/// Order-independent, so the same instances in any order share one cache entry.
pub fn series_content_hash<'a>(instances: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut digests: Vec<[u8; 32]> =
        instances.into_iter().map(|bytes| Sha256::digest(bytes).into()).collect();
    digests.sort_unstable();
    let mut hasher = Sha256::new();
    for digest in &digests {
        hasher.update(digest);
    }
    hex::encode(hasher.finalize())
}

struct FrameRef<'a> {
    instance: &'a DecodedInstance,
    frame: usize,
    geometry: FrameGeometry,
}

fn collect_frames(instances: &[DecodedInstance]) -> Result<Vec<FrameRef<'_>>> {
    let mut frames = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        let geometry = instance.geometry.as_ref().map_err(|reason| {
            Error::Geometry(format!("instance {index} has no usable plane geometry: {reason}"))
        })?;
        for (frame, frame_geometry) in geometry.iter().enumerate() {
            frames.push(FrameRef { instance, frame, geometry: *frame_geometry });
        }
    }
    let first = frames.first().ok_or_else(|| Error::Geometry("series has no slices".into()))?;
    let dims = (first.instance.rows(), first.instance.columns());
    if frames.iter().any(|f| (f.instance.rows(), f.instance.columns()) != dims) {
        return Err(Error::Geometry("slices differ in rows or columns".into()));
    }
    Ok(frames)
}

fn spec_error(spec: &PrepSpec, reason: String) -> Error {
    Error::Spec { spec: spec.version, reason }
}

/// Map rescaled intensities of all `frames` together to [0, 1] between the spec's percentiles;
/// returns the intensities mapped to 0 and 1.
pub fn normalise(frames: &mut [Array2<f32>], spec: &PrepSpec) -> Result<(f64, f64)> {
    let mut all: Vec<f32> = frames.iter().flat_map(|frame| frame.iter().copied()).collect();
    let low = resample::percentile(&mut all, spec.lower_percentile);
    let high = resample::percentile(&mut all, spec.upper_percentile);
    let (Some(low), Some(high)) = (low, high) else {
        return Err(spec_error(spec, "no finite intensities".into()));
    };
    apply_normalisation(frames, low, high, spec)?;
    Ok((low, high))
}

fn apply_normalisation(frames: &mut [Array2<f32>], low: f64, high: f64, spec: &PrepSpec) -> Result<()> {
    if high - low <= 1e-6 * high.abs().max(1.0) {
        return Err(spec_error(spec, format!("blank series: percentiles {low} and {high} coincide")));
    }
    let scale = 1.0 / (high - low);
    for frame in frames.iter_mut() {
        // f64 arithmetic rounded once, as the reference computes in float64
        #[allow(clippy::cast_possible_truncation)]
        frame.mapv_inplace(|value| ((f64::from(value) - low) * scale).clamp(0.0, 1.0) as f32);
    }
    Ok(())
}

/// [`normalise`], with the percentiles counted from stored values when every frame shares one
/// rescale (the usual case; identical result, no sort).
fn normalise_chosen(
    frames: &[FrameRef<'_>],
    images: &mut [Array2<f32>],
    spec: &PrepSpec,
) -> Result<(f64, f64)> {
    let rescales: Vec<Rescale> = frames
        .iter()
        .map(|f| f.instance.rescale.get(f.frame).copied().unwrap_or(Rescale::IDENTITY))
        .collect();
    let shared = rescales.first().copied().filter(|first| rescales.iter().all(|r| r == first));
    let counted = match shared {
        Some(rescale) => {
            let stored =
                frames.iter().map(|f| f.instance.frame_stored(f.frame)).collect::<Result<Vec<_>>>()?;
            resample::percentiles_of_stored(&stored, rescale, [spec.lower_percentile, spec.upper_percentile])
        }
        None => None,
    };
    match counted {
        Some([low, high]) => {
            apply_normalisation(images, low, high, spec)?;
            Ok((low, high))
        }
        None => normalise(images, spec),
    }
}

/// Locate the spinal canal on the central slice: the column (along the anteroposterior axis)
/// whose median intensity along the craniocaudal axis is highest after smoothing, searched
/// in the central part of the image. Returns [row, column] in source pixels.
fn locate_spine(image: &Array2<f32>, geometry: &FrameGeometry, spec: &PrepSpec) -> [f64; 2] {
    let (rows, columns) = image.dim();
    // The craniocaudal axis is the image axis closer to patient z.
    let vertical_is_rows = geometry.column_direction[2].abs() >= geometry.row_direction[2].abs();
    let (along, across, across_spacing) = if vertical_is_rows {
        (rows, columns, geometry.pixel_spacing[1])
    } else {
        (columns, rows, geometry.pixel_spacing[0])
    };
    let mut line = Vec::with_capacity(along);
    let profile: Vec<f64> = (0..across)
        .map(|k| {
            line.clear();
            if vertical_is_rows {
                line.extend(image.column(k).iter().map(|v| f64::from(*v)));
            } else {
                line.extend(image.row(k).iter().map(|v| f64::from(*v)));
            }
            median(&mut line)
        })
        .collect();
    let smoothed = resample::smooth_profile(
        &profile,
        spec.spine_profile_sigma_mm / across_spacing,
        spec.gaussian_truncate,
    );
    // margin excluded on each side: floor((1 - fraction) / 2 * n)
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let margin = ((1.0 - spec.spine_search_fraction) / 2.0 * across as f64).floor() as usize;
    let search_end = across.saturating_sub(margin).max(margin + 1).min(across);
    let mut best = margin.min(across.saturating_sub(1));
    for k in margin..search_end {
        if smoothed[k] > smoothed[best] {
            best = k;
        }
    }
    let centre_along = (along as f64 - 1.0) / 2.0;
    if vertical_is_rows { [centre_along, best as f64] } else { [best as f64, centre_along] }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let len = values.len();
    let middle = len / 2;
    let (below, at, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    let upper = *at;
    if len.is_multiple_of(2) {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    } else {
        upper
    }
}

fn unit(v: [f64; 3]) -> Option<[f64; 3]> {
    let norm = dot(v, v).sqrt();
    (norm > 1e-6).then(|| v.map(|c| c / norm))
}

/// In-plane output axes: down = toward patient inferior, right = toward patient posterior.
fn output_axes(geometry: &FrameGeometry, normal: [f64; 3]) -> Result<([f64; 3], [f64; 3])> {
    let project = |v: [f64; 3], off: [f64; 3]| {
        let along = dot(v, off);
        [v[0] - along * off[0], v[1] - along * off[1], v[2] - along * off[2]]
    };
    let inferior = unit(project([0.0, 0.0, -1.0], normal))
        .ok_or_else(|| Error::Geometry(format!("plane {geometry:?} contains no craniocaudal direction")))?;
    let posterior = unit(project(project([0.0, 1.0, 0.0], normal), inferior)).ok_or_else(|| {
        Error::Geometry(format!("plane {geometry:?} contains no anteroposterior direction"))
    })?;
    Ok((inferior, posterior))
}

fn sampling_grid(
    frame: &FrameGeometry,
    centre: [f64; 3],
    axes: ([f64; 3], [f64; 3]),
    spec: &PrepSpec,
) -> AffineGrid {
    let offset =
        [centre[0] - frame.position[0], centre[1] - frame.position[1], centre[2] - frame.position[2]];
    let (down, right) = axes;
    let [row_spacing, column_spacing] = frame.pixel_spacing;
    let t = spec.spacing_mm;
    let half_h = (spec.height as f64 - 1.0) / 2.0;
    let half_w = (spec.width as f64 - 1.0) / 2.0;
    let column_di = t * dot(down, frame.row_direction) / column_spacing;
    let column_dj = t * dot(right, frame.row_direction) / column_spacing;
    let row_di = t * dot(down, frame.column_direction) / row_spacing;
    let row_dj = t * dot(right, frame.column_direction) / row_spacing;
    AffineGrid {
        row0: dot(offset, frame.column_direction) / row_spacing - half_h * row_di - half_w * row_dj,
        row_di,
        row_dj,
        column0: dot(offset, frame.row_direction) / column_spacing - half_h * column_di - half_w * column_dj,
        column_di,
        column_dj,
    }
}

/// Make the tensor of one series (its instances in any order) under `spec`.
pub fn prepare_series(instances: &[DecodedInstance], spec: &PrepSpec) -> Result<SeriesTensor> {
    let frames = collect_frames(instances)?;
    let geometries: Vec<FrameGeometry> = frames.iter().map(|f| f.geometry).collect();
    let series: SeriesGeometry = geometry::order_slices(&geometries)?;
    let count = series.slices.len();
    if count < spec.slices {
        return Err(spec_error(spec, format!("{count} slices, at least {} are needed", spec.slices)));
    }
    let first_slice = (count - spec.slices) / 2;
    let chosen = &series.slices[first_slice..first_slice + spec.slices];
    let mut images = chosen
        .iter()
        .map(|placed| {
            let frame = &frames[placed.source_index];
            frame.instance.frame_rescaled(frame.frame)
        })
        .collect::<Result<Vec<_>>>()?;
    let chosen_frames: Vec<FrameRef<'_>> = chosen
        .iter()
        .map(|placed| {
            let frame = &frames[placed.source_index];
            FrameRef { instance: frame.instance, frame: frame.frame, geometry: frame.geometry }
        })
        .collect();
    let (intensity_low, intensity_high) = normalise_chosen(&chosen_frames, &mut images, spec)?;

    let central = spec.slices / 2;
    let central_geometry = frames[chosen[central].source_index].geometry;
    let centre_px = locate_spine(&images[central], &central_geometry, spec);
    let centre_patient_mm: [f64; 3] = std::array::from_fn(|axis| {
        central_geometry.position[axis]
            + central_geometry.row_direction[axis] * central_geometry.pixel_spacing[1] * centre_px[1]
            + central_geometry.column_direction[axis] * central_geometry.pixel_spacing[0] * centre_px[0]
    });
    let normal = geometry::cross(central_geometry.row_direction, central_geometry.column_direction);
    let axes = output_axes(&central_geometry, normal)?;
    let sigma = [
        spec.antialias_sigma(central_geometry.pixel_spacing[0]),
        spec.antialias_sigma(central_geometry.pixel_spacing[1]),
    ];
    let plane_len = spec.height * spec.width;
    let mut data = vec![0.0f32; spec.tensor_len()];
    for ((placed, image), out) in chosen.iter().zip(images.iter_mut()).zip(data.chunks_exact_mut(plane_len)) {
        resample::gaussian_blur(image, sigma[0], sigma[1], spec.gaussian_truncate);
        let grid = sampling_grid(&frames[placed.source_index].geometry, centre_patient_mm, axes, spec);
        resample::sample_bilinear(image.view(), &grid, out, spec.width);
    }
    Ok(SeriesTensor {
        spec_version: spec.version,
        shape: [spec.slices, spec.height, spec.width],
        data,
        meta: TensorMeta {
            series_slices: count,
            first_slice,
            orientation: [
                central_geometry.row_direction[0],
                central_geometry.row_direction[1],
                central_geometry.row_direction[2],
                central_geometry.column_direction[0],
                central_geometry.column_direction[1],
                central_geometry.column_direction[2],
            ],
            slice_axis: series.axis,
            source_shape: [images[central].nrows(), images[central].ncols()],
            slice_positions_mm: chosen.iter().map(|p| p.position_mm).collect(),
            slice_spacing_mm: series.spacing_mm,
            obliquity_deg: series.obliquity_deg,
            source_pixel_spacing_mm: central_geometry.pixel_spacing,
            antialias_sigma_px: sigma,
            centre_px,
            centre_patient_mm,
            intensity_low,
            intensity_high,
            warnings: series.warnings,
        },
    })
}
