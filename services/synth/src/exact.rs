//! `floor` and `round` that give bit for bit the results of `f64::floor` and `f64::round`
//! without the libm calls these compile to on baseline x86-64 (no SSE4.1), for the per-pixel
//! and per-sample paths.
//!
//! Below 2^52 in magnitude `v as i64` truncates exactly towards zero and `v - trunc(v)` (the
//! fractional part) is exact; integers this small add exactly. `copysign` restores the sign
//! of a zero result (`floor(-0.0)`, `round(-0.3)` are -0.0). Larger values (already integers),
//! infinities and NaN take the std functions.

/// Values below this magnitude take the integer path (2^52 is about 4.5e15).
const INTEGER_PATH: f64 = 4.0e15;

/// `v.floor()`: the truncation, one less for negative non-integers.
pub(crate) fn floor(v: f64) -> f64 {
    if v.abs() < INTEGER_PATH {
        let t = v as i64 as f64;
        (if t > v { t - 1.0 } else { t }).copysign(v)
    } else {
        v.floor()
    }
}

/// `v.round()` (half away from zero): the truncation, moved one away from zero when the
/// fractional part is at least one half.
pub(crate) fn round(v: f64) -> f64 {
    if v.abs() < INTEGER_PATH {
        let t = v as i64 as f64;
        let fraction = v - t;
        (if fraction.abs() >= 0.5 { t + 1.0_f64.copysign(v) } else { t }).copysign(v)
    } else {
        v.round()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<f64> {
        let mut values = vec![0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.499_999_999_999_999_94];
        values.extend([-0.499_999_999_999_999_94, 1.0, -1.0, 2.999_999, -2.000_001, 4.0e15, -4.0e15]);
        values.extend([
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]);
        values.extend((-4000..4000).map(|i| f64::from(i) * 0.173_2));
        values.extend((-4000..4000).map(|i| f64::from(i) * 0.25));
        values.extend((0..64).flat_map(|k| {
            let p = 2.0_f64.powi(k);
            [p - 0.5, p + 0.5, -p - 0.5, -p + 0.5, p * 1.000_000_1]
        }));
        values
    }

    #[test]
    fn floor_and_round_match_std_bit_for_bit() {
        for v in values() {
            assert_eq!(floor(v).to_bits(), v.floor().to_bits(), "floor {v}");
            assert_eq!(round(v).to_bits(), v.round().to_bits(), "round {v}");
        }
        assert!(floor(f64::NAN).is_nan() && round(f64::NAN).is_nan());
    }
}
