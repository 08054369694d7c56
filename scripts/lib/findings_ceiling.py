#!/usr/bin/env python3
"""What a model could reach if it read the image findings perfectly (synthetic cohorts only).

Joins a snapshot export with its cohort key (`tfesi demo --cohort-key`) and fits 5-fold
cross-validated logistic regressions of the drawn outcome on the clinical features alone, and on
the clinical features plus the generator's true findings (tfesi_training/auxiliary.py), so the
value of each kind of finding can be compared with the Bayes AUC of the same rows. Used for
models/tfesi-cnn/README.md ("Auxiliary targets tried").

    .venv-training/bin/python scripts/lib/findings_ceiling.py SNAPSHOT.parquet COHORT-KEY.csv
"""

from __future__ import annotations

import csv
import pathlib
import sys

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "training"))
from tfesi_training.auxiliary import TARGET_NAMES, targets_of  # noqa: E402
from tfesi_training.features import FEATURE_NAMES, encode_rows  # noqa: E402


def main(parquet: str, key_path: str) -> None:
    with open(key_path, newline="") as handle:
        key = {row["episode_id"]: row for row in csv.DictReader(handle)}
    rows = [row for row in pq.read_table(parquet).to_pylist() if row["episode_id"] in key]
    entries = [key[row["episode_id"]] for row in rows]
    clinical = encode_rows(rows, FEATURE_NAMES)
    findings = np.stack([targets_of(entry) for entry in entries])
    outcome = np.array([int(entry["outcome_drawn"]) for entry in entries])
    bayes = roc_auc_score(outcome, [float(entry["p_true"]) for entry in entries])
    print(f"{len(rows)} rows; Bayes AUC {bayes:.3f} (the generator's p_true)")
    without_herniation = [i for i, name in enumerate(TARGET_NAMES)
                          if "herniation" not in name and name != "root_compression"]
    compression = [TARGET_NAMES.index("root_compression")]
    for name, columns in (
        ("clinical features", clinical),
        ("+ root compression", np.c_[clinical, findings[:, compression]]),
        ("+ all 31 findings", np.c_[clinical, findings]),
        ("+ stenosis, Pfirrmann, Modic (no herniation)", np.c_[clinical, findings[:, without_herniation]]),
    ):
        predicted = cross_val_predict(LogisticRegression(max_iter=3000), columns, outcome, cv=5,
                                      method="predict_proba")[:, 1]
        print(f"{name:48s} AUC {roc_auc_score(outcome, predicted):.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
