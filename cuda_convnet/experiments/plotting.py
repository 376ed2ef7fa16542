"""matplotlib (Agg, no display) for the figures, and the files every run writes."""
from __future__ import annotations

import io
import json
import os
import sys

from ..data.store import write_bytes_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi: int = 80) -> str:
    """Write `fig` as a PNG (folders made as needed) and close nothing: callers and tests
    still read the figure's titles, labels and legends. Written to a temporary name and
    moved into place: an interrupted run leaves the previous figure, never half a PNG."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=os.path.splitext(os.fspath(path))[1].lstrip(".") or "png")
    write_bytes_atomic(path, buf.getvalue())
    return os.fspath(path)


def write_record(out: str, name: str, record: dict, *, command=None) -> str:
    """OUT/NAME.json with `record` plus the command line that made it (argv after the program name)."""
    os.makedirs(out, exist_ok=True)
    argv = sys.argv[1:] if command is None else command
    record = {**record, "command": "python -m cuda_convnet " + " ".join(_quote(a) for a in argv)}
    path = os.path.join(out, f"{name}.json")
    # Atomic: a crash while writing leaves the previous record whole (report reads them all).
    write_bytes_atomic(path, json.dumps(record, indent=1).encode())
    return path


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)
