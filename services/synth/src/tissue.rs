//! Tissues, their relaxation properties, and the MR signal equations that turn them into
//! contrast for a given sequence (spin echo, inversion recovery, gradient echo).

/// Number of tissue classes.
pub const TISSUE_COUNT: usize = 23;

/// A tissue class; the anatomy model labels every point with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tissue {
    /// Outside the body.
    Air = 0,
    /// Subcutaneous, epidural and foraminal fat.
    Fat,
    /// Skeletal muscle (paraspinal, psoas).
    Muscle,
    /// Cancellous bone marrow of vertebral bodies and posterior elements.
    Marrow,
    /// Cortical bone, endplates, longitudinal ligaments attached to bone.
    Cortex,
    /// Annulus fibrosus.
    Annulus,
    /// Nucleus pulposus, Pfirrmann grade 1 (healthy, bright on T2).
    Nucleus1,
    /// Nucleus pulposus, Pfirrmann grade 2.
    Nucleus2,
    /// Nucleus pulposus, Pfirrmann grade 3.
    Nucleus3,
    /// Nucleus pulposus, Pfirrmann grade 4.
    Nucleus4,
    /// Nucleus pulposus, Pfirrmann grade 5 (dark, collapsed).
    Nucleus5,
    /// Herniated disc material.
    Herniation,
    /// Cerebrospinal fluid.
    Csf,
    /// Nerve roots (cauda equina, exiting roots).
    Root,
    /// Spinal cord and conus medullaris.
    Cord,
    /// Ligamentum flavum, interspinous and supraspinous ligaments.
    Ligament,
    /// Flowing blood (aorta, vena cava): a flow void on spin echo.
    Vessel,
    /// Bowel wall and solid viscera.
    Viscera,
    /// Bowel contents, fluid.
    BowelFluid,
    /// Modic type 1 endplate change (oedema).
    ModicEdema,
    /// Modic type 2 endplate change (fatty).
    ModicFat,
    /// Skin.
    Skin,
    /// Joint fluid, basivertebral venous plexus.
    Fluid,
}

/// Every tissue, in discriminant order.
pub const ALL_TISSUES: [Tissue; TISSUE_COUNT] = [
    Tissue::Air,
    Tissue::Fat,
    Tissue::Muscle,
    Tissue::Marrow,
    Tissue::Cortex,
    Tissue::Annulus,
    Tissue::Nucleus1,
    Tissue::Nucleus2,
    Tissue::Nucleus3,
    Tissue::Nucleus4,
    Tissue::Nucleus5,
    Tissue::Herniation,
    Tissue::Csf,
    Tissue::Root,
    Tissue::Cord,
    Tissue::Ligament,
    Tissue::Vessel,
    Tissue::Viscera,
    Tissue::BowelFluid,
    Tissue::ModicEdema,
    Tissue::ModicFat,
    Tissue::Skin,
    Tissue::Fluid,
];

/// Relaxation properties at 1.5 T: proton density (relative), T1 and T2 in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relaxation {
    /// Proton density, 0 to 1.
    pub pd: f64,
    /// Longitudinal relaxation time, ms.
    pub t1: f64,
    /// Transverse relaxation time, ms (fat: the longer apparent T2 of fast spin echo).
    pub t2: f64,
}

impl Tissue {
    /// The nucleus tissue of a Pfirrmann grade (clamped to 1..=5).
    pub fn nucleus(grade: u8) -> Self {
        match grade {
            0 | 1 => Self::Nucleus1,
            2 => Self::Nucleus2,
            3 => Self::Nucleus3,
            4 => Self::Nucleus4,
            _ => Self::Nucleus5,
        }
    }

    /// Relaxation properties (literature values rounded; fat uses its FSE apparent T2).
    pub fn relaxation(self) -> Relaxation {
        let (pd, t1, t2) = match self {
            Self::Air => (0.0, 1000.0, 1.0),
            Self::Fat => (0.95, 280.0, 165.0),
            Self::Muscle => (0.75, 900.0, 50.0),
            Self::Marrow => (0.85, 480.0, 85.0),
            Self::Cortex => (0.06, 1000.0, 2.0),
            Self::Annulus => (0.6, 900.0, 45.0),
            Self::Nucleus1 => (0.9, 1300.0, 150.0),
            Self::Nucleus2 => (0.9, 1250.0, 115.0),
            Self::Nucleus3 => (0.85, 1150.0, 80.0),
            Self::Nucleus4 => (0.8, 1050.0, 55.0),
            Self::Nucleus5 => (0.7, 950.0, 38.0),
            Self::Herniation => (0.75, 1100.0, 70.0),
            Self::Csf => (1.0, 4000.0, 1800.0),
            Self::Root => (0.75, 1000.0, 75.0),
            Self::Cord => (0.75, 900.0, 85.0),
            Self::Ligament => (0.3, 700.0, 20.0),
            Self::Vessel => (0.03, 1400.0, 200.0),
            Self::Viscera => (0.8, 900.0, 60.0),
            Self::BowelFluid => (0.95, 2500.0, 600.0),
            Self::ModicEdema => (0.9, 1100.0, 140.0),
            Self::ModicFat => (0.95, 300.0, 150.0),
            Self::Skin => (0.7, 800.0, 35.0),
            Self::Fluid => (0.95, 2500.0, 500.0),
        };
        Relaxation { pd, t1, t2 }
    }
}

/// How a series makes contrast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contrast {
    /// (Fast) spin echo: `PD (1 - exp(-TR/T1)) exp(-TE/T2)`.
    SpinEcho {
        /// Repetition time, ms.
        tr: f64,
        /// Effective echo time, ms.
        te: f64,
    },
    /// Short-tau inversion recovery: `PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)`.
    InversionRecovery {
        /// Repetition time, ms.
        tr: f64,
        /// Echo time, ms.
        te: f64,
        /// Inversion time, ms.
        ti: f64,
    },
    /// Spoiled gradient echo: `PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*)`, T2* = T2/2;
    /// flowing blood is bright (inflow).
    GradientEcho {
        /// Repetition time, ms.
        tr: f64,
        /// Echo time, ms.
        te: f64,
        /// Flip angle, degrees.
        flip_deg: f64,
    },
}

impl Contrast {
    /// Signal of one tissue, before coil sensitivity and noise (arbitrary units, about 0 to 1).
    pub fn signal(&self, tissue: Tissue) -> f64 {
        let r = tissue.relaxation();
        match *self {
            Self::SpinEcho { tr, te } => r.pd * (1.0 - (-tr / r.t1).exp()) * (-te / r.t2).exp(),
            Self::InversionRecovery { tr, te, ti } => {
                let mz = 1.0 - 2.0 * (-ti / r.t1).exp() + (-tr / r.t1).exp();
                r.pd * mz.abs() * (-te / r.t2).exp()
            }
            Self::GradientEcho { tr, te, flip_deg } => {
                if tissue == Tissue::Vessel {
                    return 0.35;
                }
                let alpha = flip_deg.to_radians();
                let e1 = (-tr / r.t1).exp();
                let steady = alpha.sin() * (1.0 - e1) / (1.0 - alpha.cos() * e1);
                // Scaled so that gradient echo images use a similar range as spin echo ones.
                4.0 * r.pd * steady * (-te / (r.t2 * 0.5)).exp()
            }
        }
    }

    /// Signal of every tissue, indexed by the tissue discriminant.
    pub fn lookup_table(&self) -> [f64; TISSUE_COUNT] {
        let mut table = [0.0; TISSUE_COUNT];
        for tissue in ALL_TISSUES {
            table[tissue as usize] = self.signal(tissue);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tissue_table_is_in_discriminant_order() {
        for (index, tissue) in ALL_TISSUES.iter().enumerate() {
            assert_eq!(*tissue as usize, index);
        }
    }

    #[test]
    fn t2_and_t1_contrast_look_like_t2_and_t1() {
        let t2 = Contrast::SpinEcho { tr: 4000.0, te: 100.0 };
        let t1 = Contrast::SpinEcho { tr: 550.0, te: 12.0 };
        // CSF bright on T2 and dark on T1; fat bright on both; healthy nucleus bright on T2.
        assert!(t2.signal(Tissue::Csf) > t2.signal(Tissue::Marrow));
        assert!(t1.signal(Tissue::Csf) < t1.signal(Tissue::Marrow));
        assert!(t1.signal(Tissue::Fat) > t1.signal(Tissue::Muscle));
        assert!(t2.signal(Tissue::Nucleus1) > 3.0 * t2.signal(Tissue::Nucleus5));
        assert!(t2.signal(Tissue::Nucleus1) > t2.signal(Tissue::Annulus));
    }

    #[test]
    fn stir_suppresses_fat_and_shows_oedema() {
        let stir = Contrast::InversionRecovery { tr: 4000.0, te: 50.0, ti: 170.0 };
        assert!(stir.signal(Tissue::Fat) < 0.3 * stir.signal(Tissue::Csf));
        assert!(stir.signal(Tissue::ModicEdema) > 2.0 * stir.signal(Tissue::Fat));
    }
}
