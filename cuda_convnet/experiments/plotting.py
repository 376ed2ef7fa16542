"""matplotlib (Agg, no display) for the figures, and the files every run writes."""
from __future__ import annotations

import json
import os
import sys

from ..atomic import open_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi: int = 80) -> str:
    """Write `fig` as a PNG (folders made as needed) and close nothing: callers and tests
    still read the figure's titles, labels and legends."""
    with open_atomic(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return os.fspath(path)


def write_record(out: str, name: str, record: dict, *, command=None) -> str:
    """OUT/NAME.json with `record` plus the command line that made it (argv after the program name)."""
    os.makedirs(out, exist_ok=True)
    argv = sys.argv[1:] if command is None else command
    record = {**record, "command": "python -m cuda_convnet " + " ".join(_quote(a) for a in argv)}
    path = os.path.join(out, f"{name}.json")
    with open_atomic(path, "w") as f:
        json.dump(record, f, indent=1)
    return path


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)
