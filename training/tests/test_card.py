"""The card rules are card.rs's: the committed test model's card passes them, broken cards fail
them for the same reasons, and the self-test patterns are computed bit for bit alike."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from conftest import REPO_ROOT
from tfesi_training.card import (
    SYNTHETIC_NOTICE,
    CardError,
    build_card,
    materialize,
    pattern_values,
    self_test_vectors,
    validate_card,
)
from tfesi_training.features import FEATURE_NAMES, card_features

TEST_MODEL = REPO_ROOT / "models" / "tfesi-test" / "1"


def committed_card() -> dict:  # type: ignore[type-arg]
    return json.loads((TEST_MODEL / "model.json").read_text())


def job_card(features: int = 8) -> dict:  # type: ignore[type-arg]
    names = FEATURE_NAMES[:features]
    vectors = self_test_vectors(lambda image, clinical: np.full(image.shape[0], 0.25, np.float32), 11, 8, 8, features)
    return build_card(
        name="tfesi-cnn", version="abc-1", model_sha256="ab" * 32, spec_version="tfesi-prep-v1",
        slices=11, height=8, width=8, clinical_features=card_features(names) if features else [],
        threshold=0.5, training_snapshot_id="f" * 64, validation_metrics={"auc": 0.8}, intended_use="dev",
        limitations="synthetic", self_test_vectors_=vectors, self_test_tolerance=1e-4, description_details="more",
    )


def test_the_committed_test_models_card_passes_the_card_rs_rules() -> None:
    validate_card(committed_card(), job_rules=False)


def test_a_card_this_job_builds_passes_every_rule_and_says_synthetic_first() -> None:
    card = job_card()
    validate_card(card, model_sha256="ab" * 32)
    assert card["description"].splitlines()[0] == SYNTHETIC_NOTICE
    assert "no clinical validity" in card["description"].splitlines()[0]
    assert [feature["name"] for feature in card["clinical_features"]] == list(FEATURE_NAMES)
    assert card["inputs"][1]["shape"] == [None, 8]
    assert card["output"] == committed_card()["output"]


def test_image_only_card_declares_no_clinical_input() -> None:
    card = job_card(features=0)
    validate_card(card)
    assert [decl["name"] for decl in card["inputs"]] == ["image"]
    assert card["clinical_features"] == []
    assert all(list(vector["inputs"]) == ["image"] for vector in card["self_test"]["vectors"])


def test_clinical_feature_names_and_encodings_equal_the_committed_cards() -> None:
    assert card_features(FEATURE_NAMES) == committed_card()["clinical_features"]


def broken(mutate) -> dict:  # type: ignore[no-untyped-def,type-arg]
    card = copy.deepcopy(job_card())
    mutate(card)
    return card


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: c.__setitem__("format", "tfesi-model-card/2"), "format"),
        (lambda c: c.__setitem__("version", "../1"), "name and version"),
        (lambda c: c.__setitem__("name", ".hidden"), "name and version"),
        (lambda c: c.__setitem__("model_sha256", "xyz"), "model_sha256"),
        (lambda c: c.__setitem__("spec_version", ""), "spec_version"),
        (lambda c: c["clinical_features"].pop(), "clinical input has width 8 but 7"),
        (lambda c: c["inputs"].append({"name": "age", "dtype": "float32", "shape": [None, 1]}), "unknown input"),
        (lambda c: c["inputs"][0].__setitem__("shape", [1, 11, 8, 8]), "dynamic first dimension"),
        (lambda c: c["inputs"][0].__setitem__("dtype", "float16"), "float32"),
        (lambda c: c["output"].__setitem__("shape", [None, 2]), "output"),
        (lambda c: c.__setitem__("threshold", 1.5), "outside [0, 1]"),
        (lambda c: c["self_test"].__setitem__("vectors", []), "no vectors"),
        (lambda c: c["self_test"].__setitem__("tolerance", -1), "tolerance"),
        (lambda c: c["self_test"]["vectors"][0]["inputs"].pop("clinical"), "gives inputs"),
        (lambda c: c["self_test"]["vectors"][1]["expected"].pop(), "expected values"),
        (lambda c: c["self_test"]["vectors"][0]["inputs"]["image"]["pattern"].__setitem__("modulus", 1 << 24), "modulus"),
        (lambda c: c.__setitem__("description", "a model\nTRAINED ON SYNTHETIC DATA"), "first line"),
        (lambda c: c.__setitem__("synthetic", False), "synthetic"),
    ],
)
def test_a_broken_card_is_refused_with_its_reason(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CardError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        validate_card(broken(mutate))


def test_card_sha_must_be_the_files() -> None:
    with pytest.raises(CardError, match="is not the file's"):
        validate_card(job_card(), model_sha256="cd" * 32)


def test_pattern_matches_card_rs_unit_test() -> None:
    # services/inference/src/card.rs pattern_matches_the_python_generator_formula
    assert pattern_values(5, multiplier=7, increment=3, modulus=5, scale=0.5, offset=-1.0).tolist() == [
        0.5, -1.0, 0.0, 1.0, -0.5
    ]


def test_committed_test_model_outputs_are_reproduced_from_its_patterns() -> None:
    """The committed card's expected values (computed by make_test_model.py with ONNX Runtime)
    come back from our pattern code: the inputs are bit-identical to the service's."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    session = ort.InferenceSession(str(TEST_MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    for vector in committed_card()["self_test"]["vectors"]:
        feeds = {name: materialize(tensor) for name, tensor in vector["inputs"].items()}
        (output,) = session.run(["p_good_outcome"], feeds)
        np.testing.assert_allclose(output, vector["expected"], rtol=0, atol=1e-6)
