"""The whole job: data -> train -> evaluate -> export -> parity -> card -> register as shadow.

Every step writes into the run directory:
    snapshot.parquet, tensors/            (online runs: the data, for an offline rerun)
    model/<name>/<version>/model.onnx     the exported model
    model/<name>/<version>/model.json     its card (tfesi-model-card/1)
    report.json                           config, data summary, history, metrics, parity, timings
"""

from __future__ import annotations

import json
import pathlib
import platform
import time
from typing import Any

import numpy as np

from tfesi_training.auxiliary import TARGET_NAMES, read_auxiliary_key, targets_for_rows
from tfesi_training.card import build_card, self_test_vectors, validate_card
from tfesi_training.config import Config
from tfesi_training.data import Dataset, fetch_snapshot, load_offline
from tfesi_training.features import FEATURE_NAMES, card_features
from tfesi_training.metrics import evaluate


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond the configured tolerance: nothing is registered."""


def training_digest(config: Config) -> str:
    """Hash of the settings that shape the model (not where the data came from)."""
    import hashlib

    settings = config.to_dict()
    relevant = {key: settings[key] for key in ("model", "train", "evaluation", "export", "card")}
    relevant["model"] = {k: v for k, v in relevant["model"].items() if k not in ("name", "version")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def model_version(config: Config, snapshot_id: str) -> str:
    if config.model.version != "auto":
        return config.model.version
    return f"{(snapshot_id or 'nosnapshot')[:8]}-{training_digest(config)[:8]}"


def load_data(config: Config, run_dir: pathlib.Path, client: Any = None, log: Any = print) -> Dataset:
    """The dataset, online (fetching into run_dir) or offline."""
    started = time.perf_counter()
    if config.data.source == "online":
        if client is None:
            raise ValueError("an online run needs a client")
        parquet, tensors, snapshot_id = fetch_snapshot(
            client, config.data, run_dir, description=f"tfesi_training {config.model.name}"
        )
        log(f"snapshot {snapshot_id}: export and tensors written to {run_dir} "
            f"({time.perf_counter() - started:.1f} s)")
    else:
        parquet, tensors = pathlib.Path(config.data.parquet), pathlib.Path(config.data.tensor_dir)
    dataset = load_offline(parquet, tensors, config.data.spec_version)
    if config.data.auxiliary_key:
        key = read_auxiliary_key(config.data.auxiliary_key)
        for split in dataset.splits.values():
            split.auxiliary = targets_for_rows(split.rows, key, config.data.auxiliary_key)
        dataset.auxiliary_targets = TARGET_NAMES
        log(f"auxiliary targets: {len(TARGET_NAMES)} per row from {config.data.auxiliary_key}")
    log(f"data: {json.dumps(dataset.summary())}")
    return dataset


def run_job(config: Config, run_dir: str | pathlib.Path, *, client: Any = None, log: Any = print) -> dict[str, Any]:
    """Runs the job; returns the report (also written to run_dir/report.json)."""
    import torch

    from tfesi_training.export import export_onnx, parity_check, torch_predict
    from tfesi_training.model import build_model, set_determinism
    from tfesi_training.train import Arrays, predict, train

    run = pathlib.Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    dataset = load_data(config, run, client, log)
    timings["data_s"] = time.perf_counter() - clock
    for name in ("train", "validation"):
        if len(dataset.splits[name]) == 0:
            raise ValueError(f"the snapshot has no labeled {name} row with a tensor")

    set_determinism(config.train.seed, config.train.threads)
    slices, height, width = dataset.shape
    use_clinical = config.model.uses_clinical
    features = list(FEATURE_NAMES) if use_clinical else []
    model = build_model(config.model, slices=slices, clinical_features=len(features),
                        auxiliary_outputs=len(dataset.auxiliary_targets))
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: {config.model.inputs}, {parameters} parameters, input {slices}x{height}x{width}, "
        f"torch {torch.__version__}, {config.train.threads} thread(s)")
    arrays = {name: Arrays.from_split(split, use_clinical) for name, split in dataset.splits.items()}

    clock = time.perf_counter()
    result = train(model, arrays["train"], arrays["validation"], config.train, log)
    timings["train_s"] = time.perf_counter() - clock
    log(f"best epoch {result.best_epoch} ({result.criterion} {result.best_score:.4f}), {result.seconds:.1f} s")

    metrics: dict[str, Any] = {}
    for name in ("validation", "test"):
        if len(arrays[name]) == 0:
            metrics[name] = None
            continue
        probabilities = predict(model, arrays[name], config.train.batch_size)
        metrics[name] = evaluate(
            probabilities, arrays[name].labels, threshold=config.evaluation.threshold,
            bins=config.evaluation.calibration_bins,
            bootstrap_resamples=config.evaluation.bootstrap_resamples, seed=config.train.seed,
        )
        log(_metric_line(name, metrics[name]))

    version = model_version(config, dataset.snapshot_id)
    model_dir = run / "model" / config.model.name / version
    onnx_path = model_dir / "model.onnx"
    card_path = model_dir / "model.json"
    clock = time.perf_counter()
    sha256 = export_onnx(model, onnx_path, height=height, width=width, opset=config.export.opset)
    sample = dataset.splits["validation"].tensors[:4] or dataset.splits["train"].tensors[:4]
    sample_clinical = (arrays["validation"] if len(arrays["validation"]) else arrays["train"]).clinical
    parity = parity_check(model, onnx_path, height=height, width=width, real_images=sample,
                          real_clinical=sample_clinical)
    timings["export_s"] = time.perf_counter() - clock
    log(f"onnx: {onnx_path} ({onnx_path.stat().st_size} bytes), ONNX Runtime vs PyTorch max |diff| "
        f"{parity['max_abs_difference']:.2e} over {parity['values_compared']} outputs")
    if not parity["max_abs_difference"] <= config.export.parity_tolerance:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by {parity['max_abs_difference']:.3e} "
            f"(> {config.export.parity_tolerance}) in {parity['worst_case']}: not registering"
        )

    card = build_card(
        name=config.model.name,
        version=version,
        model_sha256=sha256,
        spec_version=dataset.spec_version,
        slices=slices,
        height=height,
        width=width,
        clinical_features=card_features(features) if features else [],
        threshold=config.evaluation.threshold,
        training_snapshot_id=dataset.snapshot_id or None,
        validation_metrics=_card_metrics(metrics),
        intended_use=config.card.intended_use,
        limitations=config.card.limitations,
        self_test_vectors_=self_test_vectors(torch_predict(model), slices, height, width, len(features)),
        self_test_tolerance=config.export.self_test_tolerance,
        description_details=_description(config, dataset, result, metrics),
    )
    validate_card(card, model_sha256=sha256)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    log(f"card: {card_path}")

    registration: dict[str, Any] | None = None
    if config.register.enabled and config.data.source == "online" and client is not None:
        response = client.register_model(onnx_path, card_path, set_as_shadow=config.register.set_as_shadow)
        registration = {
            "model": f"{config.model.name}/{version}",
            "created": bool(response.created),
            "set_as_shadow": config.register.set_as_shadow,
            "self_test": _self_test_summary(response),
        }
        log(f"registered {registration['model']} (created={registration['created']}, "
            f"shadow={config.register.set_as_shadow}) self-test {registration['self_test']}")

    report = {
        "model": f"{config.model.name}/{version}",
        "config": config.to_dict(),
        "config_path": config.source_path,
        "data": dataset.summary(),
        "parameters": parameters,
        "training": {"best_epoch": result.best_epoch, "criterion": result.criterion,
                     "best_score": result.best_score, "stopped_early": result.stopped_early,
                     "history": result.history},
        "metrics": metrics,
        "onnx": {"path": str(onnx_path), "sha256": sha256, "bytes": onnx_path.stat().st_size},
        "card": str(card_path),
        "parity": parity,
        "registration": registration,
        "timings": {key: round(value, 2) for key, value in timings.items()},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "numpy": np.__version__, "machine": platform.machine(),
                        "threads": config.train.threads},
    }
    (run / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"report: {run / 'report.json'}")
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _metric_line(name: str, figures: dict[str, Any]) -> str:
    ci = figures["auc_ci95"]
    ci_text = "" if ci is None else f" (95% CI {ci[0]:.3f}-{ci[1]:.3f}, DeLong)"
    return (f"{name}: n={figures['rows']} good={figures['positives']} AUC {_fmt(figures['auc'])}{ci_text} "
            f"Brier {_fmt(figures['brier'])} sens {_fmt(figures['sensitivity'])} "
            f"spec {_fmt(figures['specificity'])} at {figures['threshold']}")


def _card_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat numbers for the card's validation_metrics (validation_* and test_*)."""
    flat: dict[str, float] = {}
    for split, figures in metrics.items():
        if not figures:
            continue
        prefix = "" if split == "validation" else "test_"
        flat[f"{prefix}rows"] = figures["rows"]
        for key in ("auc", "brier", "sensitivity", "specificity"):
            if figures.get(key) is not None:
                flat[f"{prefix}{key}"] = figures[key]
        if figures.get("auc_ci95"):
            flat[f"{prefix}auc_ci95_low"], flat[f"{prefix}auc_ci95_high"] = figures["auc_ci95"]
    return flat


def _description(config: Config, dataset: Dataset, result: Any, metrics: dict[str, Any]) -> str:
    """The description's lines after the first (build_card puts the synthetic-data notice first)."""
    counts = dataset.summary()["rows"]
    lines = [
        f"2.5D CNN ({config.model.inputs.replace('_', ' + ')}) trained by training/tfesi_training "
        f"(config {pathlib.Path(config.source_path).name}, config digest {training_digest(config)[:12]}, "
        f"seed {config.train.seed}) on snapshot {dataset.snapshot_id or '(none)'}: "
        f"{counts['train']} train / {counts['validation']} validation / {counts['test']} test rows.",
        f"Best epoch {result.best_epoch} by {result.criterion}. AUCs with DeLong 95% CIs in validation_metrics.",
    ]
    if dataset.auxiliary_targets:
        lines.append(
            f"Trained with {len(dataset.auxiliary_targets)} auxiliary targets (the synthetic generator's per-level "
            "image findings and root compression, weight "
            f"{config.train.auxiliary_weight}); inference uses only the image and clinical inputs."
        )
    return "\n".join(lines)


def _self_test_summary(response: Any) -> dict[str, Any] | None:
    try:
        result = response.self_test
        return {"passed": result.passed, "max_abs_error": result.max_abs_error, "tolerance": result.tolerance}
    except AttributeError:
        return None
