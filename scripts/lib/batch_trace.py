#!/usr/bin/env python3
"""Summarises the batches a tfesi-inference log records (JSON log format, filter
`tfesi_inference::batcher=debug`): per batch size, how many batches ran, the median and 90th
percentile run time, the slowest run, and the first runs in log order, which show a per-shape
warm-up cost (cuDNN's algorithm search, arena growth) apart from the steady state.

Usage: batch_trace.py LOG [LOG ...]
"""

import json
import statistics
import sys
from collections import defaultdict


def batches(path):
    """Yields (rows, requests, concat_us, run_us) for every `batch ran` event of the log."""
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if '"batch ran"' not in line:
                continue
            try:
                fields = json.loads(line)["fields"]
            except (json.JSONDecodeError, KeyError):
                continue
            yield (int(fields["rows"]), int(fields["requests"]), int(fields["concat_us"]), int(fields["run_us"]))


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(path):
    by_rows = defaultdict(list)
    concat = defaultdict(list)
    total_rows = 0
    total_run_us = 0
    for rows, _requests, concat_us, run_us in batches(path):
        by_rows[rows].append(run_us)
        concat[rows].append(concat_us)
        total_rows += rows
        total_run_us += run_us
    print(f"== {path}")
    if not by_rows:
        print("   no `batch ran` events (is the filter tfesi_inference::batcher=debug and the format json?)")
        return
    print(f"   {sum(len(v) for v in by_rows.values())} batches, {total_rows} rows, "
          f"{total_run_us / 1e6:.2f} s in session runs ({total_run_us / max(total_rows, 1):.0f} us per row)")
    print("   rows  batches  median_run_us  p90_run_us  max_run_us  median_concat_us  first runs (us)")
    for rows in sorted(by_rows):
        runs = by_rows[rows]
        print(f"   {rows:4d}  {len(runs):7d}  {statistics.median(runs):13.0f}  {quantile(runs, 0.9):10d}"
              f"  {max(runs):10d}  {statistics.median(concat[rows]):16.0f}  {runs[:4]}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        summarise(path)


if __name__ == "__main__":
    main()
