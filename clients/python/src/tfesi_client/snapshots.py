"""Exported snapshot rows as flat dicts, and as pyarrow or pandas tables when installed.

Registry.ExportSnapshot streams the snapshot's metadata, then its ``SnapshotRow`` messages in
index order (proto/tfesi/registry/v1/dataset.proto). :class:`SnapshotExport` keeps both;
:func:`row_to_dict` turns a row into one flat dict whose keys are :data:`COLUMNS`: enum values
become short lowercase names (``"train"``, ``"good"``, ``"l4_l5"``), absent optional values
become ``None``. No dates: the export carries day counts only.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfesi_client._generated.tfesi.common.v1 import common_pb2
from tfesi_client._generated.tfesi.registry.v1 import dataset_pb2, records_pb2
from tfesi_client.enums import short_name

#: Keys of row_to_dict, in order, with their pyarrow type names (see to_arrow).
COLUMN_TYPES: dict[str, str] = {
    "index": "uint64",
    "episode_id": "string",
    "patient_id": "string",
    "split": "string",
    "study_id": "string",
    "series_id": "string",
    "series_content_sha256": "string",
    "instance_sha256": "list<string>",
    "indication": "string",
    "planned_levels": "list<string>",
    "planned_side": "string",
    "baseline_leg_nrs": "int32",
    "baseline_back_nrs": "int32",
    "symptom_duration_days": "int32",
    "age_years": "int32",
    "sex": "string",
    "injected_levels": "list<string>",
    "injected_side": "string",
    "follow_up_leg_nrs": "int32",
    "follow_up_back_nrs": "int32",
    "days_to_follow_up": "int32",
    "label": "string",
    "label_rule_version": "string",
    "unlabelable_reason": "string",
    "label_reduction": "float64",
    "champion_probability": "float64",
    "champion_threshold": "float64",
    "champion_predicted_label": "string",
    "champion_model_name": "string",
    "champion_model_version": "string",
    "champion_spec_version": "string",
    "champion_tensor_sha256": "string",
    "champion_predicted_at": "timestamp",
}
COLUMNS: tuple[str, ...] = tuple(COLUMN_TYPES)


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def row_to_dict(row: dataset_pb2.SnapshotRow) -> dict[str, Any]:
    """One exported row as a flat dict with the keys of :data:`COLUMNS`."""
    details = row.details
    label = row.label
    champion = row.champion_prediction if row.HasField("champion_prediction") else None
    predicted_at: datetime.datetime | None = None
    if champion is not None and champion.HasField("predicted_at"):
        predicted_at = champion.predicted_at.ToDatetime(tzinfo=datetime.UTC)
    return {
        "index": row.index,
        "episode_id": row.episode_id,
        "patient_id": row.patient_id,
        "split": short_name(dataset_pb2.Split, row.split),
        "study_id": row.study_id or None,
        "series_id": row.series_id or None,
        "series_content_sha256": row.series_content_sha256 or None,
        "instance_sha256": list(row.instance_sha256),
        "indication": short_name(common_pb2.Indication, details.indication),
        "planned_levels": [short_name(common_pb2.SpinalLevel, v) for v in details.planned_levels],
        "planned_side": short_name(common_pb2.Side, details.planned_side),
        "baseline_leg_nrs": details.baseline_leg_nrs,
        "baseline_back_nrs": _opt(details, "baseline_back_nrs"),
        "symptom_duration_days": details.symptom_duration_days,
        "age_years": details.age_years,
        "sex": short_name(common_pb2.Sex, details.sex),
        "injected_levels": [short_name(common_pb2.SpinalLevel, v) for v in row.injected_levels],
        "injected_side": short_name(common_pb2.Side, row.injected_side),
        "follow_up_leg_nrs": _opt(row, "follow_up_leg_nrs"),
        "follow_up_back_nrs": _opt(row, "follow_up_back_nrs"),
        "days_to_follow_up": _opt(row, "days_to_follow_up"),
        "label": short_name(common_pb2.OutcomeLabel, label.label),
        "label_rule_version": label.rule_version or None,
        "unlabelable_reason": short_name(records_pb2.UnlabelableReason, label.unlabelable_reason),
        "label_reduction": _opt(label, "reduction"),
        "champion_probability": champion.probability if champion is not None else None,
        "champion_threshold": champion.threshold if champion is not None else None,
        "champion_predicted_label": (
            short_name(common_pb2.OutcomeLabel, champion.predicted_label) if champion is not None else None
        ),
        "champion_model_name": champion.model.name if champion is not None else None,
        "champion_model_version": champion.model.version if champion is not None else None,
        "champion_spec_version": (champion.spec_version or None) if champion is not None else None,
        "champion_tensor_sha256": (champion.tensor_sha256 or None) if champion is not None else None,
        "champion_predicted_at": predicted_at,
    }


def label_to_int(label: int) -> int | None:
    """1 for GOOD, 0 for POOR, None for no label (the usual binary target)."""
    if label == common_pb2.OUTCOME_LABEL_GOOD:
        return 1
    if label == common_pb2.OUTCOME_LABEL_POOR:
        return 0
    return None


@dataclass
class SnapshotExport:
    """A fully read ExportSnapshot stream: the metadata and every row, in index order."""

    snapshot: dataset_pb2.Snapshot
    rows: list[dataset_pb2.SnapshotRow] = field(default_factory=list)

    @property
    def snapshot_id(self) -> str:
        return self.snapshot.snapshot_id

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dataset_pb2.SnapshotRow]:
        return iter(self.rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every row as a flat dict (:func:`row_to_dict`)."""
        return [row_to_dict(row) for row in self.rows]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with the columns of :data:`COLUMNS` (requires pyarrow).

        The table's schema metadata holds the snapshot id and label rule version.
        """
        return rows_to_arrow(self.to_dicts(), self.snapshot)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the columns of :data:`COLUMNS` (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install 'tfesi-client[pandas]'") from error
        frame = pd.DataFrame(self.to_dicts(), columns=list(COLUMNS))
        frame.attrs["snapshot_id"] = self.snapshot.snapshot_id
        frame.attrs["label_rule_version"] = self.snapshot.label_rule_version
        return frame


def _arrow_type(pa: Any, name: str) -> Any:
    if name == "list<string>":
        return pa.list_(pa.string())
    if name == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return getattr(pa, name)()


def rows_to_arrow(rows: Sequence[dict[str, Any]], snapshot: dataset_pb2.Snapshot | None = None) -> Any:
    """Flat row dicts as a ``pyarrow.Table`` with a fixed schema (also when there are no rows)."""
    try:
        import pyarrow as pa
    except ImportError as error:
        raise ImportError("to_arrow needs pyarrow: pip install 'tfesi-client[arrow]'") from error
    metadata = None
    if snapshot is not None:
        metadata = {
            "tfesi.snapshot_id": snapshot.snapshot_id,
            "tfesi.label_rule_version": snapshot.label_rule_version,
        }
    schema = pa.schema(
        [pa.field(name, _arrow_type(pa, kind)) for name, kind in COLUMN_TYPES.items()], metadata=metadata
    )
    return pa.Table.from_pylist(list(rows), schema=schema)
