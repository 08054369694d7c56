"""Auxiliary targets from a synthetic cohort's key: scaling, refusals, and a job trained with them."""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
import pytest

from conftest import needs_torch
from tfesi_training.auxiliary import (
    LEVELS,
    TARGET_NAMES,
    AuxiliaryKeyError,
    read_auxiliary_key,
    targets_for_rows,
    targets_of,
)


def key_row(episode_id: str, **changes: str) -> dict[str, str]:
    """A key row without findings except `changes` (CSV fields, as `tfesi demo` writes them)."""
    row = {"synthetic": "true", "episode_id": episode_id, "root_compression_mm": "0.000000"}
    for level in LEVELS:
        row |= {f"herniation_mm_{level}": "0.000000", f"herniation_side_{level}": "",
                f"stenosis_grade_{level}": "0", f"pfirrmann_{level}": "1", f"modic_{level}": "0"}
    return row | changes


def write_key(path: pathlib.Path, rows: list[dict[str, str]]) -> pathlib.Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_targets_are_the_findings_per_level_and_side_scaled_to_about_one() -> None:
    row = key_row("e", herniation_mm_l4_l5="8.000000", herniation_side_l4_l5="left", stenosis_grade_l3_l4="3",
                  pfirrmann_l5_s1="5", modic_l5_s1="1", modic_l1_l2="2", root_compression_mm="4.800000")
    targets = dict(zip(TARGET_NAMES, targets_of(row).tolist(), strict=True))
    assert len(TARGET_NAMES) == 6 * len(LEVELS) + 1
    assert targets["l4_l5_herniation_left"] == pytest.approx(0.8)
    assert targets["l4_l5_herniation_central"] == targets["l4_l5_herniation_right"] == 0.0
    assert targets["l3_l4_stenosis"] == pytest.approx(1.0)
    assert targets["l5_s1_pfirrmann"] == pytest.approx(1.0)
    assert targets["l1_l2_pfirrmann"] == 0.0
    assert (targets["l5_s1_modic1"], targets["l1_l2_modic1"]) == (1.0, 0.0), "only Modic type 1 is a target"
    assert targets["root_compression"] == pytest.approx(0.48)


def test_a_key_without_image_latents_is_refused_with_how_to_get_one(tmp_path: pathlib.Path) -> None:
    old = write_key(tmp_path / "old.csv", [{"synthetic": "true", "episode_id": "e1", "p_true": "0.5"}])
    with pytest.raises(AuxiliaryKeyError, match="older tfesi demo"):
        read_auxiliary_key(old)


def test_duplicate_episodes_unmarked_rows_and_bad_sides_are_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AuxiliaryKeyError, match="line 3: episode e1 is in the key twice"):
        read_auxiliary_key(write_key(tmp_path / "twice.csv", [key_row("e1"), key_row("e1")]))
    with pytest.raises(AuxiliaryKeyError, match="not marked synthetic"):
        read_auxiliary_key(write_key(tmp_path / "real.csv", [key_row("e1", synthetic="false")]))
    bad_side = key_row("e1", herniation_mm_l4_l5="3.0", herniation_side_l4_l5="up")
    with pytest.raises(AuxiliaryKeyError, match="herniation_side_l4_l5 = 'up'"):
        read_auxiliary_key(write_key(tmp_path / "side.csv", [bad_side]))


def test_every_snapshot_row_needs_its_key_row() -> None:
    key = {"e1": targets_of(key_row("e1"))}
    assert targets_for_rows([{"episode_id": "e1"}], key).shape == (1, len(TARGET_NAMES))
    with pytest.raises(AuxiliaryKeyError, match="1 snapshot row"):
        targets_for_rows([{"episode_id": "e1"}, {"episode_id": "e2"}], key)


def fake_key_for(parquet: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """A key for the fake snapshot: one finding per row, drawn at random (the test checks the plumbing)."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    rows = []
    for row in pq.read_table(parquet).to_pylist():
        size = float(rng.uniform(0, 10))
        rows.append(key_row(row["episode_id"], herniation_mm_l4_l5=f"{size:.6f}", herniation_side_l4_l5="right",
                            root_compression_mm=f"{size:.6f}"))
    return write_key(out, rows)


@needs_torch
def test_a_job_with_an_auxiliary_key_and_a_spatial_map_exports_the_contract_model(
    tiny_config, fake_snapshot, tmp_path: pathlib.Path  # type: ignore[no-untyped-def]
) -> None:
    import onnx

    from tfesi_training.job import run_job

    parquet, tensors, _ = fake_snapshot
    key = fake_key_for(parquet, tmp_path / "key.csv")
    config = (
        tiny_config.replace("data", source="offline", parquet=str(parquet), tensor_dir=str(tensors),
                            auxiliary_key=str(key))
        .replace("model", spatial_grid=2)
        .replace("register", enabled=False)
    )
    report = run_job(config, tmp_path / "run", log=lambda _line: None)
    assert report["data"]["auxiliary_targets"] == len(TARGET_NAMES)
    errors = [epoch["validation_auxiliary_mse"] for epoch in report["training"]["history"]]
    assert all(isinstance(error, float) and np.isfinite(error) for error in errors), errors
    # The auxiliary head is internal: the graph keeps the contract's inputs and single output,
    # and ONNX Runtime matched PyTorch (run_job raises otherwise).
    graph = onnx.load(report["onnx"]["path"]).graph
    assert [i.name for i in graph.input] == ["image", "clinical"]
    assert [o.name for o in graph.output] == ["p_good_outcome"]
    assert report["parity"]["max_abs_difference"] <= config.export.parity_tolerance
    card = json.loads(pathlib.Path(report["card"]).read_text())
    assert f"{len(TARGET_NAMES)} auxiliary targets" in card["description"]


@needs_torch
def test_without_a_key_the_model_has_no_auxiliary_head(tiny_config, fake_snapshot, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    from tfesi_training.job import run_job

    parquet, tensors, _ = fake_snapshot
    config = tiny_config.replace("data", source="offline", parquet=str(parquet), tensor_dir=str(tensors)).replace(
        "register", enabled=False
    )
    report = run_job(config, tmp_path / "run", log=lambda _line: None)
    assert report["data"]["auxiliary_targets"] == 0
    assert all(epoch["validation_auxiliary_mse"] is None for epoch in report["training"]["history"])
