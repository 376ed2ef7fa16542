"""The bench/ scripts as modules, for the tests that call their functions (bench/ is not a
package: each script puts its own folder on sys.path, as running it does)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str):
    """bench/<name>.py, imported once per process."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)
