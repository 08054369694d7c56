//! Cheap deterministic 3D value noise for tissue texture and bowel patterns.

fn lattice(seed: u32, x: i32, y: i32, z: i32) -> f64 {
    let mut h = seed
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add((x as u32).wrapping_mul(0x85EB_CA6B))
        .wrapping_add((y as u32).wrapping_mul(0xC2B2_AE35))
        .wrapping_add((z as u32).wrapping_mul(0x27D4_EB2F));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    f64::from(h) / f64::from(u32::MAX) * 2.0 - 1.0
}

fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [-1, 1] with features about `scale` mm wide, smooth (C1) between lattice nodes.
pub fn value_noise(seed: u32, p: [f64; 3], scale: f64) -> f64 {
    let fx = p[0] / scale;
    let fy = p[1] / scale;
    let fz = p[2] / scale;
    let (x0, y0, z0) = (fx.floor(), fy.floor(), fz.floor());
    let (tx, ty, tz) = (smooth(fx - x0), smooth(fy - y0), smooth(fz - z0));
    let (ix, iy, iz) = (x0 as i32, y0 as i32, z0 as i32);
    let mut acc = 0.0;
    for dz in 0..2 {
        let wz = if dz == 0 { 1.0 - tz } else { tz };
        for dy in 0..2 {
            let wy = if dy == 0 { 1.0 - ty } else { ty };
            for dx in 0..2 {
                let wx = if dx == 0 { 1.0 - tx } else { tx };
                acc += wx * wy * wz * lattice(seed, ix + dx, iy + dy, iz + dz);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_continuous() {
        let mut previous = value_noise(1, [0.0, 1.3, -2.0], 4.0);
        for i in 1..400 {
            let v = value_noise(1, [f64::from(i) * 0.05, 1.3, -2.0], 4.0);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - previous).abs() < 0.1);
            previous = v;
        }
    }
}
