"""Turns the Markdown table(s) a benchmark prints into JSON, for benchmarks that print only text.

    bench/markdown_table_to_json.py NAME COMMAND < output.md > NAME.json

Every line that is not a table row becomes a "note"; each table becomes a list of objects keyed
by its header cells. Values stay strings (they are formatted figures such as "12.3" or "4.1x").
"""

import datetime
import json
import os
import platform
import sys


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def main() -> None:
    name, command = sys.argv[1], sys.argv[2]
    notes, tables = [], []
    header = None
    for line in sys.stdin.read().splitlines():
        if not line.strip().startswith("|"):
            header = None
            if line.strip():
                notes.append(line.strip())
            continue
        row = cells(line)
        if header is None:
            header = row
            tables.append([])
        elif all(set(cell) <= set("-: ") for cell in row):
            continue
        else:
            tables[-1].append(dict(zip(header, row)))
    json.dump(
        {
            "benchmark": name,
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu": platform.processor()},
            "notes": notes,
            "tables": tables,
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
