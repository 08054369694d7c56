"""Command line of the retraining job.

    python -m tfesi_training train  [--config FILE] [--offline PARQUET TENSOR_DIR] [--out DIR]
                                    [--snapshot ID] [--image-only] [--no-register] [--seed N]
                                    [--name NAME] [--auxiliary-key CSV]
    python -m tfesi_training fetch  [--config FILE] [--snapshot ID] --out DIR
    python -m tfesi_training show-config [--config FILE]
    python -m tfesi_training evaluate --eval PARQUET TENSOR_DIR --key CSV --train PARQUET
                                      --model [NAME=]DIR [--model [NAME=]DIR ...] [--out FILE.json]
                                      [--batch-size N] [--threads N]

Online runs use the stack named by TFESI_CLIENT_{INGEST,PREPROCESS,INFERENCE,REGISTRY} (default
127.0.0.1:50051..50054, `tfesi dev`) with the token in TFESI_CLIENT_TOKEN (`tfesi token`).
`evaluate` scores trained models on an independent cohort (its offline export, tensors and
`tfesi demo --cohort-key` file) next to a clinical-only logistic regression fitted on the training
cohort's export and the generator's Bayes probabilities; it needs no stack and no PyTorch.
Run from training/ or with training/ on PYTHONPATH (training/README.md).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import pathlib
import sys
import time

from tfesi_training.config import Config, ConfigError, check_config, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfesi_training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "run the whole job"), ("fetch", "only write snapshot.parquet and tensors/"),
                            ("show-config", "print the resolved configuration")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", help="TOML file laid over configs/default.toml")
        if name == "show-config":
            continue
        command.add_argument("--out", help="run directory (default: data/training/<UTC time>)")
        command.add_argument("--snapshot", help="use this snapshot id instead of creating one")
        if name == "train":
            command.add_argument("--offline", nargs=2, metavar=("PARQUET", "TENSOR_DIR"),
                                 help="read a snapshot export and a tensor cache instead of the stack")
            command.add_argument("--image-only", action="store_true", help="no clinical branch (the paper's design)")
            command.add_argument("--no-register", action="store_true", help="do not register the model")
            command.add_argument("--seed", type=int, help="training seed (overrides [train] seed)")
            command.add_argument("--name", help="model name (overrides [model] name)")
            command.add_argument("--auxiliary-key", metavar="CSV",
                                 help="synthetic cohorts: a cohort key whose image latents are auxiliary targets "
                                      "(overrides [data] auxiliary_key)")
    evaluate = commands.add_parser("evaluate", help="score models on an independent cohort against the references")
    evaluate.add_argument("--eval", nargs=2, required=True, metavar=("PARQUET", "TENSOR_DIR"),
                          help="the evaluation cohort's snapshot export and tensor cache (every labeled row is used)")
    evaluate.add_argument("--key", required=True, metavar="CSV", help="its cohort key (tfesi demo --cohort-key)")
    evaluate.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR",
                          help="a model directory (model.onnx + model.json); repeatable")
    evaluate.add_argument("--train", required=True, metavar="PARQUET",
                          help="the training cohort's snapshot export (fits the clinical-only reference)")
    evaluate.add_argument("--out", metavar="FILE.json", help="report (default: data/evaluation/<UTC time>.json)")
    evaluate.add_argument("--batch-size", type=int, default=16, help="rows per ONNX Runtime call (default 16)")
    evaluate.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    """The evaluate command: needs onnxruntime and scikit-learn, not PyTorch."""
    missing = [name for name in ("onnxruntime", "sklearn", "pyarrow") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"evaluate needs {', '.join(missing)}: run scripts/setup-training.sh and use "
              ".venv-training/bin/python", file=sys.stderr)
        return 3
    from tfesi_training.evaluate import evaluate_cohort, format_table, parse_model_argument, write_report

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = pathlib.Path(args.out or f"data/evaluation/{stamp}.json")
    started = time.perf_counter()
    try:
        report = evaluate_cohort(args.eval[0], args.eval[1], args.key, [parse_model_argument(m) for m in args.model],
                                 args.train, batch_size=args.batch_size, threads=args.threads)
    except (ValueError, OSError) as error:  # EvaluationError and the data checks' ValueErrors; unreadable files
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    write_report(report, out)
    print(format_table(report))
    print(f"report: {out} ({time.perf_counter() - started:.1f} s)")
    return 0


def _apply(args: argparse.Namespace, config: Config) -> Config:
    if getattr(args, "snapshot", None):
        config = config.replace("data", snapshot_id=args.snapshot)
    if getattr(args, "offline", None):
        parquet, tensors = args.offline
        config = config.replace("data", source="offline", parquet=parquet, tensor_dir=tensors)
    if getattr(args, "image_only", False):
        config = config.replace("model", inputs="image")
    if getattr(args, "no_register", False):
        config = config.replace("register", enabled=False)
    if getattr(args, "seed", None) is not None:
        config = config.replace("train", seed=args.seed)
    if getattr(args, "name", None):
        config = config.replace("model", name=args.name)
    if getattr(args, "auxiliary_key", None):
        config = config.replace("data", auxiliary_key=args.auxiliary_key)
    check_config(config)
    return config


def _client():  # type: ignore[no-untyped-def]
    from tfesi_client import TfesiClient

    return TfesiClient.from_env(timeout=60.0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "evaluate":
        return _evaluate(args)
    try:
        config = _apply(args, load_config(args.config))
    except ConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 2
    if args.command == "show-config":
        print(json.dumps({"source": config.source_path, **config.to_dict()}, indent=2))
        return 0
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = pathlib.Path(args.out or f"data/training/{stamp}")
    started = time.perf_counter()
    if args.command == "fetch":
        from tfesi_training.data import fetch_snapshot

        with _client() as client:
            parquet, tensors, snapshot_id = fetch_snapshot(client, config.data, out)
        print(f"snapshot {snapshot_id}: {parquet} and {tensors} ({time.perf_counter() - started:.1f} s)")
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: run scripts/setup-training.sh and use .venv-training/bin/python",
              file=sys.stderr)
        return 3
    from tfesi_training.job import run_job

    print(f"config {config.source_path} (digest {config.digest()[:12]}), run directory {out}")
    if config.data.source == "online":
        with _client() as client:
            report = run_job(config, out, client=client)
    else:
        report = run_job(config, out)
    print(f"done in {time.perf_counter() - started:.1f} s: {report['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
