"""Clinical features equal tfesi-preprocess's, the configuration files load and refuse mistakes,
and the offline data path checks what it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TRAINING_DIR
from tfesi_training.config import ConfigError, load_config
from tfesi_training.features import FEATURE_NAMES, encode_row


def episode(**changes):  # type: ignore[no-untyped-def]
    row = {"baseline_leg_nrs": 7, "age_years": 54, "planned_levels": ["l4_l5"], "planned_side": "left",
           "indication": "spinal_stenosis", "sex": "female", "symptom_duration_days": 60,
           "injected_levels": [], "injected_side": None}
    row.update(changes)
    return row


def test_planned_procedure_is_encoded_as_features_rs_encodes_it() -> None:
    # services/preprocess/src/features.rs planned_procedure_is_encoded_when_no_injection_is_recorded
    values = encode_row(episode())
    assert values.dtype == np.float32
    assert values.tolist() == pytest.approx([0.7, 0.54, 1, 0, 1, 1, 1, 1], abs=1e-7)
    assert values[0] == np.float32(7) / np.float32(10)


def test_recorded_injection_overrides_the_plan_in_either_spelling() -> None:
    for levels in (["l5_s1"], ["L5-S1"]):
        values = dict(zip(FEATURE_NAMES, encode_row(episode(injected_levels=levels, injected_side="bilateral"))))
        assert values["level_l4_l5"] == 0 and values["level_l5_s1"] == 1
        assert values["side_left"] == 0, "bilateral is not left only"


def test_symptom_duration_threshold_is_thirteen_weeks() -> None:
    index = FEATURE_NAMES.index("symptom_duration_lt_3_months")
    assert encode_row(episode(symptom_duration_days=90))[index] == 1
    assert encode_row(episode(symptom_duration_days=91))[index] == 0


def test_tiny_configuration_overlays_the_default() -> None:
    tiny = load_config(TRAINING_DIR / "configs" / "tiny.toml")
    default = load_config()
    assert tiny.model.stage_channels == (8, 8) and default.model.stage_channels == (32, 48, 64)
    assert tiny.export.parity_tolerance == default.export.parity_tolerance == 1e-5
    assert tiny.digest() != default.digest()
    assert load_config(TRAINING_DIR / "configs" / "tiny.toml").digest() == tiny.digest()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[train]\nepochs = \"ten\"\n", "train] epochs"),
        ("[train]\nepochz = 3\n", "unknown setting"),
        ("[model]\ninputs = \"clinical\"\n", "model.inputs"),
        ("[data]\nsource = \"offline\"\n", "data.parquet"),
        ("[gpu]\nx = 1\n", "unknown section"),
        ("[model]\nencoder = \"3d\"\n", "model.encoder"),
        ("[model]\nslice_channels = []\n", "model.slice_channels"),
        ("[model]\nslice_columns = 200\n", "model.slice_columns"),
    ],
)
def test_a_wrong_setting_is_refused_with_its_key(tmp_path, text: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_offline_load_splits_by_patient_and_checks_tensor_hashes(fake_snapshot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    from tfesi_training.data import load_offline

    parquet, tensors, snapshot_id = fake_snapshot
    dataset = load_offline(parquet, tensors)
    assert dataset.snapshot_id == snapshot_id
    assert dataset.shape == (11, 32, 32)
    assert sum(len(split) for split in dataset.splits.values()) == 40
    assert len(dataset.splits["train"]) == 24

    manifest = json.loads((tensors / "manifest.json").read_text())
    first = next(iter(manifest["series"].values()))
    corrupt_dir = tmp_path / "corrupt"
    corrupt_dir.mkdir()
    for path in tensors.iterdir():
        (corrupt_dir / path.name).write_bytes(path.read_bytes())
    array = np.load(corrupt_dir / first["file"])
    array[0, 0, 0] += 1
    np.save(corrupt_dir / first["file"], array)
    with pytest.raises(ValueError, match="does not match its sha256"):
        load_offline(parquet, corrupt_dir)


def test_a_patient_in_two_splits_is_refused() -> None:
    from tfesi_training.data import check_patient_split

    with pytest.raises(ValueError, match="not a patient-level split"):
        check_patient_split([{"patient_id": "p", "split": "train"}, {"patient_id": "p", "split": "test"}])
