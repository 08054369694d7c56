"""Discrimination and calibration, the same figures the registry reports for served models.

Mirrors services/registry/src/domain/metrics.rs so that a model's retrospective figures (here)
and its prospective ones (Registry.GetModelPerformance) are computed alike:
- AUC: the tie-aware Mann-Whitney statistic from midranks (equals scikit-learn's roc_auc_score);
- 95% CI: DeLong's variance in the midrank form of Sun & Xu (IEEE SPL 2014), Wald interval
  AUC +- 1.96 SE clipped to [0, 1]; a bootstrap percentile interval is available as a check;
- two scores of the same rows compared: DeLong's paired test for correlated ROC curves (DeLong,
  DeLong & Clarke-Pearson 1988), its covariance from the same midrank placement values;
- Brier score; equal-width calibration bins (a probability of exactly 1 in the last bin);
- sensitivity and specificity at the threshold (predicted good when p >= threshold).
Only numpy is needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Z_975 = 1.959963984540054

FloatArray = npt.NDArray[np.float64]


def _arrays(scores: Any, labels: Any) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    score_array = np.asarray(scores, dtype=np.float64).ravel()
    label_array = np.asarray(labels).astype(bool).ravel()
    if score_array.shape != label_array.shape:
        raise ValueError(f"{score_array.size} scores for {label_array.size} labels")
    return score_array, label_array


def midranks(values: Any) -> FloatArray:
    """1-based ranks, ties sharing their mean rank."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="mergesort")
    sorted_values = array[order]
    ranks = np.empty(array.size, dtype=np.float64)
    start = 0
    while start < array.size:
        end = start
        while end + 1 < array.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def roc_auc(scores: Any, labels: Any) -> float | None:
    """Area under the ROC curve; None when a class is absent."""
    score_array, label_array = _arrays(scores, labels)
    positives = int(label_array.sum())
    negatives = label_array.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = midranks(score_array)
    return float((ranks[label_array].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


@dataclass(frozen=True)
class AucEstimate:
    auc: float
    se: float
    ci_low: float
    ci_high: float
    method: str


def _placements(score_array: FloatArray, label_array: npt.NDArray[np.bool_]) -> tuple[float, FloatArray, FloatArray]:
    """(AUC, v10, v01): the placement values of Sun & Xu from midranks, with at least one row of
    each class. v10[i] is the share of negatives that positive i beats (ties count one half),
    v01[j] the share of positives that beat negative j; the AUC is the mean of either."""
    positive_scores = score_array[label_array]
    negative_scores = score_array[~label_array]
    m, n = positive_scores.size, negative_scores.size
    all_ranks = midranks(np.concatenate([positive_scores, negative_scores]))
    positive_within = midranks(positive_scores)
    negative_within = midranks(negative_scores)
    auc = (all_ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (all_ranks[:m] - positive_within) / n
    v01 = 1.0 - (all_ranks[m:] - negative_within) / m
    return float(auc), v10, v01


def delong_auc(scores: Any, labels: Any) -> AucEstimate | None:
    """AUC with DeLong's standard error and Wald 95% CI; None with < 2 of either class."""
    score_array, label_array = _arrays(scores, labels)
    m = int(label_array.sum())
    n = label_array.size - m
    if m < 2 or n < 2:
        return None
    auc, v10, v01 = _placements(score_array, label_array)
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    se = float(np.sqrt(max(variance, 0.0)))
    return AucEstimate(
        auc=float(auc),
        se=se,
        ci_low=float(max(0.0, auc - Z_975 * se)),
        ci_high=float(min(1.0, auc + Z_975 * se)),
        method="delong",
    )


@dataclass(frozen=True)
class PairedAucComparison:
    """Two scores of the same rows: AUC_a - AUC_b with DeLong's paired variance.

    `variance_a` and `variance_b` are each AUC's own DeLong variance (delong_auc's SE squared),
    `covariance` theirs across the shared rows; the difference's variance is
    variance_a + variance_b - 2 covariance. `p_value` is two-sided (normal z = difference / se);
    the 95% CI is the Wald interval clipped to [-1, 1].
    """

    auc_a: float
    auc_b: float
    difference: float
    se: float
    ci_low: float
    ci_high: float
    z: float | None
    p_value: float
    variance_a: float
    variance_b: float
    covariance: float
    method: str


def delong_paired(scores_a: Any, scores_b: Any, labels: Any) -> PairedAucComparison | None:
    """DeLong's test of AUC_a = AUC_b for two scores of the same rows (correlated ROC curves,
    DeLong 1988 in the structural-components form, placements from midranks as in Sun & Xu
    2014); None with < 2 of either class.

    With S10 and S01 the 2x2 sample covariance matrices (ddof 1) of the two scores' placement
    values over the positives and over the negatives, the covariance of the AUC pair is
    S10 / m + S01 / n. A zero variance (identical scores, or both perfectly separating) gives
    p = 1 when the difference is 0 and p = 0 otherwise, with no z.
    """
    first, label_array = _arrays(scores_a, labels)
    second, second_labels = _arrays(scores_b, labels)  # both against the same labels: the same rows
    m = int(label_array.sum())
    n = label_array.size - m
    if m < 2 or n < 2:
        return None
    auc_a, v10_a, v01_a = _placements(first, label_array)
    auc_b, v10_b, v01_b = _placements(second, second_labels)
    s10 = np.cov(np.vstack([v10_a, v10_b]), ddof=1)
    s01 = np.cov(np.vstack([v01_a, v01_b]), ddof=1)
    covariance_matrix = s10 / m + s01 / n
    variance_a, variance_b = float(covariance_matrix[0, 0]), float(covariance_matrix[1, 1])
    covariance = float(covariance_matrix[0, 1])
    difference = auc_a - auc_b
    variance = max(variance_a + variance_b - 2.0 * covariance, 0.0)
    se = math.sqrt(variance)
    # Rounding can leave a tiny variance where the exact one is 0 (identical scores).
    if se <= 1e-12 * max(1.0, math.sqrt(variance_a + variance_b)):
        z, p_value, se = None, (1.0 if difference == 0.0 else 0.0), 0.0
    else:
        z = difference / se
        p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return PairedAucComparison(
        auc_a=auc_a,
        auc_b=auc_b,
        difference=difference,
        se=se,
        ci_low=max(-1.0, difference - Z_975 * se),
        ci_high=min(1.0, difference + Z_975 * se),
        z=z,
        p_value=p_value,
        variance_a=variance_a,
        variance_b=variance_b,
        covariance=covariance,
        method="delong-paired",
    )


def bootstrap_auc(scores: Any, labels: Any, resamples: int, seed: int) -> AucEstimate | None:
    """AUC with a percentile bootstrap 95% CI (resampling rows, stratified by class)."""
    score_array, label_array = _arrays(scores, labels)
    auc = roc_auc(score_array, label_array)
    if auc is None or resamples < 1:
        return None
    rng = np.random.default_rng(seed)
    positive_index = np.flatnonzero(label_array)
    negative_index = np.flatnonzero(~label_array)
    values = np.empty(resamples)
    for draw in range(resamples):
        chosen = np.concatenate(
            [rng.choice(positive_index, positive_index.size), rng.choice(negative_index, negative_index.size)]
        )
        values[draw] = roc_auc(score_array[chosen], label_array[chosen])  # type: ignore[arg-type]
    low, high = np.percentile(values, [2.5, 97.5])
    return AucEstimate(auc=auc, se=float(values.std(ddof=1)), ci_low=float(low), ci_high=float(high),
                       method=f"bootstrap-{resamples}")


def brier_score(probabilities: Any, labels: Any) -> float | None:
    """Mean squared difference between probability and outcome; None without rows."""
    probability_array, label_array = _arrays(probabilities, labels)
    if probability_array.size == 0:
        return None
    return float(np.mean((probability_array - label_array.astype(np.float64)) ** 2))


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


def calibration_bins(probabilities: Any, labels: Any, bin_count: int = 10) -> list[CalibrationBin]:
    """`bin_count` equal-width bins over [0, 1]."""
    probability_array, label_array = _arrays(probabilities, labels)
    bin_count = max(1, bin_count)
    index = np.minimum(np.floor(np.clip(probability_array, 0.0, 1.0) * bin_count).astype(int), bin_count - 1)
    bins = []
    for position in range(bin_count):
        members = index == position
        count = int(members.sum())
        bins.append(
            CalibrationBin(
                lower=position / bin_count,
                upper=(position + 1) / bin_count,
                count=count,
                mean_predicted=float(probability_array[members].mean()) if count else None,
                observed_rate=float(label_array[members].mean()) if count else None,
            )
        )
    return bins


def evaluate(
    probabilities: Any,
    labels: Any,
    *,
    threshold: float = 0.5,
    bins: int = 10,
    bootstrap_resamples: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Every figure for one split, as plain data (JSON-ready)."""
    probability_array, label_array = _arrays(probabilities, labels)
    predicted = probability_array >= threshold
    tp = int((predicted & label_array).sum())
    fp = int((predicted & ~label_array).sum())
    tn = int((~predicted & ~label_array).sum())
    fn = int((~predicted & label_array).sum())
    estimate = delong_auc(probability_array, label_array)
    result: dict[str, Any] = {
        "rows": int(label_array.size),
        "positives": int(label_array.sum()),
        "auc": roc_auc(probability_array, label_array),
        "auc_ci95": None if estimate is None else [estimate.ci_low, estimate.ci_high],
        "auc_se": None if estimate is None else estimate.se,
        "auc_ci_method": "delong (Sun & Xu midranks), Wald 95%",
        "brier": brier_score(probability_array, label_array),
        "threshold": threshold,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "calibration": [asdict(b) for b in calibration_bins(probability_array, label_array, bins)],
    }
    if bootstrap_resamples > 0:
        boot = bootstrap_auc(probability_array, label_array, bootstrap_resamples, seed)
        result["auc_ci95_bootstrap"] = None if boot is None else [boot.ci_low, boot.ci_high]
    return result
