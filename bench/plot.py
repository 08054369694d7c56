#!/usr/bin/env python3
"""Latency against offered load, as PNG, from the benchmarks' JSON results.

    .venv/bin/python bench/plot.py [RESULTS_DIR]

RESULTS_DIR defaults to $TFESI_BENCH_RESULTS, else bench/results. Reads end-to-end.json
(tests/benches/end_to_end.rs: p50/p99 from study upload to stored prediction at each offered
rate of studies per minute, open loop) and inference-serving.json
(services/inference/benches/serving: p50/p99 of batch-1 predictions at each offered rate, open
loop, for our service and the Python server; from a file written before the sweep existed, the
closed-loop figures at 1 and N callers), and writes end-to-end-latency.png and
inference-latency.png beside them.
A missing input skips its plot with a note; the script fails only when it drew nothing.
"""

import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend is chosen first)


def load(path):
    if not path.exists():
        print(f"plot: {path} is missing; its plot is skipped", file=sys.stderr)
        return None
    with path.open() as file:
        return json.load(file)


def machine_text(machine):
    cpus = machine.get("cpus", "?")
    cpu = machine.get("cpu") or "unknown CPU"
    return f"{cpus} CPUs ({cpu})"


def finish(fig, ax, path):
    ax.grid(True, which="both", alpha=0.3)
    # Below the axes: the lines span the whole plot.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: wrote {path}")


def plot_end_to_end(data, path):
    runs = [run for run in data.get("load", []) if run.get("stored", 0) > 0]
    if not runs:
        print("plot: end-to-end.json has no offered-load run with a stored prediction; skipped", file=sys.stderr)
        return False
    offered = [run["offered_per_min"] for run in runs]
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    ax.plot(offered, [run["p50_ms"] / 1000 for run in runs], "o-", label="p50")
    ax.plot(offered, [run["p99_ms"] / 1000 for run in runs], "s--", label="p99")
    for run in runs:
        achieved = run.get("achieved_per_min")
        rate = "n/a" if achieved is None else f"{achieved:.1f}/min"
        ax.annotate(
            f"stored at {rate}\n({run['stored']} of {run['studies']})",
            (run["offered_per_min"], run["p50_ms"] / 1000),
            textcoords="offset points",
            xytext=(6, -22),
            fontsize=7,
        )
    alone = data.get("stage_sum_ms")
    if alone:
        ax.axhline(alone / 1000, color="grey", linestyle=":", label="sum of the stage medians, alone")
    one_at_a_time = data.get("end_to_end", {}).get("stored", {}).get("median_ms")
    if one_at_a_time:
        ax.axhline(one_at_a_time / 1000, color="black", linestyle="-.", linewidth=0.8, label="p50, one study at a time")
    ax.set_xscale("log", base=2)
    ax.set_xticks(offered, [f"{rate:g}" for rate in offered])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("offered load (studies per minute, open-loop arrivals)")
    ax.set_ylabel("study upload to stored prediction (s)")
    model = data.get("settings", {}).get("model", "?")
    build = data.get("build", "?")
    note = "" if data.get("release_figures") else f" - {build} build, NOT release figures"
    ax.set_title(
        f"End to end with {model}: latency against offered load\n"
        f"synthetic data, {machine_text(data.get('machine', {}))}, {data.get('date', '')}{note}",
        fontsize=9,
    )
    finish(fig, ax, path)
    return True


def plot_inference(data, path):
    if data.get("sweep", {}).get("points"):
        return plot_inference_sweep(data, path)
    callers = data.get("settings", {}).get("callers")
    concurrency = {"batch1-sequential": 1, "batch1-concurrent": callers}
    systems = {}
    for result in data.get("results", []):
        load_level = concurrency.get(result.get("scenario"))
        if load_level is None:
            continue
        series = systems.setdefault(result["label"], [])
        series.append((load_level, result["p50_us"]["median"] / 1000, result["p99_us"]["median"] / 1000))
    if not systems:
        print("plot: inference-serving.json has no batch-1 scenario; skipped", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    for index, (label, series) in enumerate(sorted(systems.items())):
        series.sort()
        color = f"C{index}"
        xs = [point[0] for point in series]
        ax.plot(xs, [point[1] for point in series], "o-", color=color, label=f"{label}, p50")
        ax.plot(xs, [point[2] for point in series], "s--", color=color, alpha=0.6, label=f"{label}, p99")
    levels = sorted({level for series in systems.values() for level, _, _ in series})
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.set_yscale("log")
    ax.set_xlabel("offered load (concurrent callers, closed loop, batch 1)")
    ax.set_ylabel("latency per prediction (ms, log scale)")
    ax.set_title(inference_title(data, "medians over rounds"), fontsize=9)
    finish(fig, ax, path)
    return True


def inference_title(data, loop):
    model = data.get("model", {})
    return (
        f"Inference serving, {model.get('name', '?')}/{model.get('version', '?')}: latency against offered load\n"
        f"synthetic input, {machine_text(data.get('machine', {}))}, {data.get('date', '')}, {loop}"
    )


def plot_inference_sweep(data, path):
    sweep = data["sweep"]
    systems = {}
    for point in sweep["points"]:
        if point.get("answered", 0) > 0:
            systems.setdefault(point["label"], []).append(point)
    if not systems:
        print("plot: inference-serving.json's sweep answered nothing; skipped", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    for index, (label, points) in enumerate(sorted(systems.items())):
        points.sort(key=lambda point: point["offered_per_s"])
        color = f"C{index}"
        xs = [point["offered_per_s"] for point in points]
        ax.plot(xs, [point["p50_ms"] for point in points], "o-", color=color, label=f"{label}, p50")
        ax.plot(xs, [point["p99_ms"] for point in points], "s--", color=color, alpha=0.6, label=f"{label}, p99")
        for point in points:
            if point["achieved_per_s"] < 0.95 * point["offered_per_s"]:
                refused = f", {point['refused']} refused" if point.get("refused") else ""
                ax.annotate(
                    f"{point['achieved_per_s']:.0f}/s{refused}",
                    (point["offered_per_s"], point["p99_ms"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=color,
                )
    in_process = [
        result["p50_us"]["median"] / 1000
        for result in data.get("results", [])
        if result.get("scenario") == "batch1-sequential" and result.get("system") == "in-process"
    ]
    if in_process:
        ax.axhline(in_process[0], color="grey", linestyle=":", label="in-process onnxruntime, one at a time, p50")
    rates = sorted({point["offered_per_s"] for points in systems.values() for point in points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
    ax.set_yscale("log")
    ax.set_xlabel(
        f"offered load (predictions per second, open loop, batch 1; {sweep.get('window_s', '?'):g} s per rate; "
        "labels: achieved rate, and refusals, where below 95% of offered)",
        fontsize=8,
    )
    ax.set_ylabel("latency from the time each request was due (ms, log scale)")
    ax.set_title(inference_title(data, "one run per rate"), fontsize=9)
    finish(fig, ax, path)
    return True


def main():
    default = os.environ.get("TFESI_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(default)
    drawn = 0
    end_to_end = load(results / "end-to-end.json")
    if end_to_end is not None:
        drawn += plot_end_to_end(end_to_end, results / "end-to-end-latency.png")
    serving = load(results / "inference-serving.json")
    if serving is not None:
        drawn += plot_inference(serving, results / "inference-latency.png")
    if drawn == 0:
        print(f"plot: nothing to draw in {results}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
