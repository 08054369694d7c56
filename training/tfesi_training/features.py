"""Clinical features of a snapshot row, encoded exactly as tfesi-preprocess encodes them.

The table mirrors services/preprocess/src/features.rs (names, card encodings, encoders and the
13-week symptom threshold), so the `clinical` input the model trains on equals the one the
pipeline worker sends to inference. The levels and side come from the recorded injection when
the row has one, otherwise from the plan (as the worker does).

Rows come from the client (`tfesi_client.row_to_dict`: levels `l4_l5`) or from a Parquet file
of `tfesi snapshot export` (levels `L4-L5`); both spellings are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Symptoms shorter than this many days count as "under 3 months" (features.rs SHORT_SYMPTOM_DAYS).
SHORT_SYMPTOM_DAYS = 91


def _norm(value: Any) -> str:
    """`L4-L5`, `l4_l5`, `SPINAL_LEVEL_L4_L5` -> `l4_l5`; `SIDE_LEFT`, `left` -> `left`."""
    if value is None:
        return ""
    text = str(value).strip().lower().replace("-", "_")
    for prefix in ("spinal_level_", "side_", "indication_", "sex_"):
        text = text.removeprefix(prefix)
    return text


def _levels(row: Mapping[str, Any]) -> list[str]:
    injected = [_norm(level) for level in (row.get("injected_levels") or [])]
    if injected:
        return injected
    return [_norm(level) for level in (row.get("planned_levels") or [])]


def _side(row: Mapping[str, Any]) -> str:
    if row.get("injected_levels"):
        return _norm(row.get("injected_side"))
    return _norm(row.get("planned_side"))


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _flag(condition: bool) -> np.float32:
    return np.float32(1.0 if condition else 0.0)


Encoder = Callable[[Mapping[str, Any]], np.float32]

#: (name, encoding as the card words it, encoder), in the order of features.rs.
FEATURES: tuple[tuple[str, str, Encoder], ...] = (
    (
        "baseline_leg_nrs",
        "leg pain NRS-11 before the injection, 0 to 10, divided by 10",
        lambda row: _f32(row["baseline_leg_nrs"]) / np.float32(10.0),
    ),
    (
        "age_years",
        "age at injection in years, divided by 100",
        lambda row: _f32(row["age_years"]) / np.float32(100.0),
    ),
    ("level_l4_l5", "1 if the injected foramen is L4-L5, else 0", lambda row: _flag("l4_l5" in _levels(row))),
    ("level_l5_s1", "1 if the injected foramen is L5-S1, else 0", lambda row: _flag("l5_s1" in _levels(row))),
    ("side_left", "1 if injected on the left only, else 0", lambda row: _flag(_side(row) == "left")),
    (
        "indication_stenosis",
        "1 for spinal stenosis, 0 for herniated disc",
        lambda row: _flag(_norm(row.get("indication")) == "spinal_stenosis"),
    ),
    ("sex_female", "1 if female, else 0", lambda row: _flag(_norm(row.get("sex")) == "female")),
    (
        "symptom_duration_lt_3_months",
        "1 if symptoms lasted under 3 months, else 0",
        lambda row: _flag(int(row["symptom_duration_days"]) < SHORT_SYMPTOM_DAYS),
    ),
)

#: Feature names in input order.
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in FEATURES)


def card_features(names: Sequence[str] = FEATURE_NAMES) -> list[dict[str, str]]:
    """The card's `clinical_features` entries for `names`, in that order."""
    table = {name: encoding for name, encoding, _ in FEATURES}
    unknown = [name for name in names if name not in table]
    if unknown:
        raise ValueError(f"no encoder for clinical feature(s) {unknown} (tfesi-preprocess has none either)")
    return [{"name": name, "encoding": table[name]} for name in names]


def encode_row(row: Mapping[str, Any], names: Sequence[str] = FEATURE_NAMES) -> npt.NDArray[np.float32]:
    """float32 [F] for one row, in the order of `names`."""
    encoders = {name: encoder for name, _, encoder in FEATURES}
    return np.array([encoders[name](row) for name in names], dtype=np.float32)


def encode_rows(rows: Sequence[Mapping[str, Any]], names: Sequence[str] = FEATURE_NAMES) -> npt.NDArray[np.float32]:
    """float32 [N, F]."""
    if not rows:
        return np.zeros((0, len(names)), dtype=np.float32)
    return np.stack([encode_row(row, names) for row in rows])
