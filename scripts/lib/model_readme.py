"""Writes models/tfesi-cnn/<version>/README.md from the files of one scripts/train-default-model.sh
run (evaluation.json, training-report.json, provenance.json) and measures the model's CPU latency
for one study with ONNX Runtime. Every figure in the README comes from those files or from this
measurement; nothing is typed by hand.

    python scripts/lib/model_readme.py MODEL_DIR EVAL_TENSOR_DIR
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def _auc(entry: dict) -> str:
    low, high = entry["auc_ci95"] or (None, None)
    ci = f" ({low:.3f} to {high:.3f})" if low is not None else ""
    return f"{entry['auc']:.3f}{ci}"


def _splits(counts: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _latency_ms(model: pathlib.Path, card: dict, tensor_dir: pathlib.Path, threads: int) -> tuple[float, float]:
    """Median and 90th percentile of 50 single-study runs (after 5 warm-up runs) on a real tensor."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    tensor = next(iter(sorted(tensor_dir.glob("*.npy"))))
    image = np.load(tensor).astype(np.float32)[None]
    feeds = {"image": image}
    if any(entry["name"] == "clinical" for entry in card["inputs"]):
        feeds["clinical"] = np.full((1, len(card["clinical_features"])), 0.5, dtype=np.float32)
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * len(times))]


def main(model_dir: str, tensor_dir: str) -> None:
    directory = pathlib.Path(model_dir)
    card = json.loads((directory / "model.json").read_text())
    evaluation = json.loads((directory / "evaluation.json").read_text())
    report = json.loads((directory / "training-report.json").read_text())
    provenance = json.loads((directory / "provenance.json").read_text())
    onnx = directory / "model.onnx"
    one_thread = _latency_ms(onnx, card, pathlib.Path(tensor_dir), 1)
    two_threads = _latency_ms(onnx, card, pathlib.Path(tensor_dir), 2)

    models = {entry["name"]: entry for entry in evaluation["models"]}
    references = evaluation["references"]
    bayes = references["bayes"]
    lines = [
        f"# {card['name']} {card['version']}: the model the platform ships",
        "",
        "**TRAINED ON SYNTHETIC DATA ONLY.** It learned from a synthetic cohort rendered by `tfesi synth`",
        "from a parametric anatomy and a documented outcome model (docs/synth.md). It has no clinical",
        "validity and must never inform treatment. It exists so that the platform runs, end to end, with",
        "a model that learned something real about its inputs.",
        "",
        "## Where it came from",
        "",
        f"- command: `{provenance['command']}` (the whole recipe; `{provenance['config']}` is its configuration)",
        f"- training cohort: seed {provenance['training_cohort']['seed']}, "
        f"{provenance['training_cohort']['patients']} patients, snapshot "
        f"`{provenance['training_cohort']['snapshot_id']}` (the SHA-256 of its manifest)",
        f"- labeled rows by the snapshot's patient-level split: {_splits(report['data']['rows'])}; good outcomes "
        f"{_splits(report['data']['good'])}",
        f"- evaluation cohort: seed {provenance['evaluation_cohort']['seed']}, "
        f"{provenance['evaluation_cohort']['patients']} patients, snapshot "
        f"`{provenance['evaluation_cohort']['snapshot_id']}`, never seen in training",
        f"- network: 2.5D CNN with a clinical branch, {report['parameters']} parameters; best epoch "
        f"{report['training']['best_epoch']} of {len(report['training']['history'])} "
        f"(early stopping on validation AUC, best {report['training']['best_score']:.3f}); "
        f"training took {report['timings']['train_s'] / 60:.1f} min on this 2-core machine; the snapshot's own "
        f"test split: AUC {_auc(report['metrics']['test']) if report['metrics']['test']['auc'] is not None else 'n/a'}",
        f"- file: model.onnx, {onnx.stat().st_size / 1e6:.2f} MB (limit 20 MB), sha256 `{card['model_sha256']}`",
        "",
        "## How well it does, on the independent cohort",
        "",
        f"{evaluation['n']} labeled episodes, {evaluation['positives']} good outcomes. AUC with DeLong 95% CI;"
        " the paired DeLong test compares each scorer with the clinical-only model on the same episodes.",
        "",
        "| scorer | AUC (95% CI) | Brier | gap to Bayes | vs clinical-only |",
        "|---|---|---|---|---|",
    ]
    for name, entry in models.items():
        versus = entry["comparisons"]["clinical_only"]
        lines.append(
            f"| {name} (`{entry['card']['name']}`) | {_auc(entry)} | {entry['brier']:.3f} | "
            f"{entry['gap_to_bayes']:.3f} | {versus['difference']:+.3f}, p = {versus['p_value']:.2g} |"
        )
    for name, label in (("clinical_only", "clinical-only logistic model (8 features, fitted on the training cohort)"),
                        ("bayes", "Bayes-optimal: the generator's true probability"),
                        ("bayes_clinical_only", "the generator's best clinical-only probability")):
        entry = references[name]
        gap = entry.get("gap_to_bayes")
        lines.append(f"| {label} | {_auc(entry)} | {entry['brier']:.3f} | "
                     f"{'' if gap is None else f'{gap:.3f}'} | |")
    main_model = models.get("image_clinical", next(iter(models.values())))
    targets = main_model.get("targets", {})
    lines += [
        "",
        "Targets of issue 8 for the image + clinical model: within 0.03 of the Bayes AUC "
        f"({bayes['auc']:.3f}): **{'met' if targets.get('within_0_03_of_bayes') else 'not met'}**; clearly above "
        f"clinical-only (paired test p < 0.05): **{'met' if targets.get('above_clinical_only') else 'not met'}**.",
        "",
        f"CPU latency for one study (ONNX Runtime {ort.__version__}, CPU provider, batch 1, one real"
        f" evaluation tensor, median / 90th percentile of 50 runs): {one_thread[0]:.1f} / {one_thread[1]:.1f} ms"
        f" on 1 thread, {two_threads[0]:.1f} / {two_threads[1]:.1f} ms on 2 threads.",
        "",
        "Files: `model.onnx` and `model.json` (the card the inference service checks and self-tests),",
        "`evaluation.json` (every figure above, with the paired tests against the Bayes probabilities too),",
        "`training-report.json` (configuration, per-epoch history, validation and internal test metrics,",
        "ONNX/PyTorch parity), `provenance.json` (seeds and snapshot ids).",
        "",
    ]
    (directory / "README.md").write_text("\n".join(lines))
    print(f"wrote {directory / 'README.md'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
