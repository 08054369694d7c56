//! The body wall in patient coordinates (skin, subcutaneous fat, thoracolumbar fascia, anterior
//! abdominal wall): it follows the spine's lordosis only partly, as a real back does, instead of
//! bending with the straightened spine coordinates.

use crate::tissue::Tissue;

/// Sampling step of the centre-line table along z, mm.
const STEP: f64 = 2.0;

/// Shape of the body wall of one patient.
#[derive(Debug, Clone, Default)]
pub(super) struct BodyWall {
    /// y of the spine centre line (u = 0) every `STEP` mm of z from `z0`.
    pub(super) centre_y: Vec<f64>,
    pub(super) z0: f64,
    /// Centre line y and z at the L3-L4 disc.
    pub(super) y_ref: f64,
    pub(super) z_ref: f64,
    /// Posterior skin behind the centre line at L3-L4, mm.
    pub(super) back_depth: f64,
    /// Anterior skin in front of the centre line at L3-L4, mm.
    pub(super) front_depth: f64,
    pub(super) half_width: f64,
    pub(super) fat_back: f64,
    pub(super) fat_front: f64,
    /// Posterior and anterior skin y every `STEP` mm of z from `z0` (filled by
    /// `with_centre_line`).
    pub(super) skin: Vec<(f64, f64)>,
}

impl BodyWall {
    /// Tabulates the centre line from points `(y, z)` ordered by increasing z.
    pub(super) fn with_centre_line(mut self, line: &[(f64, f64)], reference: (f64, f64)) -> Self {
        let (Some(first), Some(last)) = (line.first(), line.last()) else { return self };
        self.z0 = first.1;
        let count = ((last.1 - first.1) / STEP).ceil().max(1.0) as usize + 1;
        let mut table = Vec::with_capacity(count);
        let mut k = 0;
        for i in 0..count {
            let z = self.z0 + i as f64 * STEP;
            while k + 2 < line.len() && line[k + 1].1 < z {
                k += 1;
            }
            let (a, b) = (line[k], line[(k + 1).min(line.len() - 1)]);
            let t = if b.1 > a.1 { ((z - a.1) / (b.1 - a.1)).clamp(0.0, 1.0) } else { 0.0 };
            table.push(a.0 + t * (b.0 - a.0));
        }
        self.centre_y = table;
        (self.y_ref, self.z_ref) = reference;
        self.skin = (0..count)
            .map(|i| {
                let z = self.z0 + i as f64 * STEP;
                (self.back_y(z), self.front_y(z))
            })
            .collect();
        self
    }

    fn skin_at(&self, z: f64) -> (f64, f64) {
        let f = ((z - self.z0) / STEP).max(0.0);
        let i = f as usize;
        match (self.skin.get(i), self.skin.get(i + 1)) {
            (Some(a), Some(b)) => {
                let t = f - i as f64;
                (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
            }
            (Some(&a), None) => a,
            _ => self.skin.last().copied().unwrap_or((self.back_y(z), self.front_y(z))),
        }
    }

    fn centre_y(&self, z: f64) -> f64 {
        let f = ((z - self.z0) / STEP).max(0.0);
        let i = f as usize;
        match (self.centre_y.get(i), self.centre_y.get(i + 1)) {
            (Some(&a), Some(&b)) => a + (f - i as f64) * (b - a),
            (Some(&a), None) => a,
            _ => self.centre_y.last().copied().unwrap_or(self.y_ref),
        }
    }

    /// y of the posterior skin in the midline at height z (the back follows half the spine's
    /// sagittal curve and keeps at least 45 mm over the sacrum).
    pub(super) fn back_y(&self, z: f64) -> f64 {
        let yc = self.centre_y(z);
        (self.y_ref + self.back_depth + 0.5 * (yc - self.y_ref)).max(yc + 45.0)
    }

    fn front_y(&self, z: f64) -> f64 {
        let t = (z - self.z_ref + 30.0) / 130.0;
        self.y_ref - self.front_depth - 18.0 * (-t * t).exp()
    }

    /// The body wall tissue at a point (`x` lateral from the spine's midline), or `None` inside
    /// the wall (the spine, the paraspinal muscles and the abdomen decide).
    pub(super) fn tissue(&self, x: f64, y: f64, z: f64) -> Option<Tissue> {
        let lat = x / self.half_width;
        if lat.abs() >= 1.0 {
            return Some(Tissue::Air);
        }
        let (back, front) = self.skin_at(z);
        let mid = 0.5 * (back + front);
        let half = 0.5 * (back - front);
        let l2 = lat * lat;
        let k = (1.0 - l2 * l2).sqrt().sqrt();
        let d_back = mid + half * k - y;
        let d_front = y - (mid - half * k);
        if d_back < 0.0 || d_front < 0.0 {
            return Some(Tissue::Air);
        }
        let d_side = self.half_width - x.abs();
        if d_back.min(d_front).min(d_side) < 1.8 {
            return Some(Tissue::Skin);
        }
        if d_back < self.fat_back + 1.8 || d_side < 0.5 * (self.fat_back + self.fat_front) {
            return Some(Tissue::Fat);
        }
        if d_back < self.fat_back + 2.8 {
            return Some(Tissue::Ligament);
        }
        if d_front < self.fat_front + 1.8 {
            return Some(Tissue::Fat);
        }
        if d_front < self.fat_front + 11.0 && x.abs() < 70.0 {
            return Some(Tissue::Muscle);
        }
        None
    }
}
