"""Metric functions against scikit-learn (when installed), the registry's fixtures, and hand
computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import REPO_ROOT
from tfesi_training.metrics import (
    bootstrap_auc,
    brier_score,
    calibration_bins,
    delong_auc,
    delong_paired,
    evaluate,
    midranks,
    roc_auc,
)

FIXTURES = REPO_ROOT / "services" / "registry" / "tests" / "fixtures" / "metrics_fixtures.json"


def datasets():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 300)
    yield "continuous", 1 / (1 + np.exp(-(labels + rng.normal(0, 1, 300)))), labels
    labels = rng.integers(0, 2, 120)
    yield "ties", np.round(np.clip(0.4 + 0.2 * labels + rng.normal(0, 0.2, 120), 0, 1), 1), labels
    yield "all_tied", np.full(8, 0.5), np.array([0, 1] * 4)


@pytest.mark.parametrize(("name", "scores", "labels"), list(datasets()))
def test_auc_and_brier_equal_scikit_learn(name, scores, labels) -> None:  # type: ignore[no-untyped-def]
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    assert roc_auc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert brier_score(scores, labels) == pytest.approx(sklearn_metrics.brier_score_loss(labels, scores), abs=1e-12)


def test_auc_brier_and_delong_se_equal_the_registrys_fixtures() -> None:
    fixtures = json.loads(FIXTURES.read_text())["datasets"]
    for case in fixtures:
        scores, labels = np.array(case["probabilities"]), np.array(case["labels"])
        assert roc_auc(scores, labels) == pytest.approx(case["roc_auc"], abs=1e-9), case["name"]
        assert brier_score(scores, labels) == pytest.approx(case["brier"], abs=1e-9), case["name"]
        estimate = delong_auc(scores, labels)
        if case.get("delong_se") is None:
            assert estimate is None, case["name"]
        else:
            assert estimate is not None and estimate.se == pytest.approx(case["delong_se"], abs=1e-9), case["name"]


def test_hand_computed_small_case() -> None:
    # Positives 0.8, 0.6; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.6=0.6, 0.6>0.2) = 3.5 / 4.
    scores, labels = [0.8, 0.6, 0.6, 0.2], [1, 1, 0, 0]
    assert roc_auc(scores, labels) == 0.875
    assert midranks([0.8, 0.6, 0.6, 0.2]).tolist() == [4.0, 2.5, 2.5, 1.0]
    # Placements: v10 = [1, 0.75], v01 = [1 - 0.75, 1 - 1] = [0.25, 0]; var = 0.03125/2 + 0.03125/2.
    estimate = delong_auc(scores, labels)
    assert estimate is not None and estimate.se == pytest.approx(math.sqrt(0.03125))
    assert estimate.ci_high == 1.0 and estimate.ci_low == pytest.approx(0.875 - 1.959963984540054 * math.sqrt(0.03125))
    assert brier_score([1.0, 0.0], [1, 1]) == 0.5


def test_auc_is_undefined_with_one_class_and_delong_needs_two_of_each() -> None:
    assert roc_auc([0.1, 0.9], [1, 1]) is None
    assert delong_auc([0.1, 0.9, 0.5], [1, 0, 0]) is None


def test_calibration_bins_count_every_row_and_put_one_in_the_last_bin() -> None:
    bins = calibration_bins([0.0, 0.05, 0.15, 0.95, 1.0], [0, 1, 0, 1, 1], 10)
    assert [b.count for b in bins] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[0].mean_predicted == pytest.approx(0.025) and bins[0].observed_rate == 0.5
    assert bins[2].mean_predicted is None
    assert bins[9].observed_rate == 1.0


def test_bootstrap_interval_brackets_the_auc_and_is_reproducible() -> None:
    scores, labels = next(iter(datasets()))[1:]
    first = bootstrap_auc(scores, labels, 200, seed=5)
    assert first is not None and first.ci_low < first.auc < first.ci_high
    assert first == bootstrap_auc(scores, labels, 200, seed=5)


def test_evaluate_reports_confusion_at_the_threshold() -> None:
    figures = evaluate([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0], threshold=0.5, bootstrap_resamples=50)
    assert figures["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert figures["sensitivity"] == 0.5 and figures["specificity"] == 0.5
    assert len(figures["calibration"]) == 10
    assert "auc_ci95_bootstrap" in figures


def direct_paired(scores_a, scores_b, labels):  # type: ignore[no-untyped-def]
    """DeLong 1988 by its definition, O(m n): placements from the kernel psi(x, y) = 1, 1/2, 0
    for x > y, x = y, x < y; returns (auc_a, auc_b, 2x2 covariance of the AUCs)."""
    labels = np.asarray(labels).astype(bool)
    components10, components01 = [], []
    for scores in (np.asarray(scores_a, float), np.asarray(scores_b, float)):
        positives, negatives = scores[labels], scores[~labels]
        psi = np.array([[1.0 if x > y else 0.5 if x == y else 0.0 for y in negatives] for x in positives])
        components10.append(psi.mean(axis=1))
        components01.append(psi.mean(axis=0))
    m, n = int(labels.sum()), int((~labels).sum())
    covariance = np.cov(np.vstack(components10)) / m + np.cov(np.vstack(components01)) / n
    return components10[0].mean(), components10[1].mean(), covariance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_delong_equals_the_direct_placement_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 23)
    labels[:2], labels[2:4] = 1, 0
    scores_a = labels + rng.normal(0, 1, 23)
    # Rounded: ties within and across classes exercise the midranks.
    scores_b = np.round(0.5 * labels + rng.normal(0, 1, 23), 0 if seed == 2 else 1)
    comparison = delong_paired(scores_a, scores_b, labels)
    auc_a, auc_b, covariance = direct_paired(scores_a, scores_b, labels)
    assert comparison is not None
    assert comparison.auc_a == pytest.approx(auc_a, abs=1e-12) and comparison.auc_b == pytest.approx(auc_b, abs=1e-12)
    assert comparison.variance_a == pytest.approx(covariance[0, 0], rel=1e-10)
    assert comparison.variance_b == pytest.approx(covariance[1, 1], rel=1e-10)
    assert comparison.covariance == pytest.approx(covariance[0, 1], rel=1e-10, abs=1e-15)
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    assert comparison.difference == pytest.approx(auc_a - auc_b, abs=1e-12)
    assert comparison.se == pytest.approx(math.sqrt(variance), rel=1e-10)
    z = (auc_a - auc_b) / math.sqrt(variance)
    assert comparison.z == pytest.approx(z, rel=1e-10)
    assert comparison.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert comparison.ci_low == pytest.approx(max(-1.0, auc_a - auc_b - 1.959963984540054 * math.sqrt(variance)))
    # Swapping the scores negates the difference and keeps the test.
    swapped = delong_paired(scores_b, scores_a, labels)
    assert swapped is not None and swapped.difference == pytest.approx(-comparison.difference, abs=1e-15)
    assert swapped.p_value == pytest.approx(comparison.p_value, rel=1e-12)


def test_paired_delong_of_identical_scores_is_no_difference() -> None:
    scores, labels = next(iter(datasets()))[1:]
    comparison = delong_paired(scores, scores.copy(), labels)
    assert comparison is not None
    assert comparison.difference == 0.0 and comparison.se == 0.0 and comparison.p_value == 1.0
    assert comparison.z is None and comparison.ci_low == comparison.ci_high == 0.0


@pytest.mark.parametrize(("name", "scores", "labels"), list(datasets()))
def test_paired_delong_variances_are_the_unpaired_ses_squared(name, scores, labels) -> None:  # type: ignore[no-untyped-def]
    other = np.random.default_rng(4).permutation(scores)
    comparison = delong_paired(scores, other, labels)
    assert comparison is not None, name
    for values, variance in ((scores, comparison.variance_a), (other, comparison.variance_b)):
        estimate = delong_auc(values, labels)
        assert estimate is not None and variance == pytest.approx(estimate.se**2, rel=1e-12, abs=1e-15), name
        assert roc_auc(values, labels) == pytest.approx(comparison.auc_a if values is scores else comparison.auc_b)


def test_paired_delong_needs_two_of_each_class_and_the_same_rows() -> None:
    assert delong_paired([0.1, 0.9, 0.5], [0.2, 0.3, 0.4], [1, 0, 0]) is None
    with pytest.raises(ValueError, match="3 scores for 4 labels"):
        delong_paired([0.1, 0.9, 0.5, 0.2], [0.2, 0.3, 0.4], [1, 0, 0, 1])
