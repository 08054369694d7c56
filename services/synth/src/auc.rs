//! Area under the ROC curve by the Mann-Whitney U statistic, with ties counted as one half.

/// AUC of `scores` against binary `labels`: the probability that a random positive scores higher
/// than a random negative, ties counting 1/2. `None` when either class is empty.
///
/// Runs in O(n log n): scores are sorted, tied groups get their mid-rank, and
/// `AUC = (R+ - n+(n+ + 1)/2) / (n+ n-)` where `R+` is the rank sum of the positives.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    debug_assert_eq!(scores.len(), labels.len());
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0_f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks are 1-based: the group occupies ranks start+1 ..= end.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let group_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += mid_rank * group_positives as f64;
        start = end;
    }
    let n_pos = positives as f64;
    let n_neg = negatives as f64;
    Some((positive_rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(scores: &[f64], labels: &[bool]) -> f64 {
        let mut total = 0.0;
        let mut pairs = 0.0;
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    pairs += 1.0;
                    total += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        total / pairs
    }

    #[test]
    fn perfect_and_inverted_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.3, 0.4], &labels), Some(1.0));
        assert_eq!(auc(&[0.4, 0.3, 0.2, 0.1], &labels), Some(0.0));
    }

    #[test]
    fn all_tied_scores_give_one_half() {
        let labels = [false, true, false, true, true];
        assert_eq!(auc(&[0.5; 5], &labels), Some(0.5));
    }

    #[test]
    fn ties_across_classes_count_one_half() {
        // positives: 0.5, 0.9; negatives: 0.5, 0.1 -> pairs: (0.5,0.5)=.5,(0.5,0.1)=1,(0.9,*)=2
        let scores = [0.5, 0.9, 0.5, 0.1];
        let labels = [true, true, false, false];
        assert_eq!(auc(&scores, &labels), Some(3.5 / 4.0));
    }

    #[test]
    fn matches_brute_force_on_many_ties() {
        let scores: Vec<f64> = (0..97).map(|i| f64::from((i * 37) % 11)).collect();
        let labels: Vec<bool> = (0..97).map(|i| (i * 13) % 7 < 3).collect();
        let fast = auc(&scores, &labels).unwrap_or(f64::NAN);
        assert!((fast - brute_force(&scores, &labels)).abs() < 1e-12);
    }

    #[test]
    fn a_single_class_has_no_auc() {
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auc(&[], &[]), None);
    }
}
