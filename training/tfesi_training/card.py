"""The model card (model.json) of the model contract, and its checks.

Format and rules follow services/inference/src/card.rs (`ModelCard::validate`), which the
inference service applies before a model is stored, plus the contract's own rules from
/work/shared/DESIGN.md: input `image` float32 [N, S, H, W], optional `clinical` float32 [N, F]
with the features named in the card, output `p_good_outcome` float32 [N], the preprocessing spec
version, the decision threshold, the training snapshot, metrics, intended use, and self-test
vectors (here computed by PyTorch) with the tolerance the service checks them with.

Self-test inputs are deterministic patterns rather than inline values (one 11x256x256 image is
2.9 MB of floats): value_i = float32(offset) + float32(scale) * float32(k_i) with
k_i = (multiplier * i + increment) mod modulus, computed exactly as card.rs `Pattern::values`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

CARD_FORMAT = "tfesi-model-card/1"
IMAGE_INPUT = "image"
CLINICAL_INPUT = "clinical"
OUTPUT_NAME = "p_good_outcome"
OUTPUT_MEANING = (
    "probability of a good outcome (NRS-11 reduced by at least 50% two months after the injection)"
)
#: First line of every card this job writes (DESIGN.md: it says so plainly).
SYNTHETIC_NOTICE = "TRAINED ON SYNTHETIC DATA ONLY: this model learned from a synthetic cohort and has no clinical validity."

_IDENTIFIER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PATTERN_KEYS = ("multiplier", "increment", "modulus", "scale", "offset")


def valid_identifier(text: str) -> bool:
    """1 to 64 characters of [A-Za-z0-9._-], not starting with a dot (card.rs)."""
    return bool(_IDENTIFIER.match(text)) and not text.startswith(".")


def pattern_values(count: int, multiplier: int, increment: int, modulus: int, scale: float,
                   offset: float) -> npt.NDArray[np.float32]:
    """The `count` values of a self-test pattern, bit for bit as card.rs computes them."""
    modulus = max(1, int(modulus))
    index = np.arange(count, dtype=np.uint64)
    # card.rs uses wrapping u64 arithmetic; numpy uint64 wraps the same way.
    with np.errstate(over="ignore"):
        residue = (index * np.uint64(multiplier) + np.uint64(increment)) % np.uint64(modulus)
    return (np.float32(offset) + np.float32(scale) * residue.astype(np.float32)).astype(np.float32)


def materialize(tensor: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    """A self-test tensor ({shape, values | pattern}) as an array of its shape."""
    shape = [int(d) for d in tensor["shape"]]
    count = int(np.prod(shape))
    if ("values" in tensor) == ("pattern" in tensor):
        raise ValueError("exactly one of values and pattern must be given")
    if "values" in tensor:
        values = np.asarray(tensor["values"], dtype=np.float32)
        if values.size != count:
            raise ValueError(f"{values.size} values for shape {shape} ({count} elements)")
        return values.reshape(shape)
    pattern = tensor["pattern"]
    return pattern_values(count, **{key: pattern[key] for key in _PATTERN_KEYS}).reshape(shape)


def self_test_inputs(slices: int, height: int, width: int, features: int) -> list[tuple[str, dict[str, Any]]]:
    """Three cases (one row, three rows, zeros), each {input name: {shape, pattern}}.

    Image values span about [-2, 2] (the spec's normalised intensities); clinical values span
    [0, 1] as the encoders' do. With `features == 0` there is no clinical input.
    """
    cases = [
        ("one_row", 1, (7919, 17, 1009, 0.004, -2.0), (31, 3, 11, 0.1, 0.0)),
        ("three_rows", 3, (104729, 5, 4099, 0.001, -2.0), (13, 1, 7, 0.15, 0.0)),
        ("zeros", 1, (1, 0, 1, 0.0, 0.0), (1, 0, 1, 0.0, 0.0)),
    ]
    result = []
    for name, rows, image_pattern, clinical_pattern in cases:
        inputs: dict[str, Any] = {
            IMAGE_INPUT: {"shape": [rows, slices, height, width],
                          "pattern": dict(zip(_PATTERN_KEYS, image_pattern, strict=True))},
        }
        if features:
            inputs[CLINICAL_INPUT] = {"shape": [rows, features],
                                      "pattern": dict(zip(_PATTERN_KEYS, clinical_pattern, strict=True))}
        result.append((name, inputs))
    return result


Predict = Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32] | None], npt.NDArray[np.float32]]


def self_test_vectors(predict: Predict, slices: int, height: int, width: int, features: int) -> list[dict[str, Any]]:
    """Self-test vectors whose `expected` values come from `predict` (the training framework)."""
    vectors = []
    for name, inputs in self_test_inputs(slices, height, width, features):
        image = materialize(inputs[IMAGE_INPUT])
        clinical = materialize(inputs[CLINICAL_INPUT]) if CLINICAL_INPUT in inputs else None
        expected = np.asarray(predict(image, clinical), dtype=np.float32).ravel()
        vectors.append({"name": name, "inputs": inputs, "expected": [float(v) for v in expected]})
    return vectors


def build_card(
    *,
    name: str,
    version: str,
    model_sha256: str,
    spec_version: str,
    slices: int,
    height: int,
    width: int,
    clinical_features: Sequence[Mapping[str, str]],
    threshold: float,
    training_snapshot_id: str | None,
    validation_metrics: Mapping[str, float],
    intended_use: str,
    limitations: str,
    self_test_vectors_: list[dict[str, Any]],
    self_test_tolerance: float,
    description_details: str,
    synthetic: bool = True,
) -> dict[str, Any]:
    """The card as a JSON-ready dict (field order as in make_test_model.py)."""
    inputs: list[dict[str, Any]] = [
        {"name": IMAGE_INPUT, "dtype": "float32", "shape": [None, slices, height, width],
         "description": "S central sagittal T2 slices as channels, per the preprocessing spec"},
    ]
    if clinical_features:
        inputs.append({"name": CLINICAL_INPUT, "dtype": "float32", "shape": [None, len(clinical_features)],
                       "description": "clinical features in the order of clinical_features"})
    description = SYNTHETIC_NOTICE + ("\n" + description_details if description_details else "")
    return {
        "format": CARD_FORMAT,
        "name": name,
        "version": version,
        "description": description,
        "synthetic": synthetic,
        "model_sha256": model_sha256,
        "spec_version": spec_version,
        "inputs": inputs,
        "clinical_features": [dict(feature) for feature in clinical_features],
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None], "meaning": OUTPUT_MEANING},
        "threshold": float(threshold),
        "training_snapshot_id": training_snapshot_id,
        "validation_metrics": {key: float(value) for key, value in validation_metrics.items()},
        "intended_use": intended_use,
        "limitations": limitations,
        "self_test": {"tolerance": float(self_test_tolerance), "vectors": self_test_vectors_},
    }


class CardError(ValueError):
    """A card the inference service would refuse, with its reason (worded as card.rs words it)."""


def _fixed_dims(decl: Mapping[str, Any], rank: int) -> list[int]:
    name = decl.get("name")
    if decl.get("dtype") != "float32":
        raise CardError(f"input {name} must be float32, not {decl.get('dtype')}")
    shape = decl.get("shape")
    if not isinstance(shape, list) or len(shape) != rank or shape[0] is not None:
        raise CardError(f"input {name} must have rank {rank} with a dynamic first dimension, got {shape}")
    dims = []
    for dim in shape[1:]:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise CardError(f"input {name} has a non-fixed inner dimension")
        dims.append(dim)
    return dims


_REQUIRED = ("format", "name", "version", "model_sha256", "spec_version", "inputs", "output",
             "threshold", "intended_use", "limitations", "self_test")


def validate_card(card: Mapping[str, Any], *, model_sha256: str | None = None, job_rules: bool = True) -> None:
    """Raises CardError unless the card passes card.rs `ModelCard::validate` (and, with
    `job_rules`, this job's own rules).

    This job's extra rules: `synthetic` is true, the description's first line says the model
    learned from synthetic data and has no clinical validity, the output is `p_good_outcome`.
    When `model_sha256` is given the card's must equal it (the service checks the file too).
    """
    missing = [key for key in _REQUIRED if key not in card]
    if missing:
        raise CardError(f"missing field(s) {missing}")
    if card["format"] != CARD_FORMAT:
        raise CardError(f"format is {card['format']!r}, expected {CARD_FORMAT!r}")
    if not (isinstance(card["name"], str) and isinstance(card["version"], str)
            and valid_identifier(card["name"]) and valid_identifier(card["version"])):
        raise CardError("name and version must be 1 to 64 characters of [A-Za-z0-9._-]")
    sha = card["model_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)):
        raise CardError("model_sha256 must be 64 hexadecimal characters")
    if model_sha256 is not None and sha.lower() != model_sha256.lower():
        raise CardError(f"model_sha256 {sha} is not the file's {model_sha256}")
    if not card["spec_version"]:
        raise CardError("spec_version is empty")
    inputs = card["inputs"]
    for decl in inputs:
        if decl.get("name") not in (IMAGE_INPUT, CLINICAL_INPUT):
            raise CardError(f"unknown input {decl.get('name')!r} (only image and clinical)")
    image = [decl for decl in inputs if decl.get("name") == IMAGE_INPUT]
    if not image:
        raise CardError("the card declares no image input")
    _fixed_dims(image[0], 4)
    clinical = [decl for decl in inputs if decl.get("name") == CLINICAL_INPUT]
    clinical_width = _fixed_dims(clinical[0], 2)[0] if clinical else 0
    features = card.get("clinical_features", [])
    if clinical_width != len(features):
        raise CardError(f"clinical input has width {clinical_width} but {len(features)} clinical features are named")
    output = card["output"]
    if not (output.get("dtype") == "float32" and output.get("shape") in ([None], [None, 1])):
        raise CardError("output must be float32 [N] or [N, 1]")
    threshold = card["threshold"]
    if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise CardError(f"threshold {threshold} is outside [0, 1]")
    _validate_self_test(card)
    if not job_rules:
        return
    # This job's own promises (DESIGN.md, issue 8).
    if card.get("synthetic") is not True:
        raise CardError("a model trained by this job on synthetic data must say synthetic: true")
    first_line = str(card.get("description", "")).splitlines()[0] if card.get("description") else ""
    if "synthetic" not in first_line.lower() or "no clinical validity" not in first_line.lower():
        raise CardError("the description's first line must say: synthetic data, no clinical validity")
    if output.get("name") != OUTPUT_NAME:
        raise CardError(f"output is named {output.get('name')!r}, the contract names it {OUTPUT_NAME!r}")


def _validate_self_test(card: Mapping[str, Any]) -> None:
    self_test = card["self_test"]
    tolerance = self_test.get("tolerance")
    if not (isinstance(tolerance, int | float) and np.isfinite(tolerance) and tolerance >= 0):
        raise CardError("self_test.tolerance must be a finite number >= 0")
    vectors = self_test.get("vectors") or []
    if not vectors:
        raise CardError("self_test has no vectors")
    declared = sorted(decl["name"] for decl in card["inputs"])
    for vector in vectors:
        given = sorted(vector.get("inputs", {}))
        if given != declared:
            raise CardError(f"self-test {vector.get('name')} gives inputs {given}, the card declares {declared}")
        expected = vector.get("expected", [])
        for tensor in vector["inputs"].values():
            pattern = tensor.get("pattern")
            if pattern is not None and not 1 <= int(pattern.get("modulus", 0)) < (1 << 24):
                raise CardError(f"self-test {vector.get('name')}: pattern modulus must be in [1, 2^24)")
            if not tensor.get("shape") or tensor["shape"][0] != len(expected):
                raise CardError(
                    f"self-test {vector.get('name')}: {len(expected)} expected values for a batch of "
                    f"{tensor.get('shape', [None])[0]}"
                )
            if ("values" in tensor) == ("pattern" in tensor):
                raise CardError(f"self-test {vector.get('name')}: exactly one of values and pattern must be given")
