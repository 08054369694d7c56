//! The outcome model: P(good outcome) as a documented logistic function of image-visible
//! latents at the injected level and side and of clinical variables, and the follow-up scores
//! drawn consistently with the drawn outcome.

use rand::Rng;

use crate::latent::sample_image_latents;
use crate::latent::{Clinical, HerniationSide, ImageLatents, Indication, InjectionSide};

/// Coefficients of the logistic outcome model (see docs/synth.md for the table).
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeModel {
    /// Intercept.
    pub intercept: f64,
    /// Per mm of root compression on the injected side at the injected level.
    pub per_compression_mm: f64,
    /// Moderate central stenosis (grade 2) at the injected level.
    pub stenosis_moderate: f64,
    /// Severe central stenosis (grade 3) at the injected level.
    pub stenosis_severe: f64,
    /// Per Pfirrmann grade above 3 at the injected level.
    pub per_degeneration_grade_above_3: f64,
    /// Modic type 1 (oedema) endplate change at the injected level.
    pub modic_type1: f64,
    /// Symptom duration under 3 months.
    pub short_duration: f64,
    /// Per NRS point of baseline leg pain above 7.
    pub per_baseline_point: f64,
    /// Indication herniated disc (against stenosis).
    pub herniated_disc: f64,
    /// Standard deviation of the unobserved patient factor added to the logit.
    pub unobserved_sd: f64,
}

impl Default for OutcomeModel {
    fn default() -> Self {
        Self {
            intercept: 0.35,
            per_compression_mm: 0.62,
            stenosis_moderate: -1.0,
            stenosis_severe: -2.2,
            per_degeneration_grade_above_3: -0.9,
            modic_type1: -0.9,
            short_duration: 0.88,
            per_baseline_point: 0.12,
            herniated_disc: -2.6,
            unobserved_sd: 0.6,
        }
    }
}

/// How much a herniation at the primary injected level compresses the root on the injected side,
/// mm: the herniation size times 1 (same side), 0.6 (central) or 0.1 (opposite side); for a
/// bilateral injection any herniation counts in full.
pub fn root_compression_mm(clinical: &Clinical, latents: &ImageLatents) -> f64 {
    let finding = latents.levels[clinical.level];
    let factor = match (clinical.side, finding.herniation_side) {
        (InjectionSide::Bilateral, _) => 1.0,
        (_, HerniationSide::Central) => 0.6,
        (InjectionSide::Left, HerniationSide::Left) | (InjectionSide::Right, HerniationSide::Right) => 1.0,
        _ => 0.1,
    };
    finding.herniation_mm * factor
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl OutcomeModel {
    /// The logit before the unobserved factor.
    pub fn linear_predictor(&self, clinical: &Clinical, latents: &ImageLatents) -> f64 {
        let finding = latents.levels[clinical.level];
        let mut eta = self.intercept + self.per_compression_mm * root_compression_mm(clinical, latents);
        eta += match finding.stenosis_grade {
            2 => self.stenosis_moderate,
            3 => self.stenosis_severe,
            _ => 0.0,
        };
        eta += self.per_degeneration_grade_above_3 * f64::from(finding.pfirrmann.saturating_sub(3));
        if finding.modic == 1 {
            eta += self.modic_type1;
        }
        if clinical.short_duration() {
            eta += self.short_duration;
        }
        eta += self.per_baseline_point * (f64::from(clinical.baseline_leg_nrs) - 7.0);
        if clinical.indication == Indication::HerniatedDisc {
            eta += self.herniated_disc;
        }
        eta
    }

    /// The true P(good outcome) given everything visible (image latents and clinical variables):
    /// `E_u[sigmoid(eta + u)]`, `u ~ N(0, unobserved_sd^2)`, integrated numerically.
    pub fn probability(&self, clinical: &Clinical, latents: &ImageLatents) -> f64 {
        let eta = self.linear_predictor(clinical, latents);
        if self.unobserved_sd <= 0.0 {
            return sigmoid(eta);
        }
        // Simpson's rule over +-6 sd, 96 intervals: error far below 1e-6 for this smooth integrand.
        let intervals = 96;
        let half_width = 6.0;
        let step = 2.0 * half_width / f64::from(intervals);
        let mut weighted = 0.0;
        let mut weights = 0.0;
        for i in 0..=intervals {
            let z = -half_width + step * f64::from(i);
            let simpson = if i == 0 || i == intervals {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let density = (-0.5 * z * z).exp();
            weighted += simpson * density * sigmoid(eta + self.unobserved_sd * z);
            weights += simpson * density;
        }
        weighted / weights
    }

    /// The best clinical-only predictor: `E[P(good) | clinical]`, the true probability averaged
    /// over `draws` Monte Carlo draws of the image latents given the clinical variables.
    pub fn clinical_probability(&self, clinical: &Clinical, rng: &mut impl Rng, draws: u32) -> f64 {
        let draws = draws.max(1);
        let total: f64 =
            (0..draws).map(|_| self.probability(clinical, &sample_image_latents(rng, clinical))).sum();
        total / f64::from(draws)
    }
}

/// Follow-up status, as in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpStatus {
    /// Scored inside the window without a confounder: labelable.
    Completed,
    /// No score obtained.
    LostToFollowUp,
    /// Scored but excluded from labels (repeat injection or surgery in the window).
    Excluded,
}

impl FollowUpStatus {
    /// The value written in the cohort table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::LostToFollowUp => "lost_to_follow_up",
            Self::Excluded => "excluded",
        }
    }
}

/// What happened at the 2-month follow-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    /// Follow-up status.
    pub status: FollowUpStatus,
    /// `repeat_injection` or `surgery` when excluded.
    pub exclusion_reason: Option<&'static str>,
    /// Days from injection to the follow-up call (46 to 74), `None` when lost.
    pub day: Option<u32>,
    /// Follow-up leg NRS-11, `None` when lost.
    pub leg_nrs: Option<u8>,
    /// Follow-up back NRS-11, `None` when lost.
    pub back_nrs: Option<u8>,
}

impl FollowUp {
    /// The label: `(baseline - followup) / baseline >= 0.5`, only for completed follow-ups.
    pub fn label(&self, baseline_leg: u8) -> Option<bool> {
        match (self.status, self.leg_nrs) {
            (FollowUpStatus::Completed, Some(leg)) => Some(is_good_outcome(baseline_leg, leg)),
            _ => None,
        }
    }
}

/// The 50% rule of CLINICAL.md, in integers: `followup * 2 <= baseline`.
pub fn is_good_outcome(baseline: u8, followup: u8) -> bool {
    baseline > 0 && u32::from(followup) * 2 <= u32::from(baseline)
}

/// Draws the follow-up scores consistent with the drawn outcome.
pub fn draw_follow_up(rng: &mut impl Rng, clinical: &Clinical, good: bool, lost_rate: f64) -> FollowUp {
    if rng.random::<f64>() < lost_rate {
        return FollowUp {
            status: FollowUpStatus::LostToFollowUp,
            exclusion_reason: None,
            day: None,
            leg_nrs: None,
            back_nrs: None,
        };
    }
    let baseline = clinical.baseline_leg_nrs;
    let half = baseline / 2;
    let leg = if good {
        // 0 ..= floor(b/2), skewed towards larger reductions.
        let u: f64 = rng.random::<f64>() * rng.random::<f64>().sqrt();
        (u * f64::from(half + 1)).floor().min(f64::from(half)) as u8
    } else {
        let high = (baseline + 1).min(10);
        rng.random_range(half + 1..=high)
    };
    debug_assert_eq!(is_good_outcome(baseline, leg), good);
    let back_factor = if good { rng.random_range(0.2..0.75) } else { rng.random_range(0.7..1.15) };
    let back = (f64::from(clinical.baseline_back_nrs) * back_factor).round().clamp(0.0, 10.0) as u8;
    let roll: f64 = rng.random();
    let (status, exclusion_reason) = if roll < 0.03 {
        (FollowUpStatus::Excluded, Some("repeat_injection"))
    } else if roll < 0.045 {
        (FollowUpStatus::Excluded, Some("surgery"))
    } else {
        (FollowUpStatus::Completed, None)
    };
    FollowUp {
        status,
        exclusion_reason,
        day: Some(rng.random_range(50..=70)),
        leg_nrs: Some(leg),
        back_nrs: Some(back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latent::sample_clinical;
    use crate::rng::stream;

    #[test]
    fn fifty_percent_rule_in_integers() {
        assert!(is_good_outcome(7, 3));
        assert!(!is_good_outcome(7, 4));
        assert!(is_good_outcome(8, 4));
        assert!(!is_good_outcome(8, 5));
        assert!(!is_good_outcome(0, 0));
    }

    #[test]
    fn follow_up_scores_agree_with_the_drawn_outcome() {
        for i in 0..500 {
            let mut rng = stream(5, i, "t");
            let clinical = sample_clinical(&mut rng);
            let good = i % 2 == 0;
            let follow = draw_follow_up(&mut rng, &clinical, good, 0.1);
            if let Some(leg) = follow.leg_nrs {
                assert!(leg <= 10);
                assert_eq!(is_good_outcome(clinical.baseline_leg_nrs, leg), good);
                let day = follow.day.unwrap_or(0);
                assert!((46..=74).contains(&day));
            } else {
                assert_eq!(follow.status, FollowUpStatus::LostToFollowUp);
            }
        }
    }

    #[test]
    fn marginal_probability_shrinks_towards_one_half() {
        let model = OutcomeModel::default();
        let mut rng = stream(1, 1, "t");
        let clinical = sample_clinical(&mut rng);
        let latents = sample_image_latents(&mut rng, &clinical);
        let eta = model.linear_predictor(&clinical, &latents);
        let p = model.probability(&clinical, &latents);
        assert!((p - 0.5).abs() <= (sigmoid(eta) - 0.5).abs() + 1e-12);
        let no_noise = OutcomeModel { unobserved_sd: 0.0, ..OutcomeModel::default() };
        assert!((no_noise.probability(&clinical, &latents) - sigmoid(eta)).abs() < 1e-12);
    }
}
