//! Numeric kernels of the spec: percentiles, Gaussian smoothing, bilinear sampling. Each is
//! defined to match its numpy/scipy counterpart in reference/prep_reference.py.

use ndarray::{Array2, ArrayView2};

use crate::attrs::Rescale;

/// numpy's default (`linear`) percentile of `values` (q in 0..=100); `values` is reordered.
/// Returns `None` for an empty slice or NaN values.
pub fn percentile(values: &mut [f32], q: f64) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let last = values.len() - 1;
    let position = q.clamp(0.0, 100.0) / 100.0 * last as f64;
    // position is within 0..=last
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let below = position.floor() as usize;
    let fraction = position - below as f64;
    let (_, at_below, above) = values.select_nth_unstable_by(below, f32::total_cmp);
    let low = f64::from(*at_below);
    if fraction == 0.0 || above.is_empty() {
        return Some(low);
    }
    let high = f64::from(above.iter().copied().fold(f32::INFINITY, f32::min));
    // numpy's _lerp: a + (b - a) * t, computed from the upper end when t >= 0.5
    let difference = high - low;
    Some(if fraction >= 0.5 { high - difference * (1.0 - fraction) } else { low + difference * fraction })
}

/// The same percentiles as [`percentile`] over the values `f32(stored * slope + intercept)` of
/// `frames`, found by counting stored values instead of sorting: exact because the rescale with
/// a positive slope, and the rounding to f32, never reorder values. `None` when the slope is not
/// positive or the stored range is too wide for a histogram (callers then sort).
pub fn percentiles_of_stored(
    frames: &[ArrayView2<'_, i32>],
    rescale: Rescale,
    quantiles: [f64; 2],
) -> Option<[f64; 2]> {
    const MAX_BINS: i64 = 1 << 20;
    if rescale.slope <= 0.0 {
        return None;
    }
    let mut min = i32::MAX;
    let mut max = i32::MIN;
    let mut count = 0usize;
    for frame in frames {
        for value in frame.iter() {
            min = min.min(*value);
            max = max.max(*value);
        }
        count += frame.len();
    }
    if count == 0 || i64::from(max) - i64::from(min) >= MAX_BINS {
        return None;
    }
    let bins = usize::try_from(i64::from(max) - i64::from(min) + 1).ok()?;
    let mut histogram = vec![0usize; bins];
    for frame in frames {
        for value in frame.iter() {
            // within 0..bins by the min/max scan above
            #[allow(clippy::cast_sign_loss)]
            let bin = (i64::from(*value) - i64::from(min)) as usize;
            histogram[bin] += 1;
        }
    }
    let value_at_rank = |rank: usize| -> f64 {
        let mut seen = 0usize;
        let mut stored = max;
        for (bin, n) in histogram.iter().enumerate() {
            seen += n;
            if seen > rank {
                // bin < bins <= 2^20, so it fits
                #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                {
                    stored = min + bin as i32;
                }
                break;
            }
        }
        // the same rounding as DecodedInstance::frame_rescaled
        #[allow(clippy::cast_possible_truncation)]
        f64::from(rescale.apply(stored) as f32)
    };
    let last = count - 1;
    Some(quantiles.map(|q| {
        let position = q.clamp(0.0, 100.0) / 100.0 * last as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let below = position.floor() as usize;
        let fraction = position - below as f64;
        let low = value_at_rank(below);
        if fraction == 0.0 || below >= last {
            return low;
        }
        let high = value_at_rank(below + 1);
        let difference = high - low;
        if fraction >= 0.5 { high - difference * (1.0 - fraction) } else { low + difference * fraction }
    }))
}

/// scipy's `gaussian_filter1d` weights: radius `int(truncate * sigma + 0.5)`, normalised.
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    // non-negative and small: sigma and truncate come from the spec
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let radius = (truncate * sigma + 0.5) as usize;
    let weights: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let x = i as f64 - radius as f64;
            (-0.5 * x * x / (sigma * sigma)).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// Smooth along rows (each row independently) with edge replication (scipy `mode="nearest"`).
fn smooth_along_rows(image: &mut Array2<f32>, kernel: &[f32]) {
    let radius = kernel.len() / 2;
    let mut line = Vec::new();
    for mut row in image.rows_mut() {
        let Some(values) = row.as_slice_mut() else { continue };
        let len = values.len();
        line.clear();
        line.extend_from_slice(values);
        let last = len - 1;
        let edge = |i: usize| -> f32 {
            kernel
                .iter()
                .enumerate()
                .map(|(k, weight)| weight * line[(i + k).saturating_sub(radius).min(last)])
                .sum()
        };
        if len <= 2 * radius {
            for (i, out) in values.iter_mut().enumerate() {
                *out = edge(i);
            }
            continue;
        }
        for i in (0..radius).chain(len - radius..len) {
            values[i] = edge(i);
        }
        // interior: no clamping, a plain dot product the compiler vectorises
        for (out, window) in values[radius..len - radius].iter_mut().zip(line.windows(kernel.len())) {
            *out = window.iter().zip(kernel).map(|(v, w)| v * w).sum();
        }
    }
}

/// Smooth along columns, a whole row at a time so memory is read in order.
fn smooth_along_columns(image: &mut Array2<f32>, kernel: &[f32]) {
    let radius = kernel.len() / 2;
    let (rows, columns) = image.dim();
    let source = image.clone();
    let last = rows - 1;
    for r in 0..rows {
        let mut out = image.row_mut(r);
        out.fill(0.0);
        for (k, weight) in kernel.iter().enumerate() {
            let from = source.row((r + k).saturating_sub(radius).min(last));
            out.zip_mut_with(&from, |o, v| *o += weight * v);
        }
        debug_assert_eq!(out.len(), columns);
    }
}

/// Separable Gaussian blur with per-axis sigma in pixels (0 leaves that axis alone).
pub fn gaussian_blur(image: &mut Array2<f32>, sigma_rows: f64, sigma_columns: f64, truncate: f64) {
    if image.is_empty() {
        return;
    }
    // weights rounded to f32: the blur runs at the tensor's precision (error ~1e-7)
    #[allow(clippy::cast_possible_truncation)]
    let to_f32 = |kernel: Vec<f64>| kernel.into_iter().map(|w| w as f32).collect::<Vec<f32>>();
    if sigma_rows > 0.0 {
        smooth_along_columns(image, &to_f32(gaussian_kernel(sigma_rows, truncate)));
    }
    if sigma_columns > 0.0 {
        smooth_along_rows(image, &to_f32(gaussian_kernel(sigma_columns, truncate)));
    }
}

/// 1-D Gaussian smoothing of a profile with edge replication.
pub fn smooth_profile(profile: &[f64], sigma: f64, truncate: f64) -> Vec<f64> {
    if sigma <= 0.0 || profile.is_empty() {
        return profile.to_vec();
    }
    let kernel = gaussian_kernel(sigma, truncate);
    let radius = kernel.len() / 2;
    let last = profile.len() - 1;
    (0..profile.len())
        .map(|i| {
            kernel
                .iter()
                .enumerate()
                .map(|(k, weight)| weight * profile[(i + k).saturating_sub(radius).min(last)])
                .sum()
        })
        .collect()
}

/// An affine map from output pixel (i, j) to source pixel coordinates (row, column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineGrid {
    pub row0: f64,
    pub row_di: f64,
    pub row_dj: f64,
    pub column0: f64,
    pub column_di: f64,
    pub column_dj: f64,
}

/// Bilinear sampling with zero outside the image (scipy `map_coordinates(order=1,
/// mode="grid-constant", cval=0)`), into `out` of shape (height, width).
pub fn sample_bilinear(image: ArrayView2<'_, f32>, grid: &AffineGrid, out: &mut [f32], width: usize) {
    let (rows, columns) = image.dim();
    let (rows_i, columns_i) = (rows as i64, columns as i64);
    let pixel = |r: i64, c: i64| -> f64 {
        if r < 0 || c < 0 || r >= rows_i || c >= columns_i {
            0.0
        } else {
            // bounds checked above
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            f64::from(image[[r as usize, c as usize]])
        }
    };
    for (index, value) in out.iter_mut().enumerate() {
        let i = (index / width) as f64;
        let j = (index % width) as f64;
        let row = grid.row0 + i * grid.row_di + j * grid.row_dj;
        let column = grid.column0 + i * grid.column_di + j * grid.column_dj;
        let row_floor = row.floor();
        let column_floor = column.floor();
        let row_fraction = row - row_floor;
        let column_fraction = column - column_floor;
        // far outside coordinates saturate, which still reads as outside
        #[allow(clippy::cast_possible_truncation)]
        let (r, c) = (row_floor as i64, column_floor as i64);
        let top = pixel(r, c) * (1.0 - column_fraction) + pixel(r, c + 1) * column_fraction;
        let bottom = pixel(r + 1, c) * (1.0 - column_fraction) + pixel(r + 1, c + 1) * column_fraction;
        #[allow(clippy::cast_possible_truncation)]
        {
            *value = (top * (1.0 - row_fraction) + bottom * row_fraction) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 99.5, 100]) = [1, 1.75, 2.5, 3.985, 4]
        let expected = [(0.0, 1.0), (25.0, 1.75), (50.0, 2.5), (99.5, 3.985), (100.0, 4.0)];
        for (q, value) in expected {
            let mut values = [4.0f32, 1.0, 3.0, 2.0];
            let got = percentile(&mut values, q).unwrap_or(f64::NAN);
            assert!((got - value).abs() < 1e-12, "q={q}: {got}");
        }
    }

    #[test]
    fn percentiles_counted_from_stored_values_equal_sorted_percentiles() {
        let stored: Vec<i32> = (0..5000).map(|i| ((i * 7919) % 4093) - 200).collect();
        let frame = Array2::from_shape_vec((50, 100), stored).unwrap_or_default();
        let rescale = Rescale { slope: 0.37, intercept: -12.5 };
        #[allow(clippy::cast_possible_truncation)]
        let mut rescaled: Vec<f32> = frame.iter().map(|v| rescale.apply(*v) as f32).collect();
        let counted = percentiles_of_stored(&[frame.view()], rescale, [0.5, 99.5]).unwrap_or_default();
        for (q, got) in [0.5, 99.5].into_iter().zip(counted) {
            assert_eq!(Some(got), percentile(&mut rescaled, q), "q={q}");
        }
        assert!(
            percentiles_of_stored(&[frame.view()], Rescale { slope: -1.0, intercept: 0.0 }, [1.0, 2.0])
                .is_none()
        );
    }

    #[test]
    fn gaussian_kernel_is_normalised_and_symmetric() {
        let kernel = gaussian_kernel(1.0, 4.0);
        assert_eq!(kernel.len(), 9);
        assert!((kernel.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((kernel[0] - kernel[8]).abs() < 1e-15);
    }

    #[test]
    fn bilinear_sampling_interpolates_and_fades_to_zero_outside() {
        let image = Array2::from_shape_vec((2, 2), vec![0.0f32, 1.0, 2.0, 3.0]).unwrap_or_default();
        let grid =
            AffineGrid { row0: 0.5, row_di: 0.0, row_dj: 0.0, column0: 0.5, column_di: 0.0, column_dj: 1.0 };
        let mut out = [0.0f32; 3];
        sample_bilinear(image.view(), &grid, &mut out, 3);
        assert_eq!(out, [1.5, 1.0, 0.0]);
    }
}
