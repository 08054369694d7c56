//! The parametric lumbar spine (T10 to the sacrum) in patient coordinates, built from one
//! patient's image latents, and the tissue at any point.
//!
//! Patient coordinates are DICOM LPS millimetres (x to the patient's left, y posterior, z head).
//! The spine lies in the sagittal plane `x = x_mid`, bent by lordosis along a circular arc; points
//! are mapped to straightened coordinates `(s, u, x)`: `s` along the spine (up), `u` posterior
//! from the vertebral body centre line, `x` lateral from the midline. Every structure is a simple
//! shape in those coordinates, so a point is classified in well under a microsecond.

use std::cell::OnceCell;

use rand::Rng;

use crate::latent::{HerniationSide, ImageLatents};
use crate::tissue::Tissue;

#[derive(Debug, Clone)]
struct Vertebra {
    s0: f64,
    s1: f64,
    half_width: f64,
    half_depth: f64,
    sacral: bool,
    modic_below: u8,
    modic_above: u8,
}

#[derive(Debug, Clone)]
struct Disc {
    s0: f64,
    s1: f64,
    half_width: f64,
    half_depth: f64,
    nucleus: Tissue,
    grade: u8,
    fused: bool,
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    Vertebra(usize),
    Disc(usize),
}

#[derive(Debug, Clone)]
struct Herniation {
    s: f64,
    u: f64,
    x: f64,
    rs: f64,
    ru: f64,
    rx: f64,
}

#[derive(Debug, Clone)]
struct RootPath {
    a: [f64; 3],
    b: [f64; 3],
    radius: f64,
}

impl RootPath {
    /// False when `(u, ax)` is more than `radius + 1` mm outside the segment's `u` or `x` range:
    /// the distance to the segment is then at least `radius + 1` mm and its computed value
    /// (rounding errors of order 1e-13 mm) cannot fall below `radius`.
    fn near(&self, u: f64, ax: f64) -> bool {
        let reach = self.radius + 1.0;
        u >= self.a[1].min(self.b[1]) - reach
            && u <= self.a[1].max(self.b[1]) + reach
            && ax >= self.a[2].min(self.b[2]) - reach
            && ax <= self.a[2].max(self.b[2]) + reach
    }
}

mod body;
mod regions;

/// A circular piece of the spine's centre line (centre posterior to the spine), in the
/// sagittal (y, z) plane.
#[derive(Debug, Clone, Copy)]
struct Arc {
    centre: [f64; 2],
    radius: f64,
    /// `s` at the junction.
    s_junction: f64,
    /// Tangent angle at the junction (0 = straight up, positive = leaning posteriorly).
    phi_junction: f64,
}

impl Arc {
    fn to_spine(self, y: f64, z: f64) -> (f64, f64) {
        let vy = y - self.centre[0];
        let vz = z - self.centre[1];
        let r = (vy * vy + vz * vz).sqrt();
        let phi = vz.atan2(-vy);
        (self.s_junction + self.radius * (phi - self.phi_junction), self.radius - r)
    }

    fn angle_at(self, s: f64) -> f64 {
        self.phi_junction + (s - self.s_junction) / self.radius
    }

    fn to_patient(self, s: f64, u: f64) -> (f64, f64) {
        let phi = self.angle_at(s);
        let r = self.radius - u;
        (self.centre[0] - r * phi.cos(), self.centre[1] + r * phi.sin())
    }
}

/// One patient's anatomy.
#[derive(Debug, Clone)]
pub struct Anatomy {
    x_mid: f64,
    /// Three pieces of the centre line: straight above L1, the lumbar arc down to the L5-S1
    /// disc, and a gentler sacral arc below it.
    arcs: [Arc; 3],
    /// Junction points (y, z) and upward tangents between pieces 0/1 and 1/2.
    junctions: [([f64; 2], [f64; 2]); 2],
    vertebrae: Vec<Vertebra>,
    discs: Vec<Disc>,
    segments: Vec<(f64, Segment)>,
    /// `segment_lut[j]`: how many segments start at or below `segments[0].0 + j` mm (a
    /// starting point for [`Anatomy::segment_at`], which replaces a binary search).
    segment_lut: Vec<u8>,
    /// Centre of each lumbar disc along `s` (L1-L2 .. L5-S1).
    lumbar_disc_s: [f64; 5],
    stenosis: Vec<(f64, f64)>,
    /// The largest stenosis depth: [`Anatomy::stenosis_dip`] is at most this anywhere (each
    /// term is `depth * exp(-t^2)` with `exp(-t^2) <= 1`).
    max_dip: f64,
    herniations: Vec<Herniation>,
    roots: Vec<RootPath>,
    canal_ap: f64,
    canal_half_width: f64,
    wall: body::BodyWall,
    conus_s: f64,
    sac_end_s: f64,
    bifurcation_s: f64,
    spinous_length: f64,
    texture_seed: u32,
}

/// Straightened spine coordinates of a point.
#[derive(Debug, Clone, Copy)]
pub struct SpinePoint {
    /// Along the spine, mm (0 at the top of S1, up positive).
    pub s: f64,
    /// Posterior offset from the vertebral body centre line, mm.
    pub u: f64,
    /// Lateral offset from the midline, mm (patient's left positive).
    pub x: f64,
}

/// Relative margin of the culling tests ([`beyond`]).
const CULL_MARGIN: f64 = 1.0 + 1e-9;

/// True when `|d| > r * CULL_MARGIN` (with `r > 0`): then `d / r` rounds to more than 1 in
/// floating point (the exact quotient exceeds `1 + 1e-9 - 2^-53`), so its square and any sum of
/// it with non-negative terms is more than 1. A point for which this holds on one axis is outside
/// every ellipse or superellipse test of the form `(d / r)^2 + ... <= 1` (or `(d / r)^4 + ...`)
/// with that half-axis, or any smaller one: the tests it skips would have said "outside".
fn beyond(d: f64, r: f64) -> bool {
    d.abs() > r * CULL_MARGIN
}

/// The table of [`Anatomy::segment_at`]: entry `j` counts the segments whose start is at or
/// below `origin + j` (origin = the first start), for every millimetre up to the last start.
fn segment_lut(segments: &[(f64, Segment)]) -> Vec<u8> {
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return Vec::new() };
    let span = (last.0 - first.0).max(0.0) as usize + 1;
    (0..=span)
        .map(|j| {
            let mark = first.0 + j as f64;
            segments.iter().filter(|&&(start, _)| start <= mark).count().min(usize::from(u8::MAX)) as u8
        })
        .collect()
}

fn superellipse(x: f64, a: f64, u: f64, b: f64) -> f64 {
    let qx = (x / a) * (x / a);
    let qu = (u / b) * (u / b);
    qx * qx + qu * qu
}

fn segment_distance(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
    let t = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0);
    let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// Body heights, depths and widths (mm) from T10 down to S3, and healthy disc heights above
/// each of them (the disc between that vertebra and the one above).
const VERTEBRA_TABLE: [(&str, f64, f64, f64, f64); 11] = [
    ("S3", 16.0, 18.0, 34.0, 1.5),
    ("S2", 21.0, 24.0, 44.0, 1.5),
    ("S1", 27.0, 33.0, 54.0, 10.0),
    ("L5", 26.0, 34.5, 52.0, 11.0),
    ("L4", 27.0, 34.0, 50.0, 10.0),
    ("L3", 27.0, 33.0, 48.0, 9.0),
    ("L2", 26.0, 32.0, 46.0, 8.0),
    ("L1", 25.0, 30.0, 44.0, 7.0),
    ("T12", 24.0, 29.0, 42.0, 6.0),
    ("T11", 23.0, 28.0, 40.0, 5.5),
    ("T10", 22.0, 27.0, 38.0, 0.0),
];

impl Anatomy {
    /// Builds the anatomy of a patient from the image latents and a patient random stream.
    pub fn new(latents: &ImageLatents, rng: &mut impl Rng) -> Self {
        let size: f64 = rng.random_range(0.92..1.08);
        let mut vertebrae = Vec::new();
        let mut discs = Vec::new();
        let mut segments = Vec::new();
        // S3 bottom sits below S1's top by the S3+S2+S1 heights and two fused discs.
        let mut s = -(VERTEBRA_TABLE[0].1 + VERTEBRA_TABLE[1].1 + VERTEBRA_TABLE[2].1 + 3.0) * size;
        let mut lumbar_disc_s = [0.0; 5];
        for (index, &(name, height, depth, width, disc_above)) in VERTEBRA_TABLE.iter().enumerate() {
            let sacral = name.starts_with('S');
            // Lumbar disc index of the disc above this vertebra: S1 -> L5-S1 (4) ... L2 -> L1-L2 (0).
            let lumbar_disc = match name {
                "S1" => Some(4),
                "L5" => Some(3),
                "L4" => Some(2),
                "L3" => Some(1),
                "L2" => Some(0),
                _ => None,
            };
            let modic_above = lumbar_disc.map_or(0, |d| latents.levels[d].modic);
            let modic_below = match name {
                "L5" => latents.levels[4].modic,
                "L4" => latents.levels[3].modic,
                "L3" => latents.levels[2].modic,
                "L2" => latents.levels[1].modic,
                "L1" => latents.levels[0].modic,
                _ => 0,
            };
            let vertebra = Vertebra {
                s0: s,
                s1: s + height * size,
                half_width: width * size / 2.0,
                half_depth: depth * size / 2.0,
                sacral,
                modic_below,
                modic_above,
            };
            segments.push((vertebra.s0, Segment::Vertebra(vertebrae.len())));
            s = vertebra.s1;
            let (vw, vd) = (vertebra.half_width, vertebra.half_depth);
            vertebrae.push(vertebra);
            if disc_above <= 0.0 {
                break;
            }
            let (grade, loss) = match lumbar_disc {
                Some(d) => (latents.levels[d].pfirrmann, latents.levels[d].height_loss),
                None => (1, 0.0),
            };
            let height_mm = disc_above * size * (1.0 - loss);
            let next =
                VERTEBRA_TABLE.get(index + 1).map_or((vw, vd), |n| (n.3 * size / 2.0, n.2 * size / 2.0));
            let disc = Disc {
                s0: s,
                s1: s + height_mm,
                half_width: (vw + next.0) / 2.0 * 1.02,
                half_depth: (vd + next.1) / 2.0,
                nucleus: Tissue::nucleus(grade),
                grade,
                fused: sacral && name != "S1",
            };
            if let Some(d) = lumbar_disc {
                lumbar_disc_s[d] = (disc.s0 + disc.s1) / 2.0;
            }
            segments.push((disc.s0, Segment::Disc(discs.len())));
            s = disc.s1;
            discs.push(disc);
        }
        let s_top_l1 = vertebrae[7].s1;
        // The upper lumbar spine (above the middle of L3) is straight and leans a little
        // posteriorly going up; the lordosis concentrates at L3-S1 (the lumbar arc, radius at least
        // 140 mm); below the L5-S1 disc the sacral arc tilts the sacrum further posteriorly.
        let lordosis = latents.lordosis_deg.to_radians().max(0.35);
        let s_upper = (vertebrae[5].s0 + vertebrae[5].s1) / 2.0;
        let s_junction = lumbar_disc_s[4] + 3.0;
        let lumbar_bend = (0.6 * lordosis).min((s_upper - s_junction) / 140.0);
        let upper_radius = (s_upper - s_junction) / lumbar_bend;
        let lower_radius = rng.random_range(150.0..220.0);
        let phi_top: f64 = 0.2 * lordosis + rng.random_range(-3.0_f64..3.0).to_radians();
        let phi_junction = phi_top - lumbar_bend;
        let posterior = |phi: f64| [phi.cos(), -phi.sin()];
        let x_mid = rng.random_range(-5.0..5.0);
        let make = |junction: [f64; 2], radius: f64, s_junction: f64, phi_junction: f64| Arc {
            centre: [
                junction[0] + radius * posterior(phi_junction)[0],
                junction[1] + radius * posterior(phi_junction)[1],
            ],
            radius,
            s_junction,
            phi_junction,
        };
        // Put the L3-L4 disc near the isocentre, a little anterior.
        let probe = make([0.0, 0.0], upper_radius, s_junction, phi_junction);
        let (py, pz) = probe.to_patient(lumbar_disc_s[2], 0.0);
        let junction = [rng.random_range(-22.0..-8.0) - py, rng.random_range(-15.0..15.0) - pz];
        let lumbar = make(junction, upper_radius, s_junction, phi_junction);
        let sacral = make(junction, lower_radius, s_junction, phi_junction);
        let (ty, tz) = lumbar.to_patient(s_upper, 0.0);
        let top = make([ty, tz], 1.0e5, s_upper, phi_top);
        let arcs = [top, lumbar, sacral];
        let junctions = [
            ([ty, tz], [phi_top.sin(), phi_top.cos()]),
            (junction, [phi_junction.sin(), phi_junction.cos()]),
        ];
        let canal_ap = rng.random_range(15.0..19.0);
        let canal_half_width = rng.random_range(10.5..12.5);
        let mut stenosis = Vec::new();
        let mut herniations = Vec::new();
        for (index, finding) in latents.levels.iter().enumerate() {
            let centre = lumbar_disc_s[index];
            if finding.stenosis_grade > 0 {
                let depth = [0.0, 3.5, 6.5, 9.5][usize::from(finding.stenosis_grade.min(3))];
                stenosis.push((centre, depth * canal_ap / 17.0));
            }
            if finding.herniation_mm > 0.5 {
                let size_mm = finding.herniation_mm;
                let x = match finding.herniation_side {
                    HerniationSide::Left => rng.random_range(8.0..11.0),
                    HerniationSide::Right => -rng.random_range(8.0..11.0),
                    HerniationSide::Central => 0.0,
                };
                let disc_back = discs
                    .iter()
                    .find(|d| ((d.s0 + d.s1) / 2.0 - centre).abs() < 1e-6)
                    .map_or(16.0, |d| d.half_depth);
                herniations.push(Herniation {
                    s: centre - rng.random_range(0.0..0.4) * size_mm,
                    u: disc_back + size_mm / 2.0 - 0.5,
                    x,
                    rs: 2.5 + size_mm * 0.55,
                    ru: size_mm / 2.0 + 1.0,
                    rx: 5.5 + size_mm * 0.35,
                });
            }
        }
        let mut anatomy = Self {
            x_mid,
            arcs,
            junctions,
            vertebrae,
            discs,
            segment_lut: segment_lut(&segments),
            segments,
            lumbar_disc_s,
            max_dip: stenosis.iter().map(|&(_, depth)| depth).fold(0.0, f64::max),
            stenosis,
            herniations,
            roots: Vec::new(),
            canal_ap,
            canal_half_width,
            wall: body::BodyWall::default(),
            conus_s: s_top_l1 - rng.random_range(5.0..30.0),
            sac_end_s: -rng.random_range(28.0..42.0),
            bifurcation_s: lumbar_disc_s[2] - rng.random_range(5.0..30.0),
            spinous_length: rng.random_range(30.0..38.0),
            texture_seed: rng.random(),
        };
        anatomy.roots = anatomy.exiting_roots();
        // Body habitus: subcutaneous fat, abdominal depth and width grow together.
        let habitus: f64 = rng.random_range(0.0..1.0);
        let l3_l4_depth = anatomy
            .discs
            .iter()
            .find(|d| ((d.s0 + d.s1) / 2.0 - lumbar_disc_s[2]).abs() < 1e-6)
            .map_or(17.0, |d| d.half_depth);
        let fat_back = 9.0 + 28.0 * habitus + rng.random_range(-2.0..3.0);
        let back_depth = l3_l4_depth
            + 1.0
            + canal_ap
            + 5.0
            + anatomy.spinous_length
            + rng.random_range(2.0..6.0)
            + fat_back
            + 1.8;
        let wall = body::BodyWall {
            back_depth,
            front_depth: 135.0 + 90.0 * habitus + rng.random_range(-10.0..10.0),
            half_width: 135.0 + 50.0 * habitus,
            fat_back,
            fat_front: 10.0 + 35.0 * habitus + rng.random_range(-3.0..3.0),
            ..body::BodyWall::default()
        };
        let bottom = anatomy.vertebrae[0].s0 - 60.0;
        let top = anatomy.vertebrae[anatomy.vertebrae.len() - 1].s1 + 200.0;
        let line: Vec<(f64, f64)> = (0..=((top - bottom) as usize))
            .map(|i| {
                let p = anatomy.to_patient(SpinePoint { s: bottom + i as f64, u: 0.0, x: 0.0 });
                (p[1], p[2])
            })
            .collect();
        let r = anatomy.to_patient(SpinePoint { s: lumbar_disc_s[2], u: 0.0, x: 0.0 });
        anatomy.wall = wall.with_centre_line(&line, (r[1], r[2]));
        anatomy
    }

    fn exiting_roots(&self) -> Vec<RootPath> {
        // Lumbar vertebrae L1..L5 (indices 7..3) and S1: each root leaves under its pedicle.
        let mut roots = Vec::new();
        for vertebra in &self.vertebrae[2..8] {
            let height = vertebra.s1 - vertebra.s0;
            let pedicle_bottom = vertebra.s1 - 0.36 * height - 0.27 * height;
            let front = vertebra.half_depth + 1.0;
            let start_x = self.canal_half_width - 2.5;
            roots.push(RootPath {
                a: [pedicle_bottom + 4.0, front + 4.5, start_x],
                b: [pedicle_bottom - 7.0, front + 5.0, self.canal_half_width + 20.0],
                radius: if vertebra.sacral { 2.0 } else { 2.5 },
            });
        }
        roots
    }

    /// Maps a patient-coordinate point to straightened spine coordinates.
    pub fn to_spine(&self, p: [f64; 3]) -> SpinePoint {
        let along = |k: usize| {
            let (j, t) = self.junctions[k];
            (p[1] - j[0]) * t[0] + (p[2] - j[1]) * t[1]
        };
        let arc = if along(0) >= 0.0 {
            &self.arcs[0]
        } else if along(1) >= 0.0 {
            &self.arcs[1]
        } else {
            &self.arcs[2]
        };
        let (s, u) = arc.to_spine(p[1], p[2]);
        SpinePoint { s, u, x: p[0] - self.x_mid }
    }

    fn arc_for(&self, s: f64) -> &Arc {
        if s >= self.arcs[0].s_junction {
            &self.arcs[0]
        } else if s >= self.arcs[1].s_junction {
            &self.arcs[1]
        } else {
            &self.arcs[2]
        }
    }

    /// Maps straightened coordinates back to patient coordinates.
    pub fn to_patient(&self, q: SpinePoint) -> [f64; 3] {
        let (y, z) = self.arc_for(q.s).to_patient(q.s, q.u);
        [q.x + self.x_mid, y, z]
    }

    /// Unit vector along the spine (upwards) at height `s`, in patient coordinates.
    pub fn spine_tangent(&self, s: f64) -> [f64; 3] {
        let phi = self.arc_for(s).angle_at(s);
        [0.0, phi.sin(), phi.cos()]
    }

    /// Centre of lumbar disc `index` (0 = L1-L2 .. 4 = L5-S1) along the spine.
    pub fn disc_s(&self, index: usize) -> f64 {
        self.lumbar_disc_s[index.min(4)]
    }

    /// Midline x of the spine in patient coordinates.
    pub fn x_mid(&self) -> f64 {
        self.x_mid
    }

    /// y of the posterior skin (the table the patient lies on) at the L3-L4 disc.
    pub fn table_y(&self) -> f64 {
        let r = self.to_patient(SpinePoint { s: self.lumbar_disc_s[2], u: 0.0, x: 0.0 });
        self.wall.back_y(r[2])
    }

    /// Seed of the tissue texture.
    pub fn texture_seed(&self) -> u32 {
        self.texture_seed
    }

    /// The segment (vertebra or disc) containing height `s`. The index is the number of
    /// segments starting at or below `s` (what `partition_point` gave): the table gives the
    /// count at the millimetre mark at least 1 mm below `s` (so rounding in `s - origin` cannot
    /// put it above `s`), which is at most the answer, and the scan adds the few (sorted) starts
    /// between that mark and `s`.
    fn segment_at(&self, s: f64) -> Option<Segment> {
        let f = s - self.segments.first().map_or(0.0, |first| first.0);
        let mut index = if f >= 1.0 {
            let j = ((f as usize) - 1).min(self.segment_lut.len().saturating_sub(1));
            self.segment_lut.get(j).map_or(0, |&count| usize::from(count))
        } else {
            0
        };
        while index < self.segments.len() && self.segments[index].0 <= s {
            index += 1;
        }
        if index == 0 {
            return None;
        }
        let segment = self.segments[index - 1].1;
        let end = match segment {
            Segment::Vertebra(i) => self.vertebrae[i].s1,
            Segment::Disc(i) => self.discs[i].s1,
        };
        (s <= end).then_some(segment)
    }

    fn stenosis_dip(&self, s: f64) -> f64 {
        self.stenosis
            .iter()
            .map(|&(centre, depth)| {
                let t = (s - centre) / 7.0;
                depth * (-t * t).exp()
            })
            .fold(0.0, f64::max)
    }

    /// The tissue at a point in patient coordinates.
    pub fn tissue(&self, p: [f64; 3]) -> Tissue {
        if let Some(t) = self.wall.tissue(p[0] - self.x_mid, p[1], p[2]) {
            return t;
        }
        let q = self.to_spine(p);
        self.tissue_spine(q, p)
    }

    fn tissue_spine(&self, q: SpinePoint, p: [f64; 3]) -> Tissue {
        let SpinePoint { s, u, x } = q;
        let ax = x.abs();
        let segment = self.segment_at(s);
        let (half_width, back) = match segment {
            Some(Segment::Vertebra(i)) => {
                let v = &self.vertebrae[i];
                if let Some(t) = self.vertebral_body(v, s, u, x) {
                    return t;
                }
                (v.half_width, v.half_depth)
            }
            Some(Segment::Disc(i)) => {
                let d = &self.discs[i];
                let t = (s - d.s0) / (d.s1 - d.s0);
                let bulge = 0.4 + 0.5 * f64::from(d.grade.saturating_sub(1));
                let post = d.half_depth + bulge * (std::f64::consts::PI * t).sin();
                let depth = if u > 0.0 { post } else { d.half_depth };
                if superellipse(x, d.half_width, u, depth) <= 1.0 {
                    return self.disc_tissue(d, s, u, x);
                }
                (d.half_width, post)
            }
            None => (20.0, 14.0),
        };
        for h in &self.herniations {
            // Culling: beyond a half-axis on one axis is outside the ellipsoid.
            if beyond(s - h.s, h.rs) || beyond(u - h.u, h.ru) || beyond(x - h.x, h.rx) {
                continue;
            }
            let e = ((s - h.s) / h.rs).powi(2) + ((u - h.u) / h.ru).powi(2) + ((x - h.x) / h.rx).powi(2);
            if e <= 1.0 {
                return Tissue::Herniation;
            }
        }
        let sacral_taper = if s < 0.0 { (1.0 + s / 150.0).max(0.55) } else { 1.0 };
        let canal_front = back + 1.0;
        let canal_normal = self.canal_ap * sacral_taper;
        let canal_back_normal = canal_front + canal_normal;
        // The stenosis dip (a sum of `exp`s) is computed only when a test needs it. Every test
        // that uses it first checks a bound that holds for any dip in [0, max_dip] (floating-point
        // subtraction is monotonic): `canal_half <= canal_half_width`, `canal_back <=
        // canal_back_normal` and `canal_back >= canal_back_normal - max_dip`; the tests read the
        // same values as before, in an order that cannot change their outcome.
        let dip_cell = OnceCell::new();
        let dip = || *dip_cell.get_or_init(|| self.stenosis_dip(s));
        let canal_back = || canal_back_normal - dip();
        let canal_half = || self.canal_half_width - 0.35 * dip();
        let in_canal = |front: f64| {
            u >= front
                && ax < self.canal_half_width
                && u <= canal_back_normal
                && ax < canal_half()
                && u <= canal_back()
        };
        if in_canal(canal_front - 0.3) {
            if u < canal_front + 0.6 {
                return Tissue::Ligament;
            }
            if let Some(t) = self.sac(s, u, x, canal_front, canal_back(), canal_half(), dip()) {
                return t;
            }
        }
        let root_point = [s, u, ax];
        for root in &self.roots {
            if s < root.b[0] - 4.0 || s > root.a[0] + 4.0 || !root.near(u, ax) {
                continue;
            }
            if segment_distance(root_point, root.a, root.b) < root.radius {
                return Tissue::Root;
            }
        }
        if in_canal(canal_front) {
            return Tissue::Fat;
        }
        if ax < self.canal_half_width + 1.0
            && u <= canal_back_normal
            && u > canal_back_normal - self.max_dip
            && u > canal_back()
        {
            return Tissue::Ligament;
        }
        if u > back {
            if s < 0.0 {
                return self.sacral_posterior(s, u, ax, canal_front, canal_back_normal, p);
            }
            return self.posterior_elements(s, u, ax, canal_front, canal_back_normal, &dip, p);
        }
        self.anterior(s, u, x, half_width, back, p)
    }

    /// The body's tissue, or `None` outside it. Called only with `v.s0 <= s <= v.s1`, where
    /// `sin(PI * t) >= 0`, so the waisted half-axes are at most `v.half_width` and
    /// `v.half_depth`: a point [`beyond`] them is outside the superellipse, and the `sin` is
    /// skipped for it.
    fn vertebral_body(&self, v: &Vertebra, s: f64, u: f64, x: f64) -> Option<Tissue> {
        if beyond(x, v.half_width) || beyond(u, v.half_depth) {
            return None;
        }
        let height = v.s1 - v.s0;
        let t = (s - v.s0) / height;
        let waist = 1.0 - 0.06 * (std::f64::consts::PI * t).sin();
        let half_width = v.half_width * waist;
        let depth = if u < 0.0 { v.half_depth * waist } else { v.half_depth };
        let q = superellipse(x, half_width, u, depth);
        if q > 1.0 {
            return None;
        }
        let rim = (1.0 - 1.5 / depth.min(half_width)).powi(4);
        if q > rim || s - v.s0 < 1.0 || v.s1 - s < 1.0 {
            return Some(Tissue::Cortex);
        }
        let modic_depth = 7.0 * (1.0 - (x / half_width).powi(2)).max(0.0);
        let modic = if s - v.s0 < 1.0 + modic_depth {
            v.modic_below
        } else if v.s1 - s < 1.0 + modic_depth {
            v.modic_above
        } else {
            0
        };
        match modic {
            1 => return Some(Tissue::ModicEdema),
            2 => return Some(Tissue::ModicFat),
            _ => {}
        }
        if !v.sacral && u > depth - 7.0 && u < depth - 1.8 && x.abs() < 3.0 && (t - 0.5).abs() < 0.07 {
            return Some(Tissue::Fluid);
        }
        Some(Tissue::Marrow)
    }

    fn disc_tissue(&self, d: &Disc, s: f64, u: f64, x: f64) -> Tissue {
        if d.fused {
            return Tissue::Annulus;
        }
        let height = d.s1 - d.s0;
        let mid = (d.s0 + d.s1) / 2.0;
        let nucleus_u = u - 0.08 * d.half_depth;
        let e = (x / (0.55 * d.half_width)).powi(2)
            + (nucleus_u / (0.5 * d.half_depth)).powi(2)
            + ((s - mid) / (0.36 * height)).powi(2);
        if e > 1.0 {
            return Tissue::Annulus;
        }
        if d.grade >= 2 && (s - mid).abs() < 0.45 && nucleus_u.abs() < 0.3 * d.half_depth {
            return Tissue::Annulus;
        }
        d.nucleus
    }

    #[allow(clippy::too_many_arguments)]
    fn sac(
        &self,
        s: f64,
        u: f64,
        x: f64,
        canal_front: f64,
        canal_back: f64,
        canal_half: f64,
        dip: f64,
    ) -> Option<Tissue> {
        if s < self.sac_end_s {
            return None;
        }
        let front = canal_front + 0.6;
        let dorsal_fat = (0.2 * (canal_back - canal_front)).min(3.0);
        let back = canal_back - dorsal_fat;
        let centre = (front + back) / 2.0;
        let ru = (back - front) / 2.0;
        let taper = ((s - self.sac_end_s) / 15.0).clamp(0.3, 1.0).sqrt();
        let rx = (canal_half - 1.5).min(9.5) * (1.0 - 0.03 * dip) * taper;
        let e = (x / rx).powi(2) + ((u - centre) / ru).powi(2);
        if e > 1.0 || ru <= 0.0 {
            return None;
        }
        if s > self.conus_s {
            let cord_r = 4.2 * ((s - self.conus_s) / 18.0).clamp(0.0, 1.0).sqrt();
            if (x / cord_r).powi(2) + ((u - centre) / (0.8 * cord_r)).powi(2) <= 1.0 {
                return Some(Tissue::Cord);
            }
        }
        if s < self.conus_s + 25.0 {
            if ru < 3.5 {
                // Crowded roots in a severely narrowed sac.
                let phase = (x + 50.0).rem_euclid(1.6) - 0.8;
                return Some(if phase.abs() < 0.55 { Tissue::Root } else { Tissue::Csf });
            }
            for (layer, offset) in [(0.2, 0.0), (0.55, 1.1)] {
                let du = u - (centre + layer * ru);
                let phase = (x + 50.0 + offset).rem_euclid(2.2) - 1.1;
                if x.abs() < rx * 0.85 && phase * phase + du * du < 0.36 {
                    return Some(Tissue::Root);
                }
            }
        }
        Some(Tissue::Csf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latent::{sample_clinical, sample_image_latents};
    use crate::rng::stream;

    fn anatomy(index: u32) -> Anatomy {
        let mut rng = stream(11, index, "latent");
        let clinical = sample_clinical(&mut rng);
        let latents = sample_image_latents(&mut rng, &clinical);
        Anatomy::new(&latents, &mut rng)
    }

    #[test]
    fn straightened_coordinates_round_trip() {
        let a = anatomy(1);
        for p in [[1.0, -20.0, 30.0], [-12.0, 40.0, -80.0], [3.0, 0.0, 0.0]] {
            let back = a.to_patient(a.to_spine(p));
            for k in 0..3 {
                assert!((back[k] - p[k]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn midline_shows_body_disc_csf_and_fat_behind_the_spine() {
        let a = anatomy(2);
        let disc = a.disc_s(2);
        let centre = |s: f64, u: f64| a.tissue(a.to_patient(SpinePoint { s, u, x: 0.0 }));
        assert!(matches!(
            centre(disc, 0.0),
            Tissue::Nucleus1
                | Tissue::Nucleus2
                | Tissue::Nucleus3
                | Tissue::Nucleus4
                | Tissue::Nucleus5
                | Tissue::Annulus
        ));
        assert_eq!(centre(disc + 20.0, -5.0), Tissue::Marrow);
        assert_eq!(centre(disc, 300.0), Tissue::Air);
        // Somewhere behind the L2 body, in the midline, there is CSF.
        let l2_mid = a.disc_s(1) - 13.0;
        let has_csf = (0..60).any(|i| centre(l2_mid, 10.0 + f64::from(i) * 0.5) == Tissue::Csf);
        assert!(has_csf);
    }
}
