"""A small fake snapshot (Parquet + tensor cache) for tests and dry runs without a stack.

Rows look like the client's export; each image carries a bright blob whose size drives the
label, so a working pipeline learns something. Not the synthetic cohort: use `tfesi synth` and
a running stack for that.
"""

from __future__ import annotations

import hashlib
import pathlib
import uuid

import numpy as np

from tfesi_training.data import TensorCache


def write_fake_snapshot(out_dir: str | pathlib.Path, *, patients: int = 40, shape: tuple[int, int, int] = (11, 64, 64),
                        seed: int = 0, spec_version: str = "tfesi-prep-v1") -> tuple[pathlib.Path, pathlib.Path, str]:
    """Writes snapshot.parquet and tensors/ under out_dir; returns (parquet, tensor dir, snapshot id)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = TensorCache(out / "tensors")
    slices, height, width = shape
    rows = []
    splits = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(patients):
        series_id = str(uuid.UUID(int=int(rng.integers(1 << 62)) + index))
        size = float(rng.uniform(0, 1))
        good = int(rng.random() < 0.2 + 0.6 * size)
        image = rng.normal(0, 0.3, shape).astype(np.float32)
        cy, cx = rng.integers(height // 4, 3 * height // 4, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (1 + 6 * size) ** 2)).astype(np.float32)
        image[slices // 2 - 2 : slices // 2 + 3] += 2 * blob
        tensor_sha = hashlib.sha256(image.astype("<f4").tobytes()).hexdigest()
        content_sha = hashlib.sha256(series_id.encode()).hexdigest()
        cache.put(series_id, content_sha, image, tensor_sha, spec_version)
        rows.append({
            "index": index,
            "episode_id": str(uuid.uuid4()),
            "patient_id": f"patient-{index}",
            "split": splits[index % len(splits)],
            "series_id": series_id,
            "series_content_sha256": content_sha,
            "indication": "spinal_stenosis" if rng.random() < 0.4 else "herniated_disc",
            "planned_levels": ["l4_l5" if rng.random() < 0.5 else "l5_s1"],
            "planned_side": ["left", "right", "bilateral"][int(rng.integers(3))],
            "baseline_leg_nrs": int(rng.integers(4, 11)),
            "symptom_duration_days": int(rng.integers(20, 400)),
            "age_years": int(rng.integers(25, 85)),
            "sex": "female" if rng.random() < 0.5 else "male",
            "injected_levels": [],
            "injected_side": None,
            "label": "good" if good else "poor",
        })
    cache.save()
    snapshot_id = hashlib.sha256(f"fake-{seed}-{patients}".encode()).hexdigest()
    table = pa.Table.from_pylist(rows).replace_schema_metadata({"tfesi.snapshot_id": snapshot_id})
    parquet = out / "snapshot.parquet"
    pq.write_table(table, parquet)
    return parquet, out / "tensors", snapshot_id
