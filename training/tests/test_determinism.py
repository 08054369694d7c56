"""The job is deterministic for a seed: same data, settings and seed give the same bytes."""

from __future__ import annotations

import hashlib
import json

from conftest import needs_torch

pytestmark = needs_torch


def run(config, fake_snapshot, out):  # type: ignore[no-untyped-def]
    from tfesi_training.job import run_job

    parquet, tensors, _ = fake_snapshot
    offline = config.replace("data", source="offline", parquet=str(parquet), tensor_dir=str(tensors))
    return run_job(offline.replace("register", enabled=False), out, log=lambda *_: None)


def test_same_seed_gives_the_same_model_bytes_and_history(tiny_config, fake_snapshot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = run(tiny_config, fake_snapshot, tmp_path / "a")
    second = run(tiny_config, fake_snapshot, tmp_path / "b")
    assert first["onnx"]["sha256"] == second["onnx"]["sha256"]
    assert first["model"] == second["model"], "the auto version depends on data and settings only"
    strip = lambda report: [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in report["training"]["history"]]  # noqa: E731
    assert strip(first) == strip(second)
    card_a = json.loads((tmp_path / "a" / "model" / first["model"] / "model.json").read_text())
    card_b = json.loads((tmp_path / "b" / "model" / second["model"] / "model.json").read_text())
    assert card_a == card_b


def test_another_seed_gives_another_model(tiny_config, fake_snapshot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = run(tiny_config, fake_snapshot, tmp_path / "a")
    other = run(tiny_config.replace("train", seed=tiny_config.train.seed + 1), fake_snapshot, tmp_path / "c")
    assert first["onnx"]["sha256"] != other["onnx"]["sha256"]
    assert first["model"] != other["model"]
    onnx_bytes = (tmp_path / "c" / "model" / other["model"] / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == other["onnx"]["sha256"]
