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
