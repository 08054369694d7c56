//! Discrimination and calibration figures: AUC with a DeLong 95% CI, Brier score, calibration
//! bins, sensitivity and specificity at a threshold.
//!
//! AUC is the tie-aware Mann-Whitney statistic computed from midranks, which equals the area under
//! the trapezoidal ROC curve that scikit-learn's `roc_auc_score` integrates. Its variance is
//! DeLong's (DeLong, DeLong & Clarke-Pearson, Biometrics 1988) in the midrank form of Sun & Xu
//! (IEEE SPL 2014); the 95% interval is the Wald interval `AUC +- 1.96 * SE`, clipped to [0, 1].
//! DeLong was preferred over Hanley-McNeil because it needs no assumption about the score
//! distributions and gives the covariance of two models scored on the same episodes.

use serde::Serialize;

/// The 0.975 quantile of the standard normal distribution.
const Z_975: f64 = 1.959_963_984_540_054;

/// Midranks (1-based, ties share their mean rank) of `values`.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        // Positions start..=end (0-based) hold equal values: each gets the mean 1-based rank.
        let shared_rank = (start + end) as f64 / 2.0 + 1.0;
        for &index in &order[start..=end] {
            ranks[index] = shared_rank;
        }
        start = end + 1;
    }
    ranks
}

/// DeLong placement values of one model: per positive, the fraction of negatives it outranks
/// (ties count one half); per negative, the fraction of positives that outrank it.
struct Placements {
    positives: Vec<f64>,
    negatives: Vec<f64>,
}

impl Placements {
    /// Returns `None` unless there is at least one positive and one negative.
    fn new(scores: &[f64], labels: &[bool]) -> Option<Self> {
        debug_assert_eq!(scores.len(), labels.len());
        let positive_scores: Vec<f64> =
            scores.iter().zip(labels).filter(|(_, l)| **l).map(|(s, _)| *s).collect();
        let negative_scores: Vec<f64> =
            scores.iter().zip(labels).filter(|(_, l)| !**l).map(|(s, _)| *s).collect();
        let m = positive_scores.len() as f64;
        let n = negative_scores.len() as f64;
        if positive_scores.is_empty() || negative_scores.is_empty() {
            return None;
        }
        let combined: Vec<f64> = positive_scores.iter().chain(&negative_scores).copied().collect();
        let ranks_combined = midranks(&combined);
        let ranks_positive = midranks(&positive_scores);
        let ranks_negative = midranks(&negative_scores);
        let (combined_positive, combined_negative) = ranks_combined.split_at(positive_scores.len());
        let positives = combined_positive.iter().zip(&ranks_positive).map(|(z, x)| (z - x) / n).collect();
        let negatives =
            combined_negative.iter().zip(&ranks_negative).map(|(z, y)| 1.0 - (z - y) / m).collect();
        Some(Placements { positives, negatives })
    }

    fn auc(&self) -> f64 {
        mean(&self.positives)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample covariance (n - 1 denominator); `None` for fewer than two values.
fn covariance(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || a.len() != b.len() {
        return None;
    }
    let (mean_a, mean_b) = (mean(a), mean(b));
    let sum: f64 = a.iter().zip(b).map(|(x, y)| (x - mean_a) * (y - mean_b)).sum();
    Some(sum / (a.len() - 1) as f64)
}

/// DeLong covariance of the AUCs of two models on the same episodes (variance when equal).
fn delong_covariance(a: &Placements, b: &Placements) -> Option<f64> {
    let positive_part = covariance(&a.positives, &b.positives)? / a.positives.len() as f64;
    let negative_part = covariance(&a.negatives, &b.negatives)? / a.negatives.len() as f64;
    Some(positive_part + negative_part)
}

/// Area under the ROC curve; `None` when one class is absent (it is undefined then).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    Placements::new(scores, labels).map(|placements| placements.auc())
}

/// AUC with its DeLong standard error and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucEstimate {
    pub auc: f64,
    /// `None` with fewer than two positives or two negatives.
    pub standard_error: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// AUC with a DeLong 95% confidence interval.
pub fn roc_auc_with_ci(scores: &[f64], labels: &[bool]) -> Option<AucEstimate> {
    let placements = Placements::new(scores, labels)?;
    let auc = placements.auc();
    let standard_error = delong_covariance(&placements, &placements).map(|variance| variance.max(0.0).sqrt());
    let ci_low = standard_error.map(|se| (auc - Z_975 * se).max(0.0));
    let ci_high = standard_error.map(|se| (auc + Z_975 * se).min(1.0));
    Some(AucEstimate { auc, standard_error, ci_low, ci_high })
}

/// Difference of two models' AUCs on the same episodes (`a - b`) with a paired DeLong 95% CI.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucDifference {
    pub difference: f64,
    pub standard_error: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// Paired comparison of two score vectors against the same labels.
pub fn paired_auc_difference(scores_a: &[f64], scores_b: &[f64], labels: &[bool]) -> Option<AucDifference> {
    let a = Placements::new(scores_a, labels)?;
    let b = Placements::new(scores_b, labels)?;
    let difference = a.auc() - b.auc();
    let variance = (|| {
        Some(delong_covariance(&a, &a)? + delong_covariance(&b, &b)? - 2.0 * delong_covariance(&a, &b)?)
    })();
    let standard_error = variance.map(|v| v.max(0.0).sqrt());
    Some(AucDifference {
        difference,
        standard_error,
        ci_low: standard_error.map(|se| difference - Z_975 * se),
        ci_high: standard_error.map(|se| difference + Z_975 * se),
    })
}

/// Mean squared difference between the predicted probability and the outcome (0 or 1).
pub fn brier_score(probabilities: &[f64], labels: &[bool]) -> Option<f64> {
    if probabilities.is_empty() || probabilities.len() != labels.len() {
        return None;
    }
    let sum: f64 =
        probabilities.iter().zip(labels).map(|(p, label)| (p - if *label { 1.0 } else { 0.0 }).powi(2)).sum();
    Some(sum / probabilities.len() as f64)
}

/// One equal-width probability bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// `None` for an empty bin.
    pub mean_predicted: Option<f64>,
    pub observed_rate: Option<f64>,
}

/// `bin_count` equal-width bins over [0, 1]; a probability of exactly 1 falls in the last bin.
pub fn calibration_bins(probabilities: &[f64], labels: &[bool], bin_count: usize) -> Vec<CalibrationBin> {
    let bin_count = bin_count.max(1);
    let mut sums = vec![(0_u64, 0.0_f64, 0_u64); bin_count];
    for (probability, label) in probabilities.iter().zip(labels) {
        let scaled = (probability.clamp(0.0, 1.0) * bin_count as f64).floor() as usize;
        let (count, predicted, positives) = &mut sums[scaled.min(bin_count - 1)];
        *count += 1;
        *predicted += probability;
        *positives += u64::from(*label);
    }
    sums.iter()
        .enumerate()
        .map(|(index, &(count, predicted, positives))| CalibrationBin {
            lower: index as f64 / bin_count as f64,
            upper: (index + 1) as f64 / bin_count as f64,
            count,
            mean_predicted: (count > 0).then(|| predicted / count as f64),
            observed_rate: (count > 0).then(|| positives as f64 / count as f64),
        })
        .collect()
}

/// Counts at a decision threshold (predicted responder when probability >= threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Confusion {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

impl Confusion {
    /// Tallies predictions against labels.
    pub fn at_threshold(probabilities: &[f64], labels: &[bool], threshold: f64) -> Self {
        let mut confusion = Confusion::default();
        for (probability, label) in probabilities.iter().zip(labels) {
            match (*probability >= threshold, *label) {
                (true, true) => confusion.true_positives += 1,
                (true, false) => confusion.false_positives += 1,
                (false, false) => confusion.true_negatives += 1,
                (false, true) => confusion.false_negatives += 1,
            }
        }
        confusion
    }

    /// True-positive rate; `None` without positives.
    pub fn sensitivity(&self) -> Option<f64> {
        let positives = self.true_positives + self.false_negatives;
        (positives > 0).then(|| self.true_positives as f64 / positives as f64)
    }

    /// True-negative rate; `None` without negatives.
    pub fn specificity(&self) -> Option<f64> {
        let negatives = self.true_negatives + self.false_positives;
        (negatives > 0).then(|| self.true_negatives as f64 / negatives as f64)
    }
}

/// Every figure for one model over one set of labeled episodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryMetrics {
    pub labeled: u64,
    pub positives: u64,
    pub auc: Option<AucEstimate>,
    pub brier: Option<f64>,
    pub calibration: Vec<CalibrationBin>,
    pub threshold: f64,
    pub confusion: Confusion,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
}

/// Number of calibration bins reported.
pub const CALIBRATION_BINS: usize = 10;

/// Computes every figure at once.
pub fn evaluate(probabilities: &[f64], labels: &[bool], threshold: f64) -> BinaryMetrics {
    let confusion = Confusion::at_threshold(probabilities, labels, threshold);
    BinaryMetrics {
        labeled: labels.len() as u64,
        positives: labels.iter().filter(|label| **label).count() as u64,
        auc: roc_auc_with_ci(probabilities, labels),
        brier: brier_score(probabilities, labels),
        calibration: calibration_bins(probabilities, labels, CALIBRATION_BINS),
        threshold,
        confusion,
        sensitivity: confusion.sensitivity(),
        specificity: confusion.specificity(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_and_reversed_rankings_give_one_and_zero() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
    }

    #[test]
    fn ties_across_classes_count_one_half() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        // Pairs (pos, neg): (0.5 vs 0.5) = 0.5, (0.5 vs 0.1) = 1, (0.9 vs 0.5) = 1, (0.9 vs 0.1) = 1.
        let auc = roc_auc(&[0.1, 0.5, 0.5, 0.9], &[false, false, true, true]);
        assert!(auc.is_some_and(|value| close(value, 3.5 / 4.0)));
    }

    #[test]
    fn single_class_has_no_auc() {
        assert_eq!(roc_auc(&[0.2, 0.3], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    #[test]
    fn delong_matches_a_hand_computed_variance() {
        // Positives 0.8, 0.6; negatives 0.7, 0.2. V10 = [1, 0.5], V01 = [0.5, 0].
        // S10 = 0.125, S01 = 0.125; var = 0.125 / 2 + 0.125 / 2 = 0.125.
        let estimate = roc_auc_with_ci(&[0.8, 0.6, 0.7, 0.2], &[true, true, false, false]);
        assert!(estimate.is_some_and(
            |e| close(e.auc, 0.75) && e.standard_error.is_some_and(|se| close(se, 0.125_f64.sqrt()))
        ));
    }

    #[test]
    fn a_model_compared_with_itself_differs_by_zero_with_zero_error() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2];
        let labels = [false, false, true, true, true, false];
        let difference = paired_auc_difference(&scores, &scores, &labels);
        assert!(
            difference.is_some_and(|d| d.difference == 0.0 && d.standard_error.is_some_and(|se| se < 1e-9))
        );
    }

    #[test]
    fn brier_and_confusion_follow_their_definitions() {
        let probabilities = [0.9, 0.2, 0.6, 0.4];
        let labels = [true, false, false, true];
        let brier = brier_score(&probabilities, &labels);
        assert!(brier.is_some_and(|b| close(b, (0.01 + 0.04 + 0.36 + 0.36) / 4.0)));
        let confusion = Confusion::at_threshold(&probabilities, &labels, 0.5);
        assert_eq!((confusion.true_positives, confusion.false_positives), (1, 1));
        assert_eq!((confusion.true_negatives, confusion.false_negatives), (1, 1));
        assert_eq!(confusion.sensitivity(), Some(0.5));
        // A probability equal to the threshold is a predicted responder.
        assert_eq!(Confusion::at_threshold(&[0.5], &[true], 0.5).true_positives, 1);
    }

    #[test]
    fn calibration_bins_cover_zero_to_one_inclusive() {
        let bins = calibration_bins(&[0.0, 0.05, 0.95, 1.0], &[false, true, true, true], 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[0].count, 2);
        assert_eq!(bins[0].observed_rate, Some(0.5));
        assert_eq!(bins[9].count, 2);
        assert_eq!(bins[5].mean_predicted, None);
    }
}
