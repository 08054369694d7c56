"""Evaluation of trained models on an independent cohort, next to the clinical-only and Bayes
references (`python -m tfesi_training evaluate`).

Inputs:
- the EVALUATION cohort: an offline snapshot export and its tensor cache (the files `train
  --offline` reads). Every labeled row is used whatever its split: the whole cohort is held out;
- its cohort key (`tfesi demo --cohort-key FILE`): what only the generator knows, per episode,
  `synthetic,seed,patient_index,episode_id,study_id,p_true,p_clinical,outcome_drawn,label`.
  Every snapshot row must find its key row by `episode_id`, and the registry's label must equal
  the key's (1, 0, or empty for unlabeled): the platform derived the generator's labels;
- one or more model directories (model.onnx + model.json), run with ONNX Runtime on CPU; the card
  says whether the model takes `clinical` and in which feature order (encoded by features.py);
- the TRAINING cohort's export (Parquet only): a clinical-only logistic regression (standardised
  features, C = 1, lbfgs; deterministic) is fitted on its labeled train + validation rows.

Scorers, all on the same evaluation rows: each model, "clinical-only" (that regression),
"bayes" (the key's p_true, the best any model can do on average) and "bayes clinical-only" (the
key's p_clinical, the best a model of the clinical features alone can do). For each: AUC with
its DeLong 95% CI, Brier score, the gap to the Bayes AUC; for each model also DeLong's paired
test against the clinical-only regression, against bayes and against bayes clinical-only. The
project's targets (issue 8) are stated as booleans per model: within 0.03 of the Bayes AUC, and
above clinical-only (paired p < 0.05 with a positive difference).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tfesi_training.card import CLINICAL_INPUT, IMAGE_INPUT, validate_card
from tfesi_training.data import SPLITS, label_of, load_offline, read_parquet_rows
from tfesi_training.features import FEATURE_NAMES, card_features, encode_rows
from tfesi_training.metrics import brier_score, delong_auc, delong_paired, roc_auc

REPORT_FORMAT = "tfesi-evaluation/1"
#: Header of the cohort key `tfesi demo --cohort-key` writes (services/cli/src/demo/mod.rs).
KEY_COLUMNS = ("synthetic", "seed", "patient_index", "episode_id", "study_id", "p_true", "p_clinical",
               "outcome_drawn", "label")
#: Issue 8's targets for the image + clinical model.
BAYES_GAP_TARGET = 0.03
ALPHA = 0.05
DEFAULT_BATCH = 16
NOTICE = "SYNTHETIC DATA ONLY: figures of models on a synthetic cohort; no clinical validity."


class EvaluationError(ValueError):
    """An input the evaluation refuses (with the file and the row or field at fault)."""


# ---------------------------------------------------------------------------------------------
# The cohort key and its join


@dataclass(frozen=True)
class KeyRow:
    """One line of the cohort key."""

    seed: str
    patient_index: int
    episode_id: str
    study_id: str
    p_true: float
    p_clinical: float
    label: int | None


def read_cohort_key(path: str | os.PathLike[str]) -> dict[str, KeyRow]:
    """The key's rows by episode id; refuses a wrong header, a duplicate episode or a bad value."""
    rows: dict[str, KeyRow] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in KEY_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise EvaluationError(f"{path}: not a cohort key (no column(s) {missing}; "
                                  f"expected the header {','.join(KEY_COLUMNS)})")
        for line, record in enumerate(reader, start=2):
            episode = (record["episode_id"] or "").strip()
            if not episode:
                raise EvaluationError(f"{path} line {line}: empty episode_id")
            if episode in rows:
                raise EvaluationError(f"{path} line {line}: episode {episode} is in the key twice")
            label_text = (record["label"] or "").strip()
            if label_text not in ("", "0", "1"):
                raise EvaluationError(f"{path} line {line}: label {label_text!r} is not 1, 0 or empty")
            try:
                p_true, p_clinical = float(record["p_true"]), float(record["p_clinical"])
                patient_index = int(record["patient_index"])
            except ValueError as error:
                raise EvaluationError(f"{path} line {line}: {error}") from None
            for name, value in (("p_true", p_true), ("p_clinical", p_clinical)):
                if not 0.0 <= value <= 1.0:
                    raise EvaluationError(f"{path} line {line}: {name} {value} is outside [0, 1]")
            rows[episode] = KeyRow(seed=(record["seed"] or "").strip(), patient_index=patient_index,
                                   episode_id=episode, study_id=(record["study_id"] or "").strip(),
                                   p_true=p_true, p_clinical=p_clinical,
                                   label=None if label_text == "" else int(label_text))
    if not rows:
        raise EvaluationError(f"{path}: the cohort key has no row")
    return rows


def check_key_join(rows: Sequence[Mapping[str, Any]], key: Mapping[str, KeyRow]) -> None:
    """Every snapshot row has its key row (by episode_id) and the same label (good = 1, poor = 0,
    unlabeled = empty). Raises EvaluationError naming the first row that does not."""
    for row in rows:
        episode = str(row.get("episode_id") or "")
        entry = key.get(episode)
        if entry is None:
            raise EvaluationError(
                f"snapshot row {row.get('index')} (episode {episode}) has no row in the cohort key: "
                "is the snapshot of another cohort, or of a registry holding more than this cohort?"
            )
        registry_label = label_of(row.get("label"))
        if registry_label != entry.label:
            shown = {None: "unlabeled", 1: "1 (good)", 0: "0 (poor)"}
            raise EvaluationError(
                f"episode {episode}: the registry's label is {shown[registry_label]} "
                f"(snapshot label {row.get('label')!r}), the cohort key's is {shown[entry.label]}: "
                "the registry did not derive the generator's label"
            )


# ---------------------------------------------------------------------------------------------
# The evaluation rows


@dataclass
class EvaluationRows:
    """The evaluation cohort's labeled rows with tensors (all splits), in snapshot order."""

    rows: list[dict[str, Any]]
    labels: npt.NDArray[np.int64]
    tensors: list[npt.NDArray[np.float32]]
    p_true: npt.NDArray[np.float64]
    p_clinical: npt.NDArray[np.float64]
    summary: dict[str, Any]


def load_evaluation_rows(parquet: str | os.PathLike[str], tensor_dir: str | os.PathLike[str],
                         key_path: str | os.PathLike[str]) -> EvaluationRows:
    """Reads and joins the evaluation cohort. Every labeled row must have a tensor: a model that
    cannot be scored on part of the cohort would be compared on other rows than the references."""
    all_rows, snapshot_id = read_parquet_rows(parquet)
    key = read_cohort_key(key_path)
    check_key_join(all_rows, key)
    dataset = load_offline(parquet, tensor_dir)
    lacking = {reason: count for reason, count in dataset.skipped.items() if reason != "unlabeled" and count}
    if lacking:
        raise EvaluationError(f"{parquet}: labeled rows without a tensor ({lacking}): the whole "
                              f"cohort must be scored; fetch the missing tensors into {tensor_dir}")
    rows: list[dict[str, Any]] = []
    labels: list[int] = []
    tensors: list[npt.NDArray[np.float32]] = []
    for name in SPLITS:
        split = dataset.splits[name]
        rows.extend(split.rows)
        labels.extend(split.labels)
        tensors.extend(split.tensors)
    order = sorted(range(len(rows)), key=lambda position: int(rows[position]["index"]))
    rows = [rows[position] for position in order]
    labels = [labels[position] for position in order]
    tensors = [tensors[position] for position in order]
    entries = [key[str(row["episode_id"])] for row in rows]
    label_array = np.asarray(labels, dtype=np.int64)
    summary = {
        "parquet": str(parquet),
        "tensor_dir": str(tensor_dir),
        "key": str(key_path),
        "snapshot_id": snapshot_id,
        "spec_version": dataset.spec_version,
        "tensor_shape": list(dataset.shape),
        "snapshot_rows": len(all_rows),
        "key_rows": len(key),
        "key_seeds": sorted({entry.seed for entry in entries}),
        "unlabeled_rows": dataset.skipped.get("unlabeled", 0),
        "rows_by_split": {name: len(dataset.splits[name]) for name in SPLITS},
        "n": len(rows),
        "positives": int(label_array.sum()),
    }
    return EvaluationRows(
        rows=rows,
        labels=label_array,
        tensors=tensors,
        p_true=np.asarray([entry.p_true for entry in entries], dtype=np.float64),
        p_clinical=np.asarray([entry.p_clinical for entry in entries], dtype=np.float64),
        summary=summary,
    )


# ---------------------------------------------------------------------------------------------
# The clinical-only reference


@dataclass
class ClinicalOnlyModel:
    """Standardised clinical features -> logistic regression, fitted on the training cohort."""

    pipeline: Any
    summary: dict[str, Any]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        features = encode_rows(rows, FEATURE_NAMES).astype(np.float64)
        return np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)


def fit_clinical_only(train_parquet: str | os.PathLike[str]) -> ClinicalOnlyModel:
    """Fits the clinical-only logistic regression on the training cohort's labeled train and
    validation rows (the rows the image models learned and were selected on). Deterministic:
    lbfgs from zero, no randomness, rows in snapshot order."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, snapshot_id = read_parquet_rows(train_parquet)
    chosen = [row for row in rows if str(row.get("split")) in ("train", "validation")
              and label_of(row.get("label")) is not None]
    labels = np.asarray([label_of(row.get("label")) for row in chosen], dtype=np.int64)
    if labels.size == 0 or labels.min() == labels.max():
        raise EvaluationError(f"{train_parquet}: the clinical-only model needs labeled train/validation rows "
                              f"of both outcomes ({labels.size} rows, {int(labels.sum())} good)")
    features = encode_rows(chosen, FEATURE_NAMES).astype(np.float64)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000))
    pipeline.fit(features, labels)
    regression = pipeline[-1]
    summary = {
        "parquet": str(train_parquet),
        "snapshot_id": snapshot_id,
        "rows": int(labels.size),
        "positives": int(labels.sum()),
        "splits": ["train", "validation"],
        "model": "StandardScaler + LogisticRegression(C=1.0, solver=lbfgs, max_iter=1000)",
        "features": list(FEATURE_NAMES),
        # Coefficients per standardised feature (log-odds per standard deviation).
        "coefficients": {name: float(value) for name, value in zip(FEATURE_NAMES, regression.coef_[0], strict=True)},
        "intercept": float(regression.intercept_[0]),
        "iterations": int(regression.n_iter_[0]),
    }
    return ClinicalOnlyModel(pipeline=pipeline, summary=summary)


# ---------------------------------------------------------------------------------------------
# The models


@dataclass
class ModelSpec:
    """A model directory and the name it is shown under."""

    name: str
    directory: pathlib.Path


def parse_model_argument(text: str) -> ModelSpec:
    """`DIR` or `NAME=DIR` (the name defaults to the card's name/version, read later)."""
    name, separator, directory = text.partition("=")
    if separator and name and directory:
        return ModelSpec(name=name, directory=pathlib.Path(directory))
    return ModelSpec(name="", directory=pathlib.Path(text))


@dataclass
class LoadedModel:
    name: str
    directory: pathlib.Path
    card: dict[str, Any]
    sha256: str
    clinical_features: list[str]
    predict: Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32] | None], npt.NDArray[np.float32]]

    @property
    def inputs(self) -> str:
        return "image_clinical" if self.clinical_features else "image"


def load_model(spec: ModelSpec, tensor_shape: Sequence[int], threads: int = 1) -> LoadedModel:
    """Reads the card (checked by card.rs's rules and against the ONNX file's SHA-256) and opens
    an ONNX Runtime CPU session whose inputs are the card's."""
    import onnxruntime as ort

    onnx_path, card_path = spec.directory / "model.onnx", spec.directory / "model.json"
    for path in (onnx_path, card_path):
        if not path.is_file():
            raise EvaluationError(f"model {spec.directory}: no {path.name}")
    card = json.loads(card_path.read_text())
    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    try:
        validate_card(card, model_sha256=sha256, job_rules=False)
    except ValueError as error:
        raise EvaluationError(f"{card_path}: {error}") from None
    declared = {decl["name"]: decl for decl in card["inputs"]}
    image_shape = list(declared[IMAGE_INPUT]["shape"][1:])
    if image_shape != list(tensor_shape):
        raise EvaluationError(f"{card_path}: the model takes images {image_shape}, the cohort's tensors are "
                              f"{list(tensor_shape)}")
    features = [str(feature["name"]) for feature in card.get("clinical_features", [])] \
        if CLINICAL_INPUT in declared else []
    try:
        card_features(features)  # every named feature has an encoder
    except ValueError as error:
        raise EvaluationError(f"{card_path}: {error}") from None
    output_name = str(card["output"].get("name") or "p_good_outcome")

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    session = ort.InferenceSession(os.fspath(onnx_path), options, providers=["CPUExecutionProvider"])
    session_inputs = sorted(item.name for item in session.get_inputs())
    if session_inputs != sorted(declared):
        raise EvaluationError(f"{onnx_path}: graph inputs {session_inputs}, the card declares {sorted(declared)}")

    def predict(image: npt.NDArray[np.float32], clinical: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32]:
        feeds = {IMAGE_INPUT: np.ascontiguousarray(image, dtype=np.float32)}
        if features:
            feeds[CLINICAL_INPUT] = np.ascontiguousarray(clinical, dtype=np.float32)
        (output,) = session.run([output_name], feeds)
        return np.asarray(output, dtype=np.float32).reshape(-1)

    name = spec.name or f"{card['name']}/{card['version']}"
    return LoadedModel(name=name, directory=spec.directory, card=card, sha256=sha256,
                       clinical_features=features, predict=predict)


def score_model(model: LoadedModel, data: EvaluationRows, batch_size: int = DEFAULT_BATCH) -> npt.NDArray[np.float64]:
    """p_good_outcome for every evaluation row, in batches (tensors stay memory-mapped until
    their batch is stacked)."""
    clinical = encode_rows(data.rows, model.clinical_features) if model.clinical_features else None
    outputs: list[npt.NDArray[np.float32]] = []
    batch_size = max(1, batch_size)
    for start in range(0, len(data.rows), batch_size):
        stop = min(start + batch_size, len(data.rows))
        image = np.stack([np.asarray(tensor, dtype=np.float32) for tensor in data.tensors[start:stop]])
        output = model.predict(image, None if clinical is None else clinical[start:stop])
        if output.size != stop - start:
            raise EvaluationError(f"model {model.name}: {output.size} outputs for a batch of {stop - start}")
        outputs.append(output)
    probabilities = np.concatenate(outputs).astype(np.float64)
    if not np.all(np.isfinite(probabilities)):
        raise EvaluationError(f"model {model.name}: non-finite outputs")
    return probabilities


# ---------------------------------------------------------------------------------------------
# Figures


def scorer_figures(probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> dict[str, Any]:
    """AUC, its DeLong SE and 95% CI, Brier score (JSON-ready)."""
    estimate = delong_auc(probabilities, labels)
    return {
        "auc": roc_auc(probabilities, labels),
        "auc_ci95": None if estimate is None else [estimate.ci_low, estimate.ci_high],
        "auc_se": None if estimate is None else estimate.se,
        "brier": brier_score(probabilities, labels),
    }


def paired_figures(scores: npt.NDArray[np.float64], reference: npt.NDArray[np.float64],
                   labels: npt.NDArray[np.int64]) -> dict[str, Any] | None:
    """DeLong's paired test of `scores` against `reference` (difference = scores' AUC minus the
    reference's)."""
    comparison = delong_paired(scores, reference, labels)
    if comparison is None:
        return None
    figures = asdict(comparison)
    return {
        "difference": figures["difference"],
        "difference_ci95": [figures["ci_low"], figures["ci_high"]],
        "se": figures["se"],
        "z": figures["z"],
        "p_value": figures["p_value"],
        "covariance": figures["covariance"],
        "method": "DeLong paired (correlated ROC curves), two-sided, Wald 95%",
    }


def _gap(bayes_auc: float | None, auc: float | None) -> float | None:
    """Bayes AUC minus this AUC (positive: below Bayes)."""
    return None if bayes_auc is None or auc is None else bayes_auc - auc


def evaluate_cohort(
    eval_parquet: str | os.PathLike[str],
    eval_tensors: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    models: Sequence[ModelSpec],
    train_parquet: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH,
    threads: int = 1,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """The whole evaluation; returns the report (JSON-ready; see the module doc and README)."""
    if not models:
        raise EvaluationError("no model to evaluate (give --model DIR at least once)")
    data = load_evaluation_rows(eval_parquet, eval_tensors, key_path)
    labels = data.labels
    log(f"evaluation cohort: {data.summary['n']} labeled rows ({data.summary['positives']} good) of "
        f"snapshot {data.summary['snapshot_id'] or '(no id)'}")
    clinical_model = fit_clinical_only(train_parquet)
    fit = clinical_model.summary
    if fit["snapshot_id"] and fit["snapshot_id"] == data.summary["snapshot_id"]:
        raise EvaluationError(f"{train_parquet} and {eval_parquet} are the same snapshot: the evaluation "
                              "cohort must be independent of the training cohort")
    shared = {str(row.get("episode_id")) for row in read_parquet_rows(train_parquet)[0]} & \
        {str(row["episode_id"]) for row in data.rows}
    if shared:
        raise EvaluationError(f"{len(shared)} evaluation episode(s) are in the training cohort too "
                              f"(first: {sorted(shared)[0]}): the evaluation cohort must be independent")
    log(f"clinical-only: logistic regression on {fit['rows']} training rows ({fit['positives']} good)")

    reference_scores = {
        "clinical_only": clinical_model.predict(data.rows),
        "bayes": data.p_true,
        "bayes_clinical_only": data.p_clinical,
    }
    references = {name: scorer_figures(scores, labels) for name, scores in reference_scores.items()}
    bayes_auc = references["bayes"]["auc"]
    for name, figures in references.items():
        figures["gap_to_bayes"] = _gap(bayes_auc, figures["auc"])
    references["clinical_only"]["fit"] = fit
    references["bayes"]["source"] = "p_true of the cohort key (the generator's probability of a good outcome)"
    references["bayes_clinical_only"]["source"] = (
        "p_clinical of the cohort key (the generator's probability given the clinical features only)"
    )

    results: list[dict[str, Any]] = []
    names: set[str] = set()
    for spec in models:
        model = load_model(spec, data.summary["tensor_shape"], threads)
        if model.name in names:
            raise EvaluationError(f"two models are named {model.name}: name them with --model NAME=DIR")
        names.add(model.name)
        trained_on = model.card.get("training_snapshot_id")
        if trained_on and trained_on == data.summary["snapshot_id"]:
            raise EvaluationError(f"model {model.name} was trained on the evaluation snapshot itself ({trained_on})")
        scores = score_model(model, data, batch_size)
        figures = scorer_figures(scores, labels)
        comparisons = {name: paired_figures(scores, reference_scores[name], labels)
                       for name in ("clinical_only", "bayes", "bayes_clinical_only")}
        gap = _gap(bayes_auc, figures["auc"])
        versus_clinical = comparisons["clinical_only"]
        result = {
            "name": model.name,
            "directory": str(model.directory),
            "card": {"name": model.card["name"], "version": model.card["version"],
                     "training_snapshot_id": model.card.get("training_snapshot_id"),
                     "spec_version": model.card["spec_version"]},
            "onnx_sha256": model.sha256,
            "inputs": model.inputs,
            "clinical_features": model.clinical_features,
            **figures,
            "gap_to_bayes": gap,
            "comparisons": comparisons,
            "targets": {
                "within_0_03_of_bayes": gap is not None and gap <= BAYES_GAP_TARGET,
                "above_clinical_only": versus_clinical is not None and versus_clinical["p_value"] < ALPHA
                and versus_clinical["difference"] > 0,
                # The targets are the image + clinical model's; an image-only model is shown beside it.
                "applies": model.inputs == "image_clinical",
            },
        }
        results.append(result)
        log(f"model {model.name}: scored {len(scores)} rows")

    return {
        "format": REPORT_FORMAT,
        "notice": NOTICE,
        "n": data.summary["n"],
        "positives": data.summary["positives"],
        "evaluation_cohort": data.summary,
        "training_cohort": {key: fit[key] for key in ("parquet", "snapshot_id", "rows", "positives")},
        "models": results,
        "references": references,
        "targets": {
            "within_0_03_of_bayes": f"Bayes AUC - model AUC <= {BAYES_GAP_TARGET} (gap_to_bayes)",
            "above_clinical_only": f"DeLong paired test against clinical_only: p < {ALPHA} and difference > 0",
            "applies_to": "image + clinical models (inputs image_clinical); image-only models are reported beside them",
        },
        "method": {
            "auc_ci": "DeLong (Sun & Xu midranks), Wald 95% clipped to [0, 1]",
            "paired": "DeLong 1988 paired test for correlated ROC curves (structural components), two-sided",
            "batch_size": batch_size,
            "onnxruntime_threads": threads,
        },
        "environment": _environment(),
    }


def _environment() -> dict[str, Any]:
    import onnxruntime
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
            "scikit_learn": sklearn.__version__, "machine": platform.machine()}


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _auc_text(figures: Mapping[str, Any]) -> str:
    ci = figures.get("auc_ci95")
    ci_text = "" if ci is None else f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return _number(figures.get("auc")) + ci_text


def _versus(comparison: Mapping[str, Any] | None) -> str:
    if comparison is None:
        return "-"
    return f"{comparison['difference']:+.3f} p={comparison['p_value']:.3g}"


def format_table(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table (the command prints it)."""
    header = ("scorer", "AUC (DeLong 95% CI)", "Brier", "gap to Bayes", "vs clinical-only", "vs Bayes", "targets")
    lines: list[tuple[str, ...]] = [header]
    for result in report["models"]:
        targets = result["targets"]
        target_text = (f"{'within' if targets['within_0_03_of_bayes'] else 'NOT within'} {BAYES_GAP_TARGET}, "
                       f"{'above' if targets['above_clinical_only'] else 'NOT above'} clinical-only")
        if not targets["applies"]:
            target_text += " (image-only: for reference)"
        lines.append((f"{result['name']} [{result['inputs']}]", _auc_text(result), _number(result["brier"]),
                      _number(result["gap_to_bayes"]), _versus(result["comparisons"]["clinical_only"]),
                      _versus(result["comparisons"]["bayes"]), target_text))
    labels = {"clinical_only": "clinical-only (logistic)", "bayes": "bayes (p_true)",
              "bayes_clinical_only": "bayes clinical-only (p_clinical)"}
    for key, label in labels.items():
        figures = report["references"][key]
        lines.append((label, _auc_text(figures), _number(figures["brier"]), _number(figures["gap_to_bayes"]),
                      "", "", ""))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = [f"n = {report['n']} labeled rows, {report['positives']} good ({report['notice']})"]
    for position, line in enumerate(lines):
        text.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if position == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


def write_report(report: Mapping[str, Any], out: str | os.PathLike[str]) -> pathlib.Path:
    """Writes the report as JSON (atomically), creating the parent directory."""
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial, path)
    return path
