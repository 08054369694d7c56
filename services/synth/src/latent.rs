//! Clinical variables and image-visible latent variables of one synthetic patient, and how they
//! are drawn.
//!
//! Clinical variables are drawn first; the image latents are then drawn conditionally on them
//! ([`sample_image_latents`]), which is what lets [`crate::outcome`] marginalise the image
//! latents out to get the best clinical-only predictor.

use rand::Rng;
use rand_distr::{Distribution, Normal};

/// The five lumbar disc levels, top to bottom.
pub const DISC_LEVELS: [&str; 5] = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"];

/// Why the patient is injected (the paper's two groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indication {
    /// Herniated lumbar disc.
    HerniatedDisc,
    /// Lumbar spinal stenosis.
    Stenosis,
}

impl Indication {
    /// The value written in the cohort table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HerniatedDisc => "herniated_disc",
            Self::Stenosis => "stenosis",
        }
    }
}

/// Side of the injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionSide {
    /// Patient's left.
    Left,
    /// Patient's right.
    Right,
    /// Both foramina.
    Bilateral,
}

impl InjectionSide {
    /// The value written in the cohort table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
            Self::Bilateral => "bilateral",
        }
    }
}

/// Side of a posterior disc herniation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HerniationSide {
    /// Patient's left (paracentral or foraminal).
    Left,
    /// Midline.
    Central,
    /// Patient's right.
    Right,
}

impl HerniationSide {
    /// The value written in the cohort table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Central => "central",
            Self::Right => "right",
        }
    }
}

/// Clinical variables known before the injection.
#[derive(Debug, Clone, PartialEq)]
pub struct Clinical {
    /// Indication for the injection.
    pub indication: Indication,
    /// Age in whole years at the MRI.
    pub age_years: u32,
    /// `true` for female.
    pub female: bool,
    /// Duration of radicular pain before the injection, weeks.
    pub symptom_weeks: u32,
    /// Pre-treatment leg pain NRS-11 (4 to 10).
    pub baseline_leg_nrs: u8,
    /// Pre-treatment back pain NRS-11 (0 to 10).
    pub baseline_back_nrs: u8,
    /// Primary injected disc level, an index into [`DISC_LEVELS`].
    pub level: usize,
    /// A second injected level (adjacent), if any.
    pub second_level: Option<usize>,
    /// Injected side.
    pub side: InjectionSide,
}

impl Clinical {
    /// Symptom duration under 3 months (13 weeks), the OR 2.42 predictor of Kaufmann 2013.
    pub fn short_duration(&self) -> bool {
        self.symptom_weeks < 13
    }

    /// Injected levels as written in the cohort table, e.g. `L4-L5;L5-S1`.
    pub fn levels_label(&self) -> String {
        let mut levels = vec![self.level];
        levels.extend(self.second_level);
        levels.sort_unstable();
        levels.iter().map(|&l| DISC_LEVELS[l]).collect::<Vec<_>>().join(";")
    }
}

/// Image-visible findings at one disc level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelFindings {
    /// Posterior herniation size beyond the disc margin, mm (0 = none).
    pub herniation_mm: f64,
    /// Side of the herniation (meaningless when the size is 0).
    pub herniation_side: HerniationSide,
    /// Central canal stenosis grade 0 (none) to 3 (severe).
    pub stenosis_grade: u8,
    /// Pfirrmann disc degeneration grade 1 (healthy) to 5.
    pub pfirrmann: u8,
    /// Modic endplate change type 0 (none), 1 (oedema) or 2 (fatty).
    pub modic: u8,
    /// Fractional disc height loss, 0 to 0.6.
    pub height_loss: f64,
}

/// Image latents: global anatomy and per-level findings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLatents {
    /// Findings for each level of [`DISC_LEVELS`].
    pub levels: [LevelFindings; 5],
    /// Lumbar lordosis L1-S1, degrees.
    pub lordosis_deg: f64,
}

fn normal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    // The parameters are constants, always valid.
    Normal::new(mean, sd).map_or(mean, |d| d.sample(rng))
}

fn pick<T: Copy>(rng: &mut impl Rng, choices: &[(T, f64)]) -> T {
    let total: f64 = choices.iter().map(|c| c.1).sum();
    let mut x = rng.random::<f64>() * total;
    for &(value, weight) in choices {
        if x < weight {
            return value;
        }
        x -= weight;
    }
    choices[choices.len() - 1].0
}

/// Draws the clinical variables.
pub fn sample_clinical(rng: &mut impl Rng) -> Clinical {
    let indication = if rng.random::<f64>() < 0.6 { Indication::HerniatedDisc } else { Indication::Stenosis };
    let (age, level, side) = match indication {
        Indication::HerniatedDisc => (
            normal(rng, 46.0, 12.0).clamp(20.0, 85.0),
            pick(rng, &[(1, 0.05), (2, 0.10), (3, 0.45), (4, 0.40)]),
            pick(
                rng,
                &[
                    (InjectionSide::Left, 0.46),
                    (InjectionSide::Right, 0.46),
                    (InjectionSide::Bilateral, 0.08),
                ],
            ),
        ),
        Indication::Stenosis => (
            normal(rng, 66.0, 9.0).clamp(40.0, 90.0),
            pick(rng, &[(2, 0.25), (3, 0.55), (4, 0.20)]),
            pick(
                rng,
                &[
                    (InjectionSide::Left, 0.40),
                    (InjectionSide::Right, 0.40),
                    (InjectionSide::Bilateral, 0.20),
                ],
            ),
        ),
    };
    let second_level =
        if rng.random::<f64>() < 0.15 { Some(if level == 4 { 3 } else { level + 1 }) } else { None };
    let symptom_weeks = normal(rng, 16_f64.ln(), 0.9).exp().clamp(1.0, 260.0).round() as u32;
    let leg = pick(rng, &[(4_u8, 0.08), (5, 0.14), (6, 0.20), (7, 0.22), (8, 0.19), (9, 0.11), (10, 0.06)]);
    let back = (f64::from(leg) * 0.6 + normal(rng, 0.5, 1.8)).round().clamp(0.0, 10.0) as u8;
    Clinical {
        indication,
        age_years: age.round() as u32,
        female: rng.random::<f64>() < 0.48,
        symptom_weeks,
        baseline_leg_nrs: leg,
        baseline_back_nrs: back,
        level,
        second_level,
        side,
    }
}

fn herniation_side_for(rng: &mut impl Rng, side: InjectionSide) -> HerniationSide {
    match side {
        InjectionSide::Left => pick(
            rng,
            &[(HerniationSide::Left, 0.70), (HerniationSide::Central, 0.15), (HerniationSide::Right, 0.15)],
        ),
        InjectionSide::Right => pick(
            rng,
            &[(HerniationSide::Right, 0.70), (HerniationSide::Central, 0.15), (HerniationSide::Left, 0.15)],
        ),
        InjectionSide::Bilateral => pick(
            rng,
            &[(HerniationSide::Central, 0.5), (HerniationSide::Left, 0.25), (HerniationSide::Right, 0.25)],
        ),
    }
}

/// Draws the image latents given the clinical variables.
pub fn sample_image_latents(rng: &mut impl Rng, clinical: &Clinical) -> ImageLatents {
    let age = f64::from(clinical.age_years);
    let mut levels = [LevelFindings {
        herniation_mm: 0.0,
        herniation_side: HerniationSide::Central,
        stenosis_grade: 0,
        pfirrmann: 1,
        modic: 0,
        height_loss: 0.0,
    }; 5];
    for (index, finding) in levels.iter_mut().enumerate() {
        let symptomatic = index == clinical.level || Some(index) == clinical.second_level;
        let lower = if index >= 3 { 0.4 } else { 0.0 };
        let sympt = if symptomatic { 0.6 } else { 0.0 };
        let grade = 1.2 + (age - 20.0) / 22.0 + lower + sympt + normal(rng, 0.0, 0.8);
        finding.pfirrmann = grade.round().clamp(1.0, 5.0) as u8;
        let g = f64::from(finding.pfirrmann);
        finding.height_loss = ((g - 2.0) * 0.12 + normal(rng, 0.0, 0.05)).clamp(0.0, 0.6);
        let modic_p = match finding.pfirrmann {
            1 | 2 => 0.0,
            3 => 0.06,
            4 => 0.25,
            _ => 0.45,
        };
        if rng.random::<f64>() < modic_p {
            finding.modic = if rng.random::<f64>() < 0.4 { 1 } else { 2 };
        }
        let (herniation_p, stenosis) = match (clinical.indication, index == clinical.level) {
            (Indication::HerniatedDisc, true) => (1.0, pick(rng, &[(0, 0.8), (1, 0.15), (2, 0.05)])),
            (Indication::Stenosis, true) => (0.35, pick(rng, &[(1, 0.25), (2, 0.40), (3, 0.35)])),
            (Indication::Stenosis, false) if index >= 2 => {
                (0.10, pick(rng, &[(0, 0.55), (1, 0.30), (2, 0.15)]))
            }
            _ => (0.10, pick(rng, &[(0_u8, 0.93), (1, 0.07)])),
        };
        finding.stenosis_grade = stenosis;
        if rng.random::<f64>() < herniation_p {
            let main = index == clinical.level && clinical.indication == Indication::HerniatedDisc;
            finding.herniation_mm = if main {
                normal(rng, 6.0, 2.2).clamp(2.0, 11.0)
            } else {
                normal(rng, 2.5, 0.8).clamp(1.0, 4.0)
            };
            finding.herniation_side = if index == clinical.level {
                herniation_side_for(rng, clinical.side)
            } else {
                pick(
                    rng,
                    &[
                        (HerniationSide::Left, 0.35),
                        (HerniationSide::Central, 0.3),
                        (HerniationSide::Right, 0.35),
                    ],
                )
            };
        }
    }
    ImageLatents { levels, lordosis_deg: normal(rng, 48.0, 9.0).clamp(20.0, 75.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn injected_level_of_a_herniation_patient_has_a_herniation() {
        for i in 0..200 {
            let mut rng = stream(3, i, "latent");
            let clinical = sample_clinical(&mut rng);
            let latents = sample_image_latents(&mut rng, &clinical);
            assert!((4..=10).contains(&clinical.baseline_leg_nrs));
            if clinical.indication == Indication::HerniatedDisc {
                assert!(latents.levels[clinical.level].herniation_mm >= 2.0);
            } else {
                assert!(latents.levels[clinical.level].stenosis_grade >= 1);
            }
        }
    }
}
