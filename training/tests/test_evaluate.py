"""The evaluate command: the cohort key's join (precise errors), the clinical-only reference
(deterministic), models run by ONNX Runtime and the report's documented fields.

Models are tiny ONNX graphs written with onnx.helper (no PyTorch needed):
p = sigmoid(a * mean(image) + clinical . w + b); the fake snapshot's blob size drives both the
label and the image mean, so the image term carries signal.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="pyarrow is not installed")

from tfesi_training.card import build_card, self_test_vectors  # noqa: E402
from tfesi_training.data import label_of, read_parquet_rows  # noqa: E402
from tfesi_training.evaluate import (  # noqa: E402
    KEY_COLUMNS,
    EvaluationError,
    ModelSpec,
    check_key_join,
    evaluate_cohort,
    fit_clinical_only,
    format_table,
    parse_model_argument,
    read_cohort_key,
)
from tfesi_training.features import FEATURE_NAMES, card_features  # noqa: E402

SHAPE = (11, 32, 32)
IMAGE_WEIGHT = 3.0
CLINICAL_WEIGHTS = np.array([1.5, -0.8, 0.2, -0.2, 0.1, -0.5, 0.3, 0.4], dtype=np.float32)
BIAS = -0.4

ONNX_MISSING = importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None
SKLEARN_MISSING = importlib.util.find_spec("sklearn") is None
needs_onnx = pytest.mark.skipif(ONNX_MISSING, reason="onnx or onnxruntime is not installed (scripts/setup-training.sh)")
needs_sklearn = pytest.mark.skipif(
    SKLEARN_MISSING,
    reason="scikit-learn is not installed (it fits the clinical-only reference; run with .venv-training/bin/python)",
)


def reference_predict(image: np.ndarray, clinical: np.ndarray | None) -> np.ndarray:
    """What the ONNX graph computes, in float32 (for the card's self-test and the checks)."""
    logit = np.float32(IMAGE_WEIGHT) * image.reshape(image.shape[0], -1).mean(axis=1, dtype=np.float32)
    if clinical is not None:
        logit = logit + clinical.astype(np.float32) @ CLINICAL_WEIGHTS
    logit = logit + np.float32(BIAS)
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def write_model(directory: pathlib.Path, *, clinical: bool, name: str = "tiny", version: str = "1",
                shape: tuple[int, int, int] = SHAPE, training_snapshot_id: str | None = None) -> pathlib.Path:
    """model.onnx (opset 18, dynamic batch) and its card model.json under `directory`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    slices, height, width = shape
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", slices, height, width])]
    initializers = [
        numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array(IMAGE_WEIGHT, dtype=np.float32), "a"),
        numpy_helper.from_array(np.array(BIAS, dtype=np.float32), "b"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["image_mean"], keepdims=0),
        helper.make_node("Mul", ["image_mean", "a"], ["image_term"]),
    ]
    term = "image_term"
    if clinical:
        inputs.append(helper.make_tensor_value_info("clinical", TensorProto.FLOAT, ["N", len(FEATURE_NAMES)]))
        initializers.append(numpy_helper.from_array(CLINICAL_WEIGHTS, "w"))
        nodes += [helper.make_node("MatMul", ["clinical", "w"], ["clinical_term"]),
                  helper.make_node("Add", ["image_term", "clinical_term"], ["sum"])]
        term = "sum"
    nodes += [helper.make_node("Add", [term, "b"], ["logit"]),
              helper.make_node("Sigmoid", ["logit"], ["p_good_outcome"])]
    graph = helper.make_graph(nodes, "tiny", inputs,
                              [helper.make_tensor_value_info("p_good_outcome", TensorProto.FLOAT, ["N"])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    features = len(FEATURE_NAMES) if clinical else 0
    card = build_card(
        name=name, version=version, model_sha256=hashlib.sha256(data).hexdigest(), spec_version="tfesi-prep-v1",
        slices=slices, height=height, width=width,
        clinical_features=card_features(FEATURE_NAMES) if clinical else [], threshold=0.5,
        training_snapshot_id=training_snapshot_id, validation_metrics={}, intended_use="tests",
        limitations="tests", self_test_vectors_=self_test_vectors(reference_predict, slices, height, width, features),
        self_test_tolerance=1e-4, description_details="a test graph",
    )
    (directory / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    return directory


def write_key(path: pathlib.Path, rows: list[dict], *, drop: int | None = None,
              labels: dict[int, str] | None = None, seed: int = 5) -> pathlib.Path:
    """A cohort key for `rows` as `tfesi demo --cohort-key` writes it; `drop` leaves a row out,
    `labels` overrides the label of rows by position."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(KEY_COLUMNS)
        for position, row in enumerate(rows):
            if position == drop:
                continue
            label = label_of(row["label"])
            text = (labels or {}).get(position, "" if label is None else str(label))
            p_true = float(np.clip(0.25 + 0.5 * (label or 0) + rng.normal(0, 0.15), 0.01, 0.99))
            p_clinical = float(np.clip(0.45 + 0.1 * (label or 0) + rng.normal(0, 0.15), 0.01, 0.99))
            writer.writerow(["true", seed, position, row["episode_id"], f"study-{position}", p_true, p_clinical,
                             label or 0, text])
    return path


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(evaluation parquet, tensors, rows, key path, training parquet, directory)."""
    from tfesi_training.fake import write_fake_snapshot

    root = tmp_path_factory.mktemp("evaluate")
    parquet, tensors, _ = write_fake_snapshot(root / "eval", patients=48, shape=SHAPE, seed=5)
    train_parquet, _, _ = write_fake_snapshot(root / "train", patients=60, shape=(11, 8, 8), seed=6)
    rows, _ = read_parquet_rows(parquet)
    key = write_key(root / "key.csv", rows)
    return parquet, tensors, rows, key, train_parquet, root


def test_the_key_is_read_by_episode(cohorts) -> None:  # type: ignore[no-untyped-def]
    _, _, rows, key_path, _, _ = cohorts
    key = read_cohort_key(key_path)
    assert len(key) == len(rows)
    first = key[rows[0]["episode_id"]]
    assert first.patient_index == 0 and first.label == label_of(rows[0]["label"])
    check_key_join(rows, key)  # the generator's labels are the registry's


def test_a_snapshot_row_without_its_key_row_is_named(cohorts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, rows, _, _, _ = cohorts
    key = read_cohort_key(write_key(tmp_path / "key.csv", rows, drop=7))
    with pytest.raises(EvaluationError) as caught:
        check_key_join(rows, key)
    assert str(caught.value).startswith(f"snapshot row 7 (episode {rows[7]['episode_id']}) has no row in the cohort key")


def test_a_label_the_registry_derived_differently_is_named(cohorts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, rows, _, _, _ = cohorts
    flipped = "0" if label_of(rows[3]["label"]) == 1 else "1"
    key = read_cohort_key(write_key(tmp_path / "key.csv", rows, labels={3: flipped}))
    with pytest.raises(EvaluationError) as caught:
        check_key_join(rows, key)
    registry = "1 (good)" if flipped == "0" else "0 (poor)"
    theirs = "1 (good)" if flipped == "1" else "0 (poor)"
    assert str(caught.value) == (
        f"episode {rows[3]['episode_id']}: the registry's label is {registry} (snapshot label {rows[3]['label']!r}), "
        f"the cohort key's is {theirs}: the registry did not derive the generator's label"
    )
    unlabeled = read_cohort_key(write_key(tmp_path / "key2.csv", rows, labels={5: ""}))
    with pytest.raises(EvaluationError, match=f"episode {rows[5]['episode_id']}: .* the cohort key's is unlabeled"):
        check_key_join(rows, unlabeled)


def test_a_file_that_is_not_a_cohort_key_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "key.csv"
    path.write_text("episode_id,label\nx,1\n")
    with pytest.raises(EvaluationError, match=r"not a cohort key \(no column\(s\) \['synthetic', 'seed'"):
        read_cohort_key(path)
    path.write_text(",".join(KEY_COLUMNS) + "\ntrue,1,0,e1,s1,0.5,0.5,1,yes\n")
    with pytest.raises(EvaluationError, match="line 2: label 'yes' is not 1, 0 or empty"):
        read_cohort_key(path)


def test_model_arguments_take_an_optional_name() -> None:
    assert parse_model_argument("runs/a/model") == ModelSpec(name="", directory=pathlib.Path("runs/a/model"))
    assert parse_model_argument("image+clinical=runs/b") == ModelSpec(name="image+clinical",
                                                                      directory=pathlib.Path("runs/b"))


@needs_sklearn
def test_the_clinical_only_fit_is_deterministic(cohorts) -> None:  # type: ignore[no-untyped-def]
    _, _, rows, _, train_parquet, _ = cohorts
    first, second = fit_clinical_only(train_parquet), fit_clinical_only(train_parquet)
    assert first.summary == second.summary
    assert np.array_equal(first.predict(rows), second.predict(rows))
    train_rows, _ = read_parquet_rows(train_parquet)
    expected = sum(1 for row in train_rows if row["split"] in ("train", "validation"))
    assert first.summary["rows"] == expected == 48
    assert list(first.summary["coefficients"]) == list(FEATURE_NAMES)
    assert first.summary["model"].startswith("StandardScaler + LogisticRegression(C=1.0, solver=lbfgs")


@needs_onnx
@needs_sklearn
def test_the_report_has_the_documented_fields(cohorts) -> None:  # type: ignore[no-untyped-def]
    from tfesi_training.metrics import roc_auc

    parquet, tensors, rows, key, train_parquet, root = cohorts
    both = write_model(root / "models" / "both", clinical=True, name="tiny-both")
    image = write_model(root / "models" / "image", clinical=False, name="tiny-image")
    report = evaluate_cohort(parquet, tensors, key, [ModelSpec("", both), ModelSpec("image-only", image)],
                             train_parquet, batch_size=5, log=lambda _: None)
    json.dumps(report)  # JSON-ready
    assert report["format"] == "tfesi-evaluation/1" and "SYNTHETIC" in report["notice"]
    labels = [label_of(row["label"]) for row in rows]
    assert report["n"] == len(rows) == 48 and report["positives"] == sum(labels)
    cohort = report["evaluation_cohort"]
    assert sum(cohort["rows_by_split"].values()) == 48 and cohort["tensor_shape"] == list(SHAPE)
    assert set(report["references"]) == {"clinical_only", "bayes", "bayes_clinical_only"}
    for figures in report["references"].values():
        assert {"auc", "auc_ci95", "auc_se", "brier", "gap_to_bayes"} <= set(figures)
    assert report["references"]["bayes"]["gap_to_bayes"] == 0.0
    assert report["references"]["clinical_only"]["fit"]["rows"] == 48

    names = [result["name"] for result in report["models"]]
    assert names == ["tiny-both/1", "image-only"]
    for result in report["models"]:
        assert {"auc", "auc_ci95", "auc_se", "brier", "gap_to_bayes", "comparisons", "targets", "inputs",
                "onnx_sha256", "clinical_features"} <= set(result)
        assert result["gap_to_bayes"] == pytest.approx(report["references"]["bayes"]["auc"] - result["auc"])
        for reference in ("clinical_only", "bayes", "bayes_clinical_only"):
            comparison = result["comparisons"][reference]
            assert {"difference", "difference_ci95", "se", "z", "p_value"} <= set(comparison)
            assert comparison["difference"] == pytest.approx(result["auc"] - report["references"][reference]["auc"])
            assert 0.0 <= comparison["p_value"] <= 1.0
        targets, versus = result["targets"], result["comparisons"]["clinical_only"]
        assert targets["within_0_03_of_bayes"] == (result["gap_to_bayes"] <= 0.03)
        assert targets["above_clinical_only"] == (versus["p_value"] < 0.05 and versus["difference"] > 0)
    assert report["models"][0]["inputs"] == "image_clinical" and report["models"][0]["targets"]["applies"]
    assert report["models"][1]["inputs"] == "image" and not report["models"][1]["targets"]["applies"]

    # ONNX Runtime's scores are the graph's: the AUC equals the reference computation's.
    from tfesi_training.data import load_offline
    from tfesi_training.features import encode_rows

    dataset = load_offline(parquet, tensors)
    split_rows = [row for name in ("train", "validation", "test") for row in dataset.splits[name].rows]
    images = np.stack([t for name in ("train", "validation", "test") for t in dataset.splits[name].tensors])
    expected = reference_predict(images, encode_rows(split_rows))
    split_labels = [label_of(row["label"]) for row in split_rows]
    assert report["models"][0]["auc"] == pytest.approx(roc_auc(expected, split_labels), abs=1e-12)
    assert "tiny-both/1 [image_clinical]" in format_table(report)


@needs_onnx
@needs_sklearn
def test_the_command_writes_the_report_and_prints_the_table(cohorts, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tfesi_training.__main__ import main

    parquet, tensors, rows, key, train_parquet, root = cohorts
    model = write_model(root / "models" / "cli", clinical=True)
    out = tmp_path / "report" / "evaluation.json"
    code = main(["evaluate", "--eval", str(parquet), str(tensors), "--key", str(key), "--train", str(train_parquet),
                 "--model", f"both={model}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(out.read_text())
    assert report["models"][0]["name"] == "both"
    assert "clinical-only (logistic)" in printed and "bayes (p_true)" in printed and str(out) in printed

    code = main(["evaluate", "--eval", str(parquet), str(tensors), "--key", str(write_key(tmp_path / "k.csv", rows, drop=0)),
                 "--train", str(train_parquet), "--model", str(model), "--out", str(tmp_path / "x.json")])
    assert code == 2
    assert f"snapshot row 0 (episode {rows[0]['episode_id']}) has no row in the cohort key" in capsys.readouterr().err


@needs_onnx
@needs_sklearn
def test_models_that_do_not_fit_the_cohort_are_refused(cohorts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    parquet, tensors, _, key, train_parquet, _ = cohorts
    wrong_shape = write_model(tmp_path / "shape", clinical=True, shape=(11, 16, 16))
    with pytest.raises(EvaluationError, match=r"takes images \[11, 16, 16\], the cohort's tensors are \[11, 32, 32\]"):
        evaluate_cohort(parquet, tensors, key, [ModelSpec("", wrong_shape)], train_parquet, log=lambda _: None)
    tampered = write_model(tmp_path / "tampered", clinical=True)
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(EvaluationError, match="model_sha256 .* is not the file's"):
        evaluate_cohort(parquet, tensors, key, [ModelSpec("", tampered)], train_parquet, log=lambda _: None)
    with pytest.raises(EvaluationError, match="evaluation cohort must be independent"):
        evaluate_cohort(parquet, tensors, key, [ModelSpec("", tampered)], parquet, log=lambda _: None)
