"""Labeled examples of a snapshot: rows, clinical features, labels and tensors, per split.

Two sources, one result:
- online: the snapshot is created (or read) and exported through the Python client, and each
  row's tensor comes from Preprocess.Prepare (`TfesiClient.iter_training_examples`), exactly what
  inference sees. `fetch_snapshot` also writes them to disk (Parquet + tensor cache), so the run
  can be repeated offline;
- offline: a Parquet export (`tfesi snapshot export --parquet`, or the one `fetch` writes) and a
  tensor cache directory with its manifest.json.

Tensor cache layout: `<dir>/manifest.json` = {"format": "tfesi-tensor-cache/1", "spec_version",
"shape", "series": {series_id: {"series_content_sha256", "tensor_sha256", "file"}}} and one
`<tensor_sha256>.npy` (float32 [S, H, W], little-endian) per series. Files are memory-mapped when
read and their SHA-256 is checked against the manifest (the same hash Prepare's header carries).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tfesi_training.features import FEATURE_NAMES, encode_rows

CACHE_FORMAT = "tfesi-tensor-cache/1"
SPLITS = ("train", "validation", "test")


@dataclass
class SplitData:
    """One split: rows (flat dicts), labels (0/1), clinical [N, F] and tensors [S, H, W] each."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    tensors: list[npt.NDArray[np.float32]] = field(default_factory=list)
    #: Auxiliary targets [N, K] (auxiliary.py), only when the run has an auxiliary key.
    auxiliary: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def clinical(self, names: Sequence[str] = FEATURE_NAMES) -> npt.NDArray[np.float32]:
        return encode_rows(self.rows, names)

    def label_array(self) -> npt.NDArray[np.float32]:
        return np.asarray(self.labels, dtype=np.float32)


@dataclass
class Dataset:
    """Every labeled row with a tensor, by split, with the facts the card and report need."""

    snapshot_id: str
    spec_version: str
    shape: tuple[int, int, int]
    splits: dict[str, SplitData]
    #: Rows left out and why (no label, no series, tensor missing from the cache).
    skipped: dict[str, int] = field(default_factory=dict)
    #: Names of the auxiliary targets every split carries (empty without an auxiliary key).
    auxiliary_targets: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "spec_version": self.spec_version,
            "tensor_shape": list(self.shape),
            "rows": {name: len(split) for name, split in self.splits.items()},
            "good": {name: int(sum(split.labels)) for name, split in self.splits.items()},
            "skipped": dict(self.skipped),
            "auxiliary_targets": len(self.auxiliary_targets),
        }


def label_of(value: Any) -> int | None:
    """1 for good, 0 for poor, None for anything else (unlabeled)."""
    text = (str(value).strip().lower() if value is not None else "").removeprefix("outcome_label_")
    return {"good": 1, "poor": 0}.get(text)


def check_patient_split(rows: Iterable[Mapping[str, Any]]) -> None:
    """Raises ValueError when one patient's rows fall in two splits (the split is per patient)."""
    seen: dict[str, str] = {}
    for row in rows:
        patient, split = str(row["patient_id"]), str(row["split"])
        if seen.setdefault(patient, split) != split:
            raise ValueError(f"patient {patient} is in both {seen[patient]} and {split}: not a patient-level split")


def _sha256_of(array: npt.NDArray[np.float32]) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


class TensorCache:
    """The on-disk tensor cache (see the module doc)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = pathlib.Path(directory)
        self.manifest_path = self.directory / "manifest.json"
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
            if self.manifest.get("format") != CACHE_FORMAT:
                raise ValueError(f"{self.manifest_path}: format is not {CACHE_FORMAT}")
        else:
            self.manifest = {"format": CACHE_FORMAT, "spec_version": "", "shape": [], "series": {}}

    def put(self, series_id: str, series_content_sha256: str, tensor: npt.NDArray[np.float32],
            tensor_sha256: str, spec_version: str) -> None:
        """Stores a tensor (once per series) after checking its hash and spec."""
        if self.manifest["spec_version"] and self.manifest["spec_version"] != spec_version:
            raise ValueError(f"cache holds spec {self.manifest['spec_version']}, not {spec_version}")
        actual = _sha256_of(tensor)
        if tensor_sha256 and actual != tensor_sha256.lower():
            raise ValueError(f"series {series_id}: tensor sha256 {actual} != {tensor_sha256}")
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{actual}.npy"
        path = self.directory / name
        if not path.exists():
            partial = self.directory / (name + ".partial")
            with open(partial, "wb") as handle:
                np.save(handle, np.ascontiguousarray(tensor, dtype="<f4"))
            os.replace(partial, path)
        self.manifest["spec_version"] = spec_version
        self.manifest["shape"] = list(tensor.shape)
        self.manifest["series"][series_id] = {
            "series_content_sha256": series_content_sha256 or "",
            "tensor_sha256": actual,
            "file": name,
        }

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.manifest_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n")
        os.replace(partial, self.manifest_path)

    def get(self, series_id: str, series_content_sha256: str | None) -> npt.NDArray[np.float32] | None:
        """The series' tensor (memory-mapped, hash-checked), or None when not cached."""
        entry = self.manifest["series"].get(series_id)
        if entry is None:
            return None
        if series_content_sha256 and entry["series_content_sha256"] not in ("", series_content_sha256):
            raise ValueError(
                f"series {series_id}: cached tensor is of content {entry['series_content_sha256']}, "
                f"the snapshot's is {series_content_sha256}"
            )
        array = np.load(self.directory / entry["file"], mmap_mode="r")
        if _sha256_of(array) != entry["tensor_sha256"]:
            raise ValueError(f"{self.directory / entry['file']}: content does not match its sha256")
        return array


def _dataset_from_rows(
    rows: Sequence[dict[str, Any]], snapshot_id: str, lookup: Any, spec_version: str
) -> Dataset:
    splits = {name: SplitData() for name in SPLITS}
    skipped = {"unlabeled": 0, "no_series": 0, "tensor_missing": 0}
    check_patient_split(rows)
    shape: tuple[int, int, int] | None = None
    for row in rows:
        label = label_of(row.get("label"))
        if label is None:
            skipped["unlabeled"] += 1
            continue
        if not row.get("series_id"):
            skipped["no_series"] += 1
            continue
        tensor = lookup(row)
        if tensor is None:
            skipped["tensor_missing"] += 1
            continue
        if shape is None:
            shape = tuple(tensor.shape)  # type: ignore[assignment]
        elif tuple(tensor.shape) != shape:
            raise ValueError(f"series {row['series_id']}: tensor shape {tensor.shape}, others {shape}")
        split = splits[str(row["split"])]
        split.rows.append(row)
        split.labels.append(label)
        split.tensors.append(tensor)
    if shape is None:
        raise ValueError(f"snapshot {snapshot_id} has no labeled row with a tensor")
    return Dataset(snapshot_id=snapshot_id, spec_version=spec_version, shape=shape, splits=splits, skipped=skipped)


def read_parquet_rows(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], str]:
    """Rows of a snapshot Parquet export (client or `tfesi snapshot export`) and its snapshot id."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    # `tfesi snapshot export` writes the Parquet file's key-value metadata; the client's
    # to_arrow() the Arrow schema's (which pyarrow also stores there). Read both.
    raw = dict(pq.read_metadata(path).metadata or {})
    raw.update(table.schema.metadata or {})
    metadata = {key.decode(): value.decode() for key, value in raw.items()}
    snapshot_id = metadata.get("tfesi.snapshot_id", "")
    rows = table.to_pylist()
    rows.sort(key=lambda row: int(row["index"]))
    return rows, snapshot_id


def load_offline(parquet: str | os.PathLike[str], tensor_dir: str | os.PathLike[str],
                 spec_version: str = "") -> Dataset:
    """The dataset from a Parquet export and a tensor cache directory."""
    rows, snapshot_id = read_parquet_rows(parquet)
    cache = TensorCache(tensor_dir)
    cached_spec = cache.manifest.get("spec_version", "")
    if spec_version and cached_spec and cached_spec != spec_version:
        raise ValueError(f"{tensor_dir} holds tensors of spec {cached_spec}, the config asks for {spec_version}")
    for row in rows:  # CLI exports name the champion differently; only the fields used matter
        row.setdefault("label", None)
    return _dataset_from_rows(
        rows, snapshot_id, lambda row: cache.get(row["series_id"], row.get("series_content_sha256")),
        cached_spec or spec_version,
    )


def fetch_snapshot(client: Any, data_config: Any, out_dir: str | os.PathLike[str],
                   description: str = "tfesi_training") -> tuple[pathlib.Path, pathlib.Path, str]:
    """Creates (or reads) the snapshot, writes `snapshot.parquet` and the tensor cache `tensors/`
    under `out_dir`; returns (parquet path, tensor dir, snapshot id)."""
    import pyarrow.parquet as pq

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if data_config.snapshot_id:
        snapshot_id = data_config.snapshot_id
    else:
        created = client.create_snapshot(
            split_seed=data_config.split_seed,
            require_study=True,
            label_rule_version=data_config.label_rule_version,
            fractions=tuple(data_config.fractions) if data_config.fractions else None,
            description=description,
        )
        snapshot_id = created.snapshot.snapshot_id
    export = client.export_snapshot(snapshot_id)
    parquet_path = out / "snapshot.parquet"
    pq.write_table(export.to_arrow(), parquet_path)
    cache = TensorCache(out / "tensors")
    spec = data_config.spec_version or None
    for example in client.iter_training_examples(export, spec_version=spec):
        series_id = example.row["series_id"]
        if series_id not in cache.manifest["series"]:
            cache.put(series_id, example.row.get("series_content_sha256") or "", example.tensor,
                      example.tensor_sha256, example.spec_version)
    cache.save()
    return parquet_path, out / "tensors", snapshot_id
