"""Test helpers: snapshot rows like the registry exports."""

from __future__ import annotations

import datetime

from tfesi_client import common_pb2, dataset_pb2, records_pb2


def make_row(
    index: int,
    *,
    series_id: str = "",
    label: int = common_pb2.OUTCOME_LABEL_GOOD,
    split: int = dataset_pb2.SPLIT_TRAIN,
    content: str = "",
) -> dataset_pb2.SnapshotRow:
    """A snapshot row like the registry exports (synthetic values)."""
    row = dataset_pb2.SnapshotRow(
        index=index,
        episode_id=f"00000000-0000-4000-8000-{index:012d}",
        patient_id=f"11111111-0000-4000-8000-{index:012d}",
        split=split,
        study_id="22222222-0000-4000-8000-000000000001" if series_id else "",
        series_id=series_id,
        series_content_sha256=content,
        instance_sha256=["ab" * 32, "cd" * 32] if series_id else [],
        details=records_pb2.EpisodeDetails(
            patient_id=f"11111111-0000-4000-8000-{index:012d}",
            indication=common_pb2.INDICATION_SPINAL_STENOSIS,
            planned_levels=[common_pb2.SPINAL_LEVEL_L4_L5, common_pb2.SPINAL_LEVEL_L5_S1],
            planned_side=common_pb2.SIDE_LEFT,
            baseline_leg_nrs=8,
            symptom_duration_days=60,
            age_years=61,
            sex=common_pb2.SEX_FEMALE,
        ),
        injected_levels=[common_pb2.SPINAL_LEVEL_L4_L5],
        injected_side=common_pb2.SIDE_LEFT,
        follow_up_leg_nrs=3,
        days_to_follow_up=58,
        label=records_pb2.Label(rule_version="leg-50-v1", label=label, reduction=0.625),
    )
    if label == common_pb2.OUTCOME_LABEL_UNSPECIFIED:
        row.label.unlabelable_reason = records_pb2.UNLABELABLE_REASON_NO_FOLLOW_UP
        row.label.ClearField("reduction")
        row.ClearField("follow_up_leg_nrs")
        row.ClearField("days_to_follow_up")
    else:
        row.champion_prediction.CopyFrom(
            records_pb2.PredictionRecord(
                model=common_pb2.ModelRef(name="tfesi-test", version="1"),
                role=common_pb2.MODEL_ROLE_CHAMPION,
                spec_version="tfesi-prep-v1",
                probability=0.71,
                threshold=0.5,
                predicted_label=common_pb2.OUTCOME_LABEL_GOOD,
                tensor_sha256="ef" * 32,
            )
        )
        row.champion_prediction.predicted_at.FromDatetime(
            datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
        )
    return row
