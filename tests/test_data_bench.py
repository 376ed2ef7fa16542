"""bench/loader_bench.py runs (smoke mode) and reports a throughput."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_loader_bench_smoke():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/loader_bench.py"), "--smoke", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["images"] == 48
    assert {r["what"] for r in res["rows"]} >= {
        "loader gather only",
        "loader + train_views, threads=1",
    }
    assert all(r["images_per_s"] > 0 for r in res["rows"])
