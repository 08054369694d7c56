"""Auxiliary training targets: what a synthetic cohort's generator knows about each image.

The outcome label is one noisy bit per patient (a Bernoulli draw of the true probability), and a
few hundred of them are too little for a CNN trained from scratch to find a few-millimetre
herniation in a 11 x 256 x 256 tensor: without help the image branch learns nothing and the model
falls back on the clinical features (models/tfesi-cnn/README.md, version cb3df248). The cohort key
that `tfesi demo --cohort-key` writes also holds the generator's image latents per disc level
(herniation size and side, stenosis grade, Pfirrmann grade, Modic type) and the root compression
on the injected side. With `[data] auxiliary_key` set, the job regresses them from the image
features beside the outcome (multi-task learning), so the image branch learns what the images
show; the exported model still takes only the image and the clinical features.

Real cohorts have no such key; their equivalent would be structured radiology findings. A run
without a key trains exactly as before.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Disc levels as the key's column suffixes, cranial to caudal.
LEVELS = ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")

#: Per level: (target name, scale): herniation size in mm on each side / 10, stenosis grade / 3,
#: (Pfirrmann grade - 1) / 4, Modic type 1 (oedema) as 0/1.
_PER_LEVEL = ("herniation_left", "herniation_central", "herniation_right", "stenosis", "pfirrmann", "modic1")

#: Every target, in the order of the model's auxiliary output.
TARGET_NAMES: tuple[str, ...] = tuple(f"{level}_{what}" for level in LEVELS for what in _PER_LEVEL) + (
    "root_compression",
)


class AuxiliaryKeyError(ValueError):
    """A cohort key that cannot give auxiliary targets, with what is wrong and where."""


def targets_of(row: Mapping[str, str], where: str = "key row") -> npt.NDArray[np.float32]:
    """The targets of one key row (its CSV fields), scaled to about [0, 1]."""

    def number(column: str) -> float:
        text = row.get(column)
        if text is None:
            raise AuxiliaryKeyError(
                f"{where}: no column {column} (a cohort key from an older tfesi demo has no image latents; "
                "write it again with this version's `tfesi demo --cohort-key`)"
            )
        try:
            return float(text) if text != "" else 0.0
        except ValueError as error:
            raise AuxiliaryKeyError(f"{where}: {column} = {text!r} is not a number") from error

    values: list[float] = []
    for level in LEVELS:
        size = number(f"herniation_mm_{level}") / 10.0
        side = (row.get(f"herniation_side_{level}") or "").strip()
        if size > 0 and side not in ("left", "central", "right"):
            raise AuxiliaryKeyError(f"{where}: herniation_side_{level} = {side!r} (left, central or right)")
        values += [size if side == "left" else 0.0, size if side == "central" else 0.0,
                   size if side == "right" else 0.0]
        values.append(number(f"stenosis_grade_{level}") / 3.0)
        values.append((number(f"pfirrmann_{level}") - 1.0) / 4.0)
        values.append(1.0 if number(f"modic_{level}") == 1 else 0.0)
    values.append(number("root_compression_mm") / 10.0)
    return np.asarray(values, dtype=np.float32)


def read_auxiliary_key(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[np.float32]]:
    """Targets by episode id from a cohort key (`tfesi demo --cohort-key`)."""
    by_episode: dict[str, npt.NDArray[np.float32]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "episode_id" not in reader.fieldnames:
            raise AuxiliaryKeyError(f"{path}: not a cohort key (no episode_id column)")
        for line, row in enumerate(reader, start=2):
            if row.get("synthetic") != "true":
                raise AuxiliaryKeyError(f"{path} line {line}: not marked synthetic; keys come from synthetic cohorts only")
            episode = row["episode_id"]
            if episode in by_episode:
                raise AuxiliaryKeyError(f"{path} line {line}: episode {episode} is in the key twice")
            by_episode[episode] = targets_of(row, f"{path} line {line}")
    if not by_episode:
        raise AuxiliaryKeyError(f"{path}: the cohort key has no row")
    return by_episode


def targets_for_rows(rows: Sequence[Mapping[str, Any]], key: Mapping[str, npt.NDArray[np.float32]],
                     path: str = "the auxiliary key") -> npt.NDArray[np.float32]:
    """[N, len(TARGET_NAMES)] for snapshot rows; every row must have its key row."""
    missing = [str(row.get("episode_id")) for row in rows if str(row.get("episode_id")) not in key]
    if missing:
        raise AuxiliaryKeyError(
            f"{len(missing)} snapshot row(s) have no row in {path} (first: episode {missing[0]}): "
            "the key must come from the same cohort as the snapshot"
        )
    if not rows:
        return np.zeros((0, len(TARGET_NAMES)), dtype=np.float32)
    return np.stack([key[str(row["episode_id"])] for row in rows])
