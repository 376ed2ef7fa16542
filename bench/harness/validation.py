"""A benchmark row's check against the float64 reference, and its status words."""

from __future__ import annotations

import math
import sys

import numpy as np

OK, MISMATCH = "ok", "MISMATCH"


def rel_err(ours, ref) -> float:
    """||ours - ref|| / ||ref|| in float64 on the arrays' own device (inf if ours has a
    NaN or an inf: a poisoned element that no one wrote)."""
    on_gpu = any(type(a).__module__.startswith("cupy") for a in (ours, ref))
    xp = sys.modules["cupy"] if on_gpu else np
    a = xp.asarray(ours, dtype=np.float64)
    b = xp.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} != reference shape {b.shape}")
    if not bool(xp.isfinite(a).all()):
        return math.inf
    den = float(xp.linalg.norm(b.ravel()))
    num = float(xp.linalg.norm((a - b).ravel()))
    return num / den if den > 0 else num


def describe_error(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"error: {type(e).__name__}: {msg}"[:160]
