"""Flat dicts and tables of exported rows; enum names both ways."""

from __future__ import annotations

import datetime

import pytest
from helpers import make_row

from tfesi_client import COLUMNS, SnapshotExport, common_pb2, dataset_pb2, row_to_dict
from tfesi_client.enums import enum_value, short_name, short_names


def test_enum_values_accept_ints_full_and_short_names() -> None:
    assert enum_value(common_pb2.SpinalLevel, "l4_l5") == common_pb2.SPINAL_LEVEL_L4_L5
    assert enum_value(common_pb2.SpinalLevel, "SPINAL_LEVEL_S1") == common_pb2.SPINAL_LEVEL_S1
    assert enum_value(common_pb2.Indication, "herniated-disc") == common_pb2.INDICATION_HERNIATED_DISC
    assert enum_value(dataset_pb2.Split, 2) == dataset_pb2.SPLIT_VALIDATION
    with pytest.raises(ValueError, match="none of train, validation, test"):
        enum_value(dataset_pb2.Split, "holdout")
    with pytest.raises(ValueError):
        enum_value(dataset_pb2.Split, 17)
    with pytest.raises(ValueError):
        enum_value(dataset_pb2.Split, True)


def test_short_names() -> None:
    assert short_name(common_pb2.SpinalLevel, common_pb2.SPINAL_LEVEL_L5_S1) == "l5_s1"
    assert short_name(common_pb2.OutcomeLabel, 0) is None
    assert short_names(common_pb2.Side) == ["left", "right", "bilateral"]


def test_row_to_dict_flattens_a_labeled_row() -> None:
    row = row_to_dict(make_row(4, series_id="33333333-0000-4000-8000-000000000001", content="aa" * 32))
    assert tuple(row) == COLUMNS
    assert row["index"] == 4
    assert row["split"] == "train"
    assert row["indication"] == "spinal_stenosis"
    assert row["planned_levels"] == ["l4_l5", "l5_s1"]
    assert row["injected_levels"] == ["l4_l5"]
    assert row["planned_side"] == "left" and row["sex"] == "female"
    assert row["baseline_leg_nrs"] == 8 and row["baseline_back_nrs"] is None
    assert row["follow_up_leg_nrs"] == 3 and row["days_to_follow_up"] == 58
    assert row["label"] == "good" and row["label_rule_version"] == "leg-50-v1"
    assert row["label_reduction"] == pytest.approx(0.625)
    assert row["unlabelable_reason"] is None
    assert row["champion_probability"] == pytest.approx(0.71)
    assert (row["champion_model_name"], row["champion_model_version"]) == ("tfesi-test", "1")
    assert row["champion_predicted_at"] == datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    assert row["instance_sha256"] == ["ab" * 32, "cd" * 32]


def test_row_to_dict_of_an_unlabeled_row_without_study() -> None:
    row = row_to_dict(make_row(0, label=common_pb2.OUTCOME_LABEL_UNSPECIFIED))
    assert row["label"] is None
    assert row["unlabelable_reason"] == "no_follow_up"
    assert row["series_id"] is None and row["study_id"] is None
    assert row["follow_up_leg_nrs"] is None and row["label_reduction"] is None
    assert row["champion_probability"] is None and row["champion_predicted_at"] is None


def test_to_arrow_has_a_fixed_schema_even_when_empty() -> None:
    pa = pytest.importorskip("pyarrow")
    snapshot = dataset_pb2.Snapshot(snapshot_id="f" * 64, label_rule_version="leg-50-v1")
    empty = SnapshotExport(snapshot=snapshot).to_arrow()
    assert empty.num_rows == 0
    assert empty.column_names == list(COLUMNS)
    assert empty.schema.field("planned_levels").type == pa.list_(pa.string())
    assert empty.schema.metadata[b"tfesi.snapshot_id"] == b"f" * 64

    export = SnapshotExport(
        snapshot=snapshot,
        rows=[make_row(0, label=common_pb2.OUTCOME_LABEL_UNSPECIFIED), make_row(1, series_id="s1")],
    )
    table = export.to_arrow()
    assert table.num_rows == 2
    assert table.column("label").to_pylist() == [None, "good"]
    assert table.column("baseline_leg_nrs").type == pa.int32()
    assert table.column("champion_probability").to_pylist() == [None, pytest.approx(0.71)]
