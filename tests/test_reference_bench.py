"""The CPU benchmark harness runs (ARCHITECTURE.md §9: the benchmarks run on the CPU too, so the
harness itself is always tested): ``bench/reference_bench.py --smoke`` validates the
reference against PyTorch and prints both times and their ratio.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reference_bench_smoke():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "reference_bench.py"),
                           "--smoke"], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"^reference: [0-9.]+ ms/step", out, re.M), out
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "ratio: n/a" in out, out
        return
    assert "-> ok" in out, out
    assert re.search(r"^torch: +[0-9.]+ ms/step", out, re.M), out
    assert re.search(r"^ratio: [0-9.]+x", out, re.M), out
