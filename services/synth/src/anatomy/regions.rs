//! Posterior elements, sacrum and the structures in front of the spine, in straightened
//! coordinates.

use super::{Anatomy, beyond};
use crate::noise::value_noise;
use crate::tissue::Tissue;

/// `(d1 / r1)^2 + (d2 / r2)^2 <= 1`, evaluated as written, after a cull that skips the
/// divisions for points [`beyond`] either half-axis (which the full test calls outside).
fn in_ellipse(d1: f64, r1: f64, d2: f64, r2: f64) -> bool {
    !beyond(d2, r2) && !beyond(d1, r1) && (d1 / r1).powi(2) + (d2 / r2).powi(2) <= 1.0
}

impl Anatomy {
    fn bone(edge_distance: f64) -> Tissue {
        if edge_distance < 1.3 { Tissue::Cortex } else { Tissue::Marrow }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn posterior_elements(
        &self,
        s: f64,
        u: f64,
        ax: f64,
        canal_front: f64,
        canal_back: f64,
        dip: &impl Fn() -> f64,
        p: [f64; 3],
    ) -> Tissue {
        let pedicle_x0 = self.canal_half_width;
        // Pedicles, foramina and facets, lateral to the canal. Their inner edge
        // `pedicle_x0 - 0.35 * dip - 1.0` moves medially (monotonically, also in floating point)
        // as the dip grows from 0 to max_dip: a point lateral to the edge for dip = 0 is lateral
        // to it for any dip, a point medial to it for max_dip is medial for any dip, and only
        // the band between needs the dip.
        let lateral = ax >= pedicle_x0 - 1.0
            || (ax >= pedicle_x0 - 0.35 * self.max_dip - 1.0 && ax >= pedicle_x0 - 0.35 * dip() - 1.0);
        if ax < pedicle_x0 + 14.0 && lateral {
            if u < canal_front + 14.0 {
                if ax >= pedicle_x0 && ax < pedicle_x0 + 8.5 {
                    for v in self.vertebrae.iter().filter(|v| !v.sacral) {
                        let h = v.s1 - v.s0;
                        let cs = v.s1 - 0.36 * h;
                        let (rs, ru) = (0.27 * h, 7.0);
                        if beyond(s - cs, rs) || beyond(u - (v.half_depth + 7.0), ru) {
                            continue;
                        }
                        let e = ((s - cs) / rs).powi(2) + ((u - (v.half_depth + 7.0)) / ru).powi(2);
                        if e <= 1.0 {
                            return Self::bone((1.0 - e.sqrt()) * rs.min(ru));
                        }
                    }
                }
                if ax >= pedicle_x0 {
                    return Tissue::Fat;
                }
            } else if u < canal_front + 29.0 {
                let joint = self
                    .lumbar_disc_s
                    .iter()
                    .map(|&d| s - (d + 3.0 + 0.3 * (u - canal_front - 14.0)))
                    .fold(f64::INFINITY, |a, b| if b.abs() < a.abs() { b } else { a });
                if joint.abs() < 0.8 {
                    return Tissue::Fluid;
                }
                let edge = (u - canal_front - 14.0).min(canal_front + 29.0 - u);
                return Self::bone(edge);
            }
        }
        // Laminae, ligamentum flavum and spinous processes, behind the canal.
        if ax < pedicle_x0 + 2.0 && u > canal_back && u < canal_back + 7.0 {
            for v in self.vertebrae.iter().filter(|v| !v.sacral) {
                let h = v.s1 - v.s0;
                if s > v.s0 - 6.0 && s < v.s0 + 0.55 * h {
                    let edge = (u - canal_back).min(canal_back + 7.0 - u);
                    return Self::bone(edge);
                }
            }
            if u < canal_back + 3.5 {
                return Tissue::Ligament;
            }
        }
        let sp_start = canal_back + 5.0;
        let sp_end = sp_start + self.spinous_length;
        if ax < 4.5 && u >= sp_start && u < sp_end + 3.0 {
            if u < sp_end {
                let along = u - sp_start;
                for v in self.vertebrae.iter().filter(|v| !v.sacral) {
                    let h = v.s1 - v.s0;
                    let centre = v.s0 + 0.2 * h - 0.3 * along;
                    let half = 8.5 - 0.08 * along;
                    let ds = (s - centre).abs();
                    if ds < half {
                        return Self::bone((half - ds).min(sp_end - u).min(4.5 - ax));
                    }
                }
            }
            return Tissue::Ligament;
        }
        if ax > 4.5 && value_noise(self.texture_seed ^ 0x55, p, 6.0) > 0.72 {
            return Tissue::Fat;
        }
        Tissue::Muscle
    }

    pub(super) fn sacral_posterior(
        &self,
        s: f64,
        u: f64,
        ax: f64,
        canal_front: f64,
        canal_back: f64,
        p: [f64; 3],
    ) -> Tissue {
        if ax < self.canal_half_width && u >= canal_front && u <= canal_back {
            let phase = (ax + 50.0).rem_euclid(3.5) - 1.75;
            return if phase.abs() < 0.5 && u > canal_front + 2.0 { Tissue::Root } else { Tissue::Fat };
        }
        let plate_back = canal_back + 10.0 + 4.0 * (1.0 - (ax / 8.0).min(1.0));
        if ax < 45.0 && u <= plate_back {
            for v in self.vertebrae.iter().filter(|v| v.sacral) {
                let mid = (v.s0 + v.s1) / 2.0;
                let e = ((s - mid) / 5.0).powi(2) + ((ax - 24.0) / 5.0).powi(2);
                if e < 1.0 && u < canal_back {
                    return Tissue::Fat;
                }
            }
            let edge = (plate_back - u).min(45.0 - ax);
            return Self::bone(edge);
        }
        if value_noise(self.texture_seed ^ 0x55, p, 6.0) > 0.72 {
            return Tissue::Fat;
        }
        Tissue::Muscle
    }

    pub(super) fn anterior(&self, s: f64, u: f64, x: f64, half_width: f64, back: f64, p: [f64; 3]) -> Tissue {
        let front = -back;
        let aorta_x = 13.0;
        if s > self.bifurcation_s {
            if in_ellipse(x - aorta_x, 10.0, u - (front - 13.0), 10.0) {
                return Tissue::Vessel;
            }
        } else if s > self.bifurcation_s - 70.0 {
            let spread = 10.0 + (self.bifurcation_s - s) * 0.45;
            for side in [-1.0, 1.0] {
                let cx = side * spread + 4.0;
                if in_ellipse(x - cx, 6.5, u - (front - 12.0), 6.5) {
                    return Tissue::Vessel;
                }
            }
        }
        if s > self.bifurcation_s - 12.0 && in_ellipse(x + 16.0, 12.0, u - (front - 11.0), 8.0) {
            return Tissue::Vessel;
        }
        // Anterior to the vertebral body (u > 0) is muscle whether or not in the psoas: the psoas
        // ellipse is tested only in front of it.
        if u > 0.0 {
            return Tissue::Muscle;
        }
        let l1_top = self.vertebrae[7].s1;
        let growth = ((l1_top - s) / 150.0).clamp(0.0, 1.0) * 12.0;
        let psoas_x = half_width + 8.0 + growth;
        let psoas_rx = 7.0 + growth;
        let psoas_ru = 12.0 + growth * 0.6;
        if in_ellipse(x.abs() - psoas_x, psoas_rx, u + 0.3 * back, psoas_ru) {
            return Tissue::Muscle;
        }
        if u > front - 16.0 && x.abs() < half_width + 40.0 {
            return Tissue::Fat;
        }
        // Bowel: iso-contours of smooth noise look like convoluted loops (dark wall, mixed
        // contents, fluid, some gas), with mesenteric fat between groups of loops.
        if value_noise(self.texture_seed ^ 0xB1, p, 30.0) > 0.45 {
            return Tissue::Fat;
        }
        let loops = value_noise(self.texture_seed ^ 0xB0, p, 13.0);
        if loops.abs() < 0.06 {
            Tissue::Muscle
        } else if loops > 0.4 {
            Tissue::BowelFluid
        } else if loops < -0.55 {
            Tissue::Air
        } else {
            Tissue::Viscera
        }
    }
}
