"""What a benchmark run writes: the table, the run's environment, the JSON document."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.checkout import ROOT


def fmt(value, spec="{:.3g}"):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    return spec.format(value)


def format_table(rows, columns) -> str:
    """columns: (key, header, spec) triples; a row's missing key shows as '-'."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([fmt(row.get(k), spec) for k, _, spec in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def git_commit() -> str:
    """The checkout's commit (+dirty); $CCN_COMMIT when set (for a copy of the tree without
    .git: pass the hash along with the command)."""
    if os.environ.get("CCN_COMMIT"):
        return os.environ["CCN_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device, torch) -> dict:
    import cuda_convnet as ccn

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "cpu_cores": os.cpu_count(),
        "build": ccn.build_info(),
    }
    env.update(device.info())
    return env


def write_json(path, bench: str, env: dict, rows, table: str, **extra):
    doc = {"bench": bench, "env": env, "rows": rows, "table": table, **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
